"""The method contract, enforced per call: each violation fails only its own forget set's
tests, with one message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CACHE_MODELS, output, unlearn_args
from torch.utils.data import DataLoader, TensorDataset

from pytest_unlearn.contract import DataSplit

MODELS = 2  # the contract does not need verdicts: the smallest ensemble keeps these fast


def _run(
    pytester: pytest.Pytester, cache: Path, source: str, *args: str, models: int = MODELS
) -> pytest.RunResult:
    pytester.makepyfile(mymethod=source)
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(cache, models), *args
    )


def _failures(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("FAILED")]


MUTATES_AND_KEEPS = """
import torch
KEPT = []

def unlearn(model, forget, retain, context):
    for previous in KEPT:  # tamper with every other model handed out before
        if previous is model:  # a sequential request gets its own previous output back
            continue
        with torch.no_grad():
            for p in previous.parameters():
                p.fill_(1e3)
    KEPT.append(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0)
    return model
"""


def test_mutating_kept_input_models_does_not_change_later_inputs(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    baseline = _run(pytester, unlearn_cache, "def unlearn(m, f, r, c):\n    return m\n")
    tampering = _run(pytester, unlearn_cache, MUTATES_AND_KEEPS)
    # Tampering with previously handed-out copies must not leak into the ensemble: the
    # figures of both runs are identical.
    assert _table_figures(baseline) == _table_figures(tampering)


def _table_figures(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("digits-mlp-")]


def test_returning_a_model_with_other_parameters_fails_naming_them(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    source = (
        "import torch\n"
        "def unlearn(model, forget, retain, context):\n"
        "    return torch.nn.Sequential(torch.nn.Linear(64, 10))\n"
    )
    result = _run(pytester, unlearn_cache, source, "-k", "knn36-forget")
    result.assert_outcomes(failed=1)
    assert "parameters and buffers differ from the benchmark's architecture" in output(result)
    assert "During handling" not in output(result)
    assert "missing ['2.bias', '2.weight']" in output(result)


def test_returning_non_finite_weights_fails_naming_the_parameter(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    source = (
        "import torch\n"
        "def unlearn(model, forget, retain, context):\n"
        "    with torch.no_grad():\n"
        "        model[0].weight[0, 0] = float('nan')\n"
        "    return model\n"
    )
    result = _run(pytester, unlearn_cache, source, "-k", "knn36-forget")
    result.assert_outcomes(failed=1)
    assert "'0.weight' has 1 non-finite value(s)" in output(result)


def test_returning_a_model_on_another_device_fails_naming_it(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    source = "def unlearn(model, forget, retain, context):\n    return model.to('meta')\n"
    result = _run(pytester, unlearn_cache, source, "-k", "knn36-forget")
    result.assert_outcomes(failed=1)
    assert "is on meta, expected cpu" in output(result)


def test_violation_fails_every_test_of_its_forget_set_only(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    source = (
        "def unlearn(model, forget, retain, context):\n"
        "    return None if context.forget_set == 'knn36' else model\n"
    )
    result = _run(pytester, unlearn_cache, source)
    failed = _failures(result)
    assert len(failed) == 3 and all("knn36" in line for line in failed)
    assert output(result).count("the method returned NoneType") >= 3


def test_hanging_method_times_out_and_the_run_goes_on(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    source = (
        "import time\n"
        "def unlearn(model, forget, retain, context):\n"
        "    if context.forget_set == 'knn36':\n"
        "        time.sleep(60)\n"
        "    return model\n"
    )
    result = _run(pytester, unlearn_cache, source, "--unlearn-timeout=0.5")
    failed = _failures(result)
    assert len(failed) == 3 and all("knn36" in line for line in failed)
    assert "did not return within 0.5 s (--unlearn-timeout)" in output(result)
    assert "digits-mlp-random36-forget" in output(result)


def test_method_seconds_and_retrain_seconds_are_recorded(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    source = (
        "import time\n"
        "def unlearn(model, forget, retain, context):\n"
        "    time.sleep(0.05)\n"
        "    return model\n"
    )
    pytester.makepyfile(mymethod=source)
    reprec = pytester.inline_run(
        "--unlearn-method=mymethod:unlearn",
        *unlearn_args(unlearn_cache, MODELS),
        "-k",
        "knn36-forget",
    )
    (report,) = [r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    figures = dict(report.user_properties)
    assert figures["unlearn_method_seconds_per_model"] >= 0.05
    assert figures["unlearn_retrain_seconds_per_model"] > 0
    assert figures["unlearn_slower_than_retraining"] is (
        figures["unlearn_method_seconds_per_model"] > figures["unlearn_retrain_seconds_per_model"]
    )


XFAIL_FILE = """
# do-nothing keeps the subpopulation
digits-mlp-knn36-forget: does not forget
digits-mlp-seq3x12-req1-forget: listed although it passes
"""

#: Forgets seq3x12 by exact retraining (passes), does nothing on knn36 (fails).
RETRAINS_SEQ3X12 = """
from examples.retrain import unlearn as retrain

