"""Per-group statistics in one streaming pass, with rigorous error bounds instead of exact sums.

:mod:`qcheck.quantizers.exact` sums exactly (integers per exponent, Fractions): the definition,
and slow.  Here each tile's row sums are float64 sums, which for float32 and narrower input err by
at most ``(m - 1) u sum|x|`` for ``m`` terms in any order (u = 2**-53; Higham, *Accuracy and
Stability of Numerical Algorithms*, eq. 4.4), and the pieces of a row split over several tiles are
combined by :func:`math.fsum` (correctly rounded).  A caller gets an interval that surely holds
the exact mean and decides from it only what the interval decides: the rounded scale when both
ends round to the same value, a code when the element is outside the interval.  The rows it
cannot decide are summed exactly by the reference's own code (:func:`exact_row_means`), so
results never differ from the reference's.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from qcheck.quantizers import fused_kernels
from qcheck.quantizers.exact import ExactMeans, exact_group_means
from qcheck.quantizers.tiles import TILE_ELEMENTS, GroupMatrix, tiles

UNIT_ROUNDOFF = 2.0**-53
_WIDEN = 2.0**-50  # relative widening that covers the roundings of the interval's own arithmetic
_TINY = 2.0**-1070  # and an absolute one for ends at or near zero


@dataclasses.dataclass(frozen=True)
class GroupSums:
    """Per group (float64, shape ``(n_groups,)``): ``absolute`` ~ sum|x|, ``signed`` ~ sum x (or
    None if not asked for) and ``bound``, with ``|computed - exact| <= bound`` for both."""

    absolute: torch.Tensor
    signed: torch.Tensor | None
    bound: torch.Tensor
    count: int

    @property
    def finite(self) -> bool:
        """False if the input held an Inf or a NaN (float32 sums cannot overflow float64)."""
        return bool(torch.isfinite(self.absolute).all())

    def mean_interval(self, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` float64 with ``low <= exact mean <= high`` per group."""
        total = self.signed if signed else self.absolute
        assert total is not None
        low = (total - self.bound) / self.count
        high = (total + self.bound) / self.count
        return low - (low.abs() * _WIDEN + _TINY), high + (high.abs() * _WIDEN + _TINY)


def group_sums(matrix: GroupMatrix, *, signed: bool) -> GroupSums:
    """Sums of |x| (and of x) over each row of ``matrix`` (float16/bfloat16/float32), tile by tile."""
    n_rows, length = matrix.n_groups, matrix.group_length
    terms = min(length, TILE_ELEMENTS)
    fused = _fused_sums(matrix, terms)
    if fused is not None:
        return _bounded(fused[0], fused[1] if signed else None, terms, length)
    absolute = torch.zeros(n_rows, dtype=torch.float64)
    signed_sums = torch.zeros(n_rows, dtype=torch.float64) if signed else None
    pieces: tuple[list[float], list[float]] = ([], [])
    for tile in tiles(n_rows, length):
        block = matrix.rows[tile.rows, tile.columns]
        tile_abs = torch.linalg.vector_norm(block, 1, dim=1, dtype=torch.float64)
        tile_signed = block.sum(dim=1, dtype=torch.float64) if signed else None
        if tile.columns.start == 0 and tile.last_of_row:  # whole rows
            absolute[tile.rows] = tile_abs
            if signed_sums is not None and tile_signed is not None:
                signed_sums[tile.rows] = tile_signed
            continue
        pieces[0].append(float(tile_abs))
        if tile_signed is not None:
            pieces[1].append(float(tile_signed))
        if tile.last_of_row:
            absolute[tile.rows] = math.fsum(pieces[0])
            if signed_sums is not None:
                signed_sums[tile.rows] = math.fsum(pieces[1])
            pieces = ([], [])
    return _bounded(absolute, signed_sums, terms, length)


def _bounded(absolute: torch.Tensor, signed: torch.Tensor | None, terms: int, count: int) -> GroupSums:
    """Sums whose pieces had at most ``terms`` terms each, with their error bound: ``(terms - 1) u A``
    per piece, ``u |S| <= u A`` for the fsum; ``A_exact <= A_computed (1 + tiny)``: +4 covers it."""
    return GroupSums(absolute, signed, (terms + 4) * UNIT_ROUNDOFF * absolute, count)


def _fused_sums(matrix: GroupMatrix, terms: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(sum |x|, sum x)`` per row from the fused kernel, in pieces of at most ``terms`` elements;
    None where the kernel is not used (small input, rows longer than a tile, no compiler)."""
    rows = matrix.rows
    if not fused_kernels.wanted(rows.numel()):
        return None
    if matrix.group_length <= terms:
        return fused_kernels.row_sums(rows)
    if matrix.n_groups != 1:
        return None
    whole = matrix.group_length // terms * terms
    pieces = fused_kernels.row_sums(rows[0, :whole].reshape(-1, terms))
    if pieces is None:
        return None
    tail = rows[0, whole:].to(torch.float64)
    absolute = math.fsum([*pieces[0].tolist(), float(tail.abs().sum())])
    signed = math.fsum([*pieces[1].tolist(), float(tail.sum())])
    return torch.tensor([absolute], dtype=torch.float64), torch.tensor([signed], dtype=torch.float64)


def group_absmax(matrix: GroupMatrix) -> torch.Tensor:
    """``max |x|`` per row, float64 (exact; NaN propagates, so a non-finite input shows)."""
    if fused_kernels.wanted(matrix.rows.numel()):
        fused = fused_kernels.row_absmax(matrix.rows)
        if fused is not None:
            return fused + 0.0  # |-0.0| is +0.0
    out = torch.empty(matrix.n_groups, dtype=torch.float64)
    for tile in tiles(matrix.n_groups, matrix.group_length):
        low, high = torch.aminmax(matrix.rows[tile.rows, tile.columns], dim=1)
        peak = torch.maximum(high.to(torch.float64), -low.to(torch.float64)) + 0.0  # |-0.0| is +0.0
        if tile.columns.start == 0:
            out[tile.rows] = peak
        else:
            out[tile.rows] = torch.maximum(out[tile.rows], peak)
    return out


def exact_row_means(matrix: GroupMatrix, rows: torch.Tensor, *, absolute: bool) -> ExactMeans:
    """The exact means (of |x| or of x) of the rows ``rows`` (int64 indices), from the reference's
    exact sums (:mod:`qcheck.quantizers.exact`); for the few rows an interval cannot decide."""
    block = matrix.rows[rows].to(torch.float64)
    values = block.abs() if absolute else block
    count = int(rows.numel())
    ids = torch.arange(count, dtype=torch.int64).repeat_interleave(matrix.group_length)
    counts = torch.full((count,), matrix.group_length, dtype=torch.int64)
    return exact_group_means(values.reshape(-1), ids, counts)


def absmean_statistic(matrix: GroupMatrix, sums: GroupSums, dtype: torch.dtype) -> torch.Tensor:
    """Per group, float64 that rounds to ``dtype`` exactly as the exact mean of |x| (rounded to
    float64 first) does: the interval's common rounding where both ends agree, else the exact
    mean's nearest float64, computed for those rows only.  A zero is +0, as the exact value's
    rounding is (an interval may reach below zero)."""
    low, high = sums.mean_interval(signed=False)
    rounded = low.to(dtype)
    out = rounded.to(torch.float64) + 0.0  # -0.0 + 0.0 == +0.0
    undecided = torch.nonzero(rounded != high.to(dtype)).flatten()
    if undecided.numel():
        out[undecided] = exact_row_means(matrix, undecided, absolute=True).nearest
    return out
