"""Methods that try to pass without unlearning, one behaviour each (docs/threat-model.md).

Every cheat runs through the suite on the shared N=16 digits-mlp store, on ``knn36`` (a
subpopulation do-nothing fails on every split at this N). A cheat that does nothing to the
parameters must score exactly what do-nothing scores: the parameters are the model, so what
the returned object does besides holding them is never measured.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import output, unlearn_args

KNN36 = ["digits-mlp-knn36-forget", "digits-mlp-knn36-retain", "digits-mlp-knn36-validation"]


def _cheat(pytester: pytest.Pytester, cache: Path, source: str) -> dict[str, dict]:
    """Run ``source``'s ``unlearn`` on knn36; each case's outcome and recorded figures."""
    pytester.makepyfile(cheat=source)
    reprec = pytester.inline_run(
        "--unlearn-method=cheat:unlearn", *unlearn_args(cache), "-k", "knn36"
    )
    results = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        if report.when == "call":
            case = report.nodeid.rpartition("[")[2].rstrip("]")
            figures = {k.removeprefix("unlearn_"): v for k, v in report.user_properties}
            results[case] = {"outcome": report.outcome, "message": str(report.longrepr), **figures}
    assert sorted(results) == KNN36
    return results


def _assert_all_fail(results: dict[str, dict], reason: str = "above") -> None:
    for case, result in results.items():
        assert result["outcome"] == "failed", (case, result.get("p95"), result.get("threshold"))
        assert result["verdict_reason"] == reason, case


def _assert_measured_as_do_nothing(results: dict[str, dict]) -> None:
    for case, result in results.items():
        assert result["p95"] == pytest.approx(result["do_nothing"], abs=1e-12), case
        assert result["outcome"] == "failed", case


# ------------------------------------------------------------- cheats on the metric's bins

PINNED = """
import torch

def unlearn(model, forget, retain, context):
    # Do nothing, but pin two members far out (logits x 1e4 and x -1e4) to widen the bins.
    if context.model_index < 2:
        sign = 1.0 if context.model_index == 0 else -1.0
        with torch.no_grad():
            model[2].weight.mul_(sign * 1e4)
            model[2].bias.mul_(sign * 1e4)
    return model
"""


def test_pinning_two_members_far_out_does_not_pass_do_nothing(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    _assert_all_fail(_cheat(pytester, unlearn_cache, PINNED))


JITTERED = """
import torch

def unlearn(model, forget, retain, context):
    # Do nothing, but jitter the last layer: a wider spread of margins, nothing forgotten.
    generator = torch.Generator().manual_seed(context.seed)
    with torch.no_grad():
        model[2].weight.add_(0.3 * torch.randn(model[2].weight.shape, generator=generator))
    return model
"""


def test_jittering_the_last_layer_does_not_pass_do_nothing(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    _assert_all_fail(_cheat(pytester, unlearn_cache, JITTERED))


SCALED = """
import torch

def unlearn(model, forget, retain, context):
    # Scale every logit by 1e4: every margin beyond the clip (EasyDUB's binning scored 0).
    with torch.no_grad():
        model[2].weight.mul_(1e4)
        model[2].bias.mul_(1e4)
    return model
"""


def test_scaling_the_logits_beyond_the_clip_fails(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    _assert_all_fail(_cheat(pytester, unlearn_cache, SCALED))


CONSTANT = """
import torch

def unlearn(model, forget, retain, context):
    # One constant output for every input: no membership signal at all, no accuracy either.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    return model
"""


def test_a_constant_model_fails(pytester: pytest.Pytester, unlearn_cache: Path) -> None:
    _assert_all_fail(_cheat(pytester, unlearn_cache, CONSTANT))


# ---------------------------------------------------- cheats on what is measured

PATCHED_FORWARD = """
import torch

def unlearn(model, forget, retain, context):
    # Ships the pretrained parameters, but the object's forward runs something else
    # (here: noise the size of the logits, which blurs every membership signal).
    original = model.forward
    generator = torch.Generator().manual_seed(context.seed)

    def forward(inputs):
        logits = original(inputs)
        return logits + 5.0 * torch.randn(logits.shape, generator=generator)

    model.forward = forward
    return model
"""


def test_a_patched_forward_is_not_measured(pytester: pytest.Pytester, unlearn_cache: Path) -> None:
    _assert_measured_as_do_nothing(_cheat(pytester, unlearn_cache, PATCHED_FORWARD))


SHADOW_WRAPPER = """
import copy
import torch

class Shadowed(torch.nn.Sequential):
    # The benchmark's architecture and the pretrained parameters, plus an unregistered
    # shadow model that forward runs instead.
    def forward(self, inputs):
        return self.__dict__["shadow"](inputs)

def unlearn(model, forget, retain, context):
    shadow = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in shadow.parameters():
            parameter.mul_(0.0)
    shipped = Shadowed(*model)
    shipped.__dict__["shadow"] = shadow
    return shipped
"""


def test_a_wrapper_that_keeps_another_model_is_not_measured(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    _assert_measured_as_do_nothing(_cheat(pytester, unlearn_cache, SHADOW_WRAPPER))


OVERRIDDEN_STATE_DICT = """
import torch

def unlearn(model, forget, retain, context):
    # Claims other parameters through an overridden state_dict; the module holds the old ones.
    def state_dict(*args, **kwargs):
        return {k: torch.zeros_like(v) for k, v in type(model).state_dict(model).items()}

    model.state_dict = state_dict
    return model
"""


def test_an_overridden_state_dict_is_not_believed(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    _assert_measured_as_do_nothing(_cheat(pytester, unlearn_cache, OVERRIDDEN_STATE_DICT))


FLOAT64 = """
def unlearn(model, forget, retain, context):
    return model.double()
"""


def test_a_model_in_another_dtype_is_a_contract_violation(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    results = _cheat(pytester, unlearn_cache, FLOAT64)
    for result in results.values():
        assert result["outcome"] == "failed"
        assert "torch.float64, but the benchmark's models are torch.float32" in result["message"]
        assert "contract violation" in result["message"]


# ----------------------------------------------------------------- reading the answer key

ANSWER_KEY = """
import torch
from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.training import model_seed

def unlearn(model, forget, retain, context):
    # Retrains, but with the seeds of oracle half A, the very models the test compares
    # against: the output is a copy of the answer key.
    bench = get_benchmark(context.benchmark)
    seed = model_seed(bench.name, f"oracle-{context.forget_set}-a", context.model_index)
    params = bench.train_members(retain.indices.cpu(), [seed])
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(params[name][0])
    return model
"""


def test_a_copy_of_the_oracles_fails_as_closer_than_retraining_can_be(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    results = _cheat(pytester, unlearn_cache, ANSWER_KEY)
    _assert_all_fail(results, reason="below")
    for result in results.values():
        assert result["p95"] == 0.0  # identical to half A, model for model
        assert "closer to the oracles than exact retraining can be" in result["message"]


def test_an_inconclusive_case_is_skipped_with_its_reason_and_the_n_that_helps(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    """At N=16 do-nothing passes random36/retain: a pass there proves nothing."""
    pytester.makepyfile(cheat="def unlearn(model, forget, retain, context):\n    return model\n")
    result = pytester.runpytest(
        "--unlearn-method=cheat:unlearn", *unlearn_args(unlearn_cache), "-k",
        "random36-retain", "-rs",
    )  # fmt: skip
    result.assert_outcomes(skipped=1)
    text = output(result)
    assert "inconclusive: do-nothing scores" in text
    assert "cannot tell forgetting from not forgetting" in text
    assert "--unlearn-models" in text  # what would make it conclusive
