"""Concurrent materialize() calls sharing one cache download each file exactly once.

The server in this process delays every response, so the callers (separate Python processes,
or xdist workers) overlap; it counts GETs per path across all of them.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from http_fixture import StoreServer, light_import_code, make_store, running_server

from pytest_unlearn.store.fetch import materialize
from pytest_unlearn.store.manifest import MANIFEST_NAME
from pytest_unlearn.store.reader import verify_directory

# Long enough that processes released together are all inside materialize() at once.
DELAY = 0.15
PROCESSES = 4

# Each child imports first, says it is ready, then waits for "go": import times do not spread
# the start times, so the calls really do race. light_import_code() skips the torch import.
CHILD = (
    light_import_code()
    + """
import sys, time
from pathlib import Path
from pytest_unlearn.store.fetch import materialize
url, cache, ready, go = sys.argv[1:]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)
print(materialize(url, Path(cache), retries=2, backoff=0.01, timeout=20))
"""
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source")
    make_store(root)
    return root


@pytest.fixture
def server(source: Path) -> Iterator[StoreServer]:
    with running_server() as srv:
        srv.serve_store(source, "/store")
        srv.delay = DELAY
        yield srv


def _race(urls: list[str], cache: Path, sync: Path) -> list[Path]:
    """Run one child per URL at the same moment; return what each materialize() returned."""
    sync.mkdir()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                url,
                str(cache),
                str(sync / f"ready-{i}"),
                str(sync / "go"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, url in enumerate(urls)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(sync.glob("ready-*"))) < len(urls):
            assert time.monotonic() < deadline, "children did not start"
            assert all(c.poll() is None for c in children), "a child died while starting"
            time.sleep(0.01)
        (sync / "go").touch()
        results = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            results.append(Path(out.strip()))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def test_processes_racing_on_one_url_download_each_file_once(
    server: StoreServer, tmp_path: Path
) -> None:
    base = server.url + "/store"
    results = _race([base] * PROCESSES, tmp_path / "cache", tmp_path / "sync")
    assert len(set(results)) == 1
    assert verify_directory(results[0]) == []
    assert set(server.data_counts("/store").values()) == {1}
    # The source lock makes the manifest one request per cache, not per process.
    assert server.count("/store/" + MANIFEST_NAME) == 1


def test_processes_racing_on_two_mirrors_download_each_file_once(
    source: Path, server: StoreServer, tmp_path: Path
) -> None:
    # Two URLs serving the same files: the per-blob locks, not the per-URL lock, must
    # stop the second download of each file.
    mirror = server.serve_store(source, "/mirror")
    base = server.url + "/store"
    results = _race([base, mirror] * (PROCESSES // 2), tmp_path / "cache", tmp_path / "sync")
    assert len(set(results)) == 1
    assert verify_directory(results[0]) == []
    store, mirrored = server.data_counts("/store"), server.data_counts("/mirror")
    for path, count in store.items():
        assert count + mirrored[path.replace("/store/", "/mirror/", 1)] == 1, path


def test_threads_racing_on_one_url_download_each_file_once(
    server: StoreServer, tmp_path: Path
) -> None:
    base = server.url + "/store"
    barrier = threading.Barrier(PROCESSES)

    def call() -> Path:
        barrier.wait()
        return materialize(base, tmp_path / "cache", retries=2, backoff=0.01, timeout=20)

    with ThreadPoolExecutor(PROCESSES) as pool:
        results = list(pool.map(lambda _: call(), range(PROCESSES)))
    assert len(set(results)) == 1
    assert verify_directory(results[0]) == []
    assert set(server.data_counts("/store").values()) == {1}


XDIST_TESTS = """
import os
from pathlib import Path

import pytest

from pytest_unlearn.store.fetch import materialize
from pytest_unlearn.store.reader import verify_directory


@pytest.mark.parametrize("i", range(8))
def test_materialize(i):
    store = materialize(
        os.environ["UNLEARN_TEST_STORE_URL"], Path(os.environ["UNLEARN_TEST_CACHE"]), timeout=20
    )
    assert verify_directory(store) == []
"""


def test_xdist_workers_download_each_file_once(
    server: StoreServer, pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNLEARN_TEST_STORE_URL", server.url + "/store")
    monkeypatch.setenv("UNLEARN_TEST_CACHE", str(tmp_path / "cache"))
    pytester.makeconftest(light_import_code())
    pytester.makepyfile(test_race=XDIST_TESTS)
    # The plugin is not needed by the generated tests (and would import torch in each worker).
    result = pytester.runpytest_subprocess(
        "-n", str(PROCESSES), "-p", "no:unlearn", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=8)
    assert set(server.data_counts("/store").values()) == {1}
    assert server.count("/store/" + MANIFEST_NAME) == 1
