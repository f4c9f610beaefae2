"""The reference methods in ``examples/``: each keeps the contract on every architecture and
runs through the suite with an outcome for every test; and the verdicts that must hold for a
reason do: do-nothing fails every conclusive forget case, a destructive method fails retain
and validation. (Exact retraining passing is ``tests/test_verdicts.py``'s.)

Direct calls (no suite) check the new methods' contract on the three embedded architectures
quickly; one quick-profile run per example (all seven, N=16) proves it end to end.
``benchmarks/results_table.py`` measures the methods at full size.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from conftest import CONFORMANCE_IDS, DESTRUCTIVE_METHOD, REPO_ROOT, output, unlearn_args
from torch import nn

from pytest_unlearn.benchmarks import TrainingRecipe, get_benchmark
from pytest_unlearn.contract import DataSplit, UnlearnContext
from pytest_unlearn.report.json_report import load_report

#: The examples this file covers (do_nothing, gradient_ascent and retrain predate it).
NEW_METHODS = ("finetune", "neggrad_plus", "scrub", "l1_sparse")
ALL_METHODS = ("do_nothing", "gradient_ascent", "retrain", *NEW_METHODS)
#: The quick profile keeps subpopulation and sequential forget sets (no random36 on digits-mlp).
QUICK_IDS = [case for case in CONFORMANCE_IDS if "random" not in case]
#: (benchmark whose architecture is used, input width): the MLP, the convex model, the 1-D CNN.
ARCHITECTURES = (("digits-mlp", 64), ("digits-logreg", 64), ("mnist1d-cnn", 40))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for a direct call, as the shared cache fixture sets for suite runs: on
    two CPUs shared with other processes, more make these small loops many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _method(name: str) -> Callable[..., nn.Module]:
    return importlib.import_module(f"examples.{name}").unlearn


def _split(inputs: torch.Tensor, targets: torch.Tensor, offset: int) -> DataSplit:
    return DataSplit(inputs, targets, torch.arange(offset, offset + len(targets)))


def _toy_call(
    name: str, benchmark: str, width: int, *, recipe: TrainingRecipe | None = None, seed: int = 7
) -> tuple[nn.Module, nn.Module]:
    """(a copy of the input model, the method's output) on random data of the right shape."""
    bench = get_benchmark(benchmark)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # the same initialization, the global RNG untouched
        torch.manual_seed(0)
        model = bench.build_model()
    inputs = torch.rand(96, width, generator=generator)
    targets = torch.randint(0, 10, (96,), generator=generator)
    forget, retain = _split(inputs[:12], targets[:12], 0), _split(inputs[12:], targets[12:], 12)
    context = UnlearnContext(
        device=torch.device("cpu"),
        seed=seed,
        model_index=0,
        request_index=0,
        recipe=recipe or bench.recipe,
        benchmark=benchmark,
        forget_set="toy",
        num_classes=10,
    )
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # as the suite seeds the global RNG before each call
        returned = _method(name)(model, forget, retain, context)
    original = bench.build_model()
    original.load_state_dict(before)
    return original, returned


def _parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach() for key, value in model.named_parameters()}


# Not called "benchmark": pytest-benchmark, where installed, owns a fixture of that name.
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("architecture,width", ARCHITECTURES, ids=[a for a, _ in ARCHITECTURES])
@pytest.mark.parametrize("name", NEW_METHODS)
def test_method_keeps_the_contract_on_every_architecture(
    name: str, architecture: str, width: int
) -> None:
    original, returned = _toy_call(name, architecture, width)
    assert isinstance(returned, nn.Module)
    before, after = _parameters(original), _parameters(returned)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert all(value.isfinite().all() for value in after.values())
    # Every method trains: none silently returns its input unchanged.
    assert any(not torch.equal(before[key], after[key]) for key in before)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", NEW_METHODS)
def test_method_is_reproducible_from_the_context_seed(name: str) -> None:
    _, first = _toy_call(name, "digits-mlp", 64, seed=3)
    _, again = _toy_call(name, "digits-mlp", 64, seed=3)
    _, other = _toy_call(name, "digits-mlp", 64, seed=4)
    first_p, again_p, other_p = _parameters(first), _parameters(again), _parameters(other)
    assert all(torch.equal(first_p[key], again_p[key]) for key in first_p)
    assert any(not torch.equal(first_p[key], other_p[key]) for key in first_p)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", NEW_METHODS)
def test_method_ignores_a_recipe_lr_that_is_no_sgd_step(name: str) -> None:
    # A convex benchmark may train with another optimizer, whose lr means something else:
    # the methods use their own step sizes, so a huge recipe.lr changes nothing.
    odd = TrainingRecipe(epochs=200, lr=1e4, batch_size=1438, optimizer="lbfgs")
    plain = TrainingRecipe(epochs=200, lr=0.05, batch_size=64)
    _, with_odd = _toy_call(name, "digits-logreg", 64, recipe=odd)
    _, with_plain = _toy_call(name, "digits-logreg", 64, recipe=plain)
    odd_p, plain_p = _parameters(with_odd), _parameters(with_plain)
    assert all(torch.equal(odd_p[key], plain_p[key]) for key in odd_p)


