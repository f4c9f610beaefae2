"""The in-memory view of one benchmark's stored ensembles."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..benchmarks.spec import Benchmark
from ..training import unstack_member


@dataclass(frozen=True)
class OracleHalves:
    """Margins of the 2N oracle models retrained without one forget set, as two halves.

    Half A is what a method is compared against; half B, trained with other seeds, measures
    the noise floor (how far an exact retraining lands from half A by chance).
    """

    half_a: torch.Tensor  # (models, points)
    half_b: torch.Tensor  # (models, points)


@dataclass(frozen=True)
class Ensembles:
    """Everything evaluation needs for one benchmark at ensemble size ``n_models``.

    Margins are over every labelled point of the benchmark (train and validation), so any
    split is a column selection.
    """

    benchmark: Benchmark
    n_models: int
    pretrained_params: dict[str, torch.Tensor]
    pretrained_margins: torch.Tensor  # (models, points)
    oracles: dict[tuple[str, int], OracleHalves]  # (forget set, request) -> halves
    #: Seconds of one exact retraining, measured when the store was built, by device kind
    #: (:func:`.reference_retrain.device_kind`); empty for an imported store.
    retrain_seconds: dict[str, float] = field(default_factory=dict)
    #: Which store the ensembles came from (:meth:`.manifest.Manifest.content_id`, the build's
    #: timings left out, so per-host caches of the same ensembles agree); None if not a store.
    store_id: str | None = None

    def member(self, index: int) -> nn.Module:
        """A private, freshly built copy of pretrained member ``index``."""
        if not 0 <= index < self.n_models:
            raise IndexError(f"member {index} out of range for {self.n_models} models")
        return unstack_member(self.benchmark.build_model, self.pretrained_params, index)
