"""Thresholds calibrated on the oracles, and the verdict of one case."""

from .calibration import Calibration, calibrate

__all__ = ["Calibration", "calibrate"]
