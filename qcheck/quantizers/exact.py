"""Exact sums and means of float tensors, so that ties are decided as exact arithmetic would.

The float mean of equal values is not always that value (``torch.full((16,), 0.3).mean()`` is
not 0.3 in float32), so b1's ``Sign(W - alpha)`` and the absmean scale are computed from exact
sums here (SPEC B1-2, SCALE-2).  Not a fast path: it is the readable definition.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import torch

_MANTISSA_BITS = 53  # a float64 significand; every float16/bfloat16/float32 value is one exactly
_SPLIT = 26  # significands are split in two halves so that int64 group sums cannot overflow


@dataclasses.dataclass(frozen=True)
class ExactMeans:
    """Per group: the exact mean, its nearest float64, and the sign of ``mean - nearest``."""

    exact: list[Fraction]
    nearest: torch.Tensor  # float64, correctly rounded
    residual_sign: torch.Tensor  # int8: sign(exact - nearest) in {-1, 0, +1}


def exact_group_sums(values: torch.Tensor, ids: torch.Tensor, n_groups: int) -> list[Fraction]:
    """The exact sum of ``values`` (float64, flat) within each group of ``ids`` (int64, flat).

    Each float64 is ``m * 2**(e - 53)`` with an integer ``|m| < 2**53``; the halves of ``m`` are
    summed per (group, exponent) in int64, which is exact for up to 2**35 elements, and the
    per-exponent sums are combined with Python integers.  Vectorized over elements; the only
    Python loop runs over the exponents present (at most ~2100).
    """
    if values.numel() >= 2**35:
        raise ValueError("exact_group_sums: more than 2**35 elements could overflow the int64 sums")
    if values.numel() == 0:
        return [Fraction(0)] * n_groups
    mantissa, exponent = torch.frexp(values)
    significand = (mantissa * float(2**_MANTISSA_BITS)).to(torch.int64)
    high = significand >> _SPLIT
    low = significand - (high << _SPLIT)
    exponent = exponent.to(torch.int64)
    e_min = int(exponent.min())
    n_bins = int(exponent.max()) - e_min + 1
    key = ids * n_bins + (exponent - e_min)
    size = n_groups * n_bins
    high_sums = torch.zeros(size, dtype=torch.int64).index_add_(0, key, high).view(n_groups, n_bins)
    low_sums = torch.zeros(size, dtype=torch.int64).index_add_(0, key, low).view(n_groups, n_bins)
    totals = np.zeros(n_groups, dtype=object)
    totals[:] = 0
    high_np, low_np = high_sums.numpy(), low_sums.numpy()
    for b in range(n_bins):
        h, lo = high_np[:, b], low_np[:, b]
        if not (h.any() or lo.any()):
            continue
        totals = totals + ((h.astype(object) << _SPLIT) + lo.astype(object)) * (1 << b)
    unit = Fraction(2) ** (e_min - _MANTISSA_BITS)
    return [Fraction(int(t)) * unit for t in totals]


def exact_group_means(values: torch.Tensor, ids: torch.Tensor, counts: torch.Tensor) -> ExactMeans:
    """Exact per-group means, their nearest float64 values and the residual signs."""
    sums = exact_group_sums(values, ids, int(counts.numel()))
    exact = [s / int(c) if int(c) else Fraction(0) for s, c in zip(sums, counts.tolist(), strict=True)]
    nearest = [float(m) for m in exact]  # Fraction -> float is correctly rounded
    signs = [(m > Fraction(f)) - (m < Fraction(f)) for m, f in zip(exact, nearest, strict=True)]
    return ExactMeans(
        exact,
        torch.tensor(nearest, dtype=torch.float64),
        torch.tensor(signs, dtype=torch.int8),
    )


def compare_to_mean(values: torch.Tensor, means: ExactMeans, ids: torch.Tensor) -> torch.Tensor:
    """``sign(values - mean)`` exactly, elementwise, as int8 in {-1, 0, +1}.

    ``values`` is flat float64 (exact copies of the input).  If ``v > nearest`` then ``v`` is at
    least the next float64 above ``nearest`` and so above the exact mean (which is within half a
    gap of ``nearest``); likewise below; if ``v == nearest`` the residual sign decides.
    """
    nearest = means.nearest[ids]
    residual = means.residual_sign[ids]
    above = values > nearest
    below = values < nearest
    on = ~(above | below)
    out = torch.zeros(values.shape, dtype=torch.int8)
    out[above] = 1
    out[below] = -1
    out[on] = -residual[on]
    return out
