"""KLoM conformance: an unlearned ensemble must be as close to the oracles as retraining is.

For every (benchmark, forget set, split) the method is run on every pretrained member (once
per forget set, shared by the three splits), and the 95th percentile over the split's points
of KLoM(unlearned || oracle half A) must not exceed a threshold calibrated on the oracles
themselves (see docs/verdicts.md).
"""

from __future__ import annotations

import pytest

from pytest_unlearn.harness.contract_checks import ContractViolation
from pytest_unlearn.harness.evaluator import FAILED_IN_ANOTHER_TEST

pytestmark = pytest.mark.unlearn


def test_klom(unlearn_case, unlearn_evaluator, record_property) -> None:
    try:
        result = unlearn_evaluator.evaluate(unlearn_case)
    except ContractViolation as violation:
        pytest.fail(f"contract violation: {violation}", pytrace=False)
    except FAILED_IN_ANOTHER_TEST as failure:
        pytest.fail(str(failure), pytrace=False)
    for name, value in result.properties().items():
        record_property(name, value)
    if not result.passed:
        pytest.fail(result.explanation(), pytrace=False)
