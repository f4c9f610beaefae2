"""The certified-check registry: a check is one module behind one protocol plus its
registration, and everything else (ids, dispatch, the terminal table, the JSON report) follows.

The end-to-end tests register a toy check for one in-process run and find it collected as
``...-toy``, run, recorded and shown in the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import output, unlearn_args

from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.certified import CertifiedClaim
from pytest_unlearn.figures import CERTIFIED_FIGURES
from pytest_unlearn.harness.cases import CertifiedCase
from pytest_unlearn.harness.certified_checks import (
    CHECKS,
    CertifiedResult,
    CheckOutcome,
    Column,
    certified_cases,
    check_named,
    registered_checks,
    temporarily_registered,
    validate,
)
from pytest_unlearn.report.certified_table import table_columns

NOISY = CertifiedClaim(epsilon=1.0, delta=1e-5, noise_std=3e-3)
PLAIN = CertifiedClaim(epsilon=1.0, delta=1e-5)


class ToyCheck:
    """The whole of a new check: a name, where it applies, what it runs, its column."""

    name = "toy"
    columns = (Column("toy noise", "declared_noise_std", ".1e", "toy noise = the claim's"),)

    def __init__(self, passed: bool = True) -> None:
        self.passed = passed

    def applies(self, benchmark: Any, claim: CertifiedClaim | None) -> bool:
        return True

    def run(self, case: Any, claim: CertifiedClaim, run: Any, ensembles: Any) -> CheckOutcome:
        return CheckOutcome(
            {"declared_noise_std": claim.noise_std},
            passed=self.passed,
            explanation=f"toy check refutes the claim on {case.id}",
        )


def test_the_registered_checks() -> None:
    assert [check.name for check in registered_checks()] == ["blackbox", "whitebox"]
    assert registered_checks() is CHECKS
    validate(CHECKS)


def test_every_column_shows_a_declared_certified_figure() -> None:
    for check in registered_checks():
        assert check.columns, check.name
        for column in check.columns:
            assert column.figure in CERTIFIED_FIGURES, (check.name, column)
            format(1.0, column.format)


def test_where_the_checks_apply() -> None:
    blackbox, whitebox = check_named("blackbox"), check_named("whitebox")
    sgd, exact = get_benchmark("digits-mlp"), get_benchmark("digits-logreg-perturbed")
    for benchmark in (sgd, exact):
        assert all(blackbox.applies(benchmark, claim) for claim in (NOISY, PLAIN, None))
    assert not any(whitebox.applies(sgd, claim) for claim in (NOISY, PLAIN, None))
    assert whitebox.applies(exact, NOISY) and whitebox.applies(exact, None)
    assert not whitebox.applies(exact, PLAIN)


def test_certified_cases_ask_each_registered_check() -> None:
    exact = "digits-logreg-perturbed"
    noisy = [case.id for case in certified_cases([exact], "full", NOISY)]
    assert noisy == [
        f"{exact}-{fs}-{check}"
        for fs in ("knn36", "random36", "seq3x12-req1", "seq3x12-req2", "seq3x12-req3")
        for check in ("blackbox", "whitebox")
    ]
    plain = [case.id for case in certified_cases([exact], "full", PLAIN)]
    assert plain == [i for i in noisy if i.endswith("-blackbox")]
    assert [case.id for case in certified_cases([exact])] == noisy  # any claim: xfail ids
    with temporarily_registered(ToyCheck()):
        ids = [case.id for case in certified_cases(["digits-mlp"], "quick", PLAIN)]
    assert ids == [
        f"digits-mlp-{fs}-{check}"
        for fs in ("knn36", "seq3x12-req1", "seq3x12-req2", "seq3x12-req3")
        for check in ("blackbox", "toy")
    ]
    assert "toy" not in [check.name for check in registered_checks()]


def test_a_registration_needs_a_new_well_formed_name() -> None:
    with (
        pytest.raises(ValueError, match="registered twice"),
        temporarily_registered(check_named("blackbox")),
    ):
        pass
    bad = ToyCheck()
    bad.name = "Toy-check"
    with pytest.raises(ValueError, match="lower-case"), temporarily_registered(bad):
        pass
    with pytest.raises(KeyError, match="no certified check named 'toy'"):
        check_named("toy")


def test_the_table_columns_are_the_union_of_the_checks_columns() -> None:
    headers = [column.header for column in table_columns()]
    assert headers == ["claimed eps", "eps_lb", "max refutable", "residual", "budget"]
    toy = ToyCheck()
    doubled = [check_named("blackbox"), toy, toy]
    assert [c.header for c in table_columns(doubled)] == [
        "claimed eps",
        "eps_lb",
        "max refutable",
        "toy noise",
    ]


def test_a_check_may_record_only_declared_figures() -> None:
    case = CertifiedCase("digits-mlp", "knn36", "toy")
    result = CertifiedResult(case, PLAIN, 8, CheckOutcome({"toy_figure": 1.0}, passed=True))
    with pytest.raises(KeyError, match=r"'toy' check records undeclared figure\(s\)"):
        result.properties()
    fine = CertifiedResult(case, PLAIN, 8, CheckOutcome({"declared_noise_std": None}, True))
    properties = fine.properties()
    assert properties["unlearn_check"] == "toy" and properties["unlearn_verdict"] == "PASS"
    assert "unlearn_declared_noise_std" in properties


CLAIMING_IDENTITY = (
    "from pytest_unlearn.certified import certified\n"
    "@certified(epsilon=1.0, delta=1e-5, noise_std=0.25)\n"
    "def unlearn(model, forget, retain, context):\n"
    "    return model\n"
)


def _table(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "pytest-unlearn certified claim" in line)
    return lines[start + 1 :]


def test_a_registered_check_is_collected_run_recorded_and_tabled(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    from pytest_unlearn.report.json_report import load_report

    pytester.makepyfile(mymethod=CLAIMING_IDENTITY)
    report_path = pytester.path / "unlearn.json"
    args = ["--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache)]
    with temporarily_registered(ToyCheck()):
        collected = pytester.runpytest(*args, "--collect-only", "-q")
        result = pytester.runpytest(
            *args, "-m", "certified", "-k", "knn36", f"--unlearn-report={report_path}"
        )
    ids = [line.split("[", 1)[1].rstrip("]") for line in collected.outlines if "::test_" in line]
    certified = [i for i in ids if i.endswith(("-blackbox", "-whitebox", "-toy"))]
    assert certified == [
        f"digits-mlp-{fs}-{check}"
        for fs in ("knn36", "random36", "seq3x12-req1", "seq3x12-req2", "seq3x12-req3")
        for check in ("blackbox", "toy")
    ]
    # The toy passes; the audit at N=16 cannot refute epsilon = 1 (INCONCLUSIVE, skipped).
    result.assert_outcomes(passed=1, skipped=1, deselected=23)
    table = _table(result)
    assert table[0].split() == [
        "test", "claimed", "eps", "eps_lb", "max", "refutable", "residual", "budget", "toy",
        "noise", "verdict",
    ]  # fmt: skip
    toy_row = next(line for line in table if line.startswith("digits-mlp-knn36-toy"))
    assert toy_row.split() == ["digits-mlp-knn36-toy", "1", "-", "-", "-", "-", "2.5e-01", "PASS"]
    audit_row = next(line for line in table if line.startswith("digits-mlp-knn36-blackbox"))
    assert audit_row.split()[-2] == "-"  # no toy figure on the audit's row
    assert any(line.endswith("toy noise = the claim's.") for line in table)
    records = {r["test_id"]: r for r in load_report(report_path)["certified_records"]}
    toy = records["digits-mlp-knn36-toy"]
    assert (toy["outcome"], toy["verdict"], toy["check"]) == ("passed", "PASS", "toy")
    assert toy["declared_noise_std"] == 0.25 and toy["claimed_epsilon"] == 1.0


def test_a_failing_registered_check_fails_with_its_explanation(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=CLAIMING_IDENTITY)
    with temporarily_registered(ToyCheck(passed=False)):
        result = pytester.runpytest(
            "--unlearn-method=mymethod:unlearn",
            *unlearn_args(unlearn_cache),
            "-m",
            "certified",
            "-k",
            "knn36-toy",
        )
    result.assert_outcomes(failed=1, deselected=24)
    assert "toy check refutes the claim on digits-mlp-knn36-toy" in output(result)
    toy_row = next(line for line in _table(result) if line.startswith("digits-mlp-knn36-toy"))
    assert toy_row.split()[-1] == "FAIL"


TEARDOWN_ERROR = """
import pytest


@pytest.fixture(autouse=True)
def _broken_teardown():
    yield
    raise RuntimeError("teardown broke")
"""


def test_a_teardown_error_reaches_the_certified_table(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=CLAIMING_IDENTITY, broken_teardown=TEARDOWN_ERROR)
    pytester.syspathinsert()
    with temporarily_registered(ToyCheck()):
        result = pytester.runpytest(
            "-p",
            "broken_teardown",
            "--unlearn-method=mymethod:unlearn",
            *unlearn_args(unlearn_cache),
            "-m",
            "certified",
            "-k",
            "knn36-toy",
        )
    result.assert_outcomes(passed=1, errors=1, deselected=24)
    toy_row = next(line for line in _table(result) if line.startswith("digits-mlp-knn36-toy"))
    assert toy_row.endswith("ERROR (after PASS)")
