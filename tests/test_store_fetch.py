"""materialize(): verified downloads into a content-keyed cache, and verified local stores.

Every remote test runs against a real HTTP server on 127.0.0.1 (tests/http_fixture.py) that
counts GETs per path and injects faults, so "no request" and "exactly one retry" are checked.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_fixture import (
    StoreServer,
    make_store,
    running_server,
    slow,
    status,
    truncated,
    unused_url,
    wrong_bytes,
)

from pytest_unlearn.store.fetch import (
    DownloadError,
    IntegrityError,
    OfflineError,
    StoreError,
    materialize,
)
from pytest_unlearn.store.manifest import MANIFEST_NAME, Manifest, sha256_file
from pytest_unlearn.store.reader import verify_directory

fetch_module = importlib.import_module("pytest_unlearn.store.fetch")

# Tiny retry waits and timeouts keep the failure tests fast.
FAST: dict[str, Any] = {"retries": 3, "backoff": 0.001, "timeout": 5.0}
WEIGHTS = "pretrained/weights.safetensors"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source")
    make_store(root)
    return root


@pytest.fixture
def server(source: Path) -> Iterator[StoreServer]:
    with running_server() as srv:
        srv.serve_store(source, "/store")
        yield srv


@pytest.fixture
def base(server: StoreServer) -> str:
    return server.url + "/store"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _leftovers(cache: Path) -> list[str]:
    """Every file or folder in the cache except lock files: what a failure must not leave."""
    found = []
    for dirpath, dirnames, filenames in os.walk(cache):
        rel = Path(dirpath).relative_to(cache)
        if rel.parts[:1] == ("locks",):
            continue
        found += [(rel / name).as_posix() for name in filenames]
        # An empty blob fan-out folder is harmless; a view folder is not.
        found += [
            (rel / name).as_posix() + "/" for name in dirnames if rel.parts[:1] == ("stores",)
        ]
    return sorted(found)


def _serve_manifest(server: StoreServer, raw: str | bytes) -> None:
    server.routes["/store/" + MANIFEST_NAME] = raw.encode() if isinstance(raw, str) else raw


# --- happy path --------------------------------------------------------------------------


def test_download_gives_a_store_identical_to_the_source(
    source: Path, base: str, cache: Path
) -> None:
    store = materialize(base, cache, **FAST)
    assert (store / MANIFEST_NAME).read_bytes() == (source / MANIFEST_NAME).read_bytes()
    manifest = Manifest.parse((store / MANIFEST_NAME).read_bytes(), source="view")
    for entry in manifest.files:
        assert (store / entry.path).read_bytes() == (source / entry.path).read_bytes()
    assert verify_directory(store) == []


def test_download_requests_each_file_once(server: StoreServer, base: str, cache: Path) -> None:
    materialize(base, cache, **FAST)
    assert set(server.data_counts("/store").values()) == {1}
    assert server.count("/store/" + MANIFEST_NAME) == 1


def test_view_lives_under_the_manifest_hash(source: Path, base: str, cache: Path) -> None:
    store = materialize(base, cache, **FAST)
    manifest_sha = hashlib.sha256((source / MANIFEST_NAME).read_bytes()).hexdigest()
    assert store == cache / "stores" / manifest_sha


def test_view_files_are_hard_links_to_read_only_blobs(base: str, cache: Path) -> None:
    store = materialize(base, cache, **FAST)
    sha = sha256_file(store / WEIGHTS)
    blob = cache / "blobs" / "sha256" / sha[:2] / sha
    assert os.path.samefile(blob, store / WEIGHTS)
    assert blob.stat().st_mode & 0o222 == 0


def test_second_call_makes_no_request(server: StoreServer, base: str, cache: Path) -> None:
    first = materialize(base, cache, **FAST)
    server.counts.clear()
    assert materialize(base, cache, **FAST) == first
    assert sum(server.counts.values()) == 0


def test_offline_after_a_fetch_makes_no_request(
    server: StoreServer, base: str, cache: Path
) -> None:
    first = materialize(base, cache, **FAST)
    server.counts.clear()
    assert materialize(base, cache, offline=True) == first
    assert sum(server.counts.values()) == 0


def test_offline_before_any_fetch_names_offline_mode(
    server: StoreServer, base: str, cache: Path
) -> None:
    with pytest.raises(OfflineError, match=rf"{base} is not cached .* offline mode is on"):
        materialize(base, cache, offline=True)
    assert sum(server.counts.values()) == 0


def test_other_url_with_the_same_files_downloads_nothing(
    source: Path, server: StoreServer, base: str, cache: Path
) -> None:
    mirror = server.serve_store(source, "/mirror")
    materialize(base, cache, **FAST)
    materialize(mirror, cache, **FAST)
    assert set(server.data_counts("/mirror").values()) == {0}


def test_a_file_deleted_from_the_view_is_restored_from_its_blob(
    server: StoreServer, base: str, cache: Path
) -> None:
    store = materialize(base, cache, **FAST)
    (store / WEIGHTS).unlink()
    server.counts.clear()
    assert materialize(base, cache, **FAST) == store
    assert verify_directory(store) == []
    assert sum(server.data_counts("/store").values()) == 0


def test_progress_is_logged_with_size(base: str, cache: Path) -> None:
    messages: list[str] = []
    materialize(base, cache, log=messages.append, **FAST)
    assert any(m.startswith(f"pytest-unlearn: downloading {WEIGHTS} (") for m in messages)


def test_requests_carry_the_user_agent(server: StoreServer, base: str, cache: Path) -> None:
    materialize(base, cache, **FAST)
    assert set(server.user_agents) == {"pytest-unlearn"}


# --- integrity failures ------------------------------------------------------------------


def test_hash_mismatch_is_retried_once(server: StoreServer, base: str, cache: Path) -> None:
    server.add_fault("/store/" + WEIGHTS, wrong_bytes())
    with pytest.raises(IntegrityError):
        materialize(base, cache, **FAST)
    assert server.count("/store/" + WEIGHTS) == 2


def test_hash_mismatch_names_file_and_both_hashes(
    source: Path, server: StoreServer, base: str, cache: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, wrong_bytes())
    good = bytearray((source / WEIGHTS).read_bytes())
    good[len(good) // 2] ^= 0xFF
    expected = sha256_file(source / WEIGHTS)
    actual = hashlib.sha256(good).hexdigest()
    with pytest.raises(
        IntegrityError, match=rf"{WEIGHTS}.*expected sha256 {expected}, got {actual}"
    ):
        materialize(base, cache, **FAST)


def test_hash_mismatch_leaves_nothing_and_a_later_call_succeeds(
    source: Path, server: StoreServer, base: str, cache: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, wrong_bytes())
    with pytest.raises(IntegrityError):
        materialize(base, cache, **FAST)
    left = _leftovers(cache)
    # Only blobs remain (no part file, view or source record), each one correct: files fetched
    # before the failing one are kept for the next try.
    assert all(p.startswith("blobs/sha256/") and ".part" not in p for p in left)
    assert all(sha256_file(cache / p) == Path(p).name for p in left)
    assert sha256_file(source / WEIGHTS) not in {Path(p).name for p in left}
    server.clear_faults()
    assert verify_directory(materialize(base, cache, **FAST)) == []


def test_truncated_body_is_retried_then_names_both_sizes(
    source: Path, server: StoreServer, base: str, cache: Path
) -> None:
    size = (source / WEIGHTS).stat().st_size
    server.add_fault("/store/" + WEIGHTS, truncated(keep=100))
    with pytest.raises(DownloadError, match=rf"{WEIGHTS}.*expected {size} bytes, received 100"):
        materialize(base, cache, **FAST)
    assert server.count("/store/" + WEIGHTS) == FAST["retries"]


def test_truncated_body_leaves_no_part_file_and_a_later_call_succeeds(
    server: StoreServer, base: str, cache: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, truncated(keep=100))
    with pytest.raises(DownloadError):
        materialize(base, cache, **FAST)
    assert [p for p in _leftovers(cache) if ".part" in p or p.startswith("stores/")] == []
    server.clear_faults()
    assert verify_directory(materialize(base, cache, **FAST)) == []


def test_one_truncated_body_is_recovered_by_a_retry(
    server: StoreServer, base: str, cache: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, truncated(keep=10), times=1)
    assert verify_directory(materialize(base, cache, **FAST)) == []
    assert server.count("/store/" + WEIGHTS) == 2


# --- HTTP and connection failures --------------------------------------------------------


def test_404_is_not_retried_and_names_url_and_status(
    server: StoreServer, base: str, cache: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, status(404))
    with pytest.raises(DownloadError, match=rf"{base}/{WEIGHTS} answered HTTP 404"):
        materialize(base, cache, **FAST)
    assert server.count("/store/" + WEIGHTS) == 1


def test_missing_manifest_names_its_url(server: StoreServer, base: str, cache: Path) -> None:
    del server.routes["/store/" + MANIFEST_NAME]
    with pytest.raises(DownloadError, match=rf"{base}/{MANIFEST_NAME} answered HTTP 404"):
        materialize(base, cache, **FAST)


def test_500_twice_then_success_takes_three_requests(
    server: StoreServer, base: str, cache: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, status(500), times=2)
    assert verify_directory(materialize(base, cache, **FAST)) == []
    assert server.count("/store/" + WEIGHTS) == 3


def test_retries_back_off_exponentially(
    server: StoreServer, base: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(fetch_module.time, "sleep", waits.append)
    server.add_fault("/store/" + WEIGHTS, status(503), times=3)
    materialize(base, cache, retries=4, backoff=0.5, timeout=5.0)
    assert waits == [0.5, 1.0, 2.0]


def test_persistent_500_gives_up_after_retries_naming_url_and_status(
    server: StoreServer, base: str, cache: Path
) -> None:
    server.add_fault("/store/" + WEIGHTS, status(500))
    with pytest.raises(DownloadError, match=rf"{base}/{WEIGHTS}: HTTP 500 .*after 3 attempts"):
        materialize(base, cache, **FAST)
    assert server.count("/store/" + WEIGHTS) == 3
    assert [p for p in _leftovers(cache) if ".part" in p or p.startswith("stores/")] == []


def test_server_down_names_url_and_reason(cache: Path) -> None:
    url = unused_url()
    with pytest.raises(DownloadError, match=rf"{url}/{MANIFEST_NAME}: connection refused"):
        materialize(url, cache, **FAST)


def test_slow_server_times_out_naming_url(server: StoreServer, base: str, cache: Path) -> None:
    server.add_fault("/store/" + WEIGHTS, slow(1.0))
    with pytest.raises(DownloadError, match=rf"{base}/{WEIGHTS}: timed out after 0.2s"):
        materialize(base, cache, retries=1, backoff=0.001, timeout=0.2)


# --- refused manifests -------------------------------------------------------------------


def _manifest_with(source: Path, **changes: Any) -> str:
    data = json.loads((source / MANIFEST_NAME).read_text())
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("make_raw", "cause"),
    [
        pytest.param(lambda src: "{truncated", "not valid JSON", id="malformed"),
        pytest.param(
            lambda src: _manifest_with(src, schema=99), "unknown schema 99", id="schema-99"
        ),
        pytest.param(
            lambda src: _manifest_with(
                src, files={"../evil.safetensors": {"sha256": "ab" * 32, "size": 3}}
            ),
            r"unsafe file path '\.\./evil.safetensors'",
            id="dotdot-path",
        ),
    ],
)
def test_bad_manifest_is_refused_before_any_data_request(
    source: Path, server: StoreServer, base: str, cache: Path, make_raw: Any, cause: str
) -> None:
    _serve_manifest(server, make_raw(source))
    with pytest.raises(StoreError, match=rf"manifest {base}/{MANIFEST_NAME}: .*{cause}"):
        materialize(base, cache, **FAST)
    assert set(server.data_counts("/store").values()) == {0}
    assert not (cache.parent / "evil.safetensors").exists()


def test_unwritable_cache_is_a_store_error(base: str, tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(StoreError, match="local file error in cache"):
        materialize(base, tmp_path / "not-a-dir", **FAST)


def test_unsupported_scheme_is_refused(cache: Path) -> None:
    with pytest.raises(StoreError, match="unsupported store source 'ftp://h/s'"):
        materialize("ftp://h/s", cache)


# --- local directories -------------------------------------------------------------------


def test_local_directory_is_verified_and_returned_in_place(tmp_path: Path, cache: Path) -> None:
    make_store(tmp_path / "local")
    assert materialize(str(tmp_path / "local"), cache) == (tmp_path / "local").resolve()


def test_file_url_is_verified_and_returned_in_place(tmp_path: Path, cache: Path) -> None:
    make_store(tmp_path / "local")
    assert materialize((tmp_path / "local").as_uri(), cache) == (tmp_path / "local").resolve()


def test_local_second_call_does_not_rehash(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = make_store(tmp_path / "local")
    hashed: list[Path] = []

    def counting(path: Path) -> str:
        hashed.append(path)
        return sha256_file(path)

    monkeypatch.setattr(fetch_module, "sha256_file", counting)
    materialize(str(tmp_path / "local"), cache)
    assert len(hashed) == len(manifest.files)
    hashed.clear()
    materialize(str(tmp_path / "local"), cache)
    assert hashed == []


def test_local_tampered_file_is_detected(tmp_path: Path, cache: Path) -> None:
    manifest = make_store(tmp_path / "local")
    materialize(str(tmp_path / "local"), cache)  # verified and recorded
    target = tmp_path / "local" / WEIGHTS
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01  # same size, different byte
    target.write_bytes(bytes(data))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    expected = manifest.entry(WEIGHTS).sha256
    with pytest.raises(IntegrityError, match=rf"{WEIGHTS}: sha256 mismatch: expected {expected}"):
        materialize(str(tmp_path / "local"), cache)


def test_local_missing_file_is_detected(tmp_path: Path, cache: Path) -> None:
    make_store(tmp_path / "local")
    (tmp_path / "local" / WEIGHTS).unlink()
    with pytest.raises(IntegrityError, match=rf"{WEIGHTS}: missing"):
        materialize(str(tmp_path / "local"), cache)


def test_local_directory_without_manifest_is_refused(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"has no manifest\.json"):
        materialize(str(tmp_path / "empty"), cache)
