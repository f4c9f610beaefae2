"""``--unlearn-store``: a published store replaces the local build, fetched once, verified."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import BENCHMARK, CACHE_MODELS, IDENTITY_METHOD, output
from http_fixture import running_server, wrong_bytes

from pytest_unlearn.store.manifest import read_manifest

MODELS = CACHE_MODELS  # the smallest N at which do-nothing fails knn36/forget


@pytest.fixture(scope="module")
def published_store(tmp_path_factory: pytest.TempPathFactory, unlearn_cache: Path) -> Path:
    """A copy of the shared cache's digits-mlp store, laid out as a publisher would serve it."""
    (built,) = [p for p in (unlearn_cache / BENCHMARK).iterdir() if p.is_dir()]
    published = tmp_path_factory.mktemp("published") / "digits-mlp"
    shutil.copytree(built, published)
    return published


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-models={MODELS}",
        f"--unlearn-cache-dir={pytester.path / 'cache'}",
        "-k",
        "knn36-forget",
        *args,
    )


def test_directory_store_is_used_without_building(
    pytester: pytest.Pytester, published_store: Path
) -> None:
    result = _run(pytester, f"--unlearn-store={published_store}")
    result.assert_outcomes(failed=1)  # do-nothing fails knn36/forget: the store was evaluated
    assert "pytest-unlearn: building" not in output(result)
    assert not (pytester.path / "cache" / BENCHMARK).exists()


def test_http_store_is_downloaded_once_then_reused_offline(
    pytester: pytest.Pytester, published_store: Path
) -> None:
    with running_server() as server:
        url = server.serve_store(published_store, "/digits")
        _run(pytester, f"--unlearn-store={url}").assert_outcomes(failed=1)
        first = server.data_counts("/digits")
        _run(pytester, f"--unlearn-store={url}", "--unlearn-offline").assert_outcomes(failed=1)
        assert server.data_counts("/digits") == first
    files = {entry.path for entry in read_manifest(published_store).files}
    assert {path.removeprefix("/digits/") for path in first} == files
    assert set(first.values()) == {1}


def test_offline_store_not_cached_fails_naming_offline(
    pytester: pytest.Pytester, published_store: Path
) -> None:
    with running_server() as server:
        url = server.serve_store(published_store, "/digits")
        result = _run(pytester, f"--unlearn-store={url}", "--unlearn-offline")
        assert set(server.data_counts("/digits").values()) == {0}
    result.assert_outcomes(failed=1)
    assert "offline" in output(result)
    assert "Traceback" not in output(result)


def test_corrupt_download_fails_naming_the_file_and_caches_nothing(
    pytester: pytest.Pytester, published_store: Path
) -> None:
    with running_server() as server:
        url = server.serve_store(published_store, "/digits")
        server.add_fault("/digits/pretrained/margins.safetensors", wrong_bytes())
        result = _run(pytester, f"--unlearn-store={url}")
    result.assert_outcomes(failed=1)
    assert "pretrained/margins.safetensors" in output(result)
    assert "sha256" in output(result)
    stores = pytester.path / "cache" / "downloads" / "stores"
    assert not stores.exists() or not any(p for p in stores.iterdir() if not p.name.startswith("."))


def test_a_store_file_the_manifest_does_not_list_fails_the_run_naming_it(
    pytester: pytest.Pytester, published_store: Path, tmp_path: Path
) -> None:
    """The hostile tester's forgery: the oracles dropped from the manifest and replaced by
    fakes. The run must refuse the file, not evaluate against it."""
    import dataclasses

    import torch
    from safetensors.torch import save_file

    from pytest_unlearn.store.manifest import write_manifest

    forged = tmp_path / "forged"
    shutil.copytree(published_store, forged)
    manifest = read_manifest(forged)
    oracle = "oracles/knn36.safetensors"
    kept = tuple(entry for entry in manifest.files if entry.path != oracle)
    write_manifest(forged, dataclasses.replace(manifest, files=kept))
    points = torch.zeros(MODELS, 1797)
    save_file({"half_a": points, "half_b": points.clone()}, str(forged / oracle))
    result = _run(pytester, f"--unlearn-store={forged}")
    result.assert_outcomes(failed=1)
    assert f"{forged / oracle}: not listed in" in output(result)
    assert "Traceback" not in output(result)
    # Said once: not again as the cause of a second exception.
    assert "During handling of the above exception" not in output(result)
    assert "direct cause of the following exception" not in output(result)


def _count_manifest_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The source of every manifest parsed from now on, in this process."""
    from pytest_unlearn.store.manifest import Manifest

    parsed: list[str] = []
    parse = Manifest.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Manifest], raw: bytes | str, source: str) -> Manifest:
        parsed.append(source)
        return parse(cls, raw, source)

    monkeypatch.setattr(Manifest, "parse", classmethod(counting))
    return parsed


def test_a_run_on_the_cache_parses_its_manifest_once(
    pytester: pytest.Pytester, unlearn_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = _count_manifest_parses(monkeypatch)
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-models={MODELS}",
        f"--unlearn-cache-dir={unlearn_cache}",
        "-k",
        "knn36",
    )
    result.assert_outcomes(failed=3)
    assert len(parsed) == 1, parsed


def test_a_run_on_a_store_parses_its_manifest_to_verify_and_once_to_read(
    pytester: pytest.Pytester, published_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = _count_manifest_parses(monkeypatch)
    _run(pytester, f"--unlearn-store={published_store}").assert_outcomes(failed=1)
    # fetch's verification of the files, then the one read that binds and loads them
    assert len(parsed) == 2, parsed
