"""Method calls per second at 1, 2 and 4 xdist workers per GPU; margins per model, batched or not.

    python benchmarks/bench_workers_per_gpu.py [--device cuda] [--benchmark digits-mlp]
        [--models 100] [--method examples.finetune:unlearn] [--per-gpu 1,2,4]
    python benchmarks/bench_workers_per_gpu.py --device cpu     # smoke mode, tiny settings

Part 1 runs the conformance job (every forget set of the benchmark, N models,
``--unlearn-device=DEVICE --dist load``) with ``-n K*G`` for each K of ``--per-gpu``, G being
the GPUs torch sees (1 on the CPU). The method is ``--method`` wrapped by :func:`unlearn` below,
which appends each call's start, end, forget set and device to a file per worker process.
``calls_per_second`` is the number of calls divided by the time during which some forget set's
calls were under way (the union over forget sets of the span from its first call's start to
its last call's end, all workers together): the returned models' checks and margins between
calls count, start-up, the store and the tests' statistics between forget sets do not (the
pytest wall time is printed too). The ensembles are
built (or found in the cache) first by an untimed run with ``examples.do_nothing``. Each
``-n`` line names the devices the workers' calls ran on (workers share GPUs round-robin,
``pytest_unlearn.workers.assign_device``) and the last lines give the ratio of each K's rate
to K=1's, measured in the same run of this script.

Part 2 times the margins' evaluation of ``--margin-models`` freshly built models of the
benchmark on all its points, on ``--device``: the per-model path
(``method_runner._margins_of``, one model after another) against ``MarginBatcher`` (snapshot
in ``add``, then one ``flush``: what the runner does on CUDA), best of three, in seconds per
model, with the largest difference between the two.

``--device cpu`` is a smoke mode (N=4, 8 models in part 2): it checks the script end to end on
a machine without a GPU; its rates say nothing about a GPU's.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: Environment of the timed runs: the wrapped method, and where each process logs its calls.
METHOD_ENV, CALLS_ENV = "BENCH_WORKERS_METHOD", "BENCH_WORKERS_CALLS_DIR"


def unlearn(model, forget, retain, context):
    """The method of the timed runs: ``$BENCH_WORKERS_METHOD``, its calls logged."""
    module, _, name = os.environ[METHOD_ENV].partition(":")
    method = getattr(importlib.import_module(module), name)
    started = time.time()
    returned = method(model, forget, retain, context)
    if context.device.type == "cuda":
        torch.cuda.synchronize(context.device)  # the call's work is done, not just queued
    line = f"{started:.6f} {time.time():.6f} {context.forget_set} {context.device}\n"
    with open(Path(os.environ[CALLS_ENV]) / f"{os.getpid()}.calls", "a") as log:
        log.write(line)
    return returned


def read_calls(directory: Path) -> tuple[list[tuple[float, float, str]], Counter]:
    """Every call's (start, end, forget set), and how many worker processes called on each
    device."""
    calls, devices = [], Counter()
    for path in directory.glob("*.calls"):
        lines = [line.split() for line in path.read_text().splitlines() if line]
        calls += [(float(start), float(end), forget_set) for start, end, forget_set, _ in lines]
        devices.update({device for *_, device in lines})
    return calls, devices


def busy_seconds(calls: list[tuple[float, float, str]]) -> float:
    """The length of the union over forget sets of [first call's start, last call's end].

    >>> busy_seconds([(0, 1, "a"), (2, 3, "a"), (2.5, 4, "b"), (10, 11, "c")])
    5.0
    """
    spans: dict[str, tuple[float, float]] = {}
    for start, end, forget_set in calls:
        first, last = spans.get(forget_set, (start, end))
        spans[forget_set] = (min(first, start), max(last, end))
    total, reached = 0.0, float("-inf")
    for start, end in sorted(spans.values()):
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total


def margins_seconds(args: argparse.Namespace) -> None:
    from pytest_unlearn.benchmarks import get_benchmark
    from pytest_unlearn.harness.batched_margins import MarginBatcher
    from pytest_unlearn.harness.method_runner import _margins_of

    device = torch.device(args.device)
    bench = get_benchmark(args.benchmark)
    data = bench.load_data()
    inputs, targets = data.inputs.to(device), data.targets.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        models = [bench.build_model().to(device).eval() for _ in range(args.margin_models)]

    def per_model() -> torch.Tensor:
        return torch.stack([_margins_of(model, inputs, targets) for model in models])

    def batched() -> torch.Tensor:
        batcher = MarginBatcher(inputs, targets)
        outs = [batcher.add(model) for model in models]  # flush_at: as the runner flushes
        if batcher.pending:
            batcher.flush()
        return torch.stack(outs)

    def best(work) -> tuple[torch.Tensor, float]:
        times, result = [], None
        for _ in range(3):
            started = time.perf_counter()
            result = work()  # ends with a copy to the host: the device has finished
            times.append(time.perf_counter() - started)
        return result, min(times) / len(models)

    reference, one_seconds = best(per_model)
    stacked, stacked_seconds = best(batched)
    difference = (stacked - reference).abs().max().item()
    print(
        f"margins per model ({len(models)} models x {len(targets)} points, {device}): "
        f"per-model {one_seconds * 1e3:.3f} ms, batched {stacked_seconds * 1e3:.3f} ms"
    )
    print(f"max |batched - per-model| margin: {difference:.2e}")
    print(f"margins_batched_speedup: {one_seconds / stacked_seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for the smoke mode")
    parser.add_argument("--benchmark", default="digits-mlp")
    parser.add_argument("--models", type=int, help="N; default 100 (4 on the CPU)")
    parser.add_argument("--method", default="examples.finetune:unlearn")
    parser.add_argument("--per-gpu", default="1,2,4", help="workers per GPU, comma-separated")
    parser.add_argument("--margin-models", type=int, help="part 2; default 64 (8 on the CPU)")
    parser.add_argument("--cache-dir", help="default: the user cache dir")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads per process; default 1 on the CPU"
    )
    parser.add_argument("--pytest-args", default="", help="more pytest arguments, e.g. '-k knn'")
    args = parser.parse_args()
    cpu = args.device == "cpu"
    args.models = args.models or (4 if cpu else 100)
    args.margin_models = args.margin_models or (8 if cpu else 64)
    per_gpu = [int(k) for k in args.per_gpu.split(",")]
    if args.threads is None and cpu:
        args.threads = 1  # on a small shared CPU one thread each is fastest (bench_build.py)
    gpus = 1 if cpu else torch.cuda.device_count()
    if gpus < 1:
        sys.exit(f"no GPU visible to torch; use --device cpu for the smoke mode ({args.device})")

    sys.path.insert(0, str(HERE))
    from suite_runs import run_suite  # benchmarks/suite_runs.py

    # The workers import this file (the wrapper) and the repository (the examples).
    paths = [str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ[METHOD_ENV] = args.method
    options = [
        f"--unlearn-benchmark={args.benchmark}", f"--unlearn-models={args.models}",
        f"--unlearn-device={args.device}", *args.pytest_args.split(),
    ]  # fmt: skip
    if args.cache_dir:
        options.append(f"--unlearn-cache-dir={args.cache_dir}")
    if args.threads:
        options.append(f"--unlearn-threads={args.threads}")
        torch.set_num_threads(args.threads)
    print(
        f"{args.benchmark}, N={args.models}, method {args.method}, device {args.device}, "
        f"{gpus} {'CPU (smoke mode)' if cpu else 'GPU(s)'}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    rates: dict[int, float] = {}
    verdicts: dict[int, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        warm = run_suite("examples.do_nothing:unlearn", *options, junit=Path(tmp) / "warm.xml")
        print(f"ensembles ready (untimed do-nothing run: {warm.seconds:.1f}s)")
        for k in per_gpu:
            workers = k * gpus
            calls_dir = Path(tmp) / f"calls-{k}"
            calls_dir.mkdir()
            os.environ[CALLS_ENV] = str(calls_dir)
            run = run_suite(
                "bench_workers_per_gpu:unlearn", *options, "-n", str(workers), "--dist", "load",
                junit=Path(tmp) / f"n{workers}.xml",
            )  # fmt: skip
            calls, devices = read_calls(calls_dir)
            if not calls:
                sys.exit(f"-n {workers}: no method call was logged (exit code {run.exit_code})")
            span = busy_seconds(calls)
            rates[k] = len(calls) / span
            verdicts[k] = [(r["case"], r["verdict"]) for r in run.records]
            per_call = statistics.median(end - start for start, end, _ in calls)
            spread = ", ".join(f"{d}: {n} worker(s)" for d, n in sorted(devices.items()))
            print(
                f"{k} per GPU (-n {workers}): {len(calls)} calls in {span:.1f}s of calls "
                f"({run.seconds:.1f}s wall, median call {per_call * 1e3:.1f} ms): "
                f"{rates[k]:.2f} calls/s; calls ran on {spread}"
            )
    base = per_gpu[0]
    print(f"same_ids_and_verdicts: {all(v == verdicts[base] for v in verdicts.values())}")
    print("calls_per_second: " + " ".join(f"{k}/gpu={rates[k]:.2f}" for k in per_gpu))
    print(
        f"ratio_vs_{base}_per_gpu: "
        + " ".join(f"{k}/gpu={rates[k] / rates[base]:.2f}" for k in per_gpu)
    )
    margins_seconds(args)


if __name__ == "__main__":
    main()
