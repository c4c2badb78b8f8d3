"""The table of known layouts and lookup by name; adding a layout is one line in :data:`LAYOUTS`."""

from __future__ import annotations

from qcheck.packing.base import Layout
from qcheck.packing.errors import UnknownLayout
from qcheck.packing.hf_bitnet import HF_BITNET
from qcheck.packing.i2_s import I2_S
from qcheck.packing.qcheck_layout import QCHECK
from qcheck.packing.tq1_0 import TQ1_0
from qcheck.packing.tq2_0 import TQ2_0

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (QCHECK, HF_BITNET, TQ2_0, TQ1_0, I2_S)}


def layout(name: str) -> Layout:
    """The layout called ``name``; raises :class:`UnknownLayout` (a ValueError) naming the known ones."""
    try:
        return LAYOUTS[name]
    except (KeyError, TypeError):
        known = ", ".join(LAYOUTS)
        raise UnknownLayout(f"unknown packing layout {name!r}; known layouts: {known}") from None
