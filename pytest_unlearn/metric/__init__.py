"""KLoM metric engine: margins from logits, per-point KLoM, per-split summaries.

>>> import numpy as np
>>> from pytest_unlearn.metric import klom, summarize
>>> u = np.zeros((4, 3)); o = np.ones((5, 3))
>>> summarize(klom(u, o)).points
3
"""

from .klom import KLOM_MAX, KLOM_MODES, klom
from .margins import margins
from .summary import KlomSummary, summarize

__all__ = ["KLOM_MAX", "KLOM_MODES", "KlomSummary", "klom", "margins", "summarize"]
