"""Gating against an earlier run (``--unlearn-baseline``), method parameters
(``--unlearn-param``), the score, and methods that return their input unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DESTRUCTIVE_METHOD, IDENTITY_METHOD, output, unlearn_args

from pytest_unlearn.report.json_report import load_report

#: A stochastic method: fine-tuning on the retain set, its data order from context.seed.
FINETUNE = """
import torch

def unlearn(model, forget, retain, context):
    lr = context.params.get("lr", 0.02)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(context.seed)
    for inputs, targets in retain.loader(64, generator=generator):
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    return model
"""


def _run(pytester: pytest.Pytester, cache: Path, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(mymethod=source)
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(cache), "-k", "knn36", *args
    )


@pytest.fixture
def do_nothing_baseline(pytester: pytest.Pytester, unlearn_cache: Path) -> Path:
    report = pytester.path / "baseline.json"
    _run(pytester, unlearn_cache, IDENTITY_METHOD, f"--unlearn-report={report}")
    assert all(r["verdict"] == "FAIL" for r in load_report(report)["records"])
    return report


def test_a_destructive_change_fails_against_the_baseline_as_a_regression(
    pytester: pytest.Pytester, unlearn_cache: Path, do_nothing_baseline: Path
) -> None:
    result = _run(
        pytester, unlearn_cache, DESTRUCTIVE_METHOD, f"--unlearn-baseline={do_nothing_baseline}"
    )
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert failed  # retain and validation at least: the model is damaged
    text = output(result)
    assert "regression on digits-mlp-knn36-retain: P95 KLoM" in text
    assert "against the baseline's" in text and "beyond the noise band" in text


def test_a_failing_case_that_did_not_get_worse_passes_under_the_baseline(
    pytester: pytest.Pytester, unlearn_cache: Path, do_nothing_baseline: Path
) -> None:
    report = pytester.path / "again.json"
    result = _run(
        pytester, unlearn_cache, IDENTITY_METHOD,
        f"--unlearn-baseline={do_nothing_baseline}", f"--unlearn-report={report}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    records = load_report(report)["records"]
    # The absolute verdict stays visible: still FAIL, but no regression.
    assert all(r["verdict"] == "FAIL" and r["regression"] is False for r in records)
    assert all(r["baseline_p95"] == pytest.approx(r["p95"]) for r in records)
    # A case already at KLoM's ceiling cannot get worse: inconclusive, not a pass.
    for r in records:
        at_ceiling = r["baseline_p95"] + (r["threshold"] - r["floor"]) >= 11.5129
        assert r["outcome"] == ("skipped" if at_ceiling else "passed"), r["test_id"]
    assert any(r["outcome"] == "passed" for r in records)


def test_a_fresh_seed_rerun_of_a_stochastic_method_passes_against_its_own_baseline(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    report = pytester.path / "seed0.json"
    _run(pytester, unlearn_cache, FINETUNE, f"--unlearn-report={report}", "--unlearn-seed=0")
    result = _run(
        pytester, unlearn_cache, FINETUNE, f"--unlearn-baseline={report}", "--unlearn-seed=1"
    )
    assert "regression" not in output(result)
    assert result.ret == pytest.ExitCode.OK


def test_a_baseline_from_another_n_is_a_usage_error(
    pytester: pytest.Pytester, unlearn_cache: Path, do_nothing_baseline: Path
) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache, 8),
        f"--unlearn-baseline={do_nothing_baseline}", "--collect-only",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "was recorded at N=16, this run uses N=8" in output(result)


def test_a_baseline_of_another_benchmark_definition_is_a_usage_error(
    pytester: pytest.Pytester, unlearn_cache: Path, do_nothing_baseline: Path
) -> None:
    report = json.loads(do_nothing_baseline.read_text())
    report["settings"]["fingerprints"]["digits-mlp"] = "0123456789abcdef"
    do_nothing_baseline.write_text(json.dumps(report))
    result = _run(
        pytester, unlearn_cache, IDENTITY_METHOD, f"--unlearn-baseline={do_nothing_baseline}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "recorded on another definition of digits-mlp" in output(result)


def test_a_baseline_from_another_store_fails_its_tests_saying_so(
    pytester: pytest.Pytester, unlearn_cache: Path, do_nothing_baseline: Path
) -> None:
    report = json.loads(do_nothing_baseline.read_text())
    for record in report["records"]:
        record["store_id"] = "feedfeedfeedfeed"
    do_nothing_baseline.write_text(json.dumps(report))
    result = _run(
        pytester, unlearn_cache, IDENTITY_METHOD, f"--unlearn-baseline={do_nothing_baseline}"
    )
    result.assert_outcomes(failed=3)
    assert "recorded on another store of digits-mlp" in output(result)


def test_a_copy_of_the_oracles_fails_even_against_a_baseline(
    pytester: pytest.Pytester, unlearn_cache: Path, do_nothing_baseline: Path
) -> None:
    from test_adversarial import ANSWER_KEY

    result = _run(pytester, unlearn_cache, ANSWER_KEY, f"--unlearn-baseline={do_nothing_baseline}")
    result.assert_outcomes(failed=3)
    assert "closer to the oracles than exact retraining can be" in output(result)


# -- parameters ----------------------------------------------------------------------------------

RECORDS_PARAMS = """
import json, os

