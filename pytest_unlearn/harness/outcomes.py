"""How a conformance test turns what happened into its pytest outcome.

Both conformance modules (KLoM and certified claims) end the same way: a method that broke its
contract, or failed in a test that already shows the traceback, fails with one line; a check
that cannot run here is skipped with its reason; otherwise the figures become ``unlearn_*``
properties and the verdict decides pass or fail.

Example::

    with one_line_failures():
        result = unlearn_evaluator.evaluate(unlearn_case)
    record_verdict(result, record_property)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pytest

from .certified_checks import CheckUnavailable
from .contract_checks import ContractViolation
from .evaluator import EvaluationError, MethodFailedEarlier
from .shared_runs import MemberFailedElsewhere


class Verdict(Protocol):
    """What :class:`.evaluator.CaseResult` and :class:`.certified_checks.CertifiedResult` share."""

    @property
    def passed(self) -> bool: ...

    @property
    def inconclusive(self) -> str | None: ...

    def properties(self) -> dict[str, Any]: ...

    def explanation(self) -> str: ...


@contextmanager
def one_line_failures() -> Iterator[None]:
    """Fail (or skip) the running test with one line for what is not the method's own
    traceback; the method's own exception passes through, traceback and all."""
    failure: str | None = None
    skip: str | None = None
    try:
        yield
    except ContractViolation as violation:
        failure = f"contract violation: {violation}"
    except (MethodFailedEarlier, MemberFailedElsewhere) as earlier:
        # Another test (earlier here, or on another xdist worker) shows the traceback.
        failure = str(earlier)
    except EvaluationError as error:
        failure = str(error)
    except CheckUnavailable as reason:
        skip = str(reason)
    # The with statement's __exit__ runs while the original exception is being handled, so
    # the outcome is raised "from None": the report shows one line, not a chained exception.
    if failure is not None:
        raise pytest.fail.Exception(failure, pytrace=False) from None
    if skip is not None:
        raise pytest.skip.Exception(skip, allow_module_level=False) from None


def record_verdict(result: Verdict, record_property: Callable[[str, object], None]) -> None:
    """Record ``result``'s figures on the test, then fail it with the explanation if the
    verdict is FAIL, or skip it with the reason if it is INCONCLUSIVE: a check that could not
    have failed is never reported as a pass."""
    for name, value in result.properties().items():
        record_property(name, value)
    if not result.passed:
        pytest.fail(result.explanation(), pytrace=False)
    reason = result.inconclusive
    if reason is not None:
        pytest.skip(reason)
