"""An independent numpy twin of the torch reference quantizers, for differential tests only.

Every decision is exact rational arithmetic on Python integers and every rounding goes through one
hand-written round-to-nearest-even routine; it imports neither torch nor the torch reference, and
shares none of its algorithms.  It is slow and it is not a definition: the torch modules are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from qcheck.conventions import (
    DEFAULT,
    Conventions,
    EpsMode,
    Granularity,
    GranularityKind,
    Rounding,
    Statistic,
)
from qcheck.errors import QuantizationInputError

FloatArray = npt.NDArray[np.floating[Any]]


# --------------------------------------------------------------------------------------------
# Binary floating-point formats and exact rounding into them
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: ``precision`` significand bits (with the implicit one),
    smallest normal ``2**min_exponent``, largest finite value below ``2**(max_exponent + 1)``."""

    name: str
    precision: int
    min_exponent: int
    max_exponent: int
    numpy_dtype: type[np.floating[Any]]
    """The numpy dtype that holds this format's values exactly (float32 for bfloat16)."""


FLOAT16 = FloatFormat("float16", 11, -14, 15, np.float16)
BFLOAT16 = FloatFormat("bfloat16", 8, -126, 127, np.float32)
FLOAT32 = FloatFormat("float32", 24, -126, 127, np.float32)
FLOAT64 = FloatFormat("float64", 53, -1022, 1023, np.float64)
_FORMATS = {f.name: f for f in (FLOAT16, BFLOAT16, FLOAT32, FLOAT64)}
_NUMPY_FORMATS = {
    np.dtype(np.float16): FLOAT16,
    np.dtype(np.float32): FLOAT32,
    np.dtype(np.float64): FLOAT64,
}


def round_to_format(value: Fraction, fmt: FloatFormat) -> float:
    """``value`` rounded to the nearest ``fmt`` value, ties to even, as an exact Python float.

    Subnormals are kept (the quantum never goes below ``2**(min_exponent - precision + 1)``);
    a result at or beyond ``2**(max_exponent + 1)`` is infinite; an underflow keeps its sign.
    """
    if value == 0:
        return 0.0
    negative = value < 0
    num, den = abs(value.numerator), value.denominator
    exponent = num.bit_length() - den.bit_length()  # floor(log2(value)) is this or one less
    if (num << max(0, -exponent)) < (den << max(0, exponent)):
        exponent -= 1
    shift = fmt.precision - 1 - max(exponent, fmt.min_exponent)  # the quantum is 2**-shift
    scaled_num, scaled_den = (num << shift, den) if shift >= 0 else (num, den << -shift)
    significand, remainder = divmod(scaled_num, scaled_den)
    if 2 * remainder > scaled_den or (2 * remainder == scaled_den and significand & 1):
        significand += 1
    if significand == 0:
        return -0.0 if negative else 0.0
    if significand.bit_length() - 1 - shift > fmt.max_exponent:
        return -math.inf if negative else math.inf
    magnitude = math.ldexp(significand, -shift)  # exact: significand < 2**53, in float64 range
    return -magnitude if negative else magnitude


def round_rational(value: Fraction, fmt: FloatFormat) -> Fraction:
    """``value`` rounded to ``fmt``, as an exact Fraction (finite results only)."""
    rounded = round_to_format(value, fmt)
    if math.isinf(rounded):
        raise OverflowError(f"{value} overflows {fmt.name}")
    return Fraction(rounded)


def round_to_integer(num: int, den: int, rounding: Rounding) -> int:
    """``num / den`` (``den > 0``) rounded to an integer, ties per ``rounding`` (SPEC CONV-1).

    ``divmod`` gives the exact floor and remainder; the tie is ``2 * remainder == den``.
    """
    floor, remainder = divmod(num, den)
    twice = 2 * remainder
    if twice < den:
        return floor
    if twice > den:
        return floor + 1
    if rounding is Rounding.HALF_EVEN:
        return floor + (floor & 1)
    if rounding is Rounding.HALF_AWAY:
        return floor + 1 if num > 0 else floor
    return floor + 1  # HALF_UP: towards +inf