def unlearn(model, forget, retain, context):
    with open(os.environ["PARAMS_LOG"], "a") as log:
        log.write(json.dumps(context.params) + "\\n")
    context.params["lr"] = "changed by the first call"  # must not reach the next call
    return model
"""


def test_params_reach_the_method_and_the_report(
    pytester: pytest.Pytester,
    unlearn_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "params.jsonl"
    monkeypatch.setenv("PARAMS_LOG", str(log))
    report = pytester.path / "r.json"
    _run(
        pytester, unlearn_cache, RECORDS_PARAMS, "--unlearn-param=lr=0.05",
        "--unlearn-param", "name=scrub", "--unlearn-param=layers=[1, 2]",
        f"--unlearn-report={report}",
    )  # fmt: skip
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen and all(p == {"lr": 0.05, "name": "scrub", "layers": [1, 2]} for p in seen)
    assert load_report(report)["settings"]["params"] == {
        "lr": 0.05, "name": "scrub", "layers": [1, 2]
    }  # fmt: skip


def test_params_from_the_environment_are_read_too(
    pytester: pytest.Pytester,
    unlearn_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "params.jsonl"
    monkeypatch.setenv("PARAMS_LOG", str(log))
    monkeypatch.setenv("PYTEST_UNLEARN_PARAM", "lr=0.1; epochs=3")
    _run(pytester, unlearn_cache, RECORDS_PARAMS, "-k", "knn36-forget")
    assert json.loads(log.read_text().splitlines()[0]) == {"lr": 0.1, "epochs": 3}


@pytest.mark.parametrize(
    ("value", "message"),
    [("lr", "expected KEY=VALUE"), ("=3", "expected KEY=VALUE")],
)
def test_a_malformed_param_is_a_usage_error(
    pytester: pytest.Pytester, unlearn_cache: Path, value: str, message: str
) -> None:
    result = _run(pytester, unlearn_cache, IDENTITY_METHOD, f"--unlearn-param={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in output(result)


def test_a_param_given_twice_is_a_usage_error(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    result = _run(
        pytester, unlearn_cache, IDENTITY_METHOD, "--unlearn-param=lr=1", "--unlearn-param=lr=2"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "parameter 'lr' is given twice" in output(result)


# -- score and no-ops ----------------------------------------------------------------------------


def test_do_nothing_scores_zero_and_is_named_as_returning_its_input(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    report = pytester.path / "r.json"
    _run(pytester, unlearn_cache, IDENTITY_METHOD, f"--unlearn-report={report}")
    for record in load_report(report)["records"]:
        assert record["returned_input_unchanged"] is True
        assert record["score"] == pytest.approx(0.0, abs=1e-9)
        assert 0 < record["score_band"] < 100


def test_a_method_that_trains_is_not_named_as_returning_its_input(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    report = pytester.path / "r.json"
    _run(pytester, unlearn_cache, FINETUNE, f"--unlearn-report={report}")
    records = load_report(report)["records"]
    assert all(record["returned_input_unchanged"] is False for record in records)
