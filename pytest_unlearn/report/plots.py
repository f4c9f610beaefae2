"""Plots (``--unlearn-plots=DIR``): one PNG per (benchmark, forget set, request).

Each figure has one panel per split. A panel shows the empirical CDF of the per-point KLoM
values of the method, of do-nothing (the pretrained models) and of the noise floor (oracle half B),
each against oracle half A, plus the P95 threshold as a vertical line. ECDFs rather than
histograms because the verdict statistic is a quantile: a curve's P95 is where it crosses the
dotted 0.95 line, so "passes" reads as "the method's curve crosses 0.95 left of the threshold".

Controller-only. matplotlib is imported only when the session ends and only when plots were
asked for; without it the run says so in one terminal line and writes nothing.

Example::

    config.pluginmanager.register(PlotWriter("unlearn-plots"))
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ..atomic_files import replace_atomically
from .records import CaseRecord, RecordCollector

#: Panel order: the case's own splits first, in the order the conformance ids list them.
_SPLIT_ORDER = ("forget", "retain", "validation")
#: (key, label, colour) per series of the ``unlearn_points`` property; the method drawn last
#: so it stays visible where it coincides with do-nothing (a method that changes nothing).
_SERIES = (
    ("do_nothing", "do-nothing", "tab:red"),
    ("floor", "noise floor (oracle B)", "tab:green"),
    ("method", "method", "tab:blue"),
)
#: Without per-point values: (figure, label, colour) of the P95s drawn as dots at 0.95.
#: The method last and as a cross, so it stays visible when it equals do-nothing's dot.
_P95_MARKERS = (
    ("do_nothing", "do-nothing P95", "tab:red", "o"),
    ("floor", "noise floor P95", "tab:green", "o"),
    ("p95", "method P95", "tab:blue", "X"),
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

GroupKey = tuple[str, str, int]


def _safe(part: str) -> str:
    """A name part that cannot leave the plots directory or upset a file system."""
    return _UNSAFE.sub("_", part).strip(".") or "_"


def plot_filename(benchmark: str, forget_set: str, request: int | None = None) -> str:
    """``<benchmark>-<forget_set>[-req<k>].png``; the request suffix only for sequential cases.

    >>> plot_filename("digits-mlp", "knn36"), plot_filename("digits-mlp", "knn36", 2)
    ('digits-mlp-knn36.png', 'digits-mlp-knn36-req2.png')
    """
    suffix = "" if request is None else f"-req{request}"
    return f"{_safe(benchmark)}-{_safe(forget_set)}{suffix}.png"


def group_records(records: Iterable[CaseRecord]) -> dict[GroupKey, list[CaseRecord]]:
    """Records grouped by (benchmark, forget set, request), splits in panel order.

    Records without a benchmark (a test that errored before recording any figure) cannot be
    placed and are left out; the JSON report still lists them.
    """
    groups: dict[GroupKey, list[CaseRecord]] = {}
    for record in records:
        benchmark, forget_set = record.figures.get("benchmark"), record.figures.get("forget_set")
        if benchmark is None or forget_set is None:
            continue
        groups.setdefault((str(benchmark), str(forget_set), record.request), []).append(record)

    def panel_order(record: CaseRecord) -> tuple[int, str]:
        split = str(record.figures.get("split"))
        rank = _SPLIT_ORDER.index(split) if split in _SPLIT_ORDER else len(_SPLIT_ORDER)
        return rank, split

    return {key: sorted(group, key=panel_order) for key, group in sorted(groups.items())}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _draw_panel(axes: Any, record: CaseRecord) -> None:
    """One split: ECDFs of the per-point series, the threshold and the 0.95 level."""
    figures = record.figures
    threshold = _number(figures.get("threshold"))
    points = record.points
    if points is not None:
        for key, label, colour in _SERIES:
            values = sorted(points[key])
            if not values:
                continue
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            axes.step(values, fractions, where="post", color=colour, label=label)
    else:
        # Without per-point values the P95 figures still say where each curve crosses 0.95.
        for key, label, colour, marker in _P95_MARKERS:
            value = _number(figures.get(key))
            if value is not None:
                axes.plot([value], [0.95], marker, color=colour, label=label, markersize=8)
        axes.text(
            0.03,
            0.5,
            "per-point values not recorded" if figures.get("p95") is not None else record.outcome,
            transform=axes.transAxes,
            ha="left",
            fontsize=8,
            color="gray",
        )
    if threshold is not None:
        axes.axvline(threshold, color="black", linestyle="--", label="P95 threshold")
    axes.axhline(0.95, color="gray", linestyle=":", linewidth=1)
    p95 = _number(figures.get("p95"))
    verdict = record.verdict_label
    summary = f"P95 {p95:.3f}" if p95 is not None else "no P95"
    if threshold is not None:
        summary += f", threshold {threshold:.3f}"
    axes.set_title(f"{figures.get('split', '?')}: {summary}\n{verdict}", fontsize=9)
    axes.set_xlabel("per-point KLoM vs oracle A")
    axes.set_ylim(0, 1.02)


def render_group(key: GroupKey, records: Sequence[CaseRecord], sequential: bool) -> Any:
    """The matplotlib ``Figure`` of one (benchmark, forget set, request).

    Built on ``matplotlib.figure.Figure`` directly, not pyplot: no global figure registry, no
    backend switch that could affect the user's own session; saving a PNG uses Agg.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    benchmark, forget_set, request = key
    figure = Figure(figsize=(4.2 * len(records), 3.9), layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: savefig renders with Agg whatever the default
    axes_row = figure.subplots(1, len(records), squeeze=False, sharey=True)[0]
    for axes, record in zip(axes_row, records, strict=True):
        _draw_panel(axes, record)
    axes_row[0].set_ylabel("fraction of points <= x")
    # One legend for the figure, below the panels: inside a panel it would hide some curve.
    handles, labels = axes_row[0].get_legend_handles_labels()
    if handles:
        columns = min(len(handles), 2 * len(records))  # a lone panel is too narrow for 4
        figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=8)
    n_models = records[0].figures.get("n_models")
    failed = [r.figures.get("split", r.test_id) for r in records if r.outcome != "passed"]
    title = f"{benchmark} / {forget_set}"
    if sequential:
        title += f", request {request}"
    if n_models is not None:
        title += f" (N={n_models})"
    title += ": " + (f"not passed on {', '.join(map(str, failed))}" if failed else "all passed")
    figure.suptitle(title, fontsize=10)
    return figure


