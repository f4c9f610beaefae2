"""A download never hangs silently: stalls, deadlines, progress, and lock waits that name the
holder and give up. Every test serves from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from http_fixture import StoreServer, make_store, running_server, status, trickle
from safetensors.torch import save_file

from pytest_unlearn.store.fetch import StoreError, materialize
from pytest_unlearn.store.manifest import MANIFEST_NAME, build_manifest, write_manifest

fetch_module = importlib.import_module("pytest_unlearn.store.fetch")

WEIGHTS = "pretrained/weights.safetensors"
# One attempt, fast failure: what each test measures is the limit under test.
ONCE: dict[str, Any] = {"retries": 1, "backoff": 0.001, "timeout": 5.0}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose weights are 64 KiB: enough bytes to trickle steadily for a while."""
    root = tmp_path_factory.mktemp("source")
    make_store(root)
    save_file({"w": torch.zeros(8, 2048)}, str(root / WEIGHTS))
    manifest = build_manifest(
        root,
        benchmark="tiny-mlp",
        fingerprint="0123456789abcdef",
        n_models=8,
        recipe={},
        forget_sets={"knn36": "subpopulation"},
    )
    write_manifest(root, manifest)
    return root


@pytest.fixture
def server(source: Path) -> Iterator[StoreServer]:
    with running_server() as srv:
        srv.serve_store(source, "/store")
        yield srv


@pytest.fixture
def base(server: StoreServer) -> str:
    return server.url + "/store"


def test_a_trickling_server_ends_in_a_stall_error_within_seconds(
    server: StoreServer, base: str, tmp_path: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, trickle(chunk=1, every=0.1))  # 10 bytes a second
    started = time.monotonic()
    with pytest.raises(StoreError) as error:
        materialize(base, tmp_path / "cache", stall_seconds=0.5, **ONCE)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert message.startswith(f"cannot download {WEIGHTS} from {base}/{WEIGHTS}: stalled: ")
    assert "stall_seconds=0.5" in message
    assert "\n" not in message


def test_a_stalled_download_is_retried(server: StoreServer, base: str, tmp_path: Path) -> None:
    server.add_fault("/store/" + WEIGHTS, trickle(chunk=1, every=0.1), times=1)
    store = materialize(
        base, tmp_path / "cache", stall_seconds=0.3, retries=2, backoff=0.001, timeout=5.0
    )
    assert (store / WEIGHTS).read_bytes() == server.routes["/store/" + WEIGHTS]
    assert server.count("/store/" + WEIGHTS) == 2


def test_a_steady_download_past_its_deadline_is_given_up_without_retrying(
    server: StoreServer, base: str, tmp_path: Path
) -> None:
    # 4 KiB every 0.05 s: never stalled, but 64 KiB take 0.8 s and the deadline is 0.3 s.
    server.add_fault("/store/" + WEIGHTS, trickle(chunk=4096, every=0.05))
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"not finished within deadline_seconds=0\.3s"):
        materialize(
            base,
            tmp_path / "cache",
            stall_seconds=0.2,
            deadline_seconds=0.3,
            retries=3,
            backoff=0.001,
            timeout=5.0,
        )
    assert time.monotonic() - started < 3
    assert server.count("/store/" + WEIGHTS) == 1
    assert not list((tmp_path / "cache").rglob("*.part-*"))


def test_a_slow_but_steady_download_within_its_limits_succeeds(
    server: StoreServer, base: str, tmp_path: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, trickle(chunk=8192, every=0.02))
    store = materialize(base, tmp_path / "cache", stall_seconds=0.2, deadline_seconds=10, **ONCE)
    assert (store / WEIGHTS).read_bytes() == server.routes["/store/" + WEIGHTS]


def test_fetching_is_announced_before_the_first_request(
    server: StoreServer, base: str, tmp_path: Path
) -> None:
    server.add_fault("/store/" + MANIFEST_NAME, status(404))
    messages: list[str] = []
    with pytest.raises(StoreError):
        materialize(base, tmp_path / "cache", log=messages.append, **ONCE)
    assert messages[0] == f"pytest-unlearn: fetching store {base} into {tmp_path / 'cache'}"


