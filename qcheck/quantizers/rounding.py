"""Rounding to an integer under a declared convention, exactly (SPEC CONV-1).

Input is float64 holding the quotient to round; ties (a fractional part of exactly 0.5) are
found exactly, so ``floor(x + 0.5)``'s float trap (0.49999997 + 0.5 == 1.0 in float32) cannot
occur here.
"""

from __future__ import annotations

import torch

from qcheck.conventions import Rounding


def round_to_integer(q: torch.Tensor, rounding: Rounding) -> torch.Tensor:
    """Round float64 ``q`` to the nearest integer (as float64), ties per ``rounding``."""
    nearest_even = torch.round(q)  # torch.round rounds half to even
    if rounding is Rounding.HALF_EVEN:
        return nearest_even
    truncated = torch.trunc(q)
    tie = (q - truncated).abs() == 0.5  # exact: q - trunc(q) is exact in binary floating point
    # HALF_AWAY: away from zero; HALF_UP: towards +inf
    resolved = truncated + torch.sign(q) if rounding is Rounding.HALF_AWAY else torch.floor(q) + 1.0
    return torch.where(tie, resolved, nearest_even)


def rounds_away_from_zero_at_half(rounding: Rounding, sign: int) -> bool:
    """Whether a value of exactly ``sign * 0.5`` rounds to ``sign`` (not to 0) under ``rounding``."""
    if rounding is Rounding.HALF_EVEN:
        return False
    if rounding is Rounding.HALF_AWAY:
        return True
    return sign > 0
