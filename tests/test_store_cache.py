"""The local ensemble cache: built once, reused, served by prefix, keyed by recipe, described by
its manifest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest
import torch
from conftest import BENCHMARK, CACHE_MODELS

from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.benchmarks.digits_mlp import DigitsMLP
from pytest_unlearn.store import Ensembles, load_or_build

N_POINTS = 1797  # every labelled image of scikit-learn's digits


class _QuickDigits(DigitsMLP):
    """digits-mlp with a one-epoch recipe: a different fingerprint, and cheap to build."""

    recipe = dataclasses.replace(DigitsMLP.recipe, epochs=1)


class _Log:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)

    @property
    def builds(self) -> int:
        return sum("building" in message for message in self.messages)


def _store(cache: Path, benchmark=None) -> Path:
    benchmark = benchmark or get_benchmark(BENCHMARK)
    return cache / benchmark.name / benchmark.fingerprint()


def _mtimes(directory: Path) -> dict[str, int]:
    return {
        str(path.relative_to(directory)): path.stat().st_mtime_ns
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _assert_same_tensors(small: Ensembles, large: Ensembles) -> None:
    n = small.n_models
    assert torch.equal(small.pretrained_margins, large.pretrained_margins[:n])
    assert small.pretrained_params.keys() == large.pretrained_params.keys()
    for name, tensor in small.pretrained_params.items():
        assert torch.equal(tensor, large.pretrained_params[name][:n]), name
    assert small.oracles.keys() == large.oracles.keys()
    for name, halves in small.oracles.items():
        assert torch.equal(halves.half_a, large.oracles[name].half_a[:n]), name
        assert torch.equal(halves.half_b, large.oracles[name].half_b[:n]), name


# -- the shared N=16 cache -------------------------------------------------------------------


def test_second_load_does_not_rebuild(unlearn_cache: Path) -> None:
    store = _store(unlearn_cache)
    before = _mtimes(store)
    log = _Log()
    ensembles = load_or_build(get_benchmark(BENCHMARK), CACHE_MODELS, unlearn_cache, log=log)
    assert ensembles.n_models == CACHE_MODELS
    assert log.builds == 0, log.messages
    assert _mtimes(store) == before


def test_store_for_more_models_serves_a_prefix(unlearn_cache: Path) -> None:
    log = _Log()
    bench = get_benchmark(BENCHMARK)
    small = load_or_build(bench, 4, unlearn_cache, log=log)
    large = load_or_build(bench, CACHE_MODELS, unlearn_cache, log=log)
    assert log.builds == 0, log.messages
    assert small.n_models == 4
    assert small.pretrained_margins.shape == (4, N_POINTS)
    _assert_same_tensors(small, large)


def test_members_of_a_prefix_are_the_same_models(unlearn_cache: Path) -> None:
    bench = get_benchmark(BENCHMARK)
    small = load_or_build(bench, 4, unlearn_cache, log=_Log())
    large = load_or_build(bench, CACHE_MODELS, unlearn_cache, log=_Log())
    inputs = bench.load_data().inputs
    with torch.no_grad():
        for index in range(small.n_models):
            assert torch.equal(small.member(index)(inputs), large.member(index)(inputs))


def test_member_out_of_range_is_an_index_error(unlearn_cache: Path) -> None:
    small = load_or_build(get_benchmark(BENCHMARK), 4, unlearn_cache, log=_Log())
    with pytest.raises(IndexError, match="member 4 out of range for 4 models"):
        small.member(4)


def test_member_is_a_private_copy(unlearn_cache: Path) -> None:
    ensembles = load_or_build(get_benchmark(BENCHMARK), 2, unlearn_cache, log=_Log())
    first = ensembles.member(0)
    with torch.no_grad():
        for parameter in first.parameters():
            parameter.zero_()
    again = ensembles.member(0)
    assert any(parameter.abs().sum() > 0 for parameter in again.parameters())


def test_margin_shapes_are_models_by_points(unlearn_cache: Path) -> None:
    bench = get_benchmark(BENCHMARK)
    ensembles = load_or_build(bench, CACHE_MODELS, unlearn_cache, log=_Log())
    assert ensembles.pretrained_margins.shape == (CACHE_MODELS, N_POINTS)
    assert sorted(ensembles.oracles) == sorted(
        (fs.name, request) for fs in bench.forget_sets for request in range(1, len(fs.requests) + 1)
    )
    for halves in ensembles.oracles.values():
        assert halves.half_a.shape == (CACHE_MODELS, N_POINTS)
        assert halves.half_b.shape == (CACHE_MODELS, N_POINTS)


def test_oracle_halves_are_different_models(unlearn_cache: Path) -> None:
    ensembles = load_or_build(get_benchmark(BENCHMARK), CACHE_MODELS, unlearn_cache, log=_Log())
    for halves in ensembles.oracles.values():
        assert not torch.equal(halves.half_a, halves.half_b)


def test_margins_are_finite(unlearn_cache: Path) -> None:
    ensembles = load_or_build(get_benchmark(BENCHMARK), CACHE_MODELS, unlearn_cache, log=_Log())
    assert torch.isfinite(ensembles.pretrained_margins).all()
    for halves in ensembles.oracles.values():
        assert torch.isfinite(halves.half_a).all() and torch.isfinite(halves.half_b).all()


def test_manifest_lists_every_file_with_sha256_and_size(unlearn_cache: Path) -> None:
    store = _store(unlearn_cache)
    manifest = json.loads((store / "manifest.json").read_text())
    on_disk = {
        path.relative_to(store).as_posix()
        for path in store.rglob("*")
        if path.is_file() and path.name != "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    for rel, meta in manifest["files"].items():
        data = (store / rel).read_bytes()
        assert meta["size"] == len(data), rel
        assert meta["sha256"] == hashlib.sha256(data).hexdigest(), rel


def test_manifest_records_the_recipe_and_size(unlearn_cache: Path) -> None:
    bench = get_benchmark(BENCHMARK)
    manifest = json.loads((_store(unlearn_cache) / "manifest.json").read_text())
    assert manifest["benchmark"] == bench.name
    assert manifest["fingerprint"] == bench.fingerprint()
    assert manifest["n_models"] == CACHE_MODELS
    assert manifest["recipe"] == dataclasses.asdict(bench.recipe)


def test_stored_forget_sets_match_the_benchmark(unlearn_cache: Path) -> None:
    from safetensors.torch import load_file

    bench = get_benchmark(BENCHMARK)
    store = _store(unlearn_cache)
    for forget_set in bench.forget_sets:
        stored = load_file(str(store / "forget_sets" / f"{forget_set.name}.safetensors"))
        assert stored["indices"].tolist() == list(forget_set.indices)


# -- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_is_stable_for_the_same_definition() -> None:
    assert DigitsMLP().fingerprint() == get_benchmark(BENCHMARK).fingerprint()


def test_changed_recipe_changes_the_fingerprint() -> None:
    assert _QuickDigits().fingerprint() != DigitsMLP().fingerprint()


def test_changed_version_changes_the_fingerprint() -> None:
    class Bumped(DigitsMLP):
        version = DigitsMLP.version + 1

    assert Bumped().fingerprint() != DigitsMLP().fingerprint()


def test_changed_recipe_builds_into_a_new_directory(unlearn_cache: Path, tmp_path: Path) -> None:
    original = _store(unlearn_cache)
    cache = tmp_path / "cache"
    copied = cache / original.parent.name / original.name
    shutil.copytree(original, copied)
    before = _mtimes(copied)

    quick = _QuickDigits()
    log = _Log()
    ensembles = load_or_build(quick, 2, cache, log=log)

    assert log.builds == 1
    assert ensembles.n_models == 2
    stores = sorted(p.name for p in (cache / BENCHMARK).iterdir() if p.is_dir())
    assert stores == sorted([original.name, quick.fingerprint()])
    assert _mtimes(copied) == before  # the other recipe's store is untouched
    manifest = json.loads((cache / BENCHMARK / quick.fingerprint() / "manifest.json").read_text())
    assert manifest["recipe"]["epochs"] == 1


# -- building (on the one-epoch recipe) ------------------------------------------------------


def test_first_load_builds_and_logs_it(tmp_path: Path) -> None:
    log = _Log()
    ensembles = load_or_build(_QuickDigits(), 2, tmp_path, log=log)
    assert log.builds == 1
    assert ensembles.pretrained_margins.shape == (2, N_POINTS)
    assert (_store(tmp_path, _QuickDigits()) / "manifest.json").is_file()


def test_asking_for_more_models_than_stored_rebuilds(tmp_path: Path) -> None:
    quick = _QuickDigits()
    small = load_or_build(quick, 2, tmp_path, log=_Log())
    log = _Log()
    large = load_or_build(quick, 3, tmp_path, log=log)
    assert log.builds == 1
    assert large.n_models == 3
    manifest = json.loads((_store(tmp_path, quick) / "manifest.json").read_text())
    assert manifest["n_models"] == 3
    # Member i depends on its own seed only, so the smaller store is a prefix of the larger.
    torch.testing.assert_close(small.pretrained_margins, large.pretrained_margins[:2])


def test_truncated_file_triggers_a_rebuild(tmp_path: Path) -> None:
    quick = _QuickDigits()
    load_or_build(quick, 2, tmp_path, log=_Log())
    victim = _store(tmp_path, quick) / "oracles" / "knn36.safetensors"
    size = victim.stat().st_size
    victim.write_bytes(victim.read_bytes()[: size // 2])
    log = _Log()
    ensembles = load_or_build(quick, 2, tmp_path, log=log)
    assert log.builds == 1
    assert victim.stat().st_size == size
    assert ensembles.oracles["knn36", 1].half_a.shape == (2, N_POINTS)


def test_concurrent_loads_build_once(tmp_path: Path) -> None:
    quick = _QuickDigits()
    log = _Log()
    results: list[Ensembles] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            results.append(load_or_build(quick, 2, tmp_path, log=log))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert log.builds == 1, log.messages
    assert torch.equal(results[0].pretrained_margins, results[1].pretrained_margins)
    leftovers = [p.name for p in (tmp_path / quick.name).iterdir() if "building" in p.name]
    assert leftovers == []


def test_fewer_than_two_models_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 models"):
        load_or_build(_QuickDigits(), 1, tmp_path, log=_Log())
    assert not (tmp_path / BENCHMARK).exists() or not any((tmp_path / BENCHMARK).iterdir())
