"""Ensembles on disk: built locally into a cache directory, verified, reused."""

from .ensembles import Ensembles
from .local_cache import default_cache_dir, load_or_build

__all__ = ["Ensembles", "default_cache_dir", "load_or_build"]
