"""Errors raised by the reference packers: each names the layout, the shape and the rule broken.

Every class here is both a :class:`qcheck.errors.QcheckError` and a :class:`ValueError`, so callers
may catch either; none of them is raised for a bug in qcheck itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from qcheck.errors import QcheckError


class PackingInputError(QcheckError, ValueError):
    """Codes or packed bytes a layout cannot accept (wrong dtype, non-ternary code, invalid field, wrong size)."""


class UnsupportedShape(PackingInputError):
    """A shape a layout cannot store; the one-line message names the layout, the shape and the rule."""

    def __init__(self, layout: str, shape: Sequence[int], reason: str) -> None:
        self.layout = layout
        self.shape = tuple(shape)
        self.reason = reason
        super().__init__(f"layout {layout!r} cannot store shape {self.shape}: {reason}")


class UnknownLayout(QcheckError, ValueError):
    """A layout name that is not in :data:`qcheck.packing.LAYOUTS`."""
