"""The session's shared evaluation state: ensembles, method runs and calibrations, each
computed once and reused by every test that needs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from ..benchmarks import Benchmark, get_benchmark
from ..certified import claim_of
from ..figures import points_property
from ..logs import Log
from ..metric import KLOM_MAX, KlomSummary, klom, summarize
from ..settings import Settings
from ..store import (
    Ensembles,
    StoreError,
    bind_forget_sets,
    load_or_build,
    read_ensembles,
)
from ..store.data_files import provide_data
from ..store.fetch import materialize
from ..store.manifest import Manifest, read_manifest
from ..store.reference_retrain import device_kind
from ..training import model_seed
from ..verdicts import Calibration, Decision, calibrate, decide, inconclusive_reason
from ..verdicts.measured_sizes import conclusive_hint
from .baseline import Baseline, Comparison, compare
from .cases import CertifiedCase, ConformanceCase, split_indices
from .certified_checks import CertifiedResult, run_check
from .contract_checks import ContractViolation, raised_by_method
from .method_runner import MethodRun, run_method
from .shared_runs import MemberFailedElsewhere


class MethodFailedEarlier(Exception):
    """The method raised on this forget set in an earlier test; that test shows its traceback."""


class EvaluationError(Exception):
    """Evaluating a forget set failed for a reason that is not the method's: the store, the
    data, the device. Reported as such in one line, never as "the method raised"."""


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one conformance case, with every figure behind the verdict."""

    case: ConformanceCase
    n_models: int
    klom: KlomSummary
    calibration: Calibration
    method_seconds: float  # per call: one model, one request
    retrain_seconds: float | None  # one exact retraining, for scale
    device: str
    #: The benchmark's fingerprint (which measured conclusive sizes apply).
    fingerprint: str = ""
    #: Every call returned its input's parameters bit for bit.
    returned_input_unchanged: bool = False
    #: The digest of the store's manifest the figures come from.
    store_id: str | None = None
    #: Against ``--unlearn-baseline``: the comparison, or why none is possible.
    comparison: Comparison | None = None
    baseline_mismatch: str | None = None
    #: Per-point KLoM (method / pretrained / oracle half B vs half A); only with --unlearn-plots.
    points: dict[str, list[float]] | None = None

    @property
    def slower_than_retraining(self) -> bool:
        return self.retrain_seconds is not None and self.method_seconds > self.retrain_seconds

    @property
    def decision(self) -> Decision:
        return decide(self.klom.p95, self.calibration)

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and self.comparison.regressed

    @property
    def passed(self) -> bool:
        """No evidence against the method (a PASS, or an INCONCLUSIVE that is skipped). Under a
        baseline: no regression beyond noise (and no sign of the answer key)."""
        if self.baseline_mismatch is not None:
            return False
        if self.decision.reason == "below":  # evidence of a cheat, baseline or not
            return False
        if self.comparison is not None:
            return not self.comparison.regressed
        return self.decision.verdict != "FAIL"

    @property
    def inconclusive(self) -> str | None:
        """Why a pass here would prove nothing (the test is skipped with it), or None."""
        if self.comparison is not None:
            limit = self.comparison.baseline_p95 + self.comparison.band
            if limit < KLOM_MAX:
                return None  # the regression check could have failed
            return (
                f"inconclusive: the baseline's P95 {self.comparison.baseline_p95:.3f} plus the "
                f"noise band {self.comparison.band:.3f} reaches the largest value KLoM can take: "
                "no regression could show"
            )
        decision = self.decision
        if decision.verdict != "INCONCLUSIVE":
            return None
        case = self.case
        hint = conclusive_hint(case.benchmark, self.fingerprint, case.id, self.n_models)
        return f"inconclusive: {inconclusive_reason(self.calibration, decision.reason)}; {hint}"

    def properties(self) -> dict[str, Any]:
        """The figures as ``unlearn_*`` user properties (terminal table, JUnit)."""
        from ..figures import to_properties

        cal = self.calibration
        decision = self.decision
        figures = {
            "benchmark": self.case.benchmark,
            "forget_set": self.case.forget_set,
            "request": self.case.request,
            "split": self.case.split,
            "n_models": self.n_models,
            "p95": self.klom.p95,
            "mean": self.klom.mean,
            "median": self.klom.median,
            "threshold": cal.threshold,
            "lower_threshold": cal.lower_threshold,
            "floor": cal.floor,
            "null_median": cal.null_median,
            "null_sd": cal.null_sd,
            "null_max": cal.null_max,
            "do_nothing": cal.do_nothing,
            "separable": cal.separable,
            "conclusive": cal.conclusive,
            "alpha": cal.alpha,
            "score": cal.score(self.klom.p95),
            "score_band": cal.score_band,
            "verdict": decision.verdict,
            "verdict_reason": decision.reason,
            "returned_input_unchanged": self.returned_input_unchanged,
            "fingerprint": self.fingerprint,
            "store_id": self.store_id,
            "method_seconds_per_model": self.method_seconds,
            "retrain_seconds_per_model": self.retrain_seconds,
            "slower_than_retraining": self.slower_than_retraining,
            "device": self.device,
            "sequential": self.case.sequential,
        }
        if self.comparison is not None:
            figures.update(
                baseline_p95=self.comparison.baseline_p95,
                baseline_score=self.comparison.baseline_score,
                regression=self.comparison.regressed,
            )
        if self.points is not None:
            figures["points"] = self.points
        return to_properties(figures)

    def explanation(self) -> str:
        if self.baseline_mismatch is not None:
            return self.baseline_mismatch
        if self.regressed and self.decision.reason != "below":
            assert self.comparison is not None
            return self.comparison.message(
                self.case.id, self.klom.p95, self.calibration.score(self.klom.p95)
            )
        cal = self.calibration
        case = self.case
        where = (
            f"P95 KLoM on the {case.split} split of {case.benchmark}/{case.forget_set}"
            + (f" after request {case.request}" if case.sequential else "")
            + f" is {self.klom.p95:.3f}, "
        )
        figures = (
            f"(noise floor {cal.floor:.3f}, spread of exact retraining {cal.null_sd:.3f}, "
            f"do-nothing {cal.do_nothing:.3f}, N={self.n_models}, alpha {cal.alpha:g} per tail)"
        )
        if self.decision.reason == "below":
            return (
                where + f"below the lower threshold {cal.lower_threshold:.3f} {figures}: closer "
                "to the oracles than exact retraining can be; an independent retraining lands "
                "this close with probability below alpha, so the unlearned models look derived "
                "from the oracles the test compares against."
            )
        return (
            where + f"above the threshold {cal.threshold:.3f} {figures}: the unlearned models "
            "are distinguishable from models retrained without the forget set."
        )


