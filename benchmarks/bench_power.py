"""Verdict rates per benchmark and ensemble size: false-fail rate, power, conclusiveness.

    python benchmarks/bench_power.py                          # every buildable benchmark
    python benchmarks/bench_power.py digits-mlp --seeds 5 --sizes 16,30,50,100
    python benchmarks/bench_power.py --write                  # also rewrite the shipped table

For each benchmark it builds (or reuses, ``--cache-dir``) the store at the largest size, then
trains ``--seeds`` fresh exact-retraining ensembles of that size per (forget set, request):
the benchmark's own trainer on the retain set, with seeds no oracle uses. That *is* exact
unlearning, so every FAIL it gets is a false fail. At each size N the calibration is the one a
pytest run at ``--unlearn-models=N`` computes (the first N members of the store, the plugin's
seed), and every disjoint block of N members of a fresh ensemble is one exact retraining
(100 fresh models per seed give 6 blocks of 16, 3 of 30, 2 of 50, 1 of 100).

Printed per case and N: whether the case is conclusive (can fail, and do-nothing fails it),
the false fails of exact retraining (FAIL above the threshold or below the lower one), the
standardized differences ``(S - floor) / (sqrt(2) * sd)`` of those retrainings (their spread
should stay below 1: the test assumes 1), and the power: the smallest fraction of members left
un-unlearned (the pretrained model in place of the retrained one, in steps of 5 %) that fails
the case, the median over the seeds' first blocks ("-" where even 100 % passes).

``--write`` stores, per case, the smallest measured N from which the case is conclusive at
every larger measured N too (a case can flip back at the next size: its floor is one draw) in
``pytest_unlearn/verdicts/conclusive_sizes.json`` (what an inconclusive test cites), and the
whole table in ``docs/verdict_rates.md``. ``--save-rows FILE`` keeps the measured rows as JSON;
``--from-rows FILE`` rewrites the outputs from such a file without measuring again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pytest_unlearn.benchmarks import available_benchmarks, get_benchmark
from pytest_unlearn.harness.cases import conformance_cases, split_indices
from pytest_unlearn.metric import margins
from pytest_unlearn.store import Ensembles, default_cache_dir, load_or_build
from pytest_unlearn.training import ensemble_logits, model_seed
from pytest_unlearn.verdicts import ALPHA, calibrate, decide, p95_klom

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "pytest_unlearn" / "verdicts" / "conclusive_sizes.json"
DOC = REPO / "docs" / "verdict_rates.md"
FRACTIONS = [round(0.05 * k, 2) for k in range(1, 21)]


@dataclass
class CaseRates:
    case: str
    kind: str
    n: int
    conclusive: bool
    can_fail: bool
    threshold: float
    floor: float
    do_nothing: float
    false_fails: int = 0
    trials: int = 0
    z: list[float] = field(default_factory=list)
    power: float | None = None


def fresh_retrainings(ensembles: Ensembles, seeds: int, log) -> dict[tuple[str, int], list]:
    """Per (forget set, request): ``seeds`` exact-retraining ensembles' margins, fresh seeds."""
    bench = ensembles.benchmark
    data = bench.load_data()
    n = ensembles.n_models
    out: dict[tuple[str, int], list] = {}
    for fs in bench.forget_sets:
        for request in range(1, len(fs.requests) + 1):
            deleted = torch.tensor(fs.deleted_after(request), dtype=torch.int64)
            retain = data.retain_after(deleted)
            out[fs.name, request] = []
            for seed in range(seeds):
                started = time.perf_counter()
                role = f"bench-power-{fs.name}-{request}-{seed}"
                params = bench.train_members(
                    retain, [model_seed(bench.name, role, i) for i in range(n)]
                )
                logits = ensemble_logits(bench.build_model, params, data.inputs)
                out[fs.name, request].append(margins(logits, data.targets).float().numpy())
                log(f"  retrained {fs.name} request {request} seed {seed} "
                    f"({n} models, {time.perf_counter() - started:.1f}s)")  # fmt: skip
    return out


