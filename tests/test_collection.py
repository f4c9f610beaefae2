"""With a method configured, the packaged conformance tests are collected with stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_unlearn.conformance as suite
from conftest import CONFORMANCE_IDS, IDENTITY_METHOD, conformance_ids, output, unlearn_args

METHOD = "--unlearn-method=mymethod:unlearn"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(
        mymethod=IDENTITY_METHOD,
        test_project="def test_own():\n    pass\n",
    )
    return pytester


def _collect(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(METHOD, "--collect-only", "-q", *args)


def test_method_collects_exactly_the_expected_ids(project: pytest.Pytester) -> None:
    result = _collect(project)
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_ids_are_listed_in_sorted_order(project: pytest.Pytester) -> None:
    ids = conformance_ids(_collect(project))
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))


def test_conformance_tests_are_collected_next_to_the_projects_own(
    project: pytest.Pytester,
) -> None:
    result = _collect(project)
    assert "test_project.py::test_own" in result.outlines
    assert f"{1 + len(CONFORMANCE_IDS)} tests collected" in result.outlines[-1]


def test_named_benchmark_selects_its_cases(project: pytest.Pytester) -> None:
    result = _collect(project, "--unlearn-benchmark=digits-mlp")
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_benchmark_list_is_deduplicated(project: pytest.Pytester) -> None:
    result = _collect(project, "--unlearn-benchmark=digits-mlp, digits-mlp,")
    assert conformance_ids(result) == CONFORMANCE_IDS


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("knn36", [i for i in CONFORMANCE_IDS if "knn36" in i], id="forget-set"),
        pytest.param("forget", [i for i in CONFORMANCE_IDS if i.endswith("-forget")], id="split"),
        pytest.param("digits-mlp-random36-retain", ["digits-mlp-random36-retain"], id="full-id"),
    ],
)
def test_keyword_selects_by_id(
    project: pytest.Pytester, expression: str, expected: list[str]
) -> None:
    result = _collect(project, "-k", expression)
    assert conformance_ids(result) == expected
    assert "test_project.py::test_own" not in result.outlines


def test_knn36_keyword_narrows_to_three(project: pytest.Pytester) -> None:
    assert len(conformance_ids(_collect(project, "-k", "knn36"))) == 3


def test_every_conformance_item_carries_the_unlearn_marker(project: pytest.Pytester) -> None:
    result = _collect(project, "-m", "unlearn")
    assert conformance_ids(result) == CONFORMANCE_IDS
    assert "test_project.py::test_own" not in result.outlines


def test_not_unlearn_marker_expression_deselects_every_conformance_item(
    project: pytest.Pytester,
) -> None:
    result = _collect(project, "-m", "not unlearn")
    assert conformance_ids(result) == []
    assert "test_project.py::test_own" in result.outlines


def test_unlearn_marker_is_registered_when_active(project: pytest.Pytester) -> None:
    # Registered markers keep ``--strict-markers`` runs working.
    result = _collect(project, "--strict-markers")
    assert result.ret == pytest.ExitCode.OK, output(result)
    markers = project.runpytest(METHOD, "--markers").outlines
    assert any(line.startswith("@pytest.mark.unlearn:") for line in markers)


def test_collection_does_not_build_or_touch_the_cache(project: pytest.Pytester) -> None:
    result = _collect(project, "--unlearn-cache-dir=ensemble-cache", "--unlearn-models=4")
    assert result.ret == pytest.ExitCode.OK
    assert not (project.path / "ensemble-cache").exists()
    assert "building" not in output(result)


def test_explicit_suite_path_is_not_collected_twice(project: pytest.Pytester) -> None:
    result = _collect(project, str(Path(suite.__file__).parent))
    assert conformance_ids(result) == CONFORMANCE_IDS


# -- xdist -----------------------------------------------------------------------------------

RAISING_METHOD = (
    "def unlearn(model, forget, retain, context):\n"
    "    raise RuntimeError('not evaluated in this test')\n"
)


class _WorkerCollections:
    """Records the ordered item ids each xdist worker reports after collecting."""

    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = {}

    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        self.ids[node.gateway.id] = list(ids)


@pytest.mark.filterwarnings("ignore:Benchmarks are automatically disabled")
def test_ids_are_identical_on_every_xdist_worker(pytester: pytest.Pytester, unlearn_cache) -> None:
    pytest.importorskip("xdist")
    # A method that raises at once: each test fails fast, before any calibration.
    pytester.makepyfile(mymethod=RAISING_METHOD)
    workers = _WorkerCollections()
    reprec = pytester.inline_run(
        METHOD,
        *unlearn_args(unlearn_cache, models=2),
        "-n",
        "2",
        "-p",
        "no:hypothesispytest",
        plugins=[workers],
    )
    assert sorted(workers.ids) == ["gw0", "gw1"]
    expected = [f"test_klom.py::test_klom[{case_id}]" for case_id in CONFORMANCE_IDS]
    suffixes = {
        worker: [nodeid.rpartition("/")[2] for nodeid in ids] for worker, ids in workers.ids.items()
    }
    assert suffixes == {"gw0": expected, "gw1": expected}
    ran = {
        report.nodeid.rpartition("[")[2].rstrip("]")
        for report in reprec.getreports("pytest_runtest_logreport")
        if report.when == "call"
    }
    assert ran == set(CONFORMANCE_IDS)
