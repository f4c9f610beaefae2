"""Calibration figures of every benchmark: noise floor, null max, threshold, do-nothing.

For each benchmark (default: all registered), builds its store at N models, or reuses it from
``--cache-dir`` (the layout the plugin's cache uses, so a store built here serves pytest runs
too), then prints for every case (forget set, request, split) the figures that
``pytest_unlearn.verdicts.calibrate`` derives, with the very seed the plugin uses, plus the
pretrained models' train and validation accuracy.

    python benchmarks/bench_calibration.py                       # all benchmarks, N=100
    python benchmarks/bench_calibration.py mnist1d-cnn --models 100 --cache-dir /tmp/stores

All figures are P95 KLoM over the split's points: ``floor`` is oracle half B vs half A,
``null med``/``null sd`` the median and standard deviation over 200 random half-splits of the
pooled 2N oracles, ``threshold`` = floor + z * sqrt(2) * null sd (``lower`` = floor - the same),
``do-nothing`` the pretrained ensemble vs half A; ``conclusive`` says whether the case can fail
and do-nothing fails it, i.e. whether a pass tests forgetting at all (docs/verdicts.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pytest_unlearn.benchmarks import available_benchmarks, get_benchmark
from pytest_unlearn.harness.cases import conformance_cases, split_indices
from pytest_unlearn.store import Ensembles, StoreError, load_or_build
from pytest_unlearn.store.manifest import read_manifest
from pytest_unlearn.training import ensemble_logits, model_seed
from pytest_unlearn.verdicts import calibrate


def accuracy(ensembles: Ensembles) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model accuracy of the pretrained ensemble on the train and validation splits."""
    bench = ensembles.benchmark
    data = bench.load_data()
    logits = ensemble_logits(bench.build_model, ensembles.pretrained_params, data.inputs)
    correct = (logits.argmax(dim=-1) == data.targets).float()
    return correct[:, data.train_indices].mean(dim=1), correct[:, data.validation_indices].mean(
        dim=1
    )


def store_bytes(store: Path) -> int:
    return sum(path.stat().st_size for path in store.rglob("*") if path.is_file())


def report(name: str, n_models: int, cache_dir: Path) -> None:
    bench = get_benchmark(name)
    store = cache_dir / bench.name / bench.fingerprint()
    try:
        prebuilt = read_manifest(store).n_models >= n_models
    except StoreError:  # absent or unreadable: load_or_build rebuilds it
        prebuilt = False
    started = time.perf_counter()
    ensembles = load_or_build(bench, n_models, cache_dir, log=lambda message: None)
    seconds = time.perf_counter() - started
    train_acc, val_acc = accuracy(ensembles)
    recipe = bench.recipe
    print(f"== {bench.name} (fingerprint {bench.fingerprint()}), N={n_models}")
    print(f"   {bench.description}")
    if recipe.optimizer == "sgd":
        print(
            f"   recipe: {recipe.epochs} epochs, SGD lr={recipe.lr} momentum={recipe.momentum} "
            f"weight_decay={recipe.weight_decay}, batch {recipe.batch_size}"
        )
    else:
        print(
            f"   recipe: exact minimizers ({recipe.optimizer}, at most {recipe.epochs} steps), "
            f"l2={recipe.weight_decay}, loss perturbation sd {recipe.loss_perturbation}"
        )
    print(
        f"   store: {'reused' if prebuilt else f'built in {seconds:.1f}s'}, "
        f"{store_bytes(store) / 2**20:.1f} MiB at {store}"
    )
    print(
        f"   pretrained accuracy (mean +- sd over {n_models} models): "
        f"train {train_acc.mean():.4f} +- {train_acc.std():.4f}, "
        f"validation {val_acc.mean():.4f} +- {val_acc.std():.4f}"
    )
    header = (
        f"   {'case':<34} {'points':>6} {'floor':>7} {'null med':>8} {'null sd':>8} "
        f"{'lower':>7} {'threshold':>9} {'do-nothing':>10}  conclusive"
    )
    print(header)
    for case in conformance_cases([bench.name]):
        columns = split_indices(bench, case)
        halves = ensembles.oracles[case.forget_set, case.request]
        # Same seed as the plugin's evaluator, so these are the figures a pytest run reports.
        cal = calibrate(
            halves.half_a[:, columns],
            halves.half_b[:, columns],
            ensembles.pretrained_margins[:, columns],
            seed=model_seed("calibration", case.id, n_models),
        )
        kind = bench.forget_set(case.forget_set).kind
        print(
            f"   {case.id:<34} {len(columns):>6} {cal.floor:7.3f} {cal.null_median:8.3f} "
            f"{cal.null_sd:8.3f} {cal.lower_threshold:7.3f} {cal.threshold:9.3f} "
            f"{cal.do_nothing:10.3f}  {'yes' if cal.conclusive else 'no'} ({kind})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="*", help="default: every registered benchmark")
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument(
        "--cache-dir", type=Path, help="build into / reuse from here (default: a temp dir)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 is fastest on a shared 2-CPU machine",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.benchmarks or list(available_benchmarks())
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        for name in names:
            report(name, args.models, cache_dir)


if __name__ == "__main__":
    main()