def test_progress_shows_the_bytes_received_while_downloading(
    server: StoreServer, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch_module, "_PROGRESS_SECONDS", 0.05)
    server.add_fault("/store/" + WEIGHTS, trickle(chunk=8192, every=0.03))
    messages: list[str] = []
    materialize(base, tmp_path / "cache", log=messages.append, **ONCE)
    line = re.compile(rf"pytest-unlearn: downloading {WEIGHTS}: \d+\.\d KiB of 64\.1 KiB \(\d+%\)")
    progress = [m for m in messages if line.fullmatch(m)]
    assert len(progress) >= 2, messages


def test_a_manifest_with_a_huge_file_size_is_one_store_error(
    source: Path, server: StoreServer, base: str, tmp_path: Path
) -> None:
    data = json.loads((source / MANIFEST_NAME).read_text())
    data["files"][WEIGHTS]["size"] = 10**400
    server.routes["/store/" + MANIFEST_NAME] = json.dumps(data).encode()
    with pytest.raises(StoreError, match="larger than any file can be"):
        materialize(base, tmp_path / "cache", **ONCE)


# --- lock waits ---------------------------------------------------------------------------------


def _source_lock(cache: Path, base: str) -> Path:
    return cache / "locks" / f"source-{fetch_module._key(base)}.lock"


def test_a_lock_wait_names_the_holder_and_gives_up_after_lock_timeout(
    base: str, tmp_path: Path
) -> None:
    from pytest_unlearn.store.locks import held_lock

    cache = tmp_path / "cache"
    messages: list[str] = []
    holder = _source_lock(cache, base)
    with held_lock(holder, what="a test holding it", say=print, timeout=1):
        started = time.monotonic()
        with pytest.raises(StoreError) as error:
            materialize(base, cache, log=messages.append, lock_timeout=0.3, **ONCE)
        assert time.monotonic() - started < 3
    who = f"process {os.getpid()} on host "
    assert any(m.startswith(f"pytest-unlearn: waiting for {who}") for m in messages), messages
    message = str(error.value)
    assert message.startswith("gave up after waiting 0s for ")
    assert who in message and "a test holding it" in message and "lock_timeout" in message


def test_the_holder_of_a_lock_is_recorded_next_to_it_while_held(tmp_path: Path) -> None:
    from pytest_unlearn.store.locks import held_lock

    lock = tmp_path / "x.lock"
    with held_lock(lock, what="testing", say=print, timeout=1):
        record = json.loads((tmp_path / "x.lock.holder").read_text())
        assert (record["pid"], record["what"]) == (os.getpid(), "testing")
    assert not (tmp_path / "x.lock.holder").exists()


def test_an_unreadable_holder_record_is_described_plainly(tmp_path: Path) -> None:
    from pytest_unlearn.store.locks import describe_holder

    (tmp_path / "x.lock.holder").write_text("[" * 100_000)
    assert describe_holder(tmp_path / "x.lock") == "another process"


def test_a_build_lock_wait_gives_up_after_lock_timeout(tmp_path: Path) -> None:
    from pytest_unlearn.benchmarks import get_benchmark
    from pytest_unlearn.store import load_or_build
    from pytest_unlearn.store.locks import held_lock

    bench = get_benchmark("digits-mlp")
    lock = tmp_path / bench.name / f"{bench.fingerprint()}.lock"
    messages: list[str] = []
    with (
        held_lock(lock, what="building it elsewhere", say=print, timeout=1),
        pytest.raises(StoreError) as error,
    ):
        load_or_build(bench, 2, tmp_path, log=messages.append, lock_timeout=0.2)
    assert f"process {os.getpid()}" in messages[0] and "building it elsewhere" in messages[0]
    assert "building it elsewhere" in str(error.value)
    assert not (tmp_path / bench.name / bench.fingerprint()).exists()
