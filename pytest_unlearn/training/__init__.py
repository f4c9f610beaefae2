"""Training whole ensembles at once with ``torch.func`` (vmap over the models)."""

from .ensemble_trainer import ensemble_logits, model_seed, train_ensemble, unstack_member

__all__ = ["ensemble_logits", "model_seed", "train_ensemble", "unstack_member"]
