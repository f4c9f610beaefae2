"""Building a store: never over something that is not a store, never leaving debris, files
readable like any other, and every failure one StoreError."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_unlearn.benchmarks.digits_mlp import DigitsMLP
from pytest_unlearn.store import StoreError, build_store, load_or_build
from pytest_unlearn.store import builder as builder_module
from pytest_unlearn.store.manifest import MANIFEST_NAME
from pytest_unlearn.store.reader import verify_directory


class QuickDigits(DigitsMLP):
    """digits-mlp with a one-epoch recipe: a build takes a fraction of a second."""

    recipe = dataclasses.replace(DigitsMLP.recipe, epochs=1)


def _build(out: Path) -> Path:
    return build_store(QuickDigits(), 2, out, log=lambda message: None)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def umask() -> Iterator[None]:
    """Run the test under umask 022 (restored afterwards)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# --- where a store may be written ------------------------------------------------------------


def test_a_non_empty_directory_that_is_not_a_store_is_refused_and_kept(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError) as error:
        _build(precious)
    assert str(error.value).startswith(f"{precious}: not empty and not a store (no manifest.json)")
    assert (precious / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_a_file_in_place_of_the_store_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "store"
    target.write_text("not a directory")
    with pytest.raises(StoreError, match="exists and is not a directory"):
        _build(target)
    assert target.read_text() == "not a directory"


def test_an_empty_directory_is_built_into(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    assert verify_directory(_build(tmp_path / "store")) == []


def test_a_previous_store_is_replaced(tmp_path: Path) -> None:
    out = _build(tmp_path / "store")
    before = (out / MANIFEST_NAME).stat().st_ino
    assert verify_directory(_build(out)) == []
    assert (out / MANIFEST_NAME).stat().st_ino != before  # a new store, not the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


# --- staging directories of killed builds ----------------------------------------------------


def test_staging_directories_of_dead_processes_are_removed_when_a_build_starts(
    tmp_path: Path,
) -> None:
    out = tmp_path / "store"
    pid = _dead_pid()
    host = builder_module.staging_name(out).name.split("-", 2)[2]
    stale = [
        tmp_path / f"store.building-{pid}",  # named by an older version: no host
        tmp_path / f"store.building-{pid}-{host}",
        tmp_path / f"store.replaced-{pid}",
    ]
    for directory in stale:
        (directory / "pretrained").mkdir(parents=True)
        (directory / "pretrained" / "weights.safetensors").write_bytes(b"half written")
    _build(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_staging_directories_of_live_processes_and_other_names_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "store"
    kept = [
        tmp_path / f"store.building-{os.getppid()}",  # alive: whoever started pytest
        tmp_path / f"store.building-{_dead_pid()}-another.host",  # not this machine's to judge
        tmp_path / "store.building-notes",  # not a staging name at all
        tmp_path / f"other.building-{_dead_pid()}",  # staging for another store
    ]
    for directory in kept:
        directory.mkdir()
    _build(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["store", *(p.name for p in kept)])


# --- permissions -------------------------------------------------------------------------------


def test_store_files_are_readable_like_the_manifest(tmp_path: Path, umask: None) -> None:
    out = _build(tmp_path / "store")
    manifest_mode = stat.S_IMODE((out / MANIFEST_NAME).stat().st_mode)
    assert manifest_mode == 0o644
    modes = {
        path.relative_to(out).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in out.rglob("*.safetensors")
    }
    assert modes and set(modes.values()) == {manifest_mode}, modes


def test_store_files_follow_a_stricter_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        out = _build(tmp_path / "store")
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(path.stat().st_mode) for path in out.rglob("*.safetensors")}
    assert modes == {0o600}


# --- failures ----------------------------------------------------------------------------------


def test_a_full_disk_is_one_store_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(tensors: object, path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(builder_module, "save_file", full)
    with pytest.raises(StoreError) as error:
        _build(tmp_path / "store")
    message = str(error.value)
    assert message.startswith(f"cannot write store {tmp_path / 'store'}: No space left on device")
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_location_is_one_store_error_before_any_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    trained: list[object] = []
    monkeypatch.setattr(QuickDigits, "train_members", lambda *args, **kw: trained.append(args))
    with pytest.raises(StoreError, match=r"^cannot write store /proc/x: "):
        _build(Path("/proc/x"))
    assert trained == []


def test_more_models_than_max_models_are_refused_with_the_reason(tmp_path: Path) -> None:
    limit = builder_module.MAX_MODELS
    assert limit == 10_000
    with pytest.raises(ValueError, match=rf"at most {limit} models .*memory"):
        build_store(QuickDigits(), limit + 1, tmp_path / "store", log=lambda message: None)
    with pytest.raises(ValueError, match=rf"at most {limit} models"):
        load_or_build(QuickDigits(), limit + 1, tmp_path / "cache", log=lambda message: None)
    assert not (tmp_path / "store").exists()
