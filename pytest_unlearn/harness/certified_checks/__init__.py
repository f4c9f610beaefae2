"""The certified checks of a claiming method, one module each, registered in :data:`CHECKS`.

A check (:class:`~.base.CertifiedCheck`) has a ``name`` (its test ids' suffix), ``applies``
(which benchmarks and claims get it), ``run`` (its statistic on a method run, as a
:class:`~.base.CheckOutcome`) and ``columns`` (its figures in the terminal table). Everything
else reads the registry: :func:`certified_cases` (the test ids),
:func:`run_check` (the evaluator), the terminal table (its columns).

>>> [check.name for check in registered_checks()]
['blackbox', 'whitebox']
>>> check_named("whitebox").columns[0].figure
'max_gradient_residual'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ...benchmarks import get_benchmark
from ..cases import CertifiedCase, Resolve, requests_of
from . import blackbox, whitebox
from .base import (
    CertifiedCheck,
    CertifiedResult,
    CheckOutcome,
    CheckUnavailable,
    Column,
    claim_text,
    where_text,
)

if TYPE_CHECKING:
    from ...certified import CertifiedClaim
    from ...store import Ensembles
    from ..method_runner import MethodRun

__all__ = [
    "CHECKS",
    "CertifiedCheck",
    "CertifiedResult",
    "CheckOutcome",
    "CheckUnavailable",
    "Column",
    "certified_cases",
    "check_named",
    "claim_text",
    "registered_checks",
    "run_check",
    "temporarily_registered",
    "validate",
    "where_text",
]

#: Every certified check, in registration order (the order of the table's columns).
CHECKS: tuple[CertifiedCheck, ...] = (blackbox.CHECK, whitebox.CHECK)


def registered_checks() -> tuple[CertifiedCheck, ...]:
    """The registered checks, including any :func:`temporarily_registered` one."""
    return CHECKS


def check_named(name: str) -> CertifiedCheck:
    """The registered check called ``name``."""
    for check in registered_checks():
        if check.name == name:
            return check
    known = ", ".join(check.name for check in registered_checks())
    raise KeyError(f"no certified check named {name!r} is registered (registered: {known})")


def validate(checks: tuple[CertifiedCheck, ...]) -> None:
    """Names that make readable, unambiguous test ids (lower-case letters, digits and
    underscores), each registered once; raises ``ValueError`` otherwise.

    >>> validate((blackbox.CHECK, blackbox.CHECK))
    Traceback (most recent call last):
    ...
    ValueError: certified check name(s) registered twice: ['blackbox']
    """
    names = [check.name for check in checks]
    malformed = [name for name in names if not re.fullmatch(r"[a-z0-9_]+", str(name))]
    if malformed:
        raise ValueError(
            f"certified check name(s) {malformed}: a name is the test id's suffix, made of "
            "lower-case letters, digits and underscores"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"certified check name(s) registered twice: {duplicates}")


@contextmanager
def temporarily_registered(*checks: CertifiedCheck) -> Iterator[None]:
    """Register ``checks`` after :data:`CHECKS` for the duration of a ``with`` block (tests).

    >>> class Toy:
    ...     name, columns = "toy", ()
    >>> with temporarily_registered(Toy()):
    ...     [check.name for check in registered_checks()]
    ['blackbox', 'whitebox', 'toy']
    >>> [check.name for check in registered_checks()]
    ['blackbox', 'whitebox']
    """
    global CHECKS
    saved = CHECKS
    validate((*saved, *checks))
    CHECKS = (*saved, *checks)
    try:
        yield
    finally:
        CHECKS = saved


def run_check(
    case: CertifiedCase, claim: CertifiedClaim, run: MethodRun, ensembles: Ensembles
) -> CertifiedResult:
    """The case's check (by ``case.check``) on a method run."""
    outcome = check_named(case.check).run(case, claim, run, ensembles)
    return CertifiedResult(case, claim, ensembles.n_models, outcome)


def certified_cases(
    benchmarks: Iterable[str],
    profile: str = "full",
    claim: CertifiedClaim | None = None,
    resolve: Resolve = get_benchmark,
) -> list[CertifiedCase]:
    """The certified checks of a method claiming ``claim``, sorted by id: every registered
    check (:func:`registered_checks`) on every forget set (and request) the
    profile keeps, where the check ``applies`` to the benchmark and claim. Without a claim,
    every case some claim could get (the ids an xfail file may name).

    >>> [case.id for case in certified_cases(["digits-mlp"], "quick")][:2]
    ['digits-mlp-knn36-blackbox', 'digits-mlp-seq3x12-req1-blackbox']
    """
    checks = registered_checks()
    cases = []
    for name, fs, request in requests_of(benchmarks, profile, resolve):
        benchmark = resolve(name)
        cases += [
            CertifiedCase(name, fs.name, check.name, request, fs.sequential)
            for check in checks
            if check.applies(benchmark, claim)
        ]
    return sorted(cases, key=lambda case: case.id)
