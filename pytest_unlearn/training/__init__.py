"""Training whole ensembles at once: a hand-written batched engine for Linear/ReLU models,
``torch.func.vmap`` over the models for any other architecture."""

from .ensemble_trainer import ensemble_logits, model_seed, train_ensemble, unstack_member

__all__ = ["ensemble_logits", "model_seed", "train_ensemble", "unstack_member"]
