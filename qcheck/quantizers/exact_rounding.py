"""Rounding a float64 approximation once, correctly, to a narrower dtype; and exact differences.

torch's float64 -> float16/bfloat16 cast goes through float32 (two roundings), and a float64
quotient rounded again to float32 is a double rounding.  Here an approximation within one ulp
of the target is corrected against the exact value by comparing it with the neighbouring
midpoints, which the caller decides exactly (SPEC ACT-4, ACT-11).  Not for float64 targets.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_INT_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}


def two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b == s + e`` exactly (Knuth's TwoSum)."""
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    return s, (a - a_virtual) + (b - b_virtual)


def round_once(
    approximation: torch.Tensor, dtype: torch.dtype, side: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """The ``dtype`` value nearest to an exact value v (ties to even), as ``dtype``.

    ``approximation`` (float64) is within one ``dtype`` ulp of v; ``side(m)`` returns
    ``sign(v - m)`` exactly for float64 ``m`` holding midpoints between adjacent ``dtype`` values
    (at most 25 significant bits, so callers can compare them exactly).
    """
    if dtype == torch.float64:
        return approximation
    guess = approximation.to(torch.float32).to(dtype)
    largest = torch.finfo(dtype).max
    guess = torch.where(torch.isinf(guess), torch.sign(guess) * largest, guess).to(dtype)  # decided below
    up = torch.nextafter(guess, torch.full_like(guess, float("inf")))
    down = torch.nextafter(guess, torch.full_like(guess, -float("inf")))
    g64, up64, down64 = guess.to(torch.float64), up.to(torch.float64), down.to(torch.float64)
    # beyond the largest finite value the overflow threshold is half an ulp past it (IEEE 754)
    above = side(torch.where(torch.isinf(up64), g64 + (g64 - down64) / 2, (g64 + up64) / 2))
    below = side(torch.where(torch.isinf(down64), g64 - (up64 - g64) / 2, (g64 + down64) / 2))
    odd = (guess.contiguous().view(_INT_VIEW[dtype]) & 1).to(torch.bool).reshape(guess.shape)
    go_up = (above > 0) | ((above == 0) & odd)
    go_down = (below < 0) | ((below == 0) & odd)
    return torch.where(go_up, up, torch.where(go_down, down, guess))
