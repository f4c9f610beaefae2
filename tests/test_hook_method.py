"""The ``pytest_unlearn_method(config)`` hook: a conftest or plugin can supply the method."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFORMANCE_IDS, IDENTITY_METHOD, conformance_ids, output, unlearn_args

HOOK_RETURNING = """
def pytest_unlearn_method(config):
    return {value}
"""

HOOK_WITH_METHOD = (
    IDENTITY_METHOD
    + """
def pytest_unlearn_method(config):
    return unlearn
"""
)


def _collect(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--collect-only", "-q", *args)


def test_conftest_hook_activates_the_plugin_without_the_option(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(HOOK_WITH_METHOD)
    result = _collect(pytester)
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_hook_returning_none_keeps_the_plugin_inert(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HOOK_RETURNING.format(value="None"))
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = _collect(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert conformance_ids(result) == []
    assert result.outlines[0] == "test_own.py::test_own"


def test_hook_returning_a_non_callable_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HOOK_RETURNING.format(value="'mypkg.methods:unlearn'"))
    result = _collect(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert "pytest_unlearn_method hook" in errors[0]
    assert "str object is not callable" in errors[0]
    assert "Traceback" not in output(result)


def test_hook_returning_a_wrong_signature_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HOOK_RETURNING.format(value="lambda model: model"))
    result = _collect(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: *pytest_unlearn_method hook*signature is (model)*unlearn(model, forget, *"]
    )


def test_hook_method_takes_precedence_over_the_option(pytester: pytest.Pytester) -> None:
    # The plugin's own implementation (which would fail to import this) is never reached.
    pytester.makeconftest(HOOK_WITH_METHOD)
    result = _collect(pytester, "--unlearn-method=no_such_method_module:unlearn")
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_hook_returning_none_defers_to_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HOOK_RETURNING.format(value="None"))
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = _collect(pytester, "--unlearn-method=mymethod:unlearn")
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_hook_receives_the_config(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        IDENTITY_METHOD
        + "\ndef pytest_unlearn_method(config):\n"
        + "    return unlearn if config.getoption('unlearn_models') == '3' else None\n"
    )
    assert conformance_ids(_collect(pytester)) == []
    assert conformance_ids(_collect(pytester, "--unlearn-models=3")) == CONFORMANCE_IDS


def test_hook_in_a_plugin_module_activates_the_plugin(pytester: pytest.Pytester) -> None:
    # What an installed method package does through its ``pytest11`` entry point.
    pytester.makepyfile(method_plugin=HOOK_WITH_METHOD)
    pytester.syspathinsert()
    result = _collect(pytester, "-p", "method_plugin")
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


HOOK_RAISING_METHOD = """
def marked_method(model, forget, retain, context):
    raise RuntimeError("the hook's method was called on " + context.forget_set)

def pytest_unlearn_method(config):
    return marked_method
"""


def test_hook_method_is_the_one_that_runs(pytester: pytest.Pytester, unlearn_cache: Path) -> None:
    pytester.makeconftest(HOOK_RAISING_METHOD)
    result = pytester.runpytest(*unlearn_args(unlearn_cache, models=2), "-k", "knn36-forget")
    result.assert_outcomes(failed=1)
    assert "RuntimeError: the hook's method was called on knn36" in output(result)
