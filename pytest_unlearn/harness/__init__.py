"""Running a method over an ensemble and turning its outputs into per-split figures."""
