"""The Hugging Face Hub as a store source and target, against a stand-in on 127.0.0.1.

``python -m pytest_unlearn publish`` verifies a store and commits it with a dataset card;
``--unlearn-store=hf://datasets/ORG/NAME@COMMIT`` fetches it through ``huggingface_hub`` into
the client's own cache and verifies it there in place; a branch, a tag or a tampered file is
refused with one line. Every test runs with name resolution limited to the loopback host, the
client's endpoint, cache and home pointed at the stand-in and this test's directory.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BENCHMARK, CACHE_MODELS, IDENTITY_METHOD, output
from hub_standin import HubStandIn, running_hub

from pytest_unlearn import cli
from pytest_unlearn.report.json_report import load_report
from pytest_unlearn.store import StoreError
from pytest_unlearn.store.fetch import IntegrityError, materialize
from pytest_unlearn.store.hub import INSTALL, HubError
from pytest_unlearn.store.manifest import read_manifest

hf = pytest.importorskip("huggingface_hub")
# Imported out here: an in-process pytester run drops the modules first imported inside it,
# and the patched endpoint and paths below live on these module objects.
for _module in (
    "huggingface_hub.constants",
    "huggingface_hub.file_download",
    "huggingface_hub.hf_api",
    "huggingface_hub._commit_api",
    "huggingface_hub.utils._detect_agent",
):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)

REPO = "lab/digits-mlp"
TARGET = f"hf://datasets/{REPO}"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve only the loopback host: a request meant for the real Hub fails at once."""
    real = socket.getaddrinfo

    def loopback_only(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in _LOOPBACK:
            raise OSError(f"test: no network beyond 127.0.0.1 (asked for {name})")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_internet: None) -> Iterator[HubStandIn]:
    """The stand-in, with the client pointed at it: ``HF_ENDPOINT`` and ``HF_HUB_CACHE`` (read
    by pytest-unlearn when called), and the client's own import-time copies of the endpoint
    and of every path under its home (token, registries)."""
    constants = hf.constants
    with running_hub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        home = constants.HF_HOME
        for name in dir(constants):
            value = getattr(constants, name)
            if name.isupper() and isinstance(value, str) and value.startswith(home):
                monkeypatch.setattr(constants, name, str(tmp_path / "hf-home") + value[len(home) :])
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            server.url + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, unlearn_cache: Path) -> Path:
    """A copy of the session's digits-mlp store (N=16), as its publisher holds it."""
    (built,) = [p for p in (unlearn_cache / BENCHMARK).iterdir() if p.is_dir()]
    copy = tmp_path_factory.mktemp("to-publish") / "digits-mlp"
    shutil.copytree(built, copy)
    return copy


