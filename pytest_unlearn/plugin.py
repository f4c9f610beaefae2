"""The pytest entry point (``pytest11 = unlearn``): wiring only.

Inert unless a method is configured (``--unlearn-method``, its env/ini forms, or a
``pytest_unlearn_method`` hook implementation): then it registers the conformance fixtures,
adds the packaged conformance tests to the collection, and (on the controller only) the
summary table. The public fixtures (``unlearn_benchmark``, ``unlearn_run``) are registered in
every run; requesting one is what loads anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .method_loading import check_method, load_method
from .settings import Settings, add_options, method_spec


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_unlearn_method(config: pytest.Config) -> Callable | None:
    """The default method source: the ``--unlearn-method=MODULE:FUNCTION`` setting."""
    spec, origin = method_spec(config)
    if spec is None:
        return None
    return load_method(spec, config.invocation_params.dir, origin)


@pytest.hookimpl(optionalhook=True, trylast=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` = one worker per GPU, when a method is set and GPUs exist.

    xdist asks before ``pytest_configure``, so only the option/env/ini form of the method
    counts here; a run that stays inert keeps xdist's own default.
    """
    if method_spec(config)[0] is None:
        return None
    from .workers import auto_workers

    return auto_workers()


def pytest_configure(config: pytest.Config) -> None:
    # The public fixtures (docs/fixtures.md) exist in every run, method or not: their module
    # imports nothing heavy, and nothing is loaded until a test requests one.
    from pytest_unlearn.fixtures import public_fixtures

    if not config.pluginmanager.is_registered(public_fixtures):
        config.pluginmanager.register(public_fixtures, "unlearn-public-fixtures")
    method = config.hook.pytest_unlearn_method(config=config)
    if method is None:
        return
    check_method(method, "the pytest_unlearn_method hook's result")
    settings = Settings.for_this_process(config)
    from pytest_unlearn import conformance
    from pytest_unlearn.fixtures import conformance_fixtures

    from .harness.call_guard import release_output_with
    from .harness.evaluator import EVALUATOR_KEY, Evaluator
    from .progress import progress_writer
    from .workers import SharedRunsDirectory, shared_runs_dir

    capture = config.pluginmanager.getplugin("capturemanager")
    release_output_with(None if capture is None else capture.suspend_global_capture)
    config.stash[EVALUATOR_KEY] = Evaluator(
        settings,
        method,
        log=progress_writer(config),
        shared_runs=shared_runs_dir(config),
        baseline=_baseline(settings),
    )
    config.pluginmanager.register(conformance_fixtures, "unlearn-fixtures")
    for marker in (
        "unlearn: a pytest-unlearn conformance test",
        "sequential: a conformance test after one of several sequential deletion requests",
        "slow: a conformance test of a benchmark that takes minutes",
        "gpu: a conformance test of a benchmark that needs a GPU to be practical",
        "certified: a check of a method's certified-unlearning claim",
    ):
        config.addinivalue_line("markers", marker)
    # Declared here too so runs without pytest-xdist don't warn about the grouping marker.
    config.addinivalue_line("markers", "xdist_group(name): keep tests on one xdist worker")
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(SharedRunsDirectory(), "unlearn-shared-runs")
        from .report.terminal_table import TerminalTable

        config.pluginmanager.register(TerminalTable(), "unlearn-terminal-table")
        from .report.certified_table import CertifiedTable

        config.pluginmanager.register(CertifiedTable(), "unlearn-certified-table")
        if settings.report is not None:
            from .report.json_report import JsonReport

            run = {
                "method": settings.method,
                "profile": settings.profile,
                "params": dict(settings.params),
                "seed": settings.seed,
            }
            config.pluginmanager.register(
                JsonReport(settings.report, run=run), "unlearn-json-report"
            )
        if settings.plots is not None:
            from .report.plots import PlotWriter

            config.pluginmanager.register(PlotWriter(settings.plots), "unlearn-plots")
    suite = str(Path(conformance.__file__).parent)
    if suite not in config.args:
        config.args.append(suite)


def _baseline(settings: Settings) -> Any:
    """``--unlearn-baseline``'s report, checked against this run (a usage error if it does not
    fit), or None."""
    if settings.baseline is None:
        return None
    from .benchmarks import get_benchmark
    from .harness.baseline import Baseline
    from .report.json_report import ReportSchemaError, load_report

    source = "--unlearn-baseline"
    try:
        report = load_report(settings.baseline)
    except (OSError, UnicodeDecodeError) as error:
        raise pytest.UsageError(f"{source}: cannot read {settings.baseline}: {error}") from None
    except ReportSchemaError as error:
        raise pytest.UsageError(f"{source}: {error}") from None
    fingerprints = {name: get_benchmark(name).fingerprint() for name in settings.benchmarks}
    return Baseline.of(
        report, settings.baseline, n_models=settings.models, fingerprints=fingerprints
    )
