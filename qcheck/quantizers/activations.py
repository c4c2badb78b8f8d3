"""Reference activation quantizers: per-token absmax to b bits (b1.58 FAQ, b1 paper eq. 6-8) and
the b1 paper's zero-point variant for activations before a ReLU; torch, vectorized.

The rounding is decided on the exact quotient ``x * Qp / absmax`` (SPEC ACT-2).  Not a fast path.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from qcheck.conventions import DEFAULT, Conventions
from qcheck.quantizers.exact_rounding import round_once, two_sum
from qcheck.quantizers.grouping import GroupLayout, group_layout
from qcheck.quantizers.results import Quantized, ZeroPointQuantized
from qcheck.quantizers.rounding import round_to_integer
from qcheck.quantizers.statistics import apply_eps, group_absmax, group_min
from qcheck.quantizers.ste import straight_through
from qcheck.quantizers.validation import check_float_tensor, scale_dtype_for


def code_range(bits: int) -> tuple[int, int]:
    """``(-Q, Q - 1)`` with ``Q = 2**(bits - 1)``: the int8 codes' range for ``bits`` bits."""
    q = 2 ** (bits - 1)
    return -q, q - 1


def _shift_for(values: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
    """2**-8 where an operand is so large that ``x * Qp`` could overflow float64, else 1 (scaling
    float64 subnormals would lose their bits)."""
    large = (values.abs() > 2.0**1000) | (divisor > 2.0**1000)
    return torch.where(large, 2.0**-8, 1.0)


HALF_CHECK_WINDOW = 2.0**-40
"""Quotients closer than this (relative) to a half-integer are re-decided exactly.  Float32 and
narrower input never needs it (a non-tie is at least 2**-33 away, SPEC ACT-2); float64 input can:
``fl(fl(x * 127) / a)`` may land on ``k + 1/2`` when the exact ratio does not, or the reverse."""


def exact_quotient(values: torch.Tensor, multiplier: int, divisor: torch.Tensor) -> torch.Tensor:
    """``values * multiplier / divisor`` in float64, on the right side of every half-integer: the
    float64 quotient (for float32 and narrower input the product is exact and the quotient correctly
    rounded, SPEC ACT-2; operands near float64's maximum are scaled by 2**-8 first so that they
    cannot overflow), with each quotient near a half-integer replaced, from exact rational
    arithmetic, by the half-integer itself (an exact tie) or the float64 next to it on the exact
    side.  So rounding the result decides every code as exact arithmetic would, float64 included."""
    shift = _shift_for(values, divisor)
    quotient = (values * shift * multiplier) / (divisor * shift)
    half = torch.floor(quotient) + 0.5
    close = ((quotient - half).abs() <= HALF_CHECK_WINDOW * quotient.abs()) & torch.isfinite(quotient)
    if not bool(close.any()):
        return quotient
    corrected = quotient.clone()
    divisors = divisor.expand_as(values) if divisor.shape != values.shape else divisor
    positions = torch.nonzero(close.reshape(-1)).flatten().tolist()
    flat_values, flat_divisors = values.reshape(-1), divisors.reshape(-1)
    flat_half, flat_out = half.reshape(-1), corrected.view(-1)
    for i in positions:
        exact = Fraction(float(flat_values[i])) * multiplier / Fraction(float(flat_divisors[i]))
        tie = float(flat_half[i])
        if exact == tie:
            flat_out[i] = tie
        else:
            flat_out[i] = math.nextafter(tie, math.inf if exact > tie else -math.inf)
    return corrected


def _prepare(op: str, x: torch.Tensor, conventions: Conventions) -> tuple[torch.Tensor, GroupLayout]:
    check_float_tensor(op, x, what="activation", min_ndim=1, allow_empty=True)
    layout = group_layout(op, x.shape, conventions.activation_granularity)
    return x.detach().reshape(-1).to(torch.float64), layout


def act_quantize(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    """Per-token absmax quantization to ``conventions.activation_bits`` bits.

    FAQ ``activation_quant``: ``s = Qp / max(absmax, eps)`` with ``Qp = 2**(bits-1) - 1`` (127),
    ``codes = clamp(round(x * s), -Q, Q - 1)``; returns the dequantization scale
    ``max(absmax, eps) / Qp`` shaped ``(..., 1)``.  x * Qp is exact in float64 and the quotient
    is correctly rounded, which for float32/16/bf16 input decides every rounding as exact
    arithmetic would (SPEC ACT-2 gives the argument).
    """
    flat, layout = _prepare("act_quantize", x, conventions)
    low, high = code_range(conventions.activation_bits)
    scale_dtype = scale_dtype_for(x.dtype)
    divisor = apply_eps(group_absmax(flat, layout), conventions, scale_dtype)
    per_element = divisor[layout.ids]
    safe = torch.where(per_element > 0, per_element, 1.0)
    quotient = torch.where(per_element > 0, exact_quotient(flat, high, safe), 0.0)
    codes = round_to_integer(quotient, conventions.rounding).clamp(low, high).to(torch.int8)
    scale = (divisor / high).to(scale_dtype).reshape(layout.scale_shape)
    return Quantized(codes.reshape(x.shape), scale)


def act_fake_quantize(x: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    """``code * a / Qp`` (``a = max(absmax, eps)``) rounded once to the input dtype, STE gradient
    (the FAQ's ``activation_quant``); equal to ``codes * scale`` up to the rounding of the scale."""
    codes, _ = act_quantize(x, conventions)
    flat, layout = _prepare("act_fake_quantize", x, conventions)
    high = code_range(conventions.activation_bits)[1]
    divisor = apply_eps(group_absmax(flat, layout), conventions, scale_dtype_for(x.dtype))
    return straight_through(x, dequantize_exactly(codes, layout.expand(divisor, x.shape), high, x.dtype))


def dequantize_exactly(codes: torch.Tensor, divisor: torch.Tensor, code_max: int, dtype: torch.dtype) -> torch.Tensor:
    """``code * divisor / code_max`` rounded once to ``dtype``: the largest code maps back to
    exactly the divisor (``code * fl(divisor / code_max)`` can round past the dtype's maximum).

    For float32 and narrower divisors ``code * divisor`` is exact in float64 and the rounding is
    corrected against exact midpoint comparisons; for float64 it is two roundings (SPEC ACT-4).
    """
    c = codes.to(torch.float64)
    shift = _shift_for(c, divisor)
    approximation = c * (divisor * shift) / code_max / shift
    approximation = torch.sign(approximation) * torch.minimum(approximation.abs(), divisor)
    numerator = c * divisor  # exact for float32 and narrower divisors

    def side(midpoint: torch.Tensor) -> torch.Tensor:
        return torch.sign(numerator - midpoint * code_max)  # midpoint * code_max is exact

    return round_once(approximation, dtype, side)


def act_quantize_zero_point(x: torch.Tensor, conventions: Conventions = DEFAULT) -> ZeroPointQuantized:
    """The b1 paper's variant for activations before a non-linearity (eq. 9).

    ``eta = min x`` and ``gamma = max(absmax, eps)`` per token, ``Q_b = 2**(bits-1)``;
    ``codes = clip(round((x - eta) * Q_b / gamma), 0, Q_b)`` as uint8, ``scale = gamma / Q_b``,
    ``zero_point = eta``: value ~ codes * scale + zero_point.  As in the paper, gamma is the
    absmax, so a token whose range exceeds its absmax clips at Q_b.
    """
    flat, layout = _prepare("act_quantize_zero_point", x, conventions)
    q_b = 2 ** (conventions.activation_bits - 1)
    scale_dtype = scale_dtype_for(x.dtype)
    gamma = apply_eps(group_absmax(flat, layout), conventions, scale_dtype)
    eta = group_min(flat, layout)
    eta = torch.where(torch.isfinite(eta), eta, 0.0)  # empty groups
    per_gamma = gamma[layout.ids]
    safe = torch.where(per_gamma > 0, per_gamma, 1.0)
    # x - eta is not exact in float64 when a tiny eta sits beside large values: keep it as
    # high + low (TwoSum) and decide the one half-integer that float64 could misjudge exactly.
    high, low = two_sum(flat, -eta[layout.ids])
    lower = torch.floor(exact_quotient(high, q_b, safe))
    half = lower + 0.5
    shift = _shift_for(high, safe)  # keeps high * q_b finite near float64's maximum
    side = torch.sign((high * shift * q_b - half * (safe * shift)) + low * shift * q_b)  # sign(q - half)
    rounded = torch.where(
        side > 0, lower + 1, torch.where(side < 0, lower, round_to_integer(half, conventions.rounding))
    )
    codes = torch.where(per_gamma > 0, rounded, 0.0).clamp(0, q_b).to(torch.uint8)
    scale = (gamma / q_b).to(scale_dtype).reshape(layout.scale_shape)
    zero_point = eta.to(scale_dtype).reshape(layout.scale_shape)
    return ZeroPointQuantized(codes.reshape(x.shape), scale, zero_point)


def act_fake_quantize_zero_point(x: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    """``codes * scale + zero_point`` in the input dtype, STE gradient."""
    codes, scale, zero_point = act_quantize_zero_point(x, conventions)
    layout = group_layout("act_fake_quantize_zero_point", x.shape, conventions.activation_granularity)
    s = layout.expand(scale.reshape(-1).to(torch.float64), x.shape)
    z = layout.expand(zero_point.reshape(-1).to(torch.float64), x.shape)
    high, low = two_sum(codes.to(torch.float64) * s, z)  # code * scale is exact; the sum is high + low

    def side(midpoint: torch.Tensor) -> torch.Tensor:
        return torch.sign((high - midpoint) + low)

    return straight_through(x, round_once(high, x.dtype, side))
