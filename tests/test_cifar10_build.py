"""``cifar10-resnet9`` builds here (a GPU in practice; the CPU at miniature size): pretrained
and oracle ResNet-9s with their BatchNorm statistics, forget sets chosen from the images, the
exact-retraining time in the manifest, and a run that fetches, builds and evaluates.

Sizes: ``tests/tiny_cifar.py`` (300 training and 100 test images, one epoch, two models).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from types import MappingProxyType

import pytest
import torch
from conftest import output
from http_fixture import running_server
from safetensors.torch import load_file
from tiny_cifar import N_TEST, PER_BATCH, tiny_cifar, write_cifar_archive

from pytest_unlearn import benchmarks as registry
from pytest_unlearn.benchmarks.cifar10_data import CIFAR10_BINARY_NAME
from pytest_unlearn.benchmarks.cifar10_resnet9 import (
    EASYDUB_RECIPE,
    FAST_RECIPE,
    CIFAR10ResNet9,
)
from pytest_unlearn.store import StoreError, bind_forget_sets, build_store, read_ensembles
from pytest_unlearn.store.manifest import MANIFEST_NAME, read_manifest
from pytest_unlearn.store.reference_retrain import device_kind

N_POINTS = 5 * PER_BATCH + N_TEST


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[CIFAR10ResNet9, Path]:
    """A tiny CIFAR-10 archive (read as a local copy) and a two-model store built from it."""
    root = tmp_path_factory.mktemp("tiny-cifar")
    archive = root / CIFAR10_BINARY_NAME
    md5 = write_cifar_archive(archive)
    bench = tiny_cifar(md5=md5).with_data_files({CIFAR10_BINARY_NAME: archive})
    store = build_store(bench, 2, root / "store", log=lambda message: None)
    return bench, store


def test_the_registered_benchmark_is_buildable_with_the_fast_recipe() -> None:
    bench = registry.get_benchmark("cifar10-resnet9")
    assert bench.buildable and bench.recipe == FAST_RECIPE
    assert not bench.as_imported().buildable  # EasyDUB's release: imported only


def test_the_fast_recipe_keeps_easydubs_schedule_in_fewer_steps() -> None:
    assert FAST_RECIPE.lr_schedule == EASYDUB_RECIPE.lr_schedule == "one_cycle_linear"
    images_seen = FAST_RECIPE.epochs / EASYDUB_RECIPE.epochs
    steps = images_seen * EASYDUB_RECIPE.batch_size / FAST_RECIPE.batch_size
    assert images_seen < 0.5 and steps < 0.25


def test_built_forget_sets_are_chosen_from_the_images(built: tuple[CIFAR10ResNet9, Path]) -> None:
    bench, _ = built
    by_name = {fs.name: fs for fs in bench.forget_sets}
    assert set(by_name) == {"knn20", "random20", "seq2x5"}
    assert by_name["knn20"].kind == "subpopulation" and len(by_name["knn20"].indices) == 20
    assert [len(r) for r in by_name["seq2x5"].requests] == [5, 5]
    train = set(range(5 * PER_BATCH))
    assert all(set(fs.indices) <= train for fs in bench.forget_sets)
    assert not set(by_name["knn20"].indices) & set(by_name["seq2x5"].indices)


def test_the_store_holds_every_ensemble_with_batchnorm_statistics(
    built: tuple[CIFAR10ResNet9, Path],
) -> None:
    bench, store = built
    weights = load_file(str(store / "pretrained" / "weights.safetensors"))
    assert set(weights) == set(bench.build_model().state_dict())
    # Running statistics moved away from their initial values: training updated them.
    assert not torch.all(weights["0.1.running_mean"] == 0)
    assert int(weights["0.1.num_batches_tracked"][0]) == -(-5 * PER_BATCH // 64)
    ensembles = read_ensembles(bench, store, 2)
    assert ensembles.pretrained_margins.shape == (2, N_POINTS)
    assert sorted(ensembles.oracles) == [
        ("knn20", 1),
        ("random20", 1),
        ("seq2x5", 1),
        ("seq2x5", 2),
    ]
    assert torch.isfinite(ensembles.pretrained_margins).all()


def test_the_members_margins_are_those_of_the_stored_models_in_eval_mode(
    built: tuple[CIFAR10ResNet9, Path],
) -> None:
    from pytest_unlearn.metric import margins

    bench, store = built
    ensembles = read_ensembles(bench, store, 2)
    data = bench.load_data()
    model = ensembles.member(1).eval()
    with torch.no_grad():
        expected = margins(model(data.inputs), data.targets).float()
    torch.testing.assert_close(ensembles.pretrained_margins[1], expected, rtol=1e-4, atol=1e-4)


def test_the_build_records_one_exact_retraining_for_its_device_kind(
    built: tuple[CIFAR10ResNet9, Path],
) -> None:
    _, store = built
    recorded = read_manifest(store).retrain_seconds
    assert list(recorded) == [device_kind("cpu")] and recorded["cpu"] > 0


def test_a_built_store_binds_its_forget_sets_requests_and_recipe(
    built: tuple[CIFAR10ResNet9, Path],
) -> None:
    bench, store = built
    bound = bind_forget_sets(type(bench)(), store)
    assert bound.recipe == bench.recipe
    assert {fs.name: fs.requests for fs in bound.forget_sets} == {
        fs.name: fs.requests for fs in bench.forget_sets
    }
    assert bound.fingerprint() == read_manifest(store).fingerprint


def test_a_store_of_an_unknown_recipe_is_a_store_error(
    built: tuple[CIFAR10ResNet9, Path], tmp_path: Path
) -> None:
    import shutil

    bench, store = built
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    manifest["recipe"] = {**asdict(bench.recipe), "epochs": 99}
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="neither EasyDUB's nor this version's"):
        bind_forget_sets(type(bench)(), copy)


def test_members_trained_in_chunks_equal_members_trained_together(
    built: tuple[CIFAR10ResNet9, Path],
) -> None:
    bench, _ = built
    train = bench.load_data().train_indices[:128]
    together = type(bench).members_at_once
    try:
        type(bench).members_at_once = None
        whole = bench.train_members(train, [5, 6, 7])
        type(bench).members_at_once = 1
        chunked = bench.train_members(train, [5, 6, 7])
    finally:
        type(bench).members_at_once = together
    for key in whole:
        torch.testing.assert_close(whole[key], chunked[key], rtol=1e-5, atol=1e-6)


RUN_METHOD = """
def unlearn(model, forget, retain, context):
    return model
