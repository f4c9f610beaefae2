"""Shared fixtures for pytest-unlearn's own tests.

* When pytest is started *with* a method (``pytest --unlearn-method=examples.retrain:unlearn``
  from the repository root), this directory is not collected: only the conformance suite runs.
* Every test runs with the ``PYTEST_UNLEARN_*`` environment variables removed, so a variable
  set in the developer's shell cannot change what a test sees.
* ``unlearn_cache`` builds the digits-mlp ensembles once per test session (N=16; every
  smaller N reuses the prefix), shared by all xdist workers through the store's file lock.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
from pathlib import Path

import pytest

# Imported once out here on purpose: every in-process pytester run snapshots sys.modules and
# drops what it imported, and the hypothesis plugin imports (and assertion-rewrites) ~500
# modules when an inner run configures, about 2 s per inner run unless already loaded.
for _module in (
    "hypothesis",
    "pytest_unlearn.fixtures.conformance_fixtures",
    "pytest_unlearn.harness.evaluator",
    "pytest_unlearn.report.terminal_table",
):
    # An optional plugin that is not installed costs nothing anyway.
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)


def _warm_torch() -> None:
    """Take one optimizer step out here: torch imports dynamo/inductor modules lazily on the
    first ``optimizer.step()``, and an in-process pytester run that triggers that import drops
    the modules afterwards; the next run would re-register torch's operator libraries and fail."""
    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    parameter.sum().backward()
    optimizer.step()


_warm_torch()

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent

#: Ensemble size of the shared cache: the smallest at which do-nothing fails knn36.
CACHE_MODELS = 16
BENCHMARK = "digits-mlp"
ENV_PREFIX = "PYTEST_UNLEARN_"

#: The ids the plugin generates for digits-mlp, in the order it must list them.
CONFORMANCE_IDS = [
    "digits-mlp-knn36-forget",
    "digits-mlp-knn36-retain",
    "digits-mlp-knn36-validation",
    "digits-mlp-random36-forget",
    "digits-mlp-random36-retain",
    "digits-mlp-random36-validation",
    "digits-mlp-seq3x12-req1-forget",
    "digits-mlp-seq3x12-req1-retain",
    "digits-mlp-seq3x12-req1-validation",
    "digits-mlp-seq3x12-req2-forget",
    "digits-mlp-seq3x12-req2-retain",
    "digits-mlp-seq3x12-req2-validation",
    "digits-mlp-seq3x12-req3-forget",
    "digits-mlp-seq3x12-req3-retain",
    "digits-mlp-seq3x12-req3-validation",
]

#: A method that keeps the contract and costs nothing (do-nothing).
IDENTITY_METHOD = "def unlearn(model, forget, retain, context):\n    return model\n"

#: A method that damages the model: 5 epochs of gradient ascent on the forget set at lr 1.0.
DESTRUCTIVE_METHOD = """
import torch

def unlearn(model, forget, retain, context):
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(5):
        for inputs, targets in forget.loader(16):
            loss = -torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    return model
"""


def _method_configured(config: pytest.Config) -> bool:
    if os.environ.get(ENV_PREFIX + "METHOD"):
        return True
    try:
        from pytest_unlearn.settings import method_spec

        return method_spec(config)[0] is not None
    except ValueError:  # the plugin is disabled (-p no:unlearn): its options do not exist
        return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With a method configured, the run is a conformance run: skip the plugin's own tests."""
    if not _method_configured(config):
        return None
    path = Path(collection_path).resolve()
    if path == TESTS_DIR or TESTS_DIR in path.parents:
        return True
    return None


@pytest.fixture(scope="session", autouse=True)
def _benchmark_loaded_out_here() -> None:
    """Load the benchmark's data once in this process, before any in-process pytester run.

    A module first imported inside an inner run is dropped from sys.modules when the run ends,
    and some C extensions (numpy.fft, pulled in by scikit-learn's loader) refuse to import twice.
    """
    from pytest_unlearn.benchmarks import get_benchmark

    get_benchmark(BENCHMARK).fingerprint()


@pytest.fixture(autouse=True)
def _no_unlearn_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic tests: no PYTEST_UNLEARN_* variable leaks in from the outer environment."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _no_proxy_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test server listens on 127.0.0.1, and urllib (children too, by inheritance)
    honours *_proxy variables: reach the servers directly."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def unlearn_cache(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """A cache directory holding the digits-mlp store for ``CACHE_MODELS`` models.

    Built once per session; under xdist every worker uses the same directory (the session's
    base temp) and the store's file lock makes them build it once.
    """
    import torch

    from pytest_unlearn.benchmarks import get_benchmark
    from pytest_unlearn.store import load_or_build

    # Two CPUs shared with other processes: more than one intra-op thread makes the small
    # per-model training loops of the examples an order of magnitude slower.
    torch.set_num_threads(1)
    if not hasattr(pytestconfig, "workerinput"):  # no xdist, or its controller
        cache = tmp_path_factory.mktemp("unlearn-cache")
    else:
        cache = tmp_path_factory.getbasetemp().parent / "unlearn-cache"
        cache.mkdir(exist_ok=True)
    load_or_build(get_benchmark(BENCHMARK), CACHE_MODELS, cache, log=lambda message: None)
    return cache


def unlearn_args(cache: Path, models: int = CACHE_MODELS) -> list[str]:
    """The options every pytester run that executes conformance tests needs."""
    return [f"--unlearn-cache-dir={cache}", f"--unlearn-models={models}"]


@pytest.fixture
def with_examples(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project holding a copy of the repository's ``examples`` package.

    The example test files (``examples/test_*.py``, tests a method author writes against the
    public fixtures) stay out: a pytester run collects its whole root, and those tests are not
    part of the conformance run being tested.
    """
    shutil.copytree(
        REPO_ROOT / "examples",
        pytester.path / "examples",
        ignore=shutil.ignore_patterns("__pycache__", "test_*.py"),
    )
    return pytester


def conformance_ids(result: pytest.RunResult) -> list[str]:
    """The parametrize ids of the conformance tests listed by ``--collect-only -q``."""
    ids = []
    for line in result.outlines:
        if "test_klom[" in line:
            ids.append(line.split("[", 1)[1].split("]", 1)[0])
    return ids


def output(result: pytest.RunResult) -> str:
    """Everything a run printed, stdout and stderr together."""
    return result.stdout.str() + "\n" + result.stderr.str()
