"""Every ``>>>`` example in the package runs, so no docstring example can rot.

(The package has no ``# doctest: +SKIP``: an example that cannot run here is written as
prose or a literal block instead; ``test_no_example_is_skipped`` keeps it so.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import pytest_unlearn

PACKAGE_DIR = Path(pytest_unlearn.__file__).parent


def _modules() -> list[str]:
    names = ["pytest_unlearn"]
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="pytest_unlearn."):
        if info.name.endswith("__main__"):
            continue  # running it would run the command line
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed"


def test_no_example_is_skipped() -> None:
    skipped = [
        str(path.relative_to(PACKAGE_DIR))
        for path in PACKAGE_DIR.rglob("*.py")
        if "doctest: +SKIP" in path.read_text(encoding="utf-8")
    ]
    assert skipped == []
