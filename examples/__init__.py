"""Reference unlearning methods, each runnable as ``pytest --unlearn-method=examples.NAME:unlearn``."""
