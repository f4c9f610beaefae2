"""Certified checks on the example methods: eps_lb per forget set, what N can refute, time.

For each example (``certified_newton``, which must pass its claim, and ``overclaiming``,
which must not), runs the method on every forget set (and request) of
``digits-logreg-perturbed`` through the suite's own harness, then prints per case the
black-box ``eps_lb``, the largest epsilon an audit at this N could refute at all, the
white-box figures (largest exact gradient residual, accumulated bound, budget, measured
noise), the verdicts and the seconds each check took.

    python benchmarks/bench_certified.py [--models 100] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import torch

from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.certified import claim_of
from pytest_unlearn.harness.certified_checks import certified_cases, run_check
from pytest_unlearn.harness.method_runner import run_method
from pytest_unlearn.store import default_cache_dir, load_or_build

EXAMPLES = ("examples.certified_newton", "examples.overclaiming")
# The examples package lives at the repository root, next to this script's folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--benchmark", default="digits-logreg-perturbed")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench = get_benchmark(args.benchmark)
    started = time.perf_counter()
    ensembles = load_or_build(bench, args.models, args.cache_dir, log=lambda _: None)
    print(f"{bench.name}: N={args.models}, store ready in {time.perf_counter() - started:.1f}s")
    cases = certified_cases([bench.name])
    for name in EXAMPLES:
        method = importlib.import_module(name).unlearn
        claim = claim_of(method)
        assert claim is not None
        print(
            f"\n== {name}: claims epsilon={claim.epsilon:g}, delta={claim.delta:g}, "
            f"noise_std={claim.noise_std:g} (residual budget {claim.residual_budget:.3g})"
        )
        runs = {}
        for fs in bench.forget_sets:
            t0 = time.perf_counter()
            runs[fs.name] = run_method(
                method, ensembles, fs.name, torch.device("cpu"), keep_outputs=True
            )
            print(f"   method on {fs.name}: {time.perf_counter() - t0:.1f}s")
        header = (
            f"   {'case':<46} {'eps_lb':>7} {'max_refut':>9} {'residual':>9} {'accum':>9} "
            f"{'noise_sd':>9} {'seconds':>8}  verdict"
        )
        print(header)
        failed = 0
        for case in cases:
            t0 = time.perf_counter()
            result = run_check(case, claim, runs[case.forget_set], ensembles)
            seconds = time.perf_counter() - t0
            failed += not result.passed
            figures = result.outcome.figures

            def shown(name: str, spec: str, figures: dict = figures) -> str:
                value = figures.get(name)
                return "-" if not isinstance(value, int | float) else format(value, spec)

            eps_lb, max_ref = shown("eps_lb", ".3f"), shown("max_refutable_epsilon", ".3f")
            residual = shown("max_gradient_residual", ".2e")
            accumulated = shown("max_accumulated_bound", ".2e")
            noise = shown("measured_noise_std", ".2e")
            print(
                f"   {case.id:<46} {eps_lb:>7} {max_ref:>9} {residual:>9} {accumulated:>9} "
                f"{noise:>9} {seconds:>8.2f}  {result.verdict}"
            )
        print(f"   {name}: {failed} of {len(cases)} certified checks failed")


if __name__ == "__main__":
    main()
