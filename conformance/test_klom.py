"""KLoM conformance: an unlearned ensemble must be as close to the oracles as retraining is.

For every (benchmark, forget set, split) the method is run on every pretrained member (once
per forget set, shared by the three splits), and the 95th percentile over the split's points
of KLoM(unlearned || oracle half A) must not exceed a threshold calibrated on the oracles
themselves (see docs/verdicts.md).
"""

from __future__ import annotations

import pytest

from pytest_unlearn.harness.outcomes import one_line_failures, record_verdict

pytestmark = pytest.mark.unlearn


def test_klom(unlearn_case, unlearn_evaluator, record_property) -> None:
    with one_line_failures():
        result = unlearn_evaluator.evaluate(unlearn_case)
    record_verdict(result, record_property)
