"""End-to-end verdicts on the shared N=16 digits-mlp cache: what passes, what fails, and why."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import CONFORMANCE_IDS, IDENTITY_METHOD, output, unlearn_args


def _run(pytester: pytest.Pytester, cache: Path, method: str, *args: str, models: int = 16):
    return pytester.runpytest(f"--unlearn-method={method}", *unlearn_args(cache, models), *args)


def _reports(reprec: pytest.HookRecorder) -> dict[str, pytest.TestReport]:
    """The call-phase report of every conformance case, keyed by case id."""
    return {
        report.nodeid.rpartition("[")[2].rstrip("]"): report
        for report in reprec.getreports("pytest_runtest_logreport")
        if report.when == "call"
    }


def _table(result: pytest.RunResult) -> list[str]:
    """The lines of the "pytest-unlearn conformance" summary section."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "pytest-unlearn conformance" in line)
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("="):
            break
        table.append(line)
    return table


def test_do_nothing_fails_the_knn36_forget_case(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    result = _run(with_examples, unlearn_cache, "examples.do_nothing:unlearn", "-k", "knn36-forget")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_failure_message_names_the_figures_behind_the_verdict(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    result = _run(with_examples, unlearn_cache, "examples.do_nothing:unlearn", "-k", "knn36-forget")
    message = next(line for line in result.outlines if line.startswith("P95 KLoM on the forget"))
    for figure in ("P95", "threshold", "floor", "do-nothing", "N=16", "digits-mlp/knn36", "alpha"):
        assert figure in message
    # The failure is a verdict, not a crash: no Python traceback of the plugin.
    assert "Traceback" not in output(result)
    assert "evaluator.py" not in output(result)


def test_retrain_fails_no_case_and_passes_every_conclusive_one(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    """Exact retraining with fresh seeds is what the oracles are: it fails nothing; every case
    it does not pass is inconclusive at this N, skipped with that reason, never a PASS."""
    reprec = with_examples.inline_run(
        "--unlearn-method=examples.retrain:unlearn", *unlearn_args(unlearn_cache)
    )
    reports = _reports(reprec)
    assert sorted(reports) == CONFORMANCE_IDS
    for case, report in reports.items():
        figures = dict(report.user_properties)
        assert not report.failed, (case, report.longrepr)
        if report.skipped:
            assert figures["unlearn_conclusive"] is False
            assert "inconclusive" in str(report.longrepr)
        else:
            assert figures["unlearn_conclusive"] is True
    # Most cases are conclusive at N=16 (knn36 and seq3x12 on every split).
    assert sum(1 for r in reports.values() if r.passed) >= 12


def test_summary_table_lists_every_case_with_a_verdict(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    result = _run(with_examples, unlearn_cache, "examples.do_nothing:unlearn")
    table = _table(result)
    header = table[0].split()
    assert header[0] == "test" and header[-1] == "verdict"
    rows = {line.split()[0]: line for line in table[1:] if line.startswith("digits-mlp")}
    assert sorted(rows) == CONFORMANCE_IDS
    ids = [line.split()[0] for line in table[1 : 1 + len(CONFORMANCE_IDS)]]
    assert ids == CONFORMANCE_IDS  # sorted, no gaps
    for row in rows.values():
        assert row.split()[6] in ("PASS", "FAIL", "INCONCLUSIVE")
    knn36 = rows["digits-mlp-knn36-forget"].split()
    assert knn36[6] == "FAIL"
    assert knn36[5] == "0%"  # do-nothing closes none of the gap to retraining
    assert "returned its input unchanged" in rows["digits-mlp-knn36-forget"]


def test_a_teardown_error_reaches_the_summary_table(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    """The table is built from the same records as the JSON report: a test whose teardown
    fails after its verdict is shown as the error pytest counts, with the verdict it had."""
    pytester.makepyfile(
        mymethod=IDENTITY_METHOD,
        broken_teardown=(
            "import pytest\n\n\n@pytest.fixture(autouse=True)\ndef _broken_teardown():\n"
            "    yield\n    raise RuntimeError('teardown broke')\n"
        ),
    )
    pytester.syspathinsert()
    result = _run(
        pytester, unlearn_cache, "mymethod:unlearn", "-p", "broken_teardown", "-k", "random36"
    )
    outcomes = result.parseoutcomes()
    assert outcomes["errors"] == 3  # every teardown broke
    rows = [line for line in _table(result) if line.startswith("digits-mlp-random36")]
    assert len(rows) == 3
    # An error on top of a pass or a skip is the error pytest counts; a failure stays one.
    not_failed = outcomes.get("passed", 0) + outcomes.get("skipped", 0)
    assert not_failed >= 1
    assert sum("ERROR (after " in row for row in rows) == not_failed


def test_summary_table_lists_only_conformance_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    pytester.mkdir("unlearn")
    (pytester.path / "unlearn" / "test_mine.py").write_text("def test_mine():\n    pass\n")
    # Conformance tests deselected: nothing of the suite runs, so nothing needs the cache.
    result = pytester.runpytest("--unlearn-method=mymethod:unlearn", "-k", "test_mine")
    result.assert_outcomes(passed=1)
    if "pytest-unlearn conformance" in result.stdout.str():
        assert not [line for line in _table(result) if "test_mine" in line]


def test_recorded_verdicts_match_the_test_outcomes(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    reprec = with_examples.inline_run(
        "--unlearn-method=examples.do_nothing:unlearn", *unlearn_args(unlearn_cache)
    )
    outcomes = {case: report.outcome for case, report in _reports(reprec).items()}
    assert sorted(outcomes) == CONFORMANCE_IDS
    for case, report in _reports(reprec).items():
        properties = dict(report.user_properties)
        verdict = properties["unlearn_verdict"]
        assert (
            verdict
            == {"passed": "PASS", "failed": "FAIL", "skipped": "INCONCLUSIVE"}[outcomes[case]]
        )
        p95 = properties["unlearn_p95"]
        within = properties["unlearn_lower_threshold"] <= p95 <= properties["unlearn_threshold"]
        assert within == (verdict != "FAIL")


def test_figures_reach_the_junit_report_as_properties(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    junit = with_examples.path / "junit.xml"
    _run(
        with_examples,
        unlearn_cache,
        "examples.do_nothing:unlearn",
        "-k",
        "knn36-forget",
        f"--junitxml={junit}",
    )
    case = ET.parse(junit).getroot().find(".//testcase")
    assert case is not None
    names = {prop.get("name") for prop in case.iter("property")}
    assert {"unlearn_p95", "unlearn_threshold", "unlearn_floor", "unlearn_verdict"} <= names


# -- methods that break the contract ---------------------------------------------------------

RAISES_ON_KNN36 = """
def unlearn(model, forget, retain, context):
    if context.forget_set == "knn36":
        return scrub_neighbourhood(model)
    return model

def scrub_neighbourhood(model):
    raise RuntimeError("scrubbing is not implemented for this forget set")
"""


def test_method_exception_fails_its_tests_with_its_own_traceback(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=RAISES_ON_KNN36)
    result = _run(pytester, unlearn_cache, "mymethod:unlearn", "-k", "knn36", models=4)
    result.assert_outcomes(failed=3)
    text = output(result)
    assert "RuntimeError: scrubbing is not implemented for this forget set" in text
    assert "scrub_neighbourhood" in text  # the method's own frames are shown
    assert "mymethod.py" in text


def test_later_tests_of_a_failed_forget_set_name_the_earlier_exception(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=RAISES_ON_KNN36)
    reprec = pytester.inline_run(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache, 4), "-k", "knn36"
    )
    reports = _reports(reprec)
    later = str(reports["digits-mlp-knn36-retain"].longrepr)
    assert "RuntimeError: scrubbing is not implemented for this forget set" in later
    assert "earlier test" in later


def test_method_exception_on_one_forget_set_leaves_the_other_running(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=RAISES_ON_KNN36)
    reprec = pytester.inline_run(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache, 4)
    )
    reports = _reports(reprec)
    assert sorted(reports) == CONFORMANCE_IDS  # every case ran its call phase
    for case, report in reports.items():
        raised = "scrubbing is not implemented" in str(report.longrepr or "")
        assert raised == ("knn36" in case), case
    assert all(reports[case].failed for case in CONFORMANCE_IDS if "knn36" in case)


RETURNS_NONE = """
def unlearn(model, forget, retain, context):
    model.load_state_dict(model.state_dict())  # forgets to return the model
"""


def test_method_returning_a_non_module_fails_naming_the_returned_type(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=RETURNS_NONE)
    result = _run(pytester, unlearn_cache, "mymethod:unlearn", "-k", "knn36-forget", models=2)
    result.assert_outcomes(failed=1)
    assert "returned NoneType" in output(result)
    assert "torch.nn.Module" in output(result)


def test_method_returning_a_tensor_fails_naming_the_returned_type(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(
        mymethod="def unlearn(model, forget, retain, context):\n    return forget.inputs\n"
    )
    result = _run(pytester, unlearn_cache, "mymethod:unlearn", "-k", "random36-forget", models=2)
    result.assert_outcomes(failed=1)
    assert "returned Tensor" in output(result)


def test_a_failure_outside_the_method_is_never_blamed_on_it(
    pytester: pytest.Pytester, unlearn_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite's own step after the call (here: computing the margins) breaks: every test of
    the forget set says so in one line, and none says "the method raised"."""
    from pytest_unlearn.harness import method_runner

    def broken_margins(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(method_runner, "_margins_of", broken_margins)
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = _run(pytester, unlearn_cache, "mymethod:unlearn", "-k", "knn36", models=2)
    result.assert_outcomes(failed=3)
    text = output(result)
    assert text.count("could not evaluate digits-mlp/knn36 (not the method's fault)") >= 3
    assert "RuntimeError: disk on fire" in text
    assert "the method raised" not in text
    assert "Traceback" not in text


def test_a_method_failure_on_another_worker_is_blamed_on_the_method(
    pytester: pytest.Pytester, unlearn_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under xdist another worker may meet the method's exception first and publish it: the
    tests here must say the method raised, not that the suite could not evaluate."""
    from pytest_unlearn.harness import evaluator
    from pytest_unlearn.harness.shared_runs import MemberFailedElsewhere

    def failed_elsewhere(*args: object, **kwargs: object) -> None:
        raise MemberFailedElsewhere(
            "the method raised ValueError: boom on model 1 of this forget set, in xdist "
            "worker gw1 (its test of this forget set shows the traceback)"
        )

    monkeypatch.setattr(evaluator, "run_method", failed_elsewhere)
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = _run(pytester, unlearn_cache, "mymethod:unlearn", "-k", "knn36", models=2)
    result.assert_outcomes(failed=3)
    text = output(result)
    assert text.count("the method raised ValueError: boom on model 1") >= 3
    assert "not the method's fault" not in text
