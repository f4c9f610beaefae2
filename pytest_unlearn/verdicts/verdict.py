"""The verdict of one case from its statistic and calibration: PASS, FAIL or INCONCLUSIVE.

* **FAIL** when the P95 lies above the threshold (the unlearned models are distinguishable
  from models retrained without the forget set) or below the lower threshold (closer to the
  oracles the test compares against than an independent retraining lands by chance: the
  answer key was used). Either is evidence, whatever else holds.
* **INCONCLUSIVE** instead of a pass where a pass would prove nothing: the threshold lies at
  or above the largest value KLoM can take (no method can fail), or do-nothing itself scores
  within it (the case cannot tell forgetting from not forgetting at this N).
* **PASS** otherwise.

>>> cal = Calibration(n_models=100, floor=0.8, null_median=0.8, null_sd=0.05,
...                   null_max=0.95, do_nothing=5.0)
>>> decide(0.9, cal).verdict, decide(3.0, cal).verdict, decide(0.0, cal).verdict
('PASS', 'FAIL', 'FAIL')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..metric import KLOM_MAX
from .calibration import Calibration

VerdictName = Literal["PASS", "FAIL", "INCONCLUSIVE"]
#: Why: "above" / "below" the thresholds for a FAIL, "cannot-fail" / "do-nothing-passes" for
#: an INCONCLUSIVE, "within" for a PASS.
Reason = Literal["above", "below", "within", "cannot-fail", "do-nothing-passes"]


@dataclass(frozen=True)
class Decision:
    verdict: VerdictName
    reason: Reason


def decide(p95: float, calibration: Calibration) -> Decision:
    """The verdict of a case whose statistic is ``p95``."""
    if calibration.can_fail and p95 > calibration.threshold:
        return Decision("FAIL", "above")
    if calibration.can_fail_low and p95 < calibration.lower_threshold:
        return Decision("FAIL", "below")
    if not calibration.can_fail:
        return Decision("INCONCLUSIVE", "cannot-fail")
    if not calibration.separable:
        return Decision("INCONCLUSIVE", "do-nothing-passes")
    return Decision("PASS", "within")


def inconclusive_reason(calibration: Calibration, reason: Reason) -> str:
    """Why a case cannot give a meaningful pass at this N, in one sentence."""
    cal = calibration
    if reason == "cannot-fail":
        return (
            f"the threshold {cal.threshold:.3f} is at or above the largest value KLoM can take "
            f"({KLOM_MAX:.2f}) at N={cal.n_models}: no method could fail this case"
        )
    return (
        f"do-nothing scores {cal.do_nothing:.3f}, within the threshold {cal.threshold:.3f} at "
        f"N={cal.n_models}: the case cannot tell forgetting from not forgetting"
    )
