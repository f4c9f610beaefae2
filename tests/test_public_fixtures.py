"""The public fixtures ``unlearn_benchmark`` and ``unlearn_run`` (docs/fixtures.md): there in
every run, method or not, loading nothing until asked; the conformance run's ensembles, runs,
seeds and verdicts; the worked example from an empty cache and under xdist."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import CACHE_MODELS, REPO_ROOT, output, unlearn_args

from pytest_unlearn.report.json_report import load_report

EXAMPLE = "examples/test_with_unlearn_fixtures.py"
#: Where the tests put it: in the project's own root, as docs/fixtures.md tells authors to
#: (under ``examples/`` it would clash with this process's own ``examples`` package).
COPIED_EXAMPLE = "test_with_unlearn_fixtures.py"

#: A cheap method whose output depends on the call's seed (the global RNG is seeded with it).
NOISY_METHOD = """
import torch

def unlearn(model, forget, retain, context):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model
"""


def test_registered_without_a_method(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--fixtures")
    assert result.ret == pytest.ExitCode.OK
    text = output(result)
    assert "unlearn_benchmark [session scope]" in text
    assert "unlearn_run [session scope]" in text
    assert "unlearn_case" not in text  # the conformance fixtures stay away


def test_an_unrelated_run_imports_no_torch(pytester: pytest.Pytester) -> None:
    """The fixtures are registered in every run, so their module must be as cheap as the
    plugin: a run whose tests do not ask for them never imports torch."""
    pytester.makepyfile(
        "import sys\n\ndef test_no_torch():\n    assert 'torch' not in sys.modules\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "cache").exists()


@pytest.fixture
def with_example_tests(with_examples: pytest.Pytester) -> pytest.Pytester:
    """``with_examples`` plus the worked example test file, copied into the project's root."""
    shutil.copy(REPO_ROOT / EXAMPLE, with_examples.path / COPIED_EXAMPLE)
    return with_examples


def test_the_worked_example_from_an_empty_cache_under_xdist(
    with_example_tests: pytest.Pytester,
) -> None:
    pytester = with_example_tests
    cache = pytester.path / "cache"
    result = pytester.runpytest(
        COPIED_EXAMPLE, "-n", "2", f"--unlearn-cache-dir={cache}", "--unlearn-models=4", "-rs"
    )
    # At N=4 the KLoM case cannot fail, so it is skipped with the reason; the rest pass.
    result.assert_outcomes(passed=3, skipped=1)
    assert "inconclusive" in output(result)
    built = [path for path in (cache / "digits-mlp").iterdir() if path.is_dir()]
    assert len(built) == 1 and (built[0] / "manifest.json").is_file()


def test_the_worked_example_passes_with_a_conclusive_ensemble(
    with_example_tests: pytest.Pytester, unlearn_cache: Path
) -> None:
    result = with_example_tests.runpytest(COPIED_EXAMPLE, *unlearn_args(unlearn_cache), "-rA")
    result.assert_outcomes(passed=4)
    assert "building" not in output(result)  # the session's N=16 store serves it


