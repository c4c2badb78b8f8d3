"""Reference weight quantizers: b1 ({-1,+1}, arXiv 2310.11453) and b1.58 ({-1,0,+1}, arXiv
2402.17764), in torch, vectorized, exact.

Codes are decided as exact arithmetic on the input values would decide them (SPEC B1-2, B158-2);
the fake-quant forms return ``code * scale`` rounded once to the input dtype, with the
straight-through gradient.  These are the readable definitions, not fast paths.
"""

from __future__ import annotations

import torch

from qcheck.conventions import DEFAULT, Conventions, Rounding
from qcheck.quantizers.exact import compare_to_mean, exact_group_means
from qcheck.quantizers.grouping import GroupLayout, group_layout
from qcheck.quantizers.results import Quantized
from qcheck.quantizers.statistics import apply_eps, to_dtype_value, weight_statistic
from qcheck.quantizers.ste import straight_through
from qcheck.quantizers.validation import check_float_tensor, scale_dtype_for


def _prepare(op: str, w: torch.Tensor, conventions: Conventions) -> tuple[torch.Tensor, GroupLayout]:
    check_float_tensor(op, w, what="weight", min_ndim=0, allow_empty=False)
    layout = group_layout(op, w.shape, conventions.weight_granularity)
    flat = w.detach().reshape(-1).to(torch.float64)  # row-major copy, exact
    return flat, layout


def _dequantize(codes: torch.Tensor, scale: torch.Tensor, layout: GroupLayout, like: torch.Tensor) -> torch.Tensor:
    per_element = layout.expand(scale.reshape(-1).to(torch.float64), like.shape)
    return (codes.to(torch.float64) * per_element).to(like.dtype)


def b1_quantize(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    """b1 weights: ``codes = Sign(W - alpha)``, ``alpha = mean(W)``, ``scale = beta = mean|W|``.

    b1 paper eq. 2-4: ``Sign(x) = +1 if x > 0 else -1`` (``conventions.sign_of_zero`` for x == 0),
    alpha per the weight granularity.  ``W - alpha`` is compared exactly (``n * w_i`` against the
    exact sum), never after a multiplication that could underflow.  beta is the statistic of the
    *uncentred* W with no eps: b1 never divides by it, so an all-zero W gives beta = 0.
    """
    op = "b1_quantize"
    flat, layout = _prepare(op, w, conventions)
    means = exact_group_means(flat, layout.ids, layout.counts)
    side = compare_to_mean(flat, means, layout.ids)
    tie_code = conventions.sign_of_zero.value
    codes = torch.where(side > 0, 1, torch.where(side < 0, -1, tie_code)).to(torch.int8)
    scale_dtype = scale_dtype_for(w.dtype)
    beta = to_dtype_value(weight_statistic(flat, layout, conventions.weight_statistic), scale_dtype)
    return Quantized(codes.reshape(w.shape), beta.to(scale_dtype).reshape(layout.scale_shape))


def b1_fake_quantize(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    """``codes * beta`` in the input dtype (b1 paper eq. 5's dequantized weight), STE gradient."""
    codes, scale = b1_quantize(w, conventions)
    layout = group_layout("b1_fake_quantize", w.shape, conventions.weight_granularity)
    return straight_through(w, _dequantize(codes, scale, layout, w))


def ternary_codes(flat: torch.Tensor, divisor: torch.Tensor, rounding: Rounding) -> torch.Tensor:
    """``RoundClip(w / divisor, -1, 1)`` exactly, as int8; 0 where the divisor is 0.

    Only the boundary ``|w / divisor| = 0.5`` matters after the clip (1.5 and 2.5 clip to 1 under
    every rounding), and ``2|w|`` against ``divisor`` is an exact comparison in float64.
    """
    twice = 2.0 * flat.abs()
    beyond = twice > divisor
    tie = twice == divisor
    positive = flat > 0
    if rounding is Rounding.HALF_EVEN:
        tie_goes_out = torch.zeros_like(tie)
    elif rounding is Rounding.HALF_AWAY:
        tie_goes_out = tie
    else:  # HALF_UP: +0.5 -> 1, -0.5 -> 0
        tie_goes_out = tie & positive
    magnitude = (beyond | tie_goes_out) & (divisor > 0)
    signs = torch.where(positive, 1, -1)
    return torch.where(magnitude, signs, 0).to(torch.int8)


def b158_quantize(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    """b1.58 weights: ``codes = RoundClip(W / gamma, -1, 1)``, ``scale = gamma``.

    b1.58 paper eq. 1-3 with the FAQ's eps: ``gamma = max(mean|W|, eps)`` by default (the paper's
    ``mean|W| + eps`` under ``EpsMode.ADD``; absmax under ``Statistic.ABSMAX``).  The codes are
    the exact rounding of ``w / gamma`` for the returned (rounded) gamma.
    """
    op = "b158_quantize"
    flat, layout = _prepare(op, w, conventions)
    scale_dtype = scale_dtype_for(w.dtype)
    gamma = apply_eps(weight_statistic(flat, layout, conventions.weight_statistic), conventions, scale_dtype)
    codes = ternary_codes(flat, gamma[layout.ids], conventions.rounding)
    return Quantized(codes.reshape(w.shape), gamma.to(scale_dtype).reshape(layout.scale_shape))


def b158_fake_quantize(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    """``codes * gamma`` in the input dtype (the FAQ's ``weight_quant``), STE gradient."""
    codes, scale = b158_quantize(w, conventions)
    layout = group_layout("b158_fake_quantize", w.shape, conventions.weight_granularity)
    return straight_through(w, _dequantize(codes, scale, layout, w))
