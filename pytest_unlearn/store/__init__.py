"""Ensemble stores: built locally into a cache, or fetched from a published source, verified."""

from .binding import bind_forget_sets
from .builder import MAX_MODELS, build_store
from .ensembles import Ensembles, OracleHalves
from .local_cache import default_cache_dir, load_or_build
from .manifest import OutputRefused, StoreError
from .reader import read_ensembles, stored_forget_sets

__all__ = [
    "MAX_MODELS",
    "Ensembles",
    "OracleHalves",
    "OutputRefused",
    "StoreError",
    "bind_forget_sets",
    "build_store",
    "default_cache_dir",
    "load_or_build",
    "read_ensembles",
    "stored_forget_sets",
]
