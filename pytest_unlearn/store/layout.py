"""Where each tensor lives inside a store directory (one place, used by writer and reader)."""

from __future__ import annotations

from ..benchmarks.spec import ForgetSet

PRETRAINED_WEIGHTS = "pretrained/weights.safetensors"
PRETRAINED_MARGINS = "pretrained/margins.safetensors"


def oracle_file(forget_set: ForgetSet, request: int) -> str:
    """``oracles/knn36.safetensors``; ``oracles/seq-req2.safetensors`` after request 2 of a
    sequential forget set (oracles retrained without requests 1..2)."""
    if forget_set.sequential:
        return f"oracles/{forget_set.name}-req{request}.safetensors"
    return f"oracles/{forget_set.name}.safetensors"


def forget_set_file(forget_set: ForgetSet) -> str:
    """``forget_sets/<name>.safetensors``: "indices", plus "request_<k>" per request."""
    return f"forget_sets/{forget_set.name}.safetensors"