# --------------------------------------------------------------------------------------------
# Input policy (SPEC IN-1..IN-5) and groups (SPEC CONV-4)
# --------------------------------------------------------------------------------------------


def _input_format(op: str, x: object, what: str, source_dtype: str | None) -> FloatFormat:
    """The format of ``x``'s values, after checking its dtype and ``source_dtype`` agree."""
    if not isinstance(x, np.ndarray):
        raise QuantizationInputError(f"{op}: {what} must be a numpy.ndarray, got {type(x).__name__}")
    fmt = _NUMPY_FORMATS.get(x.dtype)
    if fmt is None:
        raise QuantizationInputError(
            f"{op}: {what} dtype {x.dtype} is not supported; use float16, float32 or float64 "
            "(bfloat16 as float32 with source_dtype='bfloat16')"
        )
    if source_dtype is None:
        return fmt
    declared = _FORMATS.get(source_dtype.removeprefix("torch."))
    if declared is None or declared.numpy_dtype is not fmt.numpy_dtype:
        raise QuantizationInputError(f"{op}: source_dtype {source_dtype!r} cannot be held by a {x.dtype} array")
    if declared is BFLOAT16:
        low_bits = np.ascontiguousarray(x).view(np.uint32) & np.uint32(0xFFFF)
        if bool(low_bits.any()):
            raise QuantizationInputError(
                f"{op}: {what} declared bfloat16 holds {int(np.count_nonzero(low_bits))} float32 "
                "value(s) that are not bfloat16 values"
            )
    return declared


def _check_finite(op: str, x: FloatArray, what: str) -> None:
    bad = ~np.isfinite(x)
    if bool(bad.any()):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise QuantizationInputError(
            f"{op}: {what} contains {int(bad.sum())} non-finite value(s) (NaN or Inf); "
            f"first at index {first}: {x[first]!r}. Quantizing them has no defined result"
        )


def _check_weight(op: str, w: object, source_dtype: str | None) -> FloatFormat:
    fmt = _input_format(op, w, "weight", source_dtype)
    assert isinstance(w, np.ndarray)
    if w.size == 0:
        raise QuantizationInputError(f"{op}: weight of shape {w.shape} has no elements")
    _check_finite(op, w, "weight")
    return fmt


def _check_activation(op: str, x: object, source_dtype: str | None) -> FloatFormat:
    fmt = _input_format(op, x, "activation", source_dtype)
    assert isinstance(x, np.ndarray)
    if x.ndim == 0:
        raise QuantizationInputError(f"{op}: activation needs at least 1 dimension(s), got shape ()")
    if x.shape[-1] == 0 and math.prod(x.shape[:-1]) > 0:
        raise QuantizationInputError(
            f"{op}: activation of shape {x.shape} has rows of length 0; "
            "the last dimension must have at least one element"
        )
    _check_finite(op, x, "activation")
    return fmt


@dataclasses.dataclass(frozen=True)
class Groups:
    """Consecutive ``[start, stop)`` slices of the row-major flat tensor, one per scale, in the
    scale's row-major order, and the scale's shape."""

    bounds: tuple[tuple[int, int], ...]
    scale_shape: tuple[int, ...]


def groups_of(op: str, shape: tuple[int, ...], granularity: Granularity) -> Groups:
    """The groups of a tensor of ``shape``: per tensor one group, scale shape ``()``; per row the
    rows of the last dimension, ``shape[:-1] + (1,)``; per group of G the runs of G along each
    row (the last one shorter), ``shape[:-1] + (ceil(K / G),)``."""
    numel = math.prod(shape)
    if granularity.kind is GranularityKind.PER_TENSOR:
        return Groups(((0, numel),), ())
    if not shape:
        raise QuantizationInputError(f"{op}: a 0-d tensor has no rows; {granularity} needs at least 1-D")
    k = shape[-1]
    rows = numel // k if k else 0
    if granularity.kind is GranularityKind.PER_ROW:
        return Groups(tuple((r * k, r * k + k) for r in range(rows)), (*shape[:-1], 1))
    size = granularity.group_size
    assert size is not None
    starts = range(0, k, size)
    bounds = tuple((r * k + s, r * k + min(s + size, k)) for r in range(rows) for s in starts)
    return Groups(bounds, (*shape[:-1], len(starts)))