#: A project exercising the API: each test checks one promise of docs/fixtures.md.
API_PROJECT = """
import numpy as np
import pytest
import torch

from mymethod import unlearn as noisy


def broken(model, forget, retain, context):
    raise ValueError("boom")


def no_model(model, forget, retain, context):
    return None


def test_benchmark_is_cached_and_describes_the_ensembles(unlearn_benchmark):
    bench = unlearn_benchmark()
    assert bench is unlearn_benchmark("digits-mlp")
    assert bench.n_models == 4 and bench.forget_sets == ("knn36", "random36", "seq3x12")
    assert bench.pretrained_margins.shape == (4, len(bench.data.targets))
    assert bench.requests("seq3x12") == 3 and bench.requests("knn36") == 1
    assert torch.equal(bench.split("seq3x12", "forget", request=1),
                       torch.tensor(sorted(bench.forget_set("seq3x12").requests[0])))
    assert len(bench.split("seq3x12", "forget")) == 36  # request=None: after the last one
    assert not torch.equal(bench.oracle_margins("knn36", half="a"),
                           bench.oracle_margins("knn36", half="b"))
    model = bench.model(0).eval()
    with torch.no_grad():
        logits = model(bench.data.inputs)
    correct = (logits.argmax(1) == bench.data.targets).float().mean().item()
    assert bench.margin_accuracy(bench.pretrained_margins, torch.arange(len(logits)))[0] <= correct


def test_runs_are_cached_per_method(unlearn_benchmark, unlearn_run):
    bench = unlearn_benchmark()
    run = unlearn_run(bench, "knn36", method=noisy)
    assert unlearn_run("digits-mlp", "knn36", method=noisy) is run
    assert unlearn_run(bench, "knn36", method="mymethod:unlearn") is run
    assert run.margins().shape == bench.pretrained_margins.shape
    assert not run.returned_input_unchanged


def test_kept_models_are_what_was_measured(unlearn_benchmark, unlearn_run):
    bench = unlearn_benchmark()
    plain = unlearn_run(bench, "seq3x12", method=noisy)
    with pytest.raises(ValueError, match="keep_models=True"):
        plain.models()
    run = unlearn_run(bench, "seq3x12", method=noisy, keep_models=True)
    assert torch.equal(run.margins(2), plain.margins(2))  # the same seeds, the same run
    from pytest_unlearn.metric import margins
    with torch.no_grad():
        for request in (1, 3):
            for index, model in enumerate(run.models(request)):
                mine = margins(model(bench.data.inputs), bench.data.targets).float()
                assert torch.allclose(mine, run.margins(request)[index], atol=1e-5)


def test_verdict_uses_the_calibration(unlearn_benchmark, unlearn_run):
    bench = unlearn_benchmark()
    run = unlearn_run(bench, "knn36", method=noisy)
    result = bench.verdict(run, "knn36", "retain")
    assert result.calibration is bench.calibrate("knn36", "retain")
    assert result.klom.p95 == pytest.approx(np.percentile(bench.klom(run, "knn36", "retain"), 95))
    assert result.decision.verdict in ("PASS", "FAIL", "INCONCLUSIVE")
    same = bench.verdict(run.margins().numpy(), "knn36", "retain")
    assert same.klom.p95 == pytest.approx(result.klom.p95)


def test_bad_names_are_refused(unlearn_benchmark, unlearn_run):
    bench = unlearn_benchmark()
    with pytest.raises(ValueError, match="unknown benchmark 'digits'"):
        unlearn_benchmark("digits")
    with pytest.raises(ValueError, match="no forget set 'knn99'.*known: knn36"):
        unlearn_run(bench, "knn99", method=noisy)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        bench.split("knn36", "test")
    with pytest.raises(ValueError, match="requests 1 to 3"):
        bench.oracle_margins("seq3x12", request=0)
    with pytest.raises(ValueError, match="random36, not knn36"):
        bench.klom(unlearn_run(bench, "random36", method=noisy), "knn36", "forget")


def test_no_method_configured(unlearn_benchmark, unlearn_run):
    unlearn_run(unlearn_benchmark(), "knn36")


def test_method_raises(unlearn_benchmark, unlearn_run):
    unlearn_run(unlearn_benchmark(), "knn36", method=broken)


def test_method_raised_earlier(unlearn_benchmark, unlearn_run):
    unlearn_run(unlearn_benchmark(), "knn36", method=broken)


def test_contract_violation(unlearn_benchmark, unlearn_run):
    unlearn_run(unlearn_benchmark(), "knn36", method=no_model)
"""


def test_the_api(pytester: pytest.Pytester, unlearn_cache: Path) -> None:
    pytester.makepyfile(mymethod=NOISY_METHOD, test_api=API_PROJECT)
    result = pytester.runpytest("test_api.py", *unlearn_args(unlearn_cache, models=4), "-rA")
    text = output(result)
    for name in (
        "benchmark_is_cached_and_describes_the_ensembles",
        "runs_are_cached_per_method",
        "kept_models_are_what_was_measured",
        "verdict_uses_the_calibration",
        "bad_names_are_refused",
    ):
        assert f"PASSED test_api.py::test_{name}" in text
    result.assert_outcomes(passed=5, failed=4)
    assert "unlearn_run: no method to run: pass method=" in text
    assert "ValueError: boom" in text  # the method's own traceback, in the first test
    earlier = "the method raised ValueError: boom on digits-mlp/knn36 in an earlier call"
    assert earlier in text
    assert "MethodFailedEarlier" not in text  # one line, no traceback
    assert "contract violation:" in text


