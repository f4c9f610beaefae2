"""The figures a conformance test records, carried to the controller in ``user_properties``.

Every figure travels as its own ``("unlearn_<field>", value)`` user property, so it reaches the
controller under xdist and shows up as a JUnit ``<property>`` with no extra work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PREFIX = "unlearn_"
#: The user property that marks a report as a conformance test's, valued with its case id.
CASE_PROPERTY = PREFIX + "case"


def to_properties(record: dict[str, Any]) -> dict[str, Any]:
    """``{"p95": 0.4}`` -> ``{"unlearn_p95": 0.4}``."""
    return {PREFIX + key: value for key, value in record.items()}


def from_properties(properties: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`to_properties`, ignoring unrelated user properties."""
    return {key[len(PREFIX) :]: value for key, value in properties if key.startswith(PREFIX)}


def case_id(properties: Iterable[tuple[str, Any]]) -> str | None:
    """The conformance case a report belongs to, or None for any other test."""
    for key, value in properties:
        if key == CASE_PROPERTY:
            return str(value)
    return None