# --------------------------------------------------------------------------------------------
# Exact values and statistics
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExactValues:
    """The input's values in row-major order as integers over one power-of-two denominator:
    ``value[i] == numerators[i] / denominator`` exactly."""

    numerators: list[int]
    denominator: int

    def fraction(self, i: int) -> Fraction:
        return Fraction(self.numerators[i], self.denominator)


def exact_values(x: FloatArray) -> ExactValues:
    """Exact integers from ``float.as_integer_ratio`` (denominators are powers of two), brought
    to their largest denominator by shifting: no rounding anywhere."""
    floats = np.asarray(x, dtype=np.float64).ravel(order="C").tolist()  # float16/32 -> 64 is exact
    ratios = [f.as_integer_ratio() for f in floats]
    denominator = max((d for _, d in ratios), default=1)
    return ExactValues([n * (denominator // d) for n, d in ratios], denominator)


def _scale_format(fmt: FloatFormat) -> FloatFormat:
    """Scales are float32, or float64 for float64 input (SPEC SCALE-1)."""
    return FLOAT64 if fmt is FLOAT64 else FLOAT32


def _to_scale(value: Fraction, scale_fmt: FloatFormat) -> Fraction:
    """An exact statistic rounded to the nearest float64 and then to the scale format, as the
    SPEC defines the stored statistic (two roundings on purpose: SPEC SCALE-2)."""
    return round_rational(round_rational(value, FLOAT64), scale_fmt)


def _absmean(values: ExactValues, start: int, stop: int) -> Fraction:
    """``mean |v|`` exactly (b1 paper eq. 4, b1.58 paper eq. 3); 0 for an empty group."""
    count = stop - start
    if count == 0:
        return Fraction(0)
    total = sum(abs(n) for n in values.numerators[start:stop])
    return Fraction(total, count * values.denominator)


def _absmax(values: ExactValues, start: int, stop: int) -> Fraction:
    """``max |v|`` exactly; 0 for an empty group."""
    largest = max((abs(n) for n in values.numerators[start:stop]), default=0)
    return Fraction(largest, values.denominator)


def _minimum(values: ExactValues, start: int, stop: int) -> Fraction:
    """``min v`` exactly; 0 for an empty group."""
    smallest = min(values.numerators[start:stop], default=0)
    return Fraction(smallest, values.denominator)


def apply_eps(statistic: Fraction, conventions: Conventions, scale_fmt: FloatFormat) -> Fraction:
    """The divisor, exactly: ``s = fl(stat)``, ``e = fl(eps)``; CLAMP ``max(s, e)`` (FAQ
    ``.clamp(min=1e-5)``), ADD ``fl(s + e)`` (b1.58 paper eq. 1), NONE ``s``.

    ``fl`` rounds to the scale format.  ADD rounds the exact sum once; the SPEC's float64 sum
    then rounded is the same value (two float32 values sum exactly in float64 unless one is
    below 2**-29 of the other, and then both roundings give the larger one).
    """
    stat = _to_scale(statistic, scale_fmt)
    eps = round_rational(Fraction(conventions.eps), scale_fmt)
    if conventions.eps_mode is EpsMode.CLAMP:
        return max(stat, eps)
    if conventions.eps_mode is EpsMode.ADD:
        return round_rational(stat + eps, scale_fmt)
    return stat


def _weight_statistic(values: ExactValues, start: int, stop: int, statistic: Statistic) -> Fraction:
    if statistic is Statistic.ABSMAX:
        return _absmax(values, start, stop)
    return _absmean(values, start, stop)


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


class TwinQuantized(NamedTuple):
    """``codes`` (int8, the input's shape) and ``scale`` (value ~ codes * scale)."""

    codes: npt.NDArray[np.int8]
    scale: FloatArray


class TwinZeroPointQuantized(NamedTuple):
    """``codes`` (uint8), ``scale`` and ``zero_point``: value ~ codes * scale + zero_point."""

    codes: npt.NDArray[np.uint8]
    scale: FloatArray
    zero_point: FloatArray


def _scale_array(values: Sequence[Fraction], fmt: FloatFormat, shape: tuple[int, ...]) -> FloatArray:
    floats = [float(v) for v in values]  # every value is a fmt value: exact
    return np.array(floats, dtype=np.float64).astype(fmt.numpy_dtype).reshape(shape)


def _fake_array(
    codes: Sequence[int],
    group_of: Sequence[int],
    value: Callable[[int, int], Fraction],
    fmt: FloatFormat,
    shape: tuple[int, ...],
) -> FloatArray:
    """``value(group, code)`` rounded once to ``fmt`` for every element (cached per pair)."""
    cache: dict[tuple[int, int], float] = {}
    out: list[float] = []
    for code, group in zip(codes, group_of, strict=True):
        key = (group, code)
        if key not in cache:
            cache[key] = round_to_format(value(group, code), fmt)
        out.append(cache[key])
    return np.array(out, dtype=np.float64).astype(fmt.numpy_dtype).reshape(shape)


def _group_index(groups: Groups, numel: int) -> list[int]:
    index = [0] * numel
    for g, (start, stop) in enumerate(groups.bounds):
        index[start:stop] = [g] * (stop - start)
    return index


# --------------------------------------------------------------------------------------------
# Weights: b1 (arXiv 2310.11453) and b1.58 (arXiv 2402.17764)
# --------------------------------------------------------------------------------------------


def b1_quantize(w: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None) -> TwinQuantized:
    """b1 weights: ``codes = Sign(W - alpha)``, ``alpha = mean(W)``, ``scale = beta = mean|W|``.

    b1 paper eq. 2-4.  ``Sign(w_i - alpha)`` is ``sign(n * w_i - sum(W))`` on exact integers,
    ``conventions.sign_of_zero`` on equality.  beta: the weight statistic of the uncentred W,
    rounded to float64 then to the scale dtype, with no eps (b1 never divides by it).
    """
    op = "b1_quantize"
    fmt = _check_weight(op, w, source_dtype)
    groups = groups_of(op, w.shape, conventions.weight_granularity)
    values = exact_values(w)
    scale_fmt = _scale_format(fmt)
    codes: list[int] = []
    betas: list[Fraction] = []
    tie = conventions.sign_of_zero.value
    for start, stop in groups.bounds:
        count = stop - start
        total = sum(values.numerators[start:stop])
        for n in values.numerators[start:stop]:
            side = count * n - total  # n_group * w_i - sum, times the common denominator
            codes.append(1 if side > 0 else -1 if side < 0 else tie)
        betas.append(_to_scale(_weight_statistic(values, start, stop, conventions.weight_statistic), scale_fmt))
    return TwinQuantized(
        np.array(codes, dtype=np.int8).reshape(w.shape),
        _scale_array(betas, scale_fmt, groups.scale_shape),
    )


def b1_fake_quantize(
    w: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None
) -> FloatArray:
    """``codes * beta`` rounded once to the input dtype (b1 paper eq. 5's dequantized weight)."""
    return _weight_fake(b1_quantize, "b1_fake_quantize", w, conventions, source_dtype)


def b158_quantize(
    w: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None
) -> TwinQuantized:
    """b1.58 weights: ``codes = RoundClip(W / gamma, -1, 1)``, ``scale = gamma``.

    b1.58 paper eq. 1-3 with the declared eps: ``gamma = apply_eps(statistic)``.  After the clip
    only ``|w| / gamma`` against 1/2 matters: beyond it the code is ``sign(w)``; exactly on it
    the rounding decides (half-even: 0, half-away: ``sign(w)``, half-up: 1 for positive w only);
    a zero gamma gives code 0.  Compared as ``2 * |n_i| * den(gamma)`` against
    ``num(gamma) * D`` on exact integers.
    """
    op = "b158_quantize"
    fmt = _check_weight(op, w, source_dtype)
    groups = groups_of(op, w.shape, conventions.weight_granularity)
    values = exact_values(w)
    scale_fmt = _scale_format(fmt)
    codes: list[int] = []
    gammas: list[Fraction] = []
    for start, stop in groups.bounds:
        statistic = _weight_statistic(values, start, stop, conventions.weight_statistic)
        gamma = apply_eps(statistic, conventions, scale_fmt)
        gammas.append(gamma)
        threshold = gamma.numerator * values.denominator  # gamma/2 < |w|  <=>  threshold < 2|n|*den
        for n in values.numerators[start:stop]:
            twice = 2 * abs(n) * gamma.denominator
            if gamma == 0 or twice < threshold:
                codes.append(0)
            elif twice > threshold or _tie_goes_out(conventions.rounding, n > 0):
                codes.append(1 if n > 0 else -1)
            else:
                codes.append(0)
    return TwinQuantized(
        np.array(codes, dtype=np.int8).reshape(w.shape),
        _scale_array(gammas, scale_fmt, groups.scale_shape),
    )


def _tie_goes_out(rounding: Rounding, positive: bool) -> bool:
    """Whether ``+-1/2`` rounds to ``+-1`` (not 0) under ``rounding``."""
    if rounding is Rounding.HALF_AWAY:
        return True
    if rounding is Rounding.HALF_UP:
        return positive
    return False


def b158_fake_quantize(
    w: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None
) -> FloatArray:
    """``codes * gamma`` rounded once to the input dtype (the FAQ's ``weight_quant``)."""
    return _weight_fake(b158_quantize, "b158_fake_quantize", w, conventions, source_dtype)


def _weight_fake(
    quantize: Callable[..., TwinQuantized],
    op: str,
    w: FloatArray,
    conventions: Conventions,
    source_dtype: str | None,
) -> FloatArray:
    fmt = _check_weight(op, w, source_dtype)
    codes, scale = quantize(w, conventions, source_dtype=source_dtype)
    groups = groups_of(op, w.shape, conventions.weight_granularity)
    scales = [Fraction(float(s)) for s in scale.ravel().tolist()]
    return _fake_array(
        codes.ravel().tolist(),
        _group_index(groups, w.size),
        lambda g, c: c * scales[g],
        fmt,
        w.shape,
    )


# --------------------------------------------------------------------------------------------
# Activations: absmax per token (b1.58 FAQ; b1 paper eq. 6-8) and zero-point (b1 paper eq. 9)
# --------------------------------------------------------------------------------------------


def act_quantize(
    x: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None
) -> TwinQuantized:
    """Absmax quantization to ``b = conventions.activation_bits`` bits, per token or per tensor.

    ``Qp = 2**(b-1) - 1``; ``a = apply_eps(max |x|)``; ``codes = clamp(round(x * Qp / a), -2**(b-1),
    Qp)`` with the quotient rounded exactly (``divmod`` on integers), 0 where ``a == 0``;
    ``scale = fl(fl64(a / Qp))``.
    """
    op = "act_quantize"
    fmt = _check_activation(op, x, source_dtype)
    groups = groups_of(op, x.shape, conventions.activation_granularity)
    values = exact_values(x)
    scale_fmt = _scale_format(fmt)
    q_p = 2 ** (conventions.activation_bits - 1) - 1
    low = -(2 ** (conventions.activation_bits - 1))
    codes: list[int] = []
    scales: list[Fraction] = []
    for start, stop in groups.bounds:
        a = apply_eps(_absmax(values, start, stop), conventions, scale_fmt)
        for n in values.numerators[start:stop]:
            if a == 0:
                codes.append(0)
                continue
            # x * Qp / a = (n / D) * Qp * den(a) / num(a)
            q = round_to_integer(n * q_p * a.denominator, values.denominator * a.numerator, conventions.rounding)
            codes.append(min(max(q, low), q_p))
        scales.append(round_rational(round_rational(a / q_p, FLOAT64), scale_fmt))
    return TwinQuantized(
        np.array(codes, dtype=np.int8).reshape(x.shape),
        _scale_array(scales, scale_fmt, groups.scale_shape),
    )


def act_fake_quantize(
    x: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None
) -> FloatArray:
    """``code * a / Qp`` (``a = apply_eps(max |x|)``, the divisor) rounded once to the input
    dtype: the largest code maps back to exactly ``a`` (SPEC ACT-4)."""
    op = "act_fake_quantize"
    fmt = _check_activation(op, x, source_dtype)
    codes, _ = act_quantize(x, conventions, source_dtype=source_dtype)
    groups = groups_of(op, x.shape, conventions.activation_granularity)
    values = exact_values(x)
    scale_fmt = _scale_format(fmt)
    q_p = 2 ** (conventions.activation_bits - 1) - 1
    steps = [apply_eps(_absmax(values, start, stop), conventions, scale_fmt) / q_p for start, stop in groups.bounds]
    return _fake_array(
        codes.ravel().tolist(),
        _group_index(groups, x.size),
        lambda g, c: c * steps[g],
        fmt,
        x.shape,
    )


def act_quantize_zero_point(
    x: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None
) -> TwinZeroPointQuantized:
    """The b1 paper's variant for activations before a non-linearity (eq. 9).

    ``Q_b = 2**(b-1)``, ``gamma = apply_eps(max |x|)``, ``eta = min x``;
    ``codes = clip(round((x - eta) * Q_b / gamma), 0, Q_b)`` exactly (0 where gamma == 0), as
    uint8; ``scale = fl(fl64(gamma / Q_b))``, ``zero_point = fl(eta)``.
    """
    op = "act_quantize_zero_point"
    fmt = _check_activation(op, x, source_dtype)
    groups = groups_of(op, x.shape, conventions.activation_granularity)
    values = exact_values(x)
    scale_fmt = _scale_format(fmt)
    q_b = 2 ** (conventions.activation_bits - 1)
    codes: list[int] = []
    scales: list[Fraction] = []
    zero_points: list[Fraction] = []
    for start, stop in groups.bounds:
        gamma = apply_eps(_absmax(values, start, stop), conventions, scale_fmt)
        eta = min(values.numerators[start:stop], default=0)  # over the common denominator
        for n in values.numerators[start:stop]:
            if gamma == 0:
                codes.append(0)
                continue
            num = (n - eta) * q_b * gamma.denominator
            q = round_to_integer(num, values.denominator * gamma.numerator, conventions.rounding)
            codes.append(min(max(q, 0), q_b))
        scales.append(round_rational(round_rational(gamma / q_b, FLOAT64), scale_fmt))
        zero_points.append(round_rational(Fraction(eta, values.denominator), scale_fmt))
    return TwinZeroPointQuantized(
        np.array(codes, dtype=np.uint8).reshape(x.shape),
        _scale_array(scales, scale_fmt, groups.scale_shape),
        _scale_array(zero_points, scale_fmt, groups.scale_shape),
    )


def act_fake_quantize_zero_point(
    x: FloatArray, conventions: Conventions = DEFAULT, *, source_dtype: str | None = None
) -> FloatArray:
    """``codes * scale + zero_point`` rounded once to the input dtype."""
    op = "act_fake_quantize_zero_point"
    fmt = _check_activation(op, x, source_dtype)
    codes, scale, zero_point = act_quantize_zero_point(x, conventions, source_dtype=source_dtype)
    groups = groups_of(op, x.shape, conventions.activation_granularity)
    scales = [Fraction(float(s)) for s in scale.ravel().tolist()]
    points = [Fraction(float(z)) for z in zero_point.ravel().tolist()]
    return _fake_array(
        codes.ravel().tolist(),
        _group_index(groups, x.size),
        lambda g, c: c * scales[g] + points[g],
        fmt,
        x.shape,
    )


__all__ = [
    "BFLOAT16",
    "FLOAT16",
    "FLOAT32",
    "FLOAT64",
    "FloatFormat",
    "Groups",
    "TwinQuantized",
    "TwinZeroPointQuantized",
    "act_fake_quantize",
    "act_fake_quantize_zero_point",
    "act_quantize",
    "act_quantize_zero_point",
    "apply_eps",
    "b1_fake_quantize",
    "b1_quantize",
    "b158_fake_quantize",
    "b158_quantize",
    "exact_values",
    "groups_of",
    "round_rational",
    "round_to_format",
    "round_to_integer",
]
