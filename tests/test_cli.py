"""``python -m pytest_unlearn``: every user-caused error is one line, exit 2 for usage, 1 for a
store or OS failure, and nothing the tool did not make is ever deleted."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from http_fixture import make_store

from pytest_unlearn.cli import main
from pytest_unlearn.store import builder as builder_module
from pytest_unlearn.store.manifest import MANIFEST_NAME, read_manifest


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``python -m pytest_unlearn ARGV``, run in this process."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _train_nothing(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record any attempt to train (a usage error must be caught before any work)."""
    trained: list[object] = []
    monkeypatch.setattr(
        "pytest_unlearn.benchmarks.digits_mlp.DigitsMLP.train_members",
        lambda *args, **kwargs: trained.append(args),
    )
    return trained


def test_build_refuses_a_non_empty_directory_that_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = _train_nothing(monkeypatch)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    code, err = _run(capsys, "build", "digits-mlp", "--out", str(precious), "--models", "2")
    assert code == 2
    assert _one_line(err) == (
        f"error: {precious}: not empty and not a store (no {MANIFEST_NAME}); refusing to "
        "replace it: give an empty or new directory"
    )
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert trained == []


def test_build_on_a_device_this_machine_does_not_have_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    trained = _train_nothing(monkeypatch)
    out = tmp_path / "store"
    code, err = _run(capsys, "build", "digits-mlp", "--out", str(out), "--device", "cuda")
    assert code == 2
    assert _one_line(err).startswith("error: --device cuda is not available on this machine (")
    assert trained == [] and not out.exists()


def test_build_on_a_device_name_torch_does_not_know_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(
        capsys, "build", "digits-mlp", "--out", str(tmp_path / "s"), "--device", "gpu0"
    )
    assert code == 2
    assert _one_line(err).startswith("error: --device 'gpu0' is not a torch device")


def test_build_into_an_unwritable_location_is_one_line_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    trained = _train_nothing(monkeypatch)
    code, err = _run(capsys, "build", "digits-mlp", "--out", "/proc/x", "--models", "2")
    assert code == 1
    assert _one_line(err).startswith("error: cannot write store /proc/x: ")
    assert trained == []


def test_build_on_a_full_disk_is_one_line_exit_1_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(tensors: object, path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(builder_module, "save_file", full)
    out = tmp_path / "store"
    code, err = _run(capsys, "build", "digits-mlp", "--out", str(out), "--models", "2")
    assert code == 1
    assert _one_line(err).startswith(f"error: cannot write store {out}: No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_build_of_absurdly_many_models_is_a_usage_error_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = _train_nothing(monkeypatch)
    code, err = _run(
        capsys, "build", "digits-mlp", "--out", str(tmp_path / "s"), "--models", "100000000"
    )
    assert code == 2
    line = _one_line(err)
    assert "argument --models: must be at most 10000, got 100000000" in line
    assert "memory" in line
    assert trained == []


def test_a_missing_argument_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "build", "--models", "4")
    assert code == 2
    assert "the following arguments are required: benchmark" in _one_line(err)


def test_an_unknown_benchmark_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "build", "nope", "--out", str(tmp_path / "s"))
    assert code == 2
    assert _one_line(err).startswith("error: unknown benchmark 'nope'")


def test_building_cifar10_without_its_images_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "cifar-10-binary.tar.gz"
    monkeypatch.setenv("PYTEST_UNLEARN_CIFAR10", str(missing))
    code, err = _run(
        capsys, "build", "cifar10-resnet9", "--cache-dir", str(tmp_path / "cache"), "--models", "2"
    )
    assert code == 1
    assert _one_line(err).startswith(f"error: {missing}: no such file")


def test_build_without_out_writes_the_store_where_pytest_looks_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_unlearn.benchmarks import get_benchmark

    cache = tmp_path / "cache"
    assert main(["build", "digits-mlp", "--models", "2", "--cache-dir", str(cache)]) == 0
    store = cache / "digits-mlp" / get_benchmark("digits-mlp").fingerprint()
    assert read_manifest(store).n_models == 2
    assert f"--unlearn-cache-dir={cache}" in capsys.readouterr().out


def test_verify_fails_a_store_with_a_file_its_manifest_does_not_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(tmp_path / "store")
    (tmp_path / "store" / "oracles" / "extra.safetensors").write_bytes(b"unverified")
    code = main(["verify", str(tmp_path / "store")])
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAIL oracles/extra.safetensors: on disk but not listed in {MANIFEST_NAME}" in out


def test_verify_of_a_good_store_says_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_store(tmp_path / "store")
    assert main(["verify", str(tmp_path / "store")]) == 0
    assert capsys.readouterr().out.startswith("OK ")


def test_verify_of_a_missing_directory_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "verify", str(tmp_path / "nope"), "--cache-dir", str(tmp_path / "c"))
    assert code == 1
    assert _one_line(err).endswith("is not a directory")


def test_the_module_entry_point_reports_a_usage_error_without_a_traceback(
    tmp_path: Path,
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_unlearn", "build", "digits-mlp", "--out", str(precious)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert _one_line(result.stderr).startswith(f"error: {precious}: not empty and not a store")
    assert (precious / "keep").read_text() == "x"
