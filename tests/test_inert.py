"""Installed but not asked for, the plugin changes nothing about a project's test run."""

from __future__ import annotations

import re

import pytest
from conftest import output

PROJECT = {
    "test_project": """
        def test_passes():
            assert 1 + 1 == 2

        def test_fails():
            assert 1 + 1 == 3
    """
}

#: Header lines that legitimately differ between the two runs (the plugin list names it).
_HEADER = re.compile(
    r"^(platform |rootdir:|configfile:|plugins:|cachedir:|hypothesis profile|"
    r"using xdist|benchmark:|Using --randomly-seed)"
)


def _comparable(result: pytest.RunResult) -> list[str]:
    lines = [line for line in result.outlines if not _HEADER.match(line)]
    return [re.sub(r" in \d+\.\d+s", " in Ns", line) for line in lines]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**PROJECT)
    return pytester


def test_outcomes_match_a_run_with_the_plugin_disabled(project: pytest.Pytester) -> None:
    active = project.runpytest()
    disabled = project.runpytest("-p", "no:unlearn")
    active.assert_outcomes(passed=1, failed=1)
    disabled.assert_outcomes(passed=1, failed=1)
    assert active.ret == disabled.ret == pytest.ExitCode.TESTS_FAILED


def test_output_matches_a_run_with_the_plugin_disabled(project: pytest.Pytester) -> None:
    active = project.runpytest()
    disabled = project.runpytest("-p", "no:unlearn")
    assert _comparable(active) == _comparable(disabled)


def test_output_never_mentions_the_plugin(project: pytest.Pytester) -> None:
    result = project.runpytest("-rA")
    text = "\n".join(_comparable(result)) + result.stderr.str()
    assert "unlearn" not in text.lower()


def test_no_conformance_tests_are_collected(project: pytest.Pytester) -> None:
    result = project.runpytest("--collect-only", "-q")
    assert result.outlines[:2] == [
        "test_project.py::test_passes",
        "test_project.py::test_fails",
    ]
    assert "test_klom" not in output(result)
    assert "2 tests collected" in result.outlines[-1]


def test_conformance_fixtures_are_not_registered(project: pytest.Pytester) -> None:
    result = project.runpytest("--fixtures")
    assert result.ret == pytest.ExitCode.OK
    assert "unlearn_case" not in output(result)
    assert "unlearn_evaluator" not in output(result)


def test_unlearn_marker_is_not_registered(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    assert not any(line.startswith("@pytest.mark.unlearn") for line in result.outlines)


def test_no_cache_dir_is_created(project: pytest.Pytester) -> None:
    project.runpytest("--unlearn-cache-dir=ensemble-cache", "--unlearn-models=4")
    assert not (project.path / "ensemble-cache").exists()


def test_a_project_test_named_like_a_conformance_fixture_is_unaffected(
    pytester: pytest.Pytester,
) -> None:
    # Only an active plugin provides ``unlearn_case``; inert, the name is the project's own.
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef unlearn_case():\n    return 'mine'\n"
    )
    pytester.makepyfile("def test_it(unlearn_case):\n    assert unlearn_case == 'mine'\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_loading_the_plugin_does_not_import_torch() -> None:
    """pytest loads the plugin in every run of every project where it is installed: that must
    not cost a torch import (about a second) when no method is configured."""
    import subprocess
    import sys

    probe = "import sys, pytest_unlearn.plugin; print('torch' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "False"