def rates(ensembles: Ensembles, fresh: dict, n: int, seeds: int) -> list[CaseRates]:
    bench = ensembles.benchmark
    pretrained = ensembles.pretrained_margins.numpy()
    rows = []
    for case in conformance_cases([bench.name]):
        columns = split_indices(bench, case).numpy()
        halves = ensembles.oracles[case.forget_set, case.request]
        half_a = halves.half_a.numpy()[:n][:, columns]
        cal = calibrate(
            half_a,
            halves.half_b.numpy()[:n][:, columns],
            pretrained[:n][:, columns],
            seed=model_seed("calibration", case.id, n),  # the plugin's seed: the same figures
        )
        row = CaseRates(
            case.id, bench.forget_set(case.forget_set).kind, n, cal.conclusive, cal.can_fail,
            cal.threshold, cal.floor, cal.do_nothing,
        )  # fmt: skip
        smallest = []
        for seed_margins in fresh[case.forget_set, case.request][:seeds]:
            blocks = len(seed_margins) // n
            for block in range(blocks):
                u = seed_margins[block * n : (block + 1) * n][:, columns]
                s = p95_klom(u, half_a)
                row.trials += 1
                row.false_fails += decide(s, cal).verdict == "FAIL"
                if cal.null_sd > 0:
                    row.z.append((s - cal.floor) / (np.sqrt(2.0) * cal.null_sd))
            u = seed_margins[:n][:, columns].copy()
            found = None
            for fraction in FRACTIONS:
                m = max(1, round(fraction * n))
                mixed = u.copy()
                mixed[:m] = pretrained[:m][:, columns]
                if decide(p95_klom(mixed, half_a), cal).verdict == "FAIL":
                    found = fraction
                    break
            smallest.append(found if found is not None else float("inf"))
        median = statistics.median(smallest)
        row.power = None if median == float("inf") else median
        rows.append(row)
    return rows


def print_rows(name: str, rows: list[CaseRates]) -> None:
    print(f"   {'case':<40} {'N':>4} {'conclusive':>10} {'threshold':>9} {'floor':>7} "
          f"{'do-nothing':>10} {'false fails':>11} {'z sd':>5} {'power':>6}")  # fmt: skip
    for r in rows:
        z_sd = f"{np.std(r.z):5.2f}" if len(r.z) > 1 else "    -"
        power = f"{r.power:6.0%}" if r.power is not None else "     -"
        print(f"   {r.case:<40} {r.n:>4} {'yes' if r.conclusive else 'no':>10} "
              f"{r.threshold:9.3f} {r.floor:7.3f} {r.do_nothing:10.3f} "
              f"{f'{r.false_fails}/{r.trials}':>11} {z_sd} {power}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="*", help="default: every buildable benchmark")
    parser.add_argument("--sizes", default="16,30,50,100")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="rewrite the shipped table and doc")
    parser.add_argument("--save-rows", type=Path, help="write the measured rows here (JSON)")
    parser.add_argument("--from-rows", type=Path, help="render these saved rows; measure nothing")
    args = parser.parse_args()
    if args.from_rows is not None:
        saved = json.loads(args.from_rows.read_text())
        results = {name: [CaseRates(**row) for row in rows] for name, rows in saved["rows"].items()}
        for name, rows in results.items():
            print(f"== {name} (saved rows)")
            print_rows(name, rows)
        if args.write:
            write_table(results, saved["sizes"])
            write_doc(results, saved["sizes"], saved["seeds"])
        return
    torch.set_num_threads(args.threads)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    names = args.benchmarks or [
        n for n in available_benchmarks() if get_benchmark(n).buildable and not get_benchmark(n).gpu
    ]
    cache = args.cache_dir or default_cache_dir()
    results: dict[str, list[CaseRates]] = {}
    for name in names:
        bench = get_benchmark(name)
        started = time.perf_counter()
        ensembles = load_or_build(bench, max(sizes), cache, log=print)
        fresh = fresh_retrainings(ensembles, args.seeds, log=print)
        rows = [row for n in sizes for row in rates(ensembles, fresh, n, args.seeds)]
        rows.sort(key=lambda r: (r.case, r.n))
        results[name] = rows
        print(f"== {name} (fingerprint {bench.fingerprint()}, alpha {ALPHA} per tail, "
              f"{time.perf_counter() - started:.0f}s)")  # fmt: skip
        print_rows(name, rows)
        for n in sizes:
            at_n = [r for r in rows if r.n == n]
            fails = sum(r.false_fails for r in at_n)
            trials = sum(r.trials for r in at_n)
            z = [v for r in at_n for v in r.z]
            print(f"   N={n}: false_fail_rate {fails}/{trials}, z sd {np.std(z):.2f}, "
                  f"conclusive {sum(r.conclusive for r in at_n)}/{len(at_n)} cases")  # fmt: skip
    if args.save_rows is not None:
        rows_json = {n: [dataclasses.asdict(r) for r in rs] for n, rs in results.items()}
        args.save_rows.write_text(
            json.dumps({"sizes": sizes, "seeds": args.seeds, "rows": rows_json}, indent=1)
        )
    if args.write:
        write_table(results, sizes)
        write_doc(results, sizes, args.seeds)


