"""Ensemble build speed: the ensemble trainer against a per-model training loop, then a store.

Trains the same ensemble (a benchmark's pretrained models, N of them) three times in one
process: with ``train_ensemble`` as ``build_store`` calls it (``engine="auto"``), with its
generic ``torch.func.vmap`` engine forced (``engine="vmap"``), and with a plain per-model loop
(an ``nn.Module`` and a ``torch.optim.SGD`` per model, the same recipe, seeds and data order).
It prints the three times and each trainer's largest parameter difference from the loop, then
builds the benchmark's whole store (N pretrained + 2N oracles per forget set) with
``build_store`` and prints its build time and size.

    python benchmarks/bench_build.py [--benchmark digits-mlp] [--models 100] [--loop-models 100]

The last line is ``vmap_speedup: <per-model loop time / ensemble trainer time>``, the speedup
of the trainer that builds use: for a model of ``nn.Linear`` and ``nn.ReLU`` layers (digits-mlp,
digits-logreg) that is the hand-written batched engine (``training.batched_mlp``), otherwise
the ``torch.func.vmap`` engine. The line before it, ``torch_func_vmap_speedup``, is always the
generic ``torch.func.vmap`` engine's (the two coincide for other models). The name
``vmap_speedup`` is kept so that figures recorded before the batched engine existed compare.

``--loop-models K < N`` times the loop on the first K models only and extrapolates linearly
(members are independent, so the loop's cost is K times one model's); the output says so.
Threads default to 1: on the shared 2-CPU machine one thread is much faster than two.

Both wall-clock and CPU seconds are printed. The speedups are ratios of CPU seconds: with one
thread that is the time the process actually computed, whereas wall-clock time on a machine
shared with other jobs mostly measures how long it waited for a CPU (the wall-clock ratio is
printed too).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from pytest_unlearn.benchmarks import Benchmark, get_benchmark
from pytest_unlearn.store import build_store
from pytest_unlearn.training import model_seed, train_ensemble
from pytest_unlearn.training.batched_mlp import supports
from pytest_unlearn.training.ensemble_trainer import Engine, order_generator

T = TypeVar("T")


def timed(work: Callable[[], T]) -> tuple[T, float, float]:
    """``work()``, its wall-clock seconds and its CPU seconds (this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def loop_train(bench: Benchmark, seed: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """One model the way a method author would write it, with the trainer's seeding rules."""
    data, recipe = bench.load_data(), bench.recipe
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = bench.build_model().to(device)
    inputs, targets = data.inputs.to(device), data.targets.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    generator = order_generator(seed)
    train = data.train_indices
    for _ in range(recipe.epochs):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            batch = batch.to(device)
            loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return {name: value.detach().cpu() for name, value in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="digits-mlp")
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--loop-models", type=int, help="default: all of --models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-store", action="store_true", help="skip the full store build")
    parser.add_argument("--device", default="cpu", help="torch device for both trainers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench = get_benchmark(args.benchmark)
    data = bench.load_data()
    n_loop = min(args.loop_models or args.models, args.models)
    seeds = [model_seed(bench.name, "pretrain", i) for i in range(args.models)]
    print(
        f"{bench.name}: {args.models} pretrained models, {bench.recipe.epochs} epochs on "
        f"{len(data.train_indices)} points, {torch.get_num_threads()} thread(s), "
        f"device {args.device}"
    )

    def ensemble(engine: Engine) -> dict[str, torch.Tensor]:
        return train_ensemble(
            bench.build_model,
            data.inputs,
            data.targets,
            data.train_indices,
            bench.recipe,
            seeds,
            device=args.device,
            engine=engine,
        )

    def synchronized(engine: Engine) -> Callable[[], dict[str, torch.Tensor]]:
        def work() -> dict[str, torch.Tensor]:
            params = ensemble(engine)
            if args.device != "cpu":
                torch.cuda.synchronize()
            return params

        return work

    with torch.random.fork_rng(devices=[]):
        engine_used = "batched" if supports(bench.build_model()) else "vmap"
    stacked, auto_wall, auto_cpu = timed(synchronized("auto"))
    print(
        f"ensemble trainer (engine auto = {engine_used}), {args.models} models: "
        f"{auto_wall:.1f}s wall, {auto_cpu:.1f}s CPU"
    )
    if engine_used == "vmap":
        # Training the same engine twice would only double the run.
        vmapped, vmap_wall, vmap_cpu = stacked, auto_wall, auto_cpu
        print("torch.func.vmap engine: the run above")
    else:
        vmapped, vmap_wall, vmap_cpu = timed(synchronized("vmap"))
        print(
            f"torch.func.vmap engine, {args.models} models: "
            f"{vmap_wall:.1f}s wall, {vmap_cpu:.1f}s CPU"
        )

    looped, loop_wall, loop_cpu = timed(
        lambda: [loop_train(bench, seed, args.device) for seed in seeds[:n_loop]]
    )
    if n_loop < args.models:
        print(f"per-model loop, {n_loop} models: {loop_wall:.1f}s wall, {loop_cpu:.1f}s CPU")
        loop_wall, loop_cpu = (seconds * args.models / n_loop for seconds in (loop_wall, loop_cpu))
        print(
            f"per-model loop, extrapolated linearly to {args.models} models: "
            f"{loop_wall:.1f}s wall, {loop_cpu:.1f}s CPU"
        )
    else:
        print(f"per-model loop, {args.models} models: {loop_wall:.1f}s wall, {loop_cpu:.1f}s CPU")
    # Same models up to float reassociation (bmm vs mm); chaotic training amplifies it a bit.
    for label, trained in (("ensemble trainer", stacked), ("torch.func.vmap", vmapped)):
        difference = max(
            (trained[name][i].cpu() - params[name]).abs().max().item()
            for i, params in enumerate(looped)
            for name in params
        )
        print(f"largest |{label} - loop| parameter difference, {n_loop} models: {difference:.2e}")

    if not args.skip_store:
        with tempfile.TemporaryDirectory() as tmp:
            store, store_wall, store_cpu = timed(
                lambda: build_store(
                    bench, args.models, Path(tmp) / "store", device=args.device, log=lambda _: None
                )
            )
            files = [path for path in store.rglob("*") if path.is_file()]
            size = sum(path.stat().st_size for path in files)
        total = args.models * (1 + 2 * sum(len(fs.requests) for fs in bench.forget_sets))
        print(
            f"build_store {bench.name}, N={args.models} ({total} models): {store_wall:.1f}s wall, "
            f"{store_cpu:.1f}s CPU, {size / 2**20:.2f} MiB in {len(files)} files"
        )
    print(f"wall-clock ratio (loop / ensemble trainer): {loop_wall / auto_wall:.2f}")
    print(f"torch_func_vmap_speedup: {loop_cpu / vmap_cpu:.2f}")
    print(f"vmap_speedup: {loop_cpu / auto_cpu:.2f}")


if __name__ == "__main__":
    main()