"""


def test_a_run_fetches_builds_and_evaluates_cifar10(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive = tmp_path / CIFAR10_BINARY_NAME
    md5 = write_cifar_archive(archive)
    pytester.makepyfile(tinymethod=RUN_METHOD)
    pytester.syspathinsert()
    report = tmp_path / "report.json"
    with running_server() as server:
        route = f"/data/{CIFAR10_BINARY_NAME}"
        server.routes[route] = archive.read_bytes()
        bench = tiny_cifar(url=server.url + route, md5=md5)
        monkeypatch.setattr(registry, "_REGISTRY", MappingProxyType({bench.name: bench}))
        result = pytester.runpytest(
            "--unlearn-method=tinymethod:unlearn",
            "--unlearn-benchmark=cifar10-resnet9",
            f"--unlearn-cache-dir={tmp_path / 'cache'}",
            "--unlearn-models=2",
            f"--unlearn-report={report}",
            "-p",
            "no:cacheprovider",
        )
        assert server.count(route) == 1
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes and "error" not in outcomes, output(result)
    records = json.loads(report.read_text())["records"]
    # knn20 and random20 (one request each) and seq2x5 (two): 4 requests x 3 splits.
    assert len(records) == 12
    assert {r["retrain_seconds_per_model"] > 0 for r in records} == {True}
    assert {r["n_models"] for r in records} == {2}
