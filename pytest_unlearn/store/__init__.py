"""Ensemble stores: built locally into a cache, or fetched from a published source, verified."""

from .builder import build_store
from .ensembles import Ensembles, OracleHalves
from .local_cache import default_cache_dir, load_or_build
from .manifest import StoreError
from .reader import read_ensembles

__all__ = [
    "Ensembles",
    "OracleHalves",
    "StoreError",
    "build_store",
    "default_cache_dir",
    "load_or_build",
    "read_ensembles",
]
