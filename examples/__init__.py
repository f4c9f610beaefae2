"""Reference unlearning methods.

Each runs as ``pytest --unlearn-method=examples.NAME:unlearn`` from the repository root.
"""
