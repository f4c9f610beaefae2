"""Verdicts with a stated false-fail level: calibration on the oracles, and the decision.

>>> from pytest_unlearn.verdicts import Calibration, decide
>>> cal = Calibration(n_models=100, floor=0.8, null_median=0.8, null_sd=0.05,
...                   null_max=0.95, do_nothing=0.9)
>>> decide(0.85, cal).verdict
'INCONCLUSIVE'
"""

from .calibration import ALPHA, RESAMPLES, Calibration, calibrate, null_draws, p95_klom
from .verdict import Decision, decide, inconclusive_reason

__all__ = [
    "ALPHA",
    "RESAMPLES",
    "Calibration",
    "Decision",
    "calibrate",
    "decide",
    "inconclusive_reason",
    "null_draws",
    "p95_klom",
]
