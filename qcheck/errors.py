"""Errors qcheck raises on purpose, each with a message a person can act on.

Reference functions raise :class:`QuantizationInputError` for input the SPEC rejects
(SPEC IN-1..IN-5); nothing here is raised for a bug in qcheck itself.
"""

from __future__ import annotations


class QcheckError(Exception):
    """Base class of qcheck's own errors."""


class QuantizationInputError(QcheckError, ValueError):
    """An input the SPEC's input policy rejects (non-finite, empty, wrong dtype or rank)."""