def conclusive_from(rows: list[CaseRates]) -> dict[str, int | None]:
    """Per case, the smallest measured N from which it is conclusive at every larger one."""
    by_case: dict[str, list[CaseRates]] = {}
    for row in rows:
        by_case.setdefault(row.case, []).append(row)
    smallest: dict[str, int | None] = {}
    for case, case_rows in by_case.items():
        case_rows.sort(key=lambda r: r.n)
        smallest[case] = None
        for row in reversed(case_rows):
            if not row.conclusive:
                break
            smallest[case] = row.n
    return dict(sorted(smallest.items()))


def write_table(results: dict[str, list[CaseRates]], sizes: list[int]) -> None:
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    table["alpha"] = ALPHA
    benchmarks = table.setdefault("benchmarks", {})
    for name, rows in results.items():
        benchmarks[name] = {
            "fingerprint": get_benchmark(name).fingerprint(),
            "sizes": sizes,
            "conclusive_from": conclusive_from(rows),
        }
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {TABLE.relative_to(REPO)}")


def write_doc(results: dict[str, list[CaseRates]], sizes: list[int], seeds: int) -> None:
    lines = [
        "# Verdict rates: false fails, power, conclusiveness",
        "",
        "Generated by `python benchmarks/bench_power.py --write` "
        f"({seeds} fresh exact-retraining ensembles of {max(sizes)} models per forget set and "
        "request, split into disjoint blocks of N; alpha = "
        f"{ALPHA} per tail). See [verdicts.md](verdicts.md) for what the columns mean.",
        "",
    ]
    for name, rows in results.items():
        lines += [f"## {name}", "", "| case | N | conclusive | threshold | floor | do-nothing | "
                  "false fails | z sd | power |", "| --- | --- | --- | --- | --- | --- | --- | "
                  "--- | --- |"]  # fmt: skip
        for r in rows:
            z_sd = f"{np.std(r.z):.2f}" if len(r.z) > 1 else "-"
            power = f"{r.power:.0%}" if r.power is not None else "-"
            lines.append(
                f"| {r.case} | {r.n} | {'yes' if r.conclusive else 'no'} | {r.threshold:.3f} | "
                f"{r.floor:.3f} | {r.do_nothing:.3f} | {r.false_fails}/{r.trials} | {z_sd} | "
                f"{power} |"
            )
        summary = []
        for n in sizes:
            at_n = [r for r in rows if r.n == n]
            summary.append(
                f"N={n}: {sum(r.false_fails for r in at_n)}/{sum(r.trials for r in at_n)} "
                f"false fails, {sum(r.conclusive for r in at_n)}/{len(at_n)} conclusive"
            )
        lines += ["", "; ".join(summary) + ".", ""]
    DOC.write_text("\n".join(lines))
    print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