def _save_png(figure: Any, path: Path) -> None:
    """Save through a temporary file and a rename: no half-written PNG is ever visible."""
    replace_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))


class PlotWriter:
    """A controller-only pytest plugin that writes the plots at the end of the session.

    Example::

        writer = PlotWriter(Path("plots"))
        writer.write(records)
        [PosixPath('plots/digits-mlp-knn36.png'), PosixPath('plots/digits-mlp-random36.png')]
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.collector = RecordCollector()
        self.written: list[Path] = []
        self.warnings: list[str] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        if hasattr(config, "workerinput"):  # an xdist worker: the controller draws
            return
        directory = self.directory.expanduser()
        if not directory.is_absolute():
            directory = config.invocation_params.dir / directory
        self.directory = directory
        self.write(self.collector.records())

    def write(self, records: Iterable[CaseRecord]) -> list[Path]:
        """Draw one PNG per group into the directory; never raises for a plotting problem,
        it notes a warning line instead (the tests' verdicts matter more than their plots)."""
        groups = group_records(records)
        if not groups:
            return []
        try:
            # The package itself first: a stale ``matplotlib.figure`` left in sys.modules must
            # not hide that matplotlib is unavailable (or blocked, as the tests do).
            import matplotlib
            import matplotlib.figure  # noqa: F401
        except ImportError as error:
            self.warnings.append(
                "pytest-unlearn: plots skipped: matplotlib is not installed "
                f"(pip install matplotlib) [{error}]"
            )
            return []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self.warnings.append(f"pytest-unlearn: plots skipped: {error}")
            return []
        sequential = {key: any(r.sequential for r in group) for key, group in groups.items()}
        for key, group in groups.items():
            benchmark, forget_set, request = key
            path = self.directory / plot_filename(
                benchmark, forget_set, request if sequential[key] else None
            )
            try:
                _save_png(render_group(key, group, sequential[key]), path)
            except Exception as error:  # a plotting bug must not turn a green run red
                self.warnings.append(
                    f"pytest-unlearn: could not draw {path.name}: {type(error).__name__}: {error}"
                )
                continue
            self.written.append(path)
        return list(self.written)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for warning in self.warnings:
            terminalreporter.write_line(warning, yellow=True, bold=True)
        if self.written:
            terminalreporter.write_sep(
                "-", f"pytest-unlearn plots: {len(self.written)} PNG file(s) in {self.directory}"
            )
