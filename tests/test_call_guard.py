"""Each method call is guarded: its time limit cannot be swallowed, a hung call cannot hang CI,
an exit is a contract violation, and what it changes (its data, torch's global state) never
reaches another call or the plugin."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from conftest import output, unlearn_args

MODELS = 2


def _run(pytester: pytest.Pytester, cache: Path, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(mymethod=source)
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(cache, MODELS), *args
    )


SWALLOWS_EXCEPTIONS = """
import time

def unlearn(model, forget, retain, context):
    for _ in range(200):  # a training loop that retries whatever goes wrong
        try:
            time.sleep(0.05)
        except Exception:
            pass
    return model
"""


def test_the_timeout_cannot_be_swallowed_by_except_exception(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    started = time.perf_counter()
    result = _run(
        pytester, unlearn_cache, SWALLOWS_EXCEPTIONS, "--unlearn-timeout=0.3", "-k", "knn36-forget"
    )
    result.assert_outcomes(failed=1)
    assert "did not return within 0.3 s (--unlearn-timeout)" in output(result)
    assert time.perf_counter() - started < 8  # the loop alone would take 10 s per model


SWALLOWS_EVERYTHING = """
import time

def unlearn(model, forget, retain, context):
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    return model
"""


def test_a_call_that_swallows_the_interrupt_and_returns_late_fails(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    result = _run(
        pytester, unlearn_cache, SWALLOWS_EVERYTHING, "--unlearn-timeout=0.2", "-k", "knn36-forget"
    )
    result.assert_outcomes(failed=1)
    assert "over the 0.2 s limit (--unlearn-timeout)" in output(result)


IGNORES_THE_ALARM = """
import signal, time

def unlearn(model, forget, retain, context):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(60)
    return model
"""


def test_a_call_that_ignores_the_timeout_stops_the_run_with_its_stack(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    """The backstop: never a hung CI job. The run ends non-zero, saying why, with the stack."""
    pytester.makepyfile(mymethod=IGNORES_THE_ALARM)
    started = time.perf_counter()
    result = pytester.runpytest_subprocess(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache, MODELS),
        "--unlearn-timeout=0.5", "-k", "knn36-forget", "-p", "no:cacheprovider",
        timeout=60,
    )  # fmt: skip
    assert time.perf_counter() - started < 40
    assert result.ret == 1
    text = output(result)
    assert "ignored --unlearn-timeout=0.5" in text and "stopping the run" in text
    assert "mymethod.py" in text  # the stuck call's frame, from faulthandler


@pytest.mark.parametrize(
    ("call", "named"),
    [("import os\n    os._exit(0)", "os._exit(0)"), ("import sys\n    sys.exit(0)", "sys.exit(0)")],
    ids=["os._exit", "sys.exit"],
)
def test_an_exit_inside_the_method_is_a_contract_violation_not_a_green_run(
    pytester: pytest.Pytester, unlearn_cache: Path, call: str, named: str
) -> None:
    source = f"def unlearn(model, forget, retain, context):\n    {call}\n    return model\n"
    result = _run(pytester, unlearn_cache, source, "-k", "knn36")
    result.assert_outcomes(failed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert f"the method called {named}" in output(result)


MUTATES_ITS_DATA = """
import json, os

def unlearn(model, forget, retain, context):
    with open(os.environ["CALL_LOG"], "a") as log:
        log.write(json.dumps([float(retain.inputs.sum()), float(forget.inputs.sum()),
                              int(retain.targets.sum()), len(retain)]) + "\\n")
    retain.inputs.mul_(0.0)          # in place: its own business...
    forget.targets.fill_(0)
    retain.inputs.requires_grad_(True)
    return model
"""


def test_a_calls_in_place_change_of_its_data_never_reaches_another_call(
    pytester: pytest.Pytester,
    unlearn_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CALL_LOG", str(log))
    result = _run(pytester, unlearn_cache, MUTATES_ITS_DATA, "-k", "knn36-forget")
    assert "Traceback" not in output(result)
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(seen) == MODELS
    assert all(call == seen[0] for call in seen)  # ...which the next call never sees
    assert seen[0][0] > 0


CHANGES_GLOBAL_STATE = """
import json, os, torch

def unlearn(model, forget, retain, context):
    with open(os.environ["CALL_LOG"], "a") as log:
        log.write(json.dumps([str(next(model.parameters()).dtype), torch.get_num_threads(),
                              str(torch.get_default_dtype()), torch.is_grad_enabled()]) + "\\n")
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    return model
"""


def test_torch_global_state_a_method_changes_is_restored_after_each_call(
    pytester: pytest.Pytester,
    unlearn_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CALL_LOG", str(log))
    threads = torch.get_num_threads()
    result = _run(pytester, unlearn_cache, CHANGES_GLOBAL_STATE, "-k", "knn36")
    assert "Traceback" not in output(result)
    assert "contract violation" not in output(result)
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(seen) == MODELS
    assert all(call == seen[0] for call in seen)  # the second member arrives as the first
    assert seen[0][0] == "torch.float32" and seen[0][2] == "torch.float32" and seen[0][3]
    assert torch.get_default_dtype() == torch.float32  # the plugin's process, after the run
    assert torch.get_num_threads() == threads
