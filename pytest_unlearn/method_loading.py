"""Turn ``--unlearn-method=MODULE:FUNCTION`` into a callable, or one clear usage error."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_CONTRACT = "unlearn(model, forget, retain, context)"


def load_method(spec: str, search_dir: Path, origin: str | None = None) -> Callable:
    """Import ``MODULE:FUNCTION`` and check it can be called as the method contract says.

    ``search_dir`` (the directory pytest was started from) is put first on ``sys.path``, so a
    method module next to the user behaves the same under ``pytest`` and ``python -m pytest``.

    ``origin`` names where the spec was set (``--unlearn-method='x:y'``, the env variable, the
    ini key) and starts every error message.

    Example::

        load_method("examples.do_nothing:unlearn", Path.cwd())
        <function unlearn at 0x...>
    """
    origin = origin or f"--unlearn-method={spec!r}"
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise pytest.UsageError(f"{origin}: expected MODULE:FUNCTION, e.g. mypkg.methods:unlearn")
    search = str(search_dir)
    if search not in sys.path:
        sys.path.insert(0, search)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            hint = ""
            if error.name == "examples":
                hint = (
                    "; the example methods ship with the repository, not the wheel: run "
                    "pytest from a clone's root, or set PYTHONPATH to it"
                )
            raise pytest.UsageError(
                f"{origin}: no module named {error.name!r} (searched {search} and sys.path)" + hint
            ) from None
        raise pytest.UsageError(f"{origin}: importing {module_name!r} failed: {error}") from None
    except Exception as error:  # the user's module raised while importing
        raise pytest.UsageError(
            f"{origin}: importing {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    method = module
    for part in attribute.split("."):
        try:
            method = getattr(method, part)
        except AttributeError:
            raise pytest.UsageError(
                f"{origin}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    check_method(method, origin)
    return method


def check_method(method: object, origin: str) -> None:
    """Raise ``pytest.UsageError`` unless ``method`` accepts the four contract arguments."""
    if not callable(method):
        raise pytest.UsageError(
            f"{origin}: {type(method).__name__} object is not callable; expected {_CONTRACT}"
        )
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature; let the call decide
    try:
        signature.bind(None, None, None, None)
    except TypeError:
        raise pytest.UsageError(
            f"{origin}: the method's signature is {signature}, but it is called as {_CONTRACT}"
        ) from None
    _check_claim(method, origin)


def _check_claim(method: object, origin: str) -> None:
    from .certified.claim import claim_of

    try:
        claim_of(method)  # type: ignore[arg-type]
    except TypeError as error:
        raise pytest.UsageError(f"{origin}: {error}") from None