@pytest.mark.usefixtures("one_thread")
def test_scrub_updates_its_student() -> None:
    # data-unlearning-bench's SCRUB steps an optimizer over the teacher's parameters, so its
    # student comes back unchanged (do-nothing); ours must return a trained student.
    original, student = _toy_call("scrub", "digits-mlp", 64)
    before, after = _parameters(original), _parameters(student)
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert changed == list(before)  # every parameter tensor moved, not just one
    assert all(p.requires_grad for p in student.parameters())  # not the frozen teacher


# Not retrain: on a benchmark of exact minimizers it reuses the plugin's own convex solver.
@pytest.mark.parametrize("name", ("do_nothing", "gradient_ascent", *NEW_METHODS))
def test_example_is_a_plain_documented_function(name: str) -> None:
    path = REPO_ROOT / "examples" / f"{name}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # The method contract: a method imports nothing from the plugin at run time (an
    # ``if TYPE_CHECKING:`` block, for annotations only, is not run).
    assert not [module for module in _runtime_imports(tree) if module.startswith("pytest_unlearn")]
    docstring = ast.get_docstring(tree) or ""
    assert f"--unlearn-method=examples.{name}:unlearn" in docstring


def _runtime_imports(node: ast.AST) -> list[str]:
    """The modules ``node`` imports, skipping ``if TYPE_CHECKING:`` bodies."""
    if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
        return [module for child in node.orelse for module in _runtime_imports(child)]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [module for child in ast.iter_child_nodes(node) for module in _runtime_imports(child)]


def _quick_run(pytester: pytest.Pytester, cache: Path, method: str, *args: str):
    report = pytester.path / "unlearn.json"
    result = pytester.runpytest(
        f"--unlearn-method={method}",
        "--unlearn-profile=quick",
        f"--unlearn-report={report}",
        *args,
    )
    return result, load_report(report)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_method_runs_the_quick_profile_with_an_outcome_for_every_test(
    with_examples: pytest.Pytester, unlearn_cache: Path, name: str
) -> None:
    result, report = _quick_run(
        with_examples,
        unlearn_cache,
        f"examples.{name}:unlearn",
        *unlearn_args(unlearn_cache),
        "--unlearn-threads=1",
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output(result)
    records = report["records"]
    assert [record["test_id"] for record in records] == QUICK_IDS
    for record in records:
        # A verdict on every test, and the outcome is that verdict: no error, no contract
        # violation (those fail with no figures and a null verdict).
        assert record["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE"), record
        outcome = {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "skipped"}
        assert record["outcome"] == outcome[record["verdict"]]
        assert record["method_seconds_per_model"] is not None
    assert "Traceback" not in output(result)


def test_do_nothing_fails_every_conclusive_forget_case(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    """Conclusive means do-nothing fails; this holds only if running the pretrained models
    through the harness reproduces the stored pretrained margins the calibration used."""
    _, report = _quick_run(
        with_examples, unlearn_cache, "examples.do_nothing:unlearn", *unlearn_args(unlearn_cache)
    )
    forget = [r for r in report["records"] if r["split"] == "forget"]
    assert [r for r in forget if r["conclusive"]], "no conclusive forget case at N=16"
    for record in report["records"]:
        assert record["p95"] == pytest.approx(record["do_nothing"], abs=1e-9)
        if record["conclusive"]:
            assert record["verdict"] == "FAIL", record


def test_a_destructive_method_fails_every_retain_and_validation_case(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(destructive=DESTRUCTIVE_METHOD)
    _, report = _quick_run(
        pytester, unlearn_cache, "destructive:unlearn", *unlearn_args(unlearn_cache)
    )
    kept = [r for r in report["records"] if r["split"] in ("retain", "validation")]
    assert kept
    assert all(r["verdict"] == "FAIL" for r in kept), [(r["test_id"], r["p95"]) for r in kept]


def test_do_nothing_fails_knn36_forget_on_the_quick_profile(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    result, report = _quick_run(
        with_examples,
        unlearn_cache,
        "examples.do_nothing:unlearn",
        *unlearn_args(unlearn_cache),  # N=16: the smallest at which the case separates
        "-k",
        "knn36",
    )
    verdicts = {record["test_id"]: record["verdict"] for record in report["records"]}
    assert verdicts["digits-mlp-knn36-forget"] == "FAIL"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_params_override_the_defaults_and_the_tuned_settings() -> None:
    from types import SimpleNamespace

    from examples.hyperparameters import choose, tuned

    context = SimpleNamespace(benchmark="digits-mlp", params={"lr": 0.123})
    chosen = choose("finetune", {"lr": 0.01, "epoch_fraction": 0.1}, context)
    assert chosen["lr"] == 0.123
    assert chosen["epoch_fraction"] == tuned("finetune", "digits-mlp").get("epoch_fraction", 0.1)


def test_an_unknown_param_is_an_error_naming_the_known_ones() -> None:
    from types import SimpleNamespace

    from examples.hyperparameters import choose

    context = SimpleNamespace(benchmark="digits-mlp", params={"learning_rate": 0.1})
    with pytest.raises(ValueError, match=r"has no hyper-parameter learning_rate.*epoch_fraction"):
        choose("finetune", {"lr": 0.01, "epoch_fraction": 0.1}, context)