def _publish(store: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = cli.main(["publish", str(store), TARGET, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _published(hub: HubStandIn, store: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = _publish(store, capsys, "--no-floors")
    assert code == 0, err
    return out.split("pin it: --unlearn-store=")[1].split()[0]


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


# --- publishing --------------------------------------------------------------------------


def test_publish_uploads_the_store_and_a_card_and_prints_the_commit(
    hub: HubStandIn, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _publish(store, capsys)
    assert code == 0, err
    commit = hub.repos[REPO].branches["main"]
    assert f"at commit {commit}" in out
    assert f"pin it: --unlearn-store={TARGET}@{commit}" in out
    manifest = read_manifest(store)
    files = hub.files(REPO, commit)
    listed = [entry.path for entry in manifest.files]
    assert sorted(files) == sorted([*listed, "manifest.json", "README.md"])
    assert all(files[path] == (store / path).read_bytes() for path in [*listed, "manifest.json"])
    card = files["README.md"].decode()
    assert card.startswith("---\n")  # the Hub's metadata block
    for fact in (
        f"| benchmark | `{BENCHMARK}` |",
        f"| fingerprint | `{manifest.fingerprint}` |",
        f"| models per ensemble (N) | {CACHE_MODELS} |",
        f"python -m pytest_unlearn build {BENCHMARK} --out STORE --models {CACHE_MODELS}",
        f"--unlearn-store={TARGET}@COMMIT",
        '"epochs":',  # the recipe
        "| `digits-mlp-knn36-forget` |",  # a floor row
        "| `digits-mlp-seq3x12-req3-validation` |",
        manifest.files[0].sha256,
    ):
        assert fact in card, fact
    # A second publish of the same store is another commit on the branch, printed as such.
    code, out, err = _publish(store, capsys, "--no-floors", "--built-with", "make store")
    assert code == 0, err
    second = hub.repos[REPO].branches["main"]
    assert second != commit and f"at commit {second}" in out
    card = hub.files(REPO, second)["README.md"].decode()
    assert "make store" in card and "Not computed (`publish --no-floors`)." in card


def test_publish_refuses_a_store_that_does_not_verify(
    hub: HubStandIn, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(store, broken)
    path = broken / "pretrained" / "margins.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    code, out, err = _publish(broken, capsys)
    assert code == 1
    assert "FAIL pretrained/margins.safetensors: sha256 mismatch" in out
    assert "nothing was published" in err
    assert hub.requests == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (f"{TARGET}@main", "give no revision"),
        ("hf://datasets/lab", "expected hf://datasets/ORG/NAME"),
        ("hf://lab/digits-mlp", "dataset repositories"),
        ("https://huggingface.co/datasets/lab/x", "expected hf://datasets/ORG/NAME"),
    ],
)
def test_publish_usage_errors(
    hub: HubStandIn, store: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    code = cli.main(["publish", str(store), target])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert hub.requests == []


def test_without_the_client_every_use_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    with pytest.raises(HubError) as caught:
        materialize(f"{TARGET}@{'a' * 40}", tmp_path / "cache")
    assert INSTALL in _one_line(caught.value)
    code, _, err = _publish(store, capsys)
    assert code == 2 and INSTALL in err and err.count("\n") == 1


# --- fetching ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision", "why"),
    [
        ("", "no revision: pin the commit sha"),
        ("@main", "revision 'main' is not a commit sha"),
        ("@v1.0", "revision 'v1.0' is not a commit sha"),
        ("@abc1234", "revision 'abc1234' is not a commit sha"),
        ("@" + "a" * 40 + "/pretrained", "nothing may follow the revision"),
    ],
)
def test_an_unpinned_source_is_refused_before_any_request(
    hub: HubStandIn, tmp_path: Path, revision: str, why: str
) -> None:
    with pytest.raises(StoreError) as caught:
        materialize(TARGET + revision, tmp_path / "cache")
    text = _one_line(caught.value)
    assert why in text
    if revision.startswith("@") and "/" not in revision and len(revision) < 41:
        assert "a conformance verdict must be reproducible" in text
    assert hub.requests == []


def test_fetch_uses_the_clients_cache_verifies_in_place_and_works_offline(
    hub: HubStandIn, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _published(hub, store, capsys)
    cache = tmp_path / "cache"
    lines: list[str] = []
    local = materialize(source, cache, log=lines.append)
    hf_cache = Path(os.environ["HF_HUB_CACHE"])
    commit = source.rsplit("@", 1)[1]
    assert local == hf_cache / "datasets--lab--digits-mlp" / "snapshots" / commit
    assert any(line.startswith(f"pytest-unlearn: fetching store {source}") for line in lines)
    manifest = read_manifest(local)
    assert read_manifest(store) == manifest
    # Exactly the manifest and the files it lists, each once; nothing else (the card stays).
    downloads = hub.downloads()
    assert sorted(d.rsplit(f"/resolve/{commit}/", 1)[1] for d in downloads) == sorted(
        ["manifest.json", *(entry.path for entry in manifest.files)]
    )
    # Nothing duplicated into pytest-unlearn's cache: only the record of what was verified.
    assert sorted(p.name for p in cache.iterdir()) == ["locks", "verified"]
    # Again, online and offline: no request at all.
    before = len(hub.requests)
    assert materialize(source, cache) == local
    assert materialize(source, cache, offline=True) == local
    assert len(hub.requests) == before


def test_offline_and_not_cached_says_so(
    hub: HubStandIn, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _published(hub, store, capsys)
    before = len(hub.requests)
    with pytest.raises(StoreError) as caught:
        materialize(source, tmp_path / "cache", offline=True)
    assert "offline mode is on" in _one_line(caught.value)
    assert len(hub.requests) == before


def test_a_commit_whose_file_does_not_match_the_manifest_is_refused(
    hub: HubStandIn, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _published(hub, store, capsys)
    data = (store / "pretrained" / "margins.safetensors").read_bytes()
    later = hub.commit_files(
        REPO, {"pretrained/margins.safetensors": data[:-1] + bytes([data[-1] ^ 1])}
    )
    with pytest.raises(IntegrityError) as caught:
        materialize(f"{TARGET}@{later}", tmp_path / "cache")
    text = _one_line(caught.value)
    assert "pretrained/margins.safetensors: sha256 mismatch" in text
    assert f"{TARGET}@{later}" in text
    assert materialize(source, tmp_path / "cache").is_dir()  # the pinned commit is untouched


def test_a_file_changed_in_the_local_hub_cache_is_refused(
    hub: HubStandIn, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _published(hub, store, capsys)
    cache = tmp_path / "cache"
    local = materialize(source, cache)
    blob = (local / "oracles" / "knn36.safetensors").resolve()
    blob.chmod(0o644)
    data = blob.read_bytes()
    blob.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(IntegrityError) as caught:
        materialize(source, cache)
    assert "oracles/knn36.safetensors: sha256 mismatch" in _one_line(caught.value)
    # The manifest, what every other file is checked against, is checked against its blob.
    manifest = (local / "manifest.json").resolve()
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"n_models": 16', '"n_models": 17'))
    with pytest.raises(HubError) as caught:
        materialize(source, cache)
    assert "manifest.json: does not match the blob the Hub served" in _one_line(caught.value)


def test_a_repository_that_is_not_a_complete_store_is_refused(
    hub: HubStandIn, store: Path, tmp_path: Path
) -> None:
    hub.create(REPO)
    no_manifest = hub.commit_files(REPO, {"README.md": b"# not a store\n"})
    with pytest.raises(HubError, match=r"not a store: no manifest\.json") as caught:
        materialize(f"{TARGET}@{no_manifest}", tmp_path / "cache")
    _one_line(caught.value)
    only_manifest = hub.commit_files(
        REPO, {"manifest.json": (store / "manifest.json").read_bytes()}
    )
    with pytest.raises(HubError, match=r"listed in manifest\.json but not in the repository"):
        materialize(f"{TARGET}@{only_manifest}", tmp_path / "cache")
    with pytest.raises(HubError, match="has no commit"):
        materialize(f"{TARGET}@{'b' * 40}", tmp_path / "cache")
    with pytest.raises(HubError, match="no dataset repository lab/other"):
        materialize(f"hf://datasets/lab/other@{no_manifest}", tmp_path / "cache")


def test_verify_command_reads_a_hub_source(
    hub: HubStandIn, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _published(hub, store, capsys)
    code = cli.main(["verify", source, "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    assert f"OK {source}" in capsys.readouterr().out


# --- a conformance run against it ----------------------------------------------------------


def _conformance(pytester: pytest.Pytester, source: str, *extra: str) -> pytest.RunResult:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-models={CACHE_MODELS}",
        f"--unlearn-cache-dir={pytester.path / 'cache'}",
        f"--unlearn-store={source}",
        f"--unlearn-report={pytester.path / 'report.json'}",
        "-k",
        "knn36-forget",
        *extra,
    )


def test_round_trip_publish_fetch_conformance_verdicts(
    pytester: pytest.Pytester, hub: HubStandIn, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _published(hub, store, capsys)
    for extra in ((), ("--unlearn-offline",)):
        before = len(hub.downloads())
        result = _conformance(pytester, source, *extra)
        result.assert_outcomes(failed=1)  # do-nothing fails knn36/forget: a verdict, not an error
        (record,) = [r for r in load_report(pytester.path / "report.json")["records"]]
        assert record["test_id"] == "digits-mlp-knn36-forget"
        assert record["verdict"] == "FAIL"
        assert "building" not in output(result)
        if extra:
            assert len(hub.downloads()) == before  # offline: the client's cache only
    assert not (pytester.path / "cache" / BENCHMARK).exists()


def test_a_branch_fails_the_run_with_one_line(
    pytester: pytest.Pytester, hub: HubStandIn, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _published(hub, store, capsys)
    result = _conformance(pytester, f"{TARGET}@main")
    result.assert_outcomes(failed=1)
    text = output(result)
    line = next(line for line in text.splitlines() if "pytest-unlearn store error:" in line)
    assert "revision 'main' is not a commit sha" in line
    assert "a conformance verdict must be reproducible" in line
    assert "Traceback" not in text
    assert hub.downloads() == []
