"""``--unlearn-method=MODULE:FUNCTION``: every way it can be wrong ends in one clear usage error,
and a method module next to the user imports under both ``pytest`` and ``python -m pytest``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import CONFORMANCE_IDS, IDENTITY_METHOD, conformance_ids, output

CONTRACT = "unlearn(model, forget, retain, context)"


def _error_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.errlines if line.startswith("ERROR:")]


def _assert_single_usage_error(result: pytest.RunResult, *fragments: str) -> str:
    """Exit code 4, exactly one ``ERROR:`` line containing every fragment, no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output(result)
    lines = _error_lines(result)
    assert len(lines) == 1, output(result)
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in output(result)
    return lines[0]


def _run(pytester: pytest.Pytester, spec: str, **modules: str) -> pytest.RunResult:
    if modules:
        pytester.makepyfile(**modules)
    return pytester.runpytest(f"--unlearn-method={spec}", "--collect-only", "-q")


def test_missing_module_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "no_such_method_module:unlearn")
    _assert_single_usage_error(
        result,
        "--unlearn-method='no_such_method_module:unlearn'",
        "no module named 'no_such_method_module'",
    )


def test_missing_submodule_of_an_existing_package_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.mkpydir("mypkg")
    result = _run(pytester, "mypkg.nothere:unlearn")
    _assert_single_usage_error(result, "no module named 'mypkg.nothere'")


def test_module_that_raises_on_import_is_a_usage_error_with_its_exception(
    pytester: pytest.Pytester,
) -> None:
    result = _run(
        pytester, "mymethod:unlearn", mymethod="raise RuntimeError('config file missing')\n"
    )
    _assert_single_usage_error(
        result, "importing 'mymethod' raised RuntimeError: config file missing"
    )


def test_module_with_a_missing_dependency_names_the_dependency(
    pytester: pytest.Pytester,
) -> None:
    result = _run(
        pytester,
        "mymethod:unlearn",
        mymethod="import not_installed_dependency\n" + IDENTITY_METHOD,
    )
    line = _assert_single_usage_error(result, "importing 'mymethod' failed")
    assert "not_installed_dependency" in line


def test_module_with_a_syntax_error_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "mymethod:unlearn", mymethod="def unlearn(:\n")
    _assert_single_usage_error(result, "importing 'mymethod' raised SyntaxError")


def test_missing_attribute_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "mymethod:forget_everything", mymethod=IDENTITY_METHOD)
    _assert_single_usage_error(result, "module 'mymethod' has no attribute 'forget_everything'")


def test_dotted_attribute_path_is_followed(pytester: pytest.Pytester) -> None:
    source = "class Methods:\n    @staticmethod\n    def unlearn(model, forget, retain, context):\n"
    result = _run(pytester, "mymethod:Methods.unlearn", mymethod=source + "        return model\n")
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_not_callable_attribute_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "mymethod:unlearn", mymethod="unlearn = 3\n")
    _assert_single_usage_error(result, "int object is not callable", CONTRACT)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("model", id="too-few"),
        pytest.param("model, forget, retain, context, extra", id="too-many"),
        pytest.param("model, forget, retain, *, context", id="keyword-only"),
    ],
)
def test_wrong_signature_is_a_usage_error(pytester: pytest.Pytester, signature: str) -> None:
    source = f"def unlearn({signature}):\n    return model\n"
    result = _run(pytester, "mymethod:unlearn", mymethod=source)
    _assert_single_usage_error(result, f"the method's signature is ({signature})", CONTRACT)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("*args", id="varargs"),
        pytest.param("model, forget, retain, context, extra=None", id="optional-extra"),
        pytest.param("model, *rest, **options", id="mixed"),
    ],
)
def test_signatures_that_accept_four_arguments_are_accepted(
    pytester: pytest.Pytester, signature: str
) -> None:
    source = f"def unlearn({signature}):\n    return None\n"
    result = _run(pytester, "mymethod:unlearn", mymethod=source)
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("mymethod", id="no-colon"),
        pytest.param("mymethod:", id="no-function"),
        pytest.param(":unlearn", id="no-module"),
    ],
)
def test_spec_without_module_and_function_is_a_usage_error(
    pytester: pytest.Pytester, spec: str
) -> None:
    result = _run(pytester, spec, mymethod=IDENTITY_METHOD)
    _assert_single_usage_error(result, f"--unlearn-method={spec!r}", "expected MODULE:FUNCTION")


def test_method_error_from_the_environment_names_the_environment_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_UNLEARN_METHOD", "no_such_method_module:unlearn")
    result = pytester.runpytest("--collect-only", "-q")
    _assert_single_usage_error(result, "PYTEST_UNLEARN_METHOD", "no module named")


def test_method_error_from_the_environment_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_UNLEARN_METHOD", "no_such_method_module:unlearn")
    result = pytester.runpytest("--collect-only", "-q")
    _assert_single_usage_error(result, "no module named 'no_such_method_module'")


# -- where the method module is found --------------------------------------------------------


def _pytest_script() -> str:
    """The ``pytest`` console script of this interpreter (it does not put the cwd on sys.path)."""
    candidate = Path(sys.executable).parent / "pytest"
    found = str(candidate) if candidate.is_file() else shutil.which("pytest")
    if found is None:
        pytest.skip("no pytest console script next to this interpreter")
    return found


#: Subprocess runs only: hypothesis' plugin is irrelevant here and, with bytecode writing off,
#: re-rewrites its ~500 modules in every fresh interpreter (~2 s).
NO_HYPOTHESIS = ("-p", "no:hypothesispytest")


def test_method_module_in_the_current_dir_imports_under_the_pytest_script(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = pytester.run(
        _pytest_script(),
        "--unlearn-method=mymethod:unlearn",
        "--collect-only",
        "-q",
        *NO_HYPOTHESIS,
    )
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_method_module_in_the_current_dir_imports_under_python_m_pytest(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = pytester.run(
        sys.executable,
        "-m",
        "pytest",
        "--unlearn-method=mymethod:unlearn",
        "--collect-only",
        "-q",
        *NO_HYPOTHESIS,
    )
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_method_module_is_found_in_the_invocation_dir_not_the_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")
    sub = pytester.mkdir("sub")
    (sub / "subdir_method.py").write_text(IDENTITY_METHOD)
    monkeypatch.chdir(sub)
    result = pytester.runpytest("--unlearn-method=subdir_method:unlearn", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_an_example_method_outside_the_repository_says_where_the_examples_live(
    pytester: pytest.Pytester,
) -> None:
    """The examples ship with the repository, not the wheel: from elsewhere, say so."""
    pytester.syspathinsert()  # nothing else: the repository root is not on the path
    result = pytester.runpytest_subprocess(
        "--unlearn-method=examples.gradient_ascent:unlearn", "--collect-only", "-q"
    )
    _assert_single_usage_error(
        result, "no module named 'examples'", "ship with the repository", "PYTHONPATH"
    )
