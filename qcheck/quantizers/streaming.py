"""Streaming versions of ``b158_quantize``, ``b1_quantize`` and ``act_quantize``: the same results
as the readable references (:mod:`qcheck.quantizers.weights`, :mod:`~.activations`), bit for bit,
at LLM layer sizes (issue 6).

How they stay exact without exact arithmetic on every element:

* statistics come from one tiled pass (:mod:`~.streaming_statistics`): an absmax is exact; a mean
  is an interval from float64 sums with a rigorous error bound, and the scale is taken from it
  only when both ends round to the same float32 value;
* codes are threshold comparisons in the input's own dtype (:mod:`~.dtype_bounds`): ``2|w| >
  gamma`` becomes ``w > floor(gamma / 2)``, ``Sign(w - alpha)`` becomes ``w > floor(high)`` and
  ``w < ceil(low)``, and ``round(x * Qp / a)`` is the float64 quotient, which decides every
  rounding of float32-or-narrower input (SPEC ACT-2);
* a group the interval cannot decide (a mean near a float32 rounding midpoint, an element inside
  the mean's interval) is computed exactly, with the reference's exact sums, for that group only;
* what the tiles cannot hold (float64 input, a group size that does not divide the rows) and
  non-finite or empty input (which the reference rejects) go to the reference for the whole call.

No temporary larger than a few tiles is made; the outputs are written tile by tile, or by the
fused kernels of :mod:`~.fused_kernels` for inputs of millions of elements.
tests/test_streaming.py compares every op with its reference on the property suite's inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from qcheck.buffers import new_empty
from qcheck.conventions import DEFAULT, Conventions, Rounding, Statistic
from qcheck.quantizers import activations, fused_kernels, weights
from qcheck.quantizers.activations import code_range
from qcheck.quantizers.dtype_bounds import above_in, below_in, ceil_in, floor_in
from qcheck.quantizers.exact import compare_to_mean
from qcheck.quantizers.results import Quantized
from qcheck.quantizers.rounding import round_to_integer
from qcheck.quantizers.statistics import apply_eps
from qcheck.quantizers.streaming_statistics import absmean_statistic, exact_row_means, group_absmax, group_sums
from qcheck.quantizers.tiles import GroupMatrix, group_matrix, tiles
from qcheck.quantizers.validation import scale_dtype_for

STREAMED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
"""float64 input goes to the reference: float64 sums cannot bound a float64 mean tightly enough."""


def _matrix(x: object, conventions: Conventions, *, activation: bool) -> GroupMatrix | None:
    """The group matrix of an input the fast path takes, or None (the reference decides)."""
    if not isinstance(x, torch.Tensor) or x.dtype not in STREAMED_DTYPES or x.numel() == 0:
        return None
    if activation and x.dim() == 0:
        return None
    granularity = conventions.activation_granularity if activation else conventions.weight_granularity
    return group_matrix(x, granularity)


def _statistic(matrix: GroupMatrix, statistic: Statistic) -> torch.Tensor | None:
    """The weight statistic per group as float64 whose float32 rounding equals the reference's
    (exact for absmax), or None for a non-finite input (the reference rejects it)."""
    if statistic is Statistic.ABSMAX:
        peak = group_absmax(matrix)
        return peak if bool(torch.isfinite(peak).all()) else None
    sums = group_sums(matrix, signed=False)
    return absmean_statistic(matrix, sums, torch.float32) if sums.finite else None


def _threshold_codes(matrix: GroupMatrix, above: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
    """int8 codes shaped like ``matrix.rows``: +1 where ``x > above``, -1 where ``x < below``, else 0
    (``above``/``below``: one threshold per row, in the input dtype)."""
    above, below = above.reshape(-1, 1), below.reshape(-1, 1)
    out = new_empty(matrix.rows.shape, torch.int8)
    if fused_kernels.wanted(out.numel()) and fused_kernels.threshold_codes(matrix.rows, above, below, out):
        return out
    for tile in tiles(matrix.n_groups, matrix.group_length):
        block = matrix.rows[tile.rows, tile.columns]
        target = out[tile.rows, tile.columns]
        target.copy_(torch.gt(block, above[tile.rows]))
        target.sub_(torch.lt(block, below[tile.rows]).view(torch.int8))
    return out


def b158_quantize(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    """:func:`qcheck.quantizers.b158_quantize`, streamed: ``RoundClip(W / gamma, -1, 1)``.

    With ``h = gamma / 2`` (exact): code +1 iff ``w > h`` (``w >= h`` when ties go out, SPEC
    CONV-1), -1 iff ``w < -h`` (``w <= -h`` under half-away); 0 everywhere when gamma is 0.
    """
    matrix = _matrix(w, conventions, activation=False)
    statistic = None if matrix is None else _statistic(matrix, conventions.weight_statistic)
    if matrix is None or statistic is None:
        return weights.b158_quantize(w, conventions)
    scale_dtype = scale_dtype_for(w.dtype)
    gamma = apply_eps(statistic, conventions, scale_dtype)
    half = gamma / 2
    dtype = w.dtype
    tie_up = conventions.rounding in (Rounding.HALF_AWAY, Rounding.HALF_UP)
    tie_down = conventions.rounding is Rounding.HALF_AWAY
    above = below_in(half, dtype) if tie_up else floor_in(half, dtype)
    below = above_in(-half, dtype) if tie_down else ceil_in(-half, dtype)
    never = gamma == 0  # the reference's codes are all 0 where the divisor is 0
    above = torch.where(never, torch.tensor(float("inf"), dtype=dtype), above)
    below = torch.where(never, torch.tensor(-float("inf"), dtype=dtype), below)
    codes = _threshold_codes(matrix, above, below)
    return Quantized(codes.reshape(w.shape), gamma.to(scale_dtype).reshape(matrix.scale_shape))


def b1_quantize(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    """:func:`qcheck.quantizers.b1_quantize`, streamed: ``Sign(W - alpha)``, scale beta.

    ``alpha`` is known as an interval ``[low, high]``: ``w > high`` is +1, ``w < low`` is -1; a row
    with an element inside its interval (an all-equal group, a value at the mean) is compared with
    its exact mean, as the reference does (SPEC B1-2), ties getting ``sign_of_zero``.
    """
    matrix = _matrix(w, conventions, activation=False)
    if matrix is None:
        return weights.b1_quantize(w, conventions)
    sums = group_sums(matrix, signed=True)
    if not sums.finite:
        return weights.b1_quantize(w, conventions)
    if conventions.weight_statistic is Statistic.ABSMEAN:
        beta = absmean_statistic(matrix, sums, torch.float32)
    else:
        beta = group_absmax(matrix)
    low, high = sums.mean_interval(signed=True)
    dtype = w.dtype
    above, below = floor_in(high, dtype), ceil_in(low, dtype)
    codes = _threshold_codes(matrix, above, below)
    undecided = _undecided_rows(matrix, codes, below, above)
    if undecided.numel():
        means = exact_row_means(matrix, undecided, absolute=False)
        values = matrix.rows[undecided].to(torch.float64).reshape(-1)
        ids = torch.arange(undecided.numel(), dtype=torch.int64).repeat_interleave(matrix.group_length)
        side = compare_to_mean(values, means, ids).reshape(-1, matrix.group_length)
        tie_code = conventions.sign_of_zero.value
        codes[undecided] = torch.where(side > 0, 1, torch.where(side < 0, -1, tie_code)).to(torch.int8)
    scale_dtype = scale_dtype_for(w.dtype)
    return Quantized(codes.reshape(w.shape), beta.to(scale_dtype).reshape(matrix.scale_shape))


def _undecided_rows(matrix: GroupMatrix, codes: torch.Tensor, below: torch.Tensor, above: torch.Tensor) -> torch.Tensor:
    """Indices (int64) of the rows with an element in ``[below, above]``: those b1 codes are 0
    (b1 codes are otherwise never 0)."""
    if fused_kernels.wanted(codes.numel()):
        inside = fused_kernels.rows_with_inside(matrix.rows, below.reshape(-1, 1), above.reshape(-1, 1))
        if inside is not None:
            return torch.nonzero(inside).flatten()
    found = torch.zeros(codes.shape[0], dtype=torch.bool)
    for tile in tiles(int(codes.shape[0]), int(codes.shape[1])):
        found[tile.rows] |= torch.eq(codes[tile.rows, tile.columns], 0).any(dim=1)
    return torch.nonzero(found).flatten()


def act_quantize(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    """:func:`qcheck.quantizers.act_quantize`, streamed: ``round(x * Qp / a)`` per token, clamped.

    For float32 and narrower input ``x * Qp`` is exact in float64 and the quotient correctly
    rounded, so rounding it decides every code as exact arithmetic does (SPEC ACT-2): the
    reference's exact re-decision near half-integers never changes a float32 quotient.
    """
    matrix = _matrix(x, conventions, activation=True)
    peak = None if matrix is None else group_absmax(matrix)
    if matrix is None or peak is None or not bool(torch.isfinite(peak).all()):
        return activations.act_quantize(x, conventions)
    low, high = code_range(conventions.activation_bits)
    scale_dtype = scale_dtype_for(x.dtype)
    divisor = apply_eps(peak, conventions, scale_dtype)
    safe = torch.where(divisor > 0, divisor, torch.inf).reshape(-1, 1)  # x / inf = 0: code 0
    codes = _act_codes(matrix, safe, conventions.rounding, low, high)
    scale = (divisor / high).to(scale_dtype).reshape(matrix.scale_shape)
    return Quantized(codes.reshape(x.shape), scale)


def _act_codes(matrix: GroupMatrix, divisor: torch.Tensor, rounding: Rounding, low: int, high: int) -> torch.Tensor:
    """int8 ``clamp(round(x * high / divisor), low, high)`` per row, rounding as declared."""
    codes = new_empty(matrix.rows.shape, torch.int8)
    fused = low == -high - 1 and fused_kernels.wanted(codes.numel())
    if fused and fused_kernels.act_codes(matrix.rows, divisor, high, rounding.value, codes):
        return codes
    rounder = _rounder(rounding)
    for tile in tiles(matrix.n_groups, matrix.group_length):
        quotient = matrix.rows[tile.rows, tile.columns].to(torch.float64).mul_(high).div_(divisor[tile.rows])
        codes[tile.rows, tile.columns] = rounder(quotient).clamp_(low, high)
    return codes


def _rounder(rounding: Rounding) -> Callable[[torch.Tensor], torch.Tensor]:
    if rounding is Rounding.HALF_EVEN:
        return torch.Tensor.round_  # half to even, in place
    return lambda q: round_to_integer(q, rounding)
