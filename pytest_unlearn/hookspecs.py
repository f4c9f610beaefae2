"""Hook specifications other plugins (or a conftest.py) implement to plug into pytest-unlearn.

Kept alone in this module, as pytest-xdist does, so the hook surface is one short read.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.hookspec(firstresult=True)
def pytest_unlearn_method(config: pytest.Config) -> Callable | None:
    """Return the unlearning method to evaluate, or ``None`` to defer.

    The method is ``unlearn(model, forget, retain, context) -> torch.nn.Module``. The first
    non-``None`` result wins; pytest-unlearn's own ``trylast`` implementation loads the
    ``--unlearn-method=MODULE:FUNCTION`` setting, so an implementation in a conftest.py or an
    installed plugin (entry point ``pytest11``) takes precedence over it::

        # conftest.py
        def pytest_unlearn_method(config):
            from mypkg.methods import unlearn
            return unlearn

    When every implementation returns ``None`` the plugin stays inert.
    """
