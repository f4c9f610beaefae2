"""The results table: every example method on every embedded benchmark, one command.

    python benchmarks/results_table.py                       # what docs/results.md shows

runs, for each method in ``examples/`` (do_nothing, gradient_ascent, finetune, neggrad_plus,
scrub, l1_sparse, retrain), one conformance run

    python -m pytest --unlearn-method=examples.X:unlearn --unlearn-benchmark=all \\
        --unlearn-report=REPORTS/X.json [--unlearn-models N] [--unlearn-profile P] ...

from the repository root, then reads the JSON reports (docs/reports.md) and writes

* ``docs/results.md``: per benchmark, forget set and request: P95 KLoM of each split, the
  verdict, and the method's seconds per model against one exact retraining's;
* ``docs/results_compute_vs_klom.png``: forget-split P95 KLoM against the method's compute
  relative to retraining (log scales), one marker per method, one colour per benchmark.

Overrides: ``--benchmarks digits-mlp,mnist1d-cnn`` (default ``all``: every benchmark the
plugin builds locally), ``--models N``, ``--profile quick``, ``--methods finetune,scrub``,
``--cache-dir DIR`` (default: the plugin's user cache), ``--workers N`` (pytest-xdist),
``--threads N`` (torch threads of each run). ``--render-only`` rebuilds the table and plot
from the reports of an earlier run (``--reports-dir``) without running anything. A small
check: ``--benchmarks digits-mlp --models 4 --profile quick``.

Exit status 0 when every run finished (a method failing tests is a result, not an error),
1 when a run could not (pytest exit status other than 0 or 1); the table is written from the
runs that finished either way.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: Cheapest first, exact retraining last: the order of the table's rows and of the runs.
METHODS = (
    "do_nothing",
    "gradient_ascent",
    "finetune",
    "neggrad_plus",
    "scrub",
    "l1_sparse",
    "retrain",
)
SPLITS = ("forget", "retain", "validation")
DEFAULT_OUTPUT = REPO / "docs" / "results.md"
DEFAULT_PLOT = REPO / "docs" / "results_compute_vs_klom.png"
DEFAULT_REPORTS = REPO / "build" / "results"
#: A table cell with no figure.
MISSING = "-"
#: do-nothing takes microseconds: ratios below this are drawn at it (log axis).
MIN_RATIO = 1e-4


@dataclass(frozen=True)
class Case:
    """One (method, benchmark, forget set, request): its three split records together."""

    method: str
    benchmark: str
    forget_set: str
    request: int | None  # None unless the forget set is a sequential schedule
    records: dict[str, dict[str, Any]]  # split -> JSON record

    @property
    def label(self) -> str:
        return self.forget_set if self.request is None else f"{self.forget_set} req{self.request}"

    def p95(self, split: str) -> float | None:
        record = self.records.get(split)
        return None if record is None else record["p95"]

    @property
    def errors(self) -> list[str]:
        """Messages of tests that ended without a verdict (the method raised, broke the
        contract, timed out)."""
        return [
            record["message"] or record["outcome"]
            for record in self.records.values()
            if record["verdict"] is None
        ]

    @property
    def failed_splits(self) -> list[str]:
        return [s for s in SPLITS if s in self.records and self.records[s]["verdict"] == "FAIL"]

    @property
    def inconclusive_splits(self) -> list[str]:
        """Splits that could not have failed at this N, or that do-nothing passes too."""
        return [
            s for s in SPLITS if s in self.records and self.records[s]["verdict"] == "INCONCLUSIVE"
        ]

    @property
    def passed(self) -> bool:
        """Every split passed a test that could have failed it."""
        return (
            not self.errors
            and not self.failed_splits
            and not self.inconclusive_splits
            and len(self.records) == len(SPLITS)
        )

    @property
    def inconclusive(self) -> bool:
        """Nothing failed, but some split proves nothing at this N."""
        return not self.errors and not self.failed_splits and bool(self.inconclusive_splits)

    @property
    def scores(self) -> list[float]:
        """The scores of the splits that have one (docs/verdicts.md)."""
        return [
            float(r["score"])
            for r in self.records.values()
            if isinstance(r.get("score"), int | float)
        ]

    @property
    def score(self) -> float | None:
        """The median score over the case's splits. The median, not the mean: a split whose
        gap between do-nothing and retraining is barely above the noise turns a small damage
        into a score of -1000 %, which would swamp a mean."""
        return statistics.median(self.scores) if self.scores else None

    def _figure(self, name: str) -> float | None:
        values = [r[name] for r in self.records.values() if r[name] is not None]
        return values[0] if values else None

    @property
    def method_seconds(self) -> float | None:
        return self._figure("method_seconds_per_model")

    @property
    def retrain_seconds(self) -> float | None:
        return self._figure("retrain_seconds_per_model")

    @property
    def ratio(self) -> float | None:
        """The method's seconds per model relative to one exact retraining's."""
        if self.method_seconds is None or not self.retrain_seconds:
            return None
        return self.method_seconds / self.retrain_seconds


def pytest_command(method: str, report: Path, args: argparse.Namespace) -> list[str]:
    """The conformance run of ``examples.<method>`` that writes ``report``.

    >>> ns = argparse.Namespace(benchmarks="all", models=4, profile="quick", cache_dir=None,
    ...                         workers=0)
    >>> pytest_command("finetune", Path("r.json"), ns)[3:5]
    ['--unlearn-method=examples.finetune:unlearn', '--unlearn-benchmark=all']
    """
    command = [
        sys.executable, "-m", "pytest",
        f"--unlearn-method=examples.{method}:unlearn",
        f"--unlearn-benchmark={args.benchmarks}",
        f"--unlearn-report={report}",
        "-p", "no:cacheprovider", "-q",
    ]  # fmt: skip
    if args.models is not None:
        command.append(f"--unlearn-models={args.models}")
    if args.profile is not None:
        command.append(f"--unlearn-profile={args.profile}")
    if args.cache_dir is not None:
        command.append(f"--unlearn-cache-dir={args.cache_dir}")
    if args.workers:
        # Workers share each forget set's method calls model by model (shared runs).
        command += ["-n", str(args.workers), "--dist", "load"]
    return command


def run_method(method: str, report: Path, args: argparse.Namespace) -> bool:
    """Run one method's conformance suite; False (with pytest's output) if it did not finish."""
    command = pytest_command(method, report, args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_UNLEARN_")}
    if args.threads is not None:
        # torch reads these at import: the number of intra-op threads of every model call.
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    print(f"== {method}: {shlex.join(command[1:])}", flush=True)
    report.unlink(missing_ok=True)  # a stale report must not pass for this run's
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 1) or not report.is_file():
        print(
            f"   pytest exited {completed.returncode} after {seconds:.0f}s:\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}",
            file=sys.stderr,
        )
        return False
    print(f"   done in {seconds:.0f}s (exit {completed.returncode})", flush=True)
    return True


def case_key(record: dict[str, Any]) -> tuple[str, str, int | None, str]:
    """(benchmark, forget set, request or None, split) of a split test's record.

    From the test id, which every record has: a test that failed before recording its figures
    (the method raised, broke the contract) has them all null, benchmark and split included.
    Ids read ``<benchmark>-<forget set>[-req<k>]-<split>``; benchmark names may hold hyphens,
    forget set names do not.

    >>> case_key({"test_id": "digits-mlp-seq3x12-req2-retain"})
    ('digits-mlp', 'seq3x12', 2, 'retain')
    >>> case_key({"test_id": "digits-logreg-perturbed-knn36-forget"})
    ('digits-logreg-perturbed', 'knn36', None, 'forget')
    """
    *head, split = record["test_id"].split("-")
    request = None
    if len(head) > 2 and re.fullmatch(r"req\d+", head[-1]):
        request = int(head.pop()[3:])
    *benchmark, forget_set = head
    return "-".join(benchmark), forget_set, request, split


def read_cases(reports: Iterable[tuple[str, dict[str, Any]]]) -> list[Case]:
    """Group each report's split records into cases, sorted for the table.

    ``reports`` yields ``(method, loaded JSON report)``; records that are no split test (for
    example a certified-claim check) are left out.
    """
    grouped: dict[tuple[str, str, str, int | None], dict[str, dict[str, Any]]] = {}
    for method, report in reports:
        for record in report["records"]:
            benchmark, forget_set, request, split = case_key(record)
            if split not in SPLITS:  # e.g. a certified check, "...-knn36-whitebox"
                continue
            grouped.setdefault((method, benchmark, forget_set, request), {})[split] = record
    order = {name: i for i, name in enumerate(METHODS)}
    cases = [Case(*key, records=records) for key, records in grouped.items()]
    return sorted(
        cases,
        key=lambda c: (
            c.benchmark,
            c.forget_set,
            c.request or 0,
            order.get(c.method, 99),
            c.method,
        ),
    )


def _number(value: float | None, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.2g}" if value < 0.01 else f"{value:.3g}"


def _p95_cell(case: Case, split: str) -> str:
    record = case.records.get(split)
    if record is None:
        return MISSING
    cell = _number(record["p95"])
    if record["verdict"] == "FAIL":
        cell = f"**{cell}**"
    if record["verdict"] == "INCONCLUSIVE":
        cell += " †"
    return cell


def _verdict_cell(case: Case) -> str:
    if case.errors:
        message = case.errors[0].replace("|", "/").replace("\n", " ")
        return f"ERROR: {message[:80]}"
    if case.failed_splits:
        return f"FAIL ({', '.join(case.failed_splits)})"
    if case.inconclusive:
        return f"INCONCLUSIVE ({', '.join(case.inconclusive_splits)})"
    return "PASS" if case.passed else "incomplete"


def _ratio_cell(ratio: float | None) -> str:
    if ratio is None:
        return MISSING
    return f"{ratio:.2g}x" if ratio < 0.1 else f"{ratio:.2f}x"


def _summary(cases: Sequence[Case]) -> list[str]:
    benchmarks = sorted({c.benchmark for c in cases})
    methods = [m for m in METHODS if any(c.method == m for c in cases)]
    methods += sorted({c.method for c in cases} - set(methods))
    lines = [
        "| method | " + " | ".join(benchmarks) + " |",
        "| --- | " + " | ".join("---" for _ in benchmarks) + " |",
    ]
    for method in methods:
        cells = []
        for benchmark in benchmarks:
            mine = [c for c in cases if c.method == method and c.benchmark == benchmark]
            if not mine:
                cells.append(MISSING)
                continue
            ratios = [c.ratio for c in mine if c.ratio is not None]
            cost = _ratio_cell(statistics.median(ratios)) if ratios else MISSING
            passed = sum(c.passed for c in mine)
            inconclusive = sum(c.inconclusive for c in mine)
            counted = f"{passed}/{len(mine)} cases" + (
                f" ({inconclusive} inconclusive)" if inconclusive else ""
            )
            scores = [value for c in mine for value in c.scores]
            score = f"score {statistics.median(scores):.0f}%" if scores else "score -"
            cells.append(f"{counted}, {score}, {cost}")
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    cases: Sequence[Case], meta: dict[str, str], plot_link: str = "results_compute_vs_klom.png"
) -> str:
    """``docs/results.md``: how it was made, a summary per method and benchmark, every case.

    ``plot_link`` is the plot's path relative to the markdown file.
    """
    lines = [
        "# Results: the example methods on every benchmark",
        "",
        "Generated by `benchmarks/results_table.py`; do not edit by hand. Regenerate with",
        "",
        f"    {meta['command']}",
        "",
        *[f"* {key}: {value}" for key, value in meta.items() if key != "command"],
        "",
        "Every method is a file in `examples/`; its hyper-parameters per benchmark were chosen by",
        "`benchmarks/sweep_examples.py` (`examples/tuned.json`: the best mean score on the quick",
        "profile at N=16, other method seeds; the same benchmarks' oracles, so these are tuned",
        "references, not held-out estimates). A **case** is a (benchmark, forget set, request); it",
        "passes when all three splits pass ([verdicts.md](verdicts.md)). **P95** is the verdict",
        "statistic, P95 KLoM against oracle half A (bold: the split fails; † the split is",
        "inconclusive at this N: do-nothing passes it too, or it cannot fail, so a pass there",
        "proves nothing; such a case is counted as inconclusive, not passed). **s/model** is one",
        "method call on one model; **retrain s/model** one exact retraining of the same",
        "benchmark in the same run, and **x retrain** their ratio. **score** is the median over",
        "the splits of the share of the gap between do-nothing (0%) and exact retraining (100%)",
        "the method closes ([verdicts.md](verdicts.md)); a split without a gap has none.",
        "",
        "## Summary: cases passed, median score, median compute relative to retraining",
        "",
        *_summary(cases),
        "",
        f"![forget-split P95 KLoM against compute]({plot_link})",
        "",
    ]
    for benchmark in sorted({c.benchmark for c in cases}):
        lines += [
            f"## {benchmark}",
            "",
            "| method | benchmark | forget set | P95 forget | P95 retain | P95 validation "
            "| score | verdict | s/model | retrain s/model | x retrain |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
        ]
        for case in (c for c in cases if c.benchmark == benchmark):
            cells = [
                f"`{case.method}`",
                case.benchmark,
                case.label,
                *(_p95_cell(case, split) for split in SPLITS),
                MISSING if case.score is None else f"{case.score:.0f}%",
                _verdict_cell(case),
                _seconds(case.method_seconds),
                _seconds(case.retrain_seconds),
                _ratio_cell(case.ratio),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(
    readme: Path, cases: Sequence[Case], meta: dict[str, str], args: argparse.Namespace
) -> bool:
    """Replace the README's text between the results markers with the summary table and
    links to the full table and the plot; False (and a note) when the markers are missing."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        print(f"{readme}: no {README_START} ... {README_END} section; left as is", file=sys.stderr)
        return False
    here = readme.resolve().parent
    output = Path(os.path.relpath(args.output.resolve(), here)).as_posix()
    picture = Path(os.path.relpath(args.plot.resolve(), here)).as_posix()
    section = [
        README_START,
        f"Generated by `{meta['command']}` ({meta.get('ensemble size N', '?')} models per "
        f"ensemble); every case with its P95 KLoM per split and seconds per model: "
        f"[{output}]({output}). Each cell: cases passed, the median score (the share of the gap "
        "between do-nothing, 0%, and exact retraining, 100%, a method closes), median compute "
        "relative to one exact retraining.",
        "",
        *_summary(cases),
        "",
        f"![forget-split P95 KLoM against compute]({picture})",
        README_END,
    ]
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(head + "\n".join(section) + tail, encoding="utf-8")
    return True


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def plot(cases: Sequence[Case], path: Path, title: str = "") -> None:
    """Forget-split P95 KLoM against compute relative to retraining, one point per case.

    Marker = method, colour = benchmark, filled when the forget split passed. Drawn on a
    ``Figure`` with the Agg canvas (no pyplot), as the plugin's own plots are.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import ScalarFormatter

    methods = [m for m in METHODS if any(c.method == m for c in cases)]
    methods += sorted({c.method for c in cases} - set(methods))
    benchmarks = sorted({c.benchmark for c in cases})
    marker = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(methods)}
    colour = {b: _COLOURS[i % len(_COLOURS)] for i, b in enumerate(benchmarks)}
    figure = Figure(figsize=(9.5, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for case in cases:
        p95 = case.p95("forget")
        if p95 is None or case.ratio is None:
            continue
        passed = case.records["forget"]["verdict"] == "PASS"
        axes.scatter(
            max(case.ratio, MIN_RATIO),
            max(p95, 1e-3),
            marker=marker[case.method],
            s=55,
            edgecolors=colour[case.benchmark],
            facecolors=colour[case.benchmark] if passed else "none",
            linewidths=1.5,
            alpha=0.85,
        )
    for benchmark in benchmarks:
        # Thresholds differ per case; the median forget-split one places "passes" on the axis.
        thresholds = [
            c.records["forget"]["threshold"]
            for c in cases
            if c.benchmark == benchmark
            and "forget" in c.records
            and c.records["forget"]["threshold"] is not None
        ]
        if thresholds:
            axes.axhline(
                statistics.median(thresholds), color=colour[benchmark], linestyle=":", linewidth=1
            )
    axes.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    axes.text(1.0, 1.0, " retraining", transform=axes.get_xaxis_transform(), va="top", color="grey")
    axes.set_xscale("log")
    axes.set_yscale("log")
    # Plain numbers on the KLoM axis: its range is often within one decade.
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(ScalarFormatter())
    axes.tick_params(axis="y", which="minor", labelsize=7)
    axes.set_xlabel(
        "method seconds per model / retraining seconds per model "
        f"(below {MIN_RATIO:g} drawn at {MIN_RATIO:g})"
    )
    axes.set_ylabel("forget-split P95 KLoM")
    axes.set_title(title or "Compute vs forget-split KLoM")
    axes.grid(True, which="major", alpha=0.3)
    method_handles = [
        Line2D(
            [], [], linestyle="", marker=marker[m], color="black", markerfacecolor="none", label=m
        )
        for m in methods
    ]
    bench_handles = [
        Line2D([], [], linestyle="", marker="o", color=colour[b], label=b) for b in benchmarks
    ]
    key_handles = [
        Line2D([], [], linestyle="", marker="o", color="black", label="forget split passed"),
        Line2D(
            [], [], linestyle="", marker="o", color="black", markerfacecolor="none",
            label="forget split failed",
        ),
        Line2D([], [], linestyle=":", color="black", label="median forget threshold"),
    ]  # fmt: skip

    def heading(text: str) -> Line2D:
        return Line2D([], [], linestyle="", label=text)

    # One figure-level legend in sections: constrained layout makes room for it outside.
    handles = [
        heading("method"), *method_handles,
        heading(""), heading("benchmark"), *bench_handles,
        heading(""), *key_handles,
    ]  # fmt: skip
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def _metadata(
    args: argparse.Namespace, reports: Sequence[tuple[str, dict[str, Any]]]
) -> dict[str, str]:
    def distinct(values: Iterable[Any]) -> str:
        found = sorted({str(v) for v in values if v is not None})
        return ", ".join(found) or MISSING

    settings = [report["settings"] for _, report in reports]
    created = [report["created"][:16].replace("T", " ") for _, report in reports]
    return {
        "command": args.command_line,
        "ensemble size N": distinct(s["n_models"] for s in settings),
        "profile": args.profile or "full",
        "devices": distinct(d for s in settings for d in s["devices"]),
        "pytest-unlearn": distinct(report["pytest_unlearn_version"] for _, report in reports),
        "torch": importlib.metadata.version("torch"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "runs finished (UTC)": " to ".join(sorted({min(created), max(created)})),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="all", help="comma-separated, or all (default)")
    parser.add_argument("--models", type=int, default=None, help="ensemble size N")
    parser.add_argument("--profile", choices=("full", "quick"), default=None)
    parser.add_argument("--methods", default=",".join(METHODS), help="examples to run")
    parser.add_argument("--cache-dir", default=None, help="the plugin's cache directory")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (-n)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run")
    parser.add_argument("--reports-dir", type=Path, default=DEFAULT_REPORTS)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument(
        "--readme",
        type=Path,
        default=REPO / "README.md",
        help="README whose results section to rewrite (default: the repository's)",
    )
    parser.add_argument("--no-readme", dest="readme", action="store_const", const=None)
    parser.add_argument(
        "--render-only", action="store_true", help="redraw from --reports-dir, run nothing"
    )
    args = parser.parse_args(argv)
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.method_list if not (REPO / "examples" / f"{m}.py").is_file()]
    if unknown:
        parser.error(f"no examples/<name>.py for: {', '.join(unknown)}")
    shown = list(argv if argv is not None else sys.argv[1:])
    args.command_line = shlex.join(["python", "benchmarks/results_table.py", *shown])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from pytest_unlearn.report.json_report import load_report

    args = parse_args(argv)
    args.reports_dir.mkdir(parents=True, exist_ok=True)
    # The command that ran the reports, so a --render-only redraw still names it.
    command_file = args.reports_dir / "command.txt"
    if args.render_only and command_file.is_file():
        args.command_line = command_file.read_text(encoding="utf-8").strip()
        # The figures are that run's: so is its profile.
        args.profile = parse_args(shlex.split(args.command_line)[2:]).profile
    elif not args.render_only:
        command_file.write_text(args.command_line + "\n", encoding="utf-8")
    broken = []
    for method in args.method_list:
        report = args.reports_dir / f"{method}.json"
        if not args.render_only and not run_method(method, report, args):
            broken.append(method)
    reports = [
        (method, load_report(args.reports_dir / f"{method}.json"))
        for method in args.method_list
        if method not in broken and (args.reports_dir / f"{method}.json").is_file()
    ]
    if not reports:
        print("no report to render", file=sys.stderr)
        return 1
    cases = read_cases(reports)
    meta = _metadata(args, reports)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot_link = Path(os.path.relpath(args.plot.resolve(), args.output.resolve().parent))
    text = render_markdown(cases, meta, plot_link.as_posix())
    args.output.write_text(text + "\n", encoding="utf-8")
    plot(cases, args.plot, title=f"Example methods, N={meta['ensemble size N']}")
    print(f"wrote {args.output} ({len(cases)} cases) and {args.plot}")
    if args.readme is not None and update_readme(args.readme, cases, meta, args):
        print(f"updated the results section of {args.readme}")
    if broken:
        print(f"runs that did not finish: {', '.join(broken)}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
