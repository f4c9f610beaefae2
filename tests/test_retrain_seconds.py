"""The time of one exact retraining is measured once, when a store is built, and stored in its
manifest per device kind; a run reads it from there and never retrains to print it. A store
without it (an imported one) leaves the figure empty and says why."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from conftest import BENCHMARK, CACHE_MODELS, IDENTITY_METHOD, output

from pytest_unlearn.store import reference_retrain
from pytest_unlearn.store.manifest import (
    MANIFEST_NAME,
    Manifest,
    StoreError,
    read_manifest,
    write_manifest,
)
from pytest_unlearn.store.reference_retrain import device_kind


@pytest.fixture(scope="module")
def built_store(unlearn_cache: Path) -> Path:
    (store,) = [p for p in (unlearn_cache / BENCHMARK).iterdir() if p.is_dir()]
    return store


def _copy_with(store: Path, destination: Path, retrain_seconds: dict[str, float]) -> Path:
    shutil.copytree(store, destination)
    manifest = dataclasses.replace(read_manifest(destination), retrain_seconds=retrain_seconds)
    write_manifest(destination, manifest)
    return destination


def _run(pytester: pytest.Pytester, store: Path, report: Path) -> pytest.RunResult:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-models={CACHE_MODELS}",
        f"--unlearn-cache-dir={pytester.path / 'cache'}",
        f"--unlearn-store={store}",
        f"--unlearn-report={report}",
        "-k",
        "knn36",
    )


def _never_retrain(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a run retrained a model to time it")

    monkeypatch.setattr(reference_retrain, "retrain_one", refuse)


def test_a_build_records_one_retraining_for_its_device_kind(built_store: Path) -> None:
    recorded = read_manifest(built_store).retrain_seconds
    assert list(recorded) == [device_kind("cpu")] == ["cpu"]
    assert 0 < recorded["cpu"] < 600


def test_a_run_reports_the_stored_time_without_retraining(
    pytester: pytest.Pytester, built_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _copy_with(built_store, pytester.path / "store", {"cpu": 12.5})
    _never_retrain(monkeypatch)
    report = pytester.path / "report.json"
    _run(pytester, store, report)
    records = json.loads(report.read_text())["records"]
    assert records and {r["retrain_seconds_per_model"] for r in records} == {12.5}


def test_a_store_without_the_time_leaves_it_empty_and_says_so(
    pytester: pytest.Pytester, built_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _copy_with(built_store, pytester.path / "store", {})
    _never_retrain(monkeypatch)
    report = pytester.path / "report.json"
    result = _run(pytester, store, report)
    records = json.loads(report.read_text())["records"]
    assert records and {r["retrain_seconds_per_model"] for r in records} == {None}
    assert "records the time of one exact retraining for no device" in output(result)


def test_a_time_measured_on_another_device_kind_is_not_used(
    pytester: pytest.Pytester, built_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _copy_with(built_store, pytester.path / "store", {"cuda:NVIDIA H200": 3.0})
    _never_retrain(monkeypatch)
    report = pytester.path / "report.json"
    result = _run(pytester, store, report)
    records = json.loads(report.read_text())["records"]
    assert {r["retrain_seconds_per_model"] for r in records} == {None}
    assert "only for cuda:NVIDIA H200, not for cpu" in output(result)


def test_the_manifest_round_trips_the_times() -> None:
    manifest = Manifest(1, "b", "f", 2, {}, {}, (), retrain_seconds={"cpu": 1.5})
    assert Manifest.parse(manifest.to_json(), source="t").retrain_seconds == {"cpu": 1.5}


def test_a_manifest_without_times_keeps_the_bytes_it_had() -> None:
    assert "retrain_seconds" not in json.loads(Manifest(1, "b", "f", 2, {}, {}, ()).to_json())


@pytest.mark.parametrize("value", [-1.0, 0, "fast", True, [1.0]])
def test_a_manifest_with_a_time_that_is_not_positive_seconds_is_refused(value: object) -> None:
    raw = json.loads(Manifest(1, "b", "f", 2, {}, {}, ()).to_json())
    raw["retrain_seconds"] = {"cpu": value}
    with pytest.raises(StoreError, match="'retrain_seconds' must map device kinds"):
        Manifest.parse(json.dumps(raw), source=MANIFEST_NAME)
