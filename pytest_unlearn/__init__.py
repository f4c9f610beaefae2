"""pytest-unlearn: a conformance suite for machine-unlearning methods."""
