"""Benchmark: vectorized default-mode KLoM against a per-point loop written from the spec.

    PYTHONPATH=. python benchmarks/bench_klom.py

Both run in the same process on the same float32 margins (two shifted Gaussian ensembles,
100 models x 60,000 points by default). The loop calls ``numpy.histogram`` once per point
and ensemble, as docs/klom.md reads (bins over the oracles' range plus an underflow and an
overflow bin); it is timed on a subset of points and
extrapolated linearly (it does the same work for every point). The peak extra memory of the
vectorized call is measured with tracemalloc (numpy reports its allocations there) and
given relative to the size of the input margins (both ensembles). The last line is
``speedup_vs_loop: <ratio>``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from pytest_unlearn.metric import klom


def loop_klom(u: np.ndarray, o: np.ndarray, bins: int = 20, eps: float = 1e-5) -> np.ndarray:
    """The spec, one point at a time (the reference implementations' shape of loop)."""
    out = np.empty(u.shape[1])
    for i in range(u.shape[1]):
        a = np.clip(u[:, i].astype(np.float64), -100.0, 100.0)
        b = np.clip(o[:, i].astype(np.float64), -100.0, 100.0)
        lo, hi = b.min(), b.max()
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        inner = np.histogram(a, bins=bins, range=(lo, hi))[0]
        p = np.concatenate([[np.sum(a < lo)], inner, [np.sum(a > hi)]]) / a.size
        q = np.concatenate([[0], np.histogram(b, bins=bins, range=(lo, hi))[0], [0]]) / b.size
        has = p > 0
        out[i] = np.sum(p[has] * np.log(p[has] / np.maximum(q[has], eps)))
    return out


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--points", type=int, default=60_000)
    parser.add_argument("--loop-points", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    shape = (args.models, args.points)
    unlearned = rng.standard_normal(shape, dtype=np.float32) * 2.0 + 0.5
    oracle = rng.standard_normal(shape, dtype=np.float32) * 2.0
    input_bytes = unlearned.nbytes + oracle.nbytes
    n_loop = min(args.loop_points, args.points)

    klom(unlearned[:, :100], oracle[:, :100])  # warm-up: imports, first-call costs
    vec_s = best_of(args.repeats, lambda: klom(unlearned, oracle))
    result = klom(unlearned, oracle)

    start = time.perf_counter()
    reference = loop_klom(unlearned[:, :n_loop], oracle[:, :n_loop])
    loop_subset_s = time.perf_counter() - start
    loop_s = loop_subset_s * args.points / n_loop
    max_diff = float(np.max(np.abs(result[:n_loop] - reference)))

    tracemalloc.start()
    klom(unlearned, oracle)
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    print(
        f"margins: {args.models} x {args.points} float32 per ensemble, both ensembles "
        f"{input_bytes / 2**20:.1f} MiB"
    )
    print(f"vectorized_seconds: {vec_s:.4f} (best of {args.repeats})")
    print(f"vectorized_us_per_point: {vec_s / args.points * 1e6:.3f}")
    try:
        import torch
    except ImportError:
        print("torch_cpu_input_seconds: skipped (torch not installed)")
    else:
        ut, ot = torch.from_numpy(unlearned), torch.from_numpy(oracle)
        torch_s = best_of(args.repeats, lambda: klom(ut, ot))
        print(f"torch_cpu_input_seconds: {torch_s:.4f} (best of {args.repeats}, same engine)")
        if torch.cuda.is_available():
            uc, oc = ut.cuda(), ot.cuda()
            klom(uc[:, :100], oc[:, :100])  # warm-up: CUDA context, kernels

            def on_cuda() -> object:
                out = klom(uc, oc)
                torch.cuda.synchronize()
                return out

            cuda_s = best_of(args.repeats, on_cuda)
            cuda_diff = float((on_cuda().cpu().numpy() - result).__abs__().max())
            print(
                f"cuda_seconds: {cuda_s:.4f} (best of {args.repeats}, "
                f"{torch.cuda.get_device_name()}, margins already on the device)"
            )
            print(f"cuda_max_abs_diff_vs_numpy: {cuda_diff:.3g}")
        else:
            print("cuda_seconds: skipped (no CUDA device)")
    print(
        f"loop_seconds: {loop_s:.3f} (timed on {n_loop} points: {loop_subset_s:.3f} s, "
        f"extrapolated x{args.points / n_loop:g})"
    )
    print(f"loop_us_per_point: {loop_subset_s / n_loop * 1e6:.1f}")
    print(f"max_abs_diff_vs_loop: {max_diff:.3g} (on the {n_loop} loop points)")
    print(
        f"peak_extra_memory: {peak_bytes / 2**20:.2f} MiB = "
        f"{peak_bytes / input_bytes:.3f} x input margins (tracemalloc)"
    )
    print(f"speedup_vs_loop: {loop_s / vec_s:.1f}")


if __name__ == "__main__":
    main()
