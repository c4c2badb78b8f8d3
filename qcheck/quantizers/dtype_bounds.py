"""Exact comparisons with a float64 threshold, done in a narrower dtype.

For ``x`` of dtype D and a real threshold ``t`` (held exactly in float64): ``x > t`` if and only
if ``x > floor_D(t)``, and ``x < t`` if and only if ``x < ceil_D(t)``, where ``floor_D(t)`` is
the largest D value <= t and ``ceil_D(t)`` the smallest D value >= t.  So a kernel-sized tensor
is compared in its own dtype, without a float64 copy, and every decision is still exact.
"""

from __future__ import annotations

import torch


def _step(values: torch.Tensor, towards: float) -> torch.Tensor:
    return torch.nextafter(values, torch.full_like(values, towards))


def _nearest(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` rounded to ``dtype``, within one ``dtype`` step of the nearest (torch rounds
    float64 -> float16/bfloat16 through float32, so a double rounding is possible)."""
    return t.to(torch.float32).to(dtype)


def floor_in(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The largest ``dtype`` value <= ``t`` (float64, finite), as ``dtype``; -inf below the
    most negative finite value."""
    guess = _nearest(t, dtype)
    for _ in range(2):  # at most one step off after a double rounding; a second pass is a no-op
        guess = torch.where(guess.to(torch.float64) > t, _step(guess, -float("inf")), guess)
        up = _step(guess, float("inf"))
        guess = torch.where(up.to(torch.float64) <= t, up, guess)
    return guess


def ceil_in(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The smallest ``dtype`` value >= ``t`` (float64, finite), as ``dtype``; +inf above the
    largest finite value."""
    return -floor_in(-t, dtype)


def below_in(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The largest ``dtype`` value < ``t``: ``x >= t`` if and only if ``x > below_in(t)``."""
    low = floor_in(t, dtype)
    return torch.where(low.to(torch.float64) == t, _step(low, -float("inf")), low)


def above_in(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The smallest ``dtype`` value > ``t``: ``x <= t`` if and only if ``x < above_in(t)``."""
    return -below_in(-t, dtype)