def unlearn(model, forget, retain, context):
    return retrain(model, forget, retain, context) if context.forget_set == "seq3x12" else model
"""


def test_xfail_file_marks_listed_tests_strictly(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    with_examples.makefile(".txt", xfail=XFAIL_FILE)
    result = _run(
        with_examples,
        unlearn_cache,
        RETRAINS_SEQ3X12,
        "-k",
        "knn36-forget or seq3x12-req1-forget",
        "--unlearn-xfail-file=xfail.txt",
        "-rxX",
        models=CACHE_MODELS,  # where do-nothing fails knn36/forget
    )
    assert "XFAIL" in output(result) and "does not forget" in output(result)
    # A listed test that passes is a failure: the list cannot silently rot.
    assert "[XPASS(strict)] listed although it passes" in output(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_xfail_file_with_an_unknown_id_is_a_usage_error(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makefile(".txt", xfail="digits-mlp-knn63-forget: typo\n")
    result = _run(
        pytester,
        unlearn_cache,
        "def unlearn(m, f, r, c):\n    return m\n",
        "--unlearn-xfail-file=xfail.txt",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "digits-mlp-knn63-forget" in output(result)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not utf-8\n", "is not UTF-8 text"),
        (b"# " + b"x" * (1 << 20) + b"\n", "is larger than 1024 KiB"),
    ],
    ids=["not-utf8", "too-large"],
)
def test_an_xfail_file_that_is_no_id_list_is_one_usage_error(
    pytester: pytest.Pytester, unlearn_cache: Path, content: bytes, message: str
) -> None:
    (pytester.path / "xfail.txt").write_bytes(content)
    result = _run(
        pytester, unlearn_cache, "def unlearn(m, f, r, c):\n    return m\n",
        "--unlearn-xfail-file=xfail.txt", "--collect-only",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in output(result) and "Traceback" not in output(result)


def test_an_endless_xfail_file_is_refused_not_read(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    result = _run(
        pytester, unlearn_cache, "def unlearn(m, f, r, c):\n    return m\n",
        "--unlearn-xfail-file=/dev/zero", "--collect-only",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "/dev/zero is not a regular file" in output(result)


@pytest.mark.parametrize("shuffle", [True, False])
def test_split_loader_gives_the_batches_of_a_plain_dataloader(shuffle: bool) -> None:
    inputs, targets = torch.randn(150, 3), torch.arange(150)
    split = DataSplit(inputs, targets, targets)
    plain_rng, split_rng = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    plain = DataLoader(
        TensorDataset(inputs, targets), batch_size=64, shuffle=shuffle, generator=plain_rng
    )
    ours = split.loader(64, shuffle=shuffle, generator=split_rng)
    for _epoch in range(3):
        batches = list(zip(plain, ours, strict=True))
        assert [len(b[1]) for b, _ in batches] == [64, 64, 22]
        for (x_plain, y_plain), (x_ours, y_ours) in batches:
            assert torch.equal(x_plain, x_ours) and torch.equal(y_plain, y_ours)