class Evaluator:
    """Owns everything a run computes once: ensembles per benchmark, the method's outputs per
    forget set, and calibrations per case.

    Example::

        evaluator = Evaluator(settings, method)
        evaluator.evaluate(ConformanceCase("digits-mlp", "knn36", "forget")).passed
        True
    """

    def __init__(
        self,
        settings: Settings,
        method: Callable,
        log: Log | None = None,
        shared_runs: Path | None = None,
        baseline: Baseline | None = None,
    ) -> None:
        self.settings = settings
        #: ``--unlearn-baseline``'s records: tests gate on regressions against them.
        self.baseline = baseline
        self.method = method
        self._log = log or (lambda message: None)
        #: A directory every xdist worker of the run sees: workers split a forget set's
        #: method calls through it (:mod:`.shared_runs`). None outside xdist.
        self.shared_runs = shared_runs
        self._ensembles: dict[str, Ensembles | StoreError] = {}
        self._runs: dict[tuple[str, str], MethodRun | BaseException] = {}
        self._retrain_seconds: dict[str, float | None] = {}
        self._calibrations: dict[ConformanceCase, Calibration] = {}
        self._fingerprints: dict[str, str] = {}
        self._store: tuple[Path, Manifest] | None = None
        self._collected: dict[str, Benchmark] = {}
        #: The method's certified claim (``@certified``), or None: no certified cases.
        self.claim = claim_of(method)

    def ensembles(self, benchmark: str) -> Ensembles:
        """The benchmark's ensembles: from ``--unlearn-store`` when that store is for this
        benchmark, else built locally into the cache (once)."""
        if benchmark not in self._ensembles:
            try:
                self._ensembles[benchmark] = self._load_ensembles(get_benchmark(benchmark))
            except StoreError as error:
                self._ensembles[benchmark] = error
            except Exception as error:  # a malformed store or data: never the method's fault
                self._ensembles[benchmark] = StoreError(
                    f"loading the ensembles of {benchmark} failed: {type(error).__name__}: {error}"
                )
        loaded = self._ensembles[benchmark]
        if isinstance(loaded, StoreError):
            pytest.fail(f"pytest-unlearn store error: {loaded}", pytrace=False)
        return loaded

    def _load_ensembles(self, bench: Benchmark) -> Ensembles:
        settings = self.settings
        # Data the benchmark downloads (CIFAR-10) is fetched into the cache first, verified;
        # the benchmark gets the local paths as a new instance.
        bench = provide_data(
            bench,
            settings.cache_dir / "data",
            offline=settings.offline,
            log=self._log,
            stall_seconds=settings.download_stall,
            deadline_seconds=settings.download_deadline,
        )
        if settings.store is not None:
            local, manifest = self._store_manifest()
            if manifest.benchmark == bench.name:
                # An imported benchmark gets its forget sets from the store (a new instance;
                # the registry's is never changed); the manifest is read once per run.
                bench = bind_forget_sets(bench, local, manifest)
                return read_ensembles(bench, local, settings.models, manifest=manifest)
        return load_or_build(
            bench, settings.models, settings.cache_dir, device=settings.device, log=self._log
        )

    def _store_manifest(self) -> tuple[Path, Manifest]:
        """``--unlearn-store`` as a verified local directory and its manifest, once per run."""
        if self._store is None:
            settings = self.settings
            assert settings.store is not None
            local = materialize(
                settings.store,
                settings.cache_dir / "downloads",
                offline=settings.offline,
                log=self._log,
                stall_seconds=settings.download_stall,
                deadline_seconds=settings.download_deadline,
            )
            self._store = (local, read_manifest(local))
        return self._store

    def collected_benchmark(self, benchmark: str) -> Benchmark:
        """The benchmark whose declared forget sets this run collects tests for: bound to
        ``--unlearn-store``'s forget sets when it takes them from its store (an imported
        store may hold some of EasyDUB's ten), else the registry's. A store that cannot be
        read now leaves the registry's: its tests then fail with the store's error."""
        bench = get_benchmark(benchmark)
        if self.settings.store is None or not bench.forget_sets_from_store:
            return bench
        if benchmark not in self._collected:
            try:
                local, manifest = self._store_manifest()
                held = bench
                if manifest.benchmark == benchmark:
                    held = bind_forget_sets(bench, local, manifest)
            except StoreError:
                held = bench
            self._collected[benchmark] = held
        return self._collected[benchmark]

    def run_method(
        self,
        method: Callable,
        ensembles: Ensembles,
        forget_set: str,
        *,
        keep_outputs: bool,
        shared: Path | None = None,
    ) -> MethodRun:
        """``method`` run on every member for ``forget_set`` with this run's settings (device,
        timeout, seed, parameters), uncached: :meth:`method_run` is the configured method's
        cached run; the public ``unlearn_run`` fixture runs others through this."""
        settings = self.settings
        return run_method(
            method,
            ensembles,
            forget_set,
            settings.device,
            timeout=settings.timeout,
            seed=settings.seed,
            log=self._log,
            keep_outputs=keep_outputs,
            shared=shared,
            params=dict(settings.params),
        )

    def method_run(self, benchmark: str, forget_set: str) -> MethodRun:
        key = (benchmark, forget_set)
        if key not in self._runs:
            ensembles = self.ensembles(benchmark)  # a store error fails here, as the store's
            try:
                self._runs[key] = self.run_method(
                    self.method,
                    ensembles,
                    forget_set,
                    keep_outputs=self.claim is not None,
                    shared=self.shared_runs,
                )
            except Exception as error:
                # A failure another worker published already says whose it was.
                if raised_by_method(error) or isinstance(
                    error, ContractViolation | MemberFailedElsewhere
                ):
                    self._runs[key] = error
                    raise
                # Not the method's doing (the data, the device, the suite itself): one line
                # that says so, for this test and every later one of the forget set.
                self._runs[key] = EvaluationError(
                    f"pytest-unlearn could not evaluate {benchmark}/{forget_set} (not the "
                    f"method's fault): {type(error).__name__}: {error}"
                )
        run = self._runs[key]
        if isinstance(run, EvaluationError):
            raise EvaluationError(str(run))
        if isinstance(run, ContractViolation | MemberFailedElsewhere):
            raise type(run)(str(run))  # every test of the forget set names the problem
        if isinstance(run, BaseException):
            raise MethodFailedEarlier(
                f"the method raised {type(run).__name__}: {run} on {benchmark}/{forget_set} "
                "in an earlier test of this forget set (its traceback is shown there)"
            )
        return run

    def fingerprint(self, benchmark: str) -> str:
        """The benchmark's fingerprint, computed once (it hashes the data)."""
        if benchmark not in self._fingerprints:
            self._fingerprints[benchmark] = get_benchmark(benchmark).fingerprint()
        return self._fingerprints[benchmark]

    def retrain_seconds(self, benchmark: str) -> float | None:
        """Seconds one exact retraining takes on this run's kind of device, as measured when
        the store was built; None (said once) when the store does not record it: an imported
        store, or one built on another kind of device. Never measured here: that would cost a
        whole retraining per run."""
        if benchmark not in self._retrain_seconds:
            recorded = self.ensembles(benchmark).retrain_seconds
            kind = device_kind(self.settings.device)
            seconds = recorded.get(kind)
            if seconds is None:
                where = (
                    f"only for {', '.join(sorted(recorded))}"
                    if recorded
                    else "for no device (an imported store, or one built before it was recorded)"
                )
                self._log(
                    f"pytest-unlearn: the {benchmark} store records the time of one exact "
                    f"retraining {where}, not for {kind}: retrain_seconds_per_model stays empty "
                    "(build the store on this kind of device to record it)"
                )
            self._retrain_seconds[benchmark] = seconds
        return self._retrain_seconds[benchmark]

    def split_indices(self, case: ConformanceCase) -> torch.Tensor:
        """The evaluation points of a case, on the run's (possibly store-bound) benchmark."""
        return split_indices(self.ensembles(case.benchmark).benchmark, case)

    def calibration(self, case: ConformanceCase) -> Calibration:
        if case not in self._calibrations:
            ensembles = self.ensembles(case.benchmark)
            columns = self.split_indices(case)
            halves = ensembles.oracles[case.forget_set, case.request]
            self._calibrations[case] = calibrate(
                halves.half_a[:, columns],
                halves.half_b[:, columns],
                ensembles.pretrained_margins[:, columns],
                seed=model_seed("calibration", case.id, ensembles.n_models),
            )
        return self._calibrations[case]

    def evaluate(self, case: ConformanceCase) -> CaseResult:
        """Run (or reuse) the method on the case's forget set and score the case's split."""
        run = self.method_run(case.benchmark, case.forget_set)
        ensembles = self.ensembles(case.benchmark)
        columns = self.split_indices(case)
        halves = ensembles.oracles[case.forget_set, case.request]
        oracle = halves.half_a[:, columns]
        values = klom(run.margins[case.request][:, columns], oracle)
        summary = summarize(values)
        points = None
        if self.settings.plots is not None:  # ~23 bytes per point in every JUnit testcase
            points = points_property(
                method=values,
                do_nothing=klom(ensembles.pretrained_margins[:, columns], oracle),
                floor=klom(halves.half_b[:, columns], oracle),
            )
        calibration = self.calibration(case)
        store_id = ensembles.store_id
        comparison, mismatch = None, None
        if self.baseline is not None:
            mismatch = self.baseline.store_mismatch(case.benchmark, store_id)
            record = self.baseline.record(case.id)
            if record is not None and mismatch is None:
                comparison = compare(summary.p95, calibration.margin, record)
        return CaseResult(
            case=case,
            n_models=ensembles.n_models,
            klom=summary,
            calibration=calibration,
            method_seconds=run.seconds_per_call,
            retrain_seconds=self.retrain_seconds(case.benchmark),
            device=str(self.settings.device),
            fingerprint=self.fingerprint(case.benchmark),
            returned_input_unchanged=run.returned_input_unchanged,
            store_id=store_id,
            comparison=comparison,
            baseline_mismatch=mismatch,
            points=points,
        )

    def certify(self, case: CertifiedCase) -> CertifiedResult:
        """Check the method's certified claim on a case (black-box audit or white-box)."""
        if self.claim is None:
            raise ValueError("the method declares no certified claim")
        run = self.method_run(case.benchmark, case.forget_set)
        ensembles = self.ensembles(case.benchmark)
        return run_check(case, self.claim, run, ensembles)


EVALUATOR_KEY = pytest.StashKey[Evaluator]()
"""Where the plugin keeps the run's evaluator on ``config.stash`` (absent when inert)."""