#: Tests that record digests of what the fixtures give, to compare runs.
DIGEST_PROJECT = """
import hashlib
import json
import os

import pytest

from mymethod import unlearn as noisy


def _record(name, tensor):
    digest = hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()
    path = os.path.join(os.environ["DIGESTS"], name)
    with open(path, "w") as handle:
        json.dump(digest, handle)


@pytest.mark.parametrize("forget_set", ["knn36", "random36", "seq3x12"])
def test_run(unlearn_benchmark, unlearn_run, forget_set):
    bench = unlearn_benchmark()
    run = unlearn_run(bench, forget_set, method=noisy)
    for request in range(1, run.requests + 1):
        _record(f"{forget_set}-{request}", run.margins(request))


def test_oracles(unlearn_benchmark):
    _record("oracles", unlearn_benchmark().oracle_margins("seq3x12", request=2, half="b"))
"""


def test_identical_under_xdist(
    pytester: pytest.Pytester, unlearn_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(mymethod=NOISY_METHOD, test_digests=DIGEST_PROJECT)
    digests = {}
    for label, extra in (("plain", ()), ("xdist", ("-n", "2"))):
        folder = pytester.path / label
        folder.mkdir()
        monkeypatch.setenv("DIGESTS", str(folder))
        result = pytester.runpytest(
            "test_digests.py", *unlearn_args(unlearn_cache), "--unlearn-threads=1", *extra
        )
        result.assert_outcomes(passed=4)
        digests[label] = {path.name: path.read_text() for path in folder.iterdir()}
    assert len(digests["plain"]) == 6  # knn36, random36, seq3x12 after 3 requests, oracles
    assert digests["plain"] == digests["xdist"]


def test_a_configured_method_is_the_default_and_shares_the_conformance_run(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    """With a method configured, ``unlearn_run(bench, forget_set)`` is the conformance run's
    own run of it (the method is called once per member, not twice), and ``verdict`` gives the
    figures the conformance test reports."""
    pytester.makepyfile(
        mymethod=NOISY_METHOD.replace(
            "    with torch.no_grad():",
            "    with open('calls.txt', 'a') as calls:\n        calls.write('call\\n')\n"
            "    with torch.no_grad():",
        ),
        test_mine="""
import json

def test_mine(unlearn_benchmark, unlearn_run):
    bench = unlearn_benchmark()
    result = bench.verdict(unlearn_run(bench, "knn36"), "knn36", "forget")
    with open("mine.json", "w") as handle:
        json.dump({"p95": result.klom.p95, "threshold": result.calibration.threshold}, handle)
""",
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest(
        "test_mine.py",
        "--unlearn-method=mymethod:unlearn",
        *unlearn_args(unlearn_cache),
        f"--unlearn-report={report}",
        "-k",
        "test_mine or knn36-forget",
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    assert (pytester.path / "calls.txt").read_text().count("call") == CACHE_MODELS
    (record,) = [r for r in load_report(report)["records"] if r["test_id"]]
    mine = json.loads((pytester.path / "mine.json").read_text())
    assert record["test_id"] == "digits-mlp-knn36-forget"
    assert mine["p95"] == pytest.approx(record["p95"])
    assert mine["threshold"] == pytest.approx(record["threshold"])


def test_a_store_error_fails_only_the_tests_that_ask(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
def test_unrelated():
    pass

def test_asks(unlearn_benchmark):
    unlearn_benchmark()
"""
    )
    result = pytester.runpytest(
        f"--unlearn-store={pytester.path / 'no-such-store'}",
        f"--unlearn-cache-dir={pytester.path / 'cache'}",
        "--unlearn-models=4",
    )
    result.assert_outcomes(passed=1, failed=1)
    assert "pytest-unlearn store error:" in output(result)
    assert "Traceback" not in output(result)


def test_the_example_file_is_the_documented_one() -> None:
    """docs/fixtures.md walks through the example; it must name the file that exists."""
    docs = (REPO_ROOT / "docs" / "fixtures.md").read_text(encoding="utf-8")
    assert EXAMPLE in docs
    assert (REPO_ROOT / EXAMPLE).is_file()
