"""Input tensors of the golden cases: one builder per edge family, deterministic per seed key.

The families mirror :mod:`qcheck.strategies` (ties, all-equal, zero rows, subnormals, extremes,
outliers, ...) but draw from :class:`~qcheck.golden.rng.SplitMix64` instead of Hypothesis, so a
case's input never changes.  Nothing here quantizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Literal

import torch

from qcheck.golden.rng import SplitMix64

Shape = tuple[int, ...]
CodeFamily = Literal["b1", "b158", "act"]
Builder = Callable[[SplitMix64, Shape, torch.dtype, CodeFamily], list[float]]

_SIMPLE = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.25, -0.25, 1.5, -1.5, 3.0, 0.75)
_EQUAL_VALUES = (0.3, 0.1, -0.7, 1 / 3, 0.2, -0.3, 2 / 3, 1.0, -0.5)
_GAMMA_MANTISSAS = (Fraction(1), Fraction(3, 2), Fraction(5, 4), Fraction(7, 4))
_ACT_QP = 127  # DEFAULT.activation_bits == 8


def _finfo(dtype: torch.dtype) -> tuple[float, float, float, int]:
    """``(max, smallest normal, smallest subnormal, top)`` with every finite |v| < 2**top."""
    info = torch.finfo(dtype)
    return info.max, info.tiny, info.tiny * info.eps, math.frexp(info.max)[1]


def to_dtype(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (torch's cast), as a Python float."""
    return float(torch.tensor(value, dtype=torch.float64).to(dtype))


def _rows(shape: Shape) -> list[range]:
    """Flat row-major index ranges of the rows (last dimension); a 0-d tensor is one row."""
    k = shape[-1] if shape else 1
    n = math.prod(shape)
    return [range(start, start + k) for start in range(0, n, k)] if k else []


def _general(rng: SplitMix64, n: int) -> list[float]:
    """Simple values (0, ±1/2, ±1.5, ...) mixed with uniform ones in [-4, 4)."""
    return [rng.choice(_SIMPLE) if rng.integer(0, 3) == 0 else rng.uniform(-4.0, 4.0) for _ in range(n)]


def general(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    return _general(rng, math.prod(shape))


def all_zero(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """Every element zero, with a -0.0 wherever the index is odd (zero statistic, Sign(0))."""
    return [-0.0 if i % 2 else 0.0 for i in range(math.prod(shape))]


def zero_rows(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """General values with every other row (the first included) exactly ±0."""
    values = _general(rng, math.prod(shape))
    for r, row in enumerate(_rows(shape)):
        if r % 2 == 0:
            for i in row:
                values[i] = -0.0 if r % 4 else 0.0
    return values


def all_equal(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """One value (0.3, 1/3, ... rounded to the dtype) everywhere: b1's ``W == mean(W)`` trap."""
    return [to_dtype(rng.choice(_EQUAL_VALUES), dtype)] * math.prod(shape)


def constant_rows(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """Each row (token) one value of its own."""
    values = [0.0] * math.prod(shape)
    for row in _rows(shape):
        value = to_dtype(rng.choice(_EQUAL_VALUES) * rng.choice((1.0, 2.0, 0.5, -4.0)), dtype)
        for i in row:
            values[i] = value
    return values


def one_hot(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """Each row zero but for one non-zero element."""
    values = [0.0] * math.prod(shape)
    for row in _rows(shape):
        values[row[rng.integer(0, len(row) - 1)]] = rng.sign() * rng.uniform(0.0625, 4.0)
    return values


def subnormal(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """Subnormals (j x smallest, tiny/2, tiny - smallest, ...), zeros, the smallest normals and
    ``u = 2**floor(log2(smallest)/2)``, whose square underflows; element 0 is always subnormal."""
    _, tiny, sub, _ = _finfo(dtype)
    u = math.ldexp(1.0, (math.frexp(sub)[1] - 1) // 2)
    strict = [j * sub for j in range(1, 9)] + [tiny / 2, tiny / 4, 3 * tiny / 4, tiny - sub]
    pool = [*strict, 0.0, tiny, 2 * tiny, 1.5 * tiny, u, 1.5 * u, 0.75 * u]
    n = math.prod(shape)
    return [rng.sign() * rng.choice(strict if i == 0 else pool) for i in range(n)]


def extreme(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """Values near the dtype's maximum (max, max/2, 1.5 * 2**(top-1), ...) mixed with moderate
    ones; element 0 is always +-max: a sum or ``x * 127`` in the input dtype overflows."""
    largest, _, _, top = _finfo(dtype)
    big = math.ldexp(1.0, top - 1)
    huge = [largest, largest / 2, big, 1.5 * big, largest / 4, largest / 8, largest / 16]
    values = [rng.sign() * (rng.choice(huge) if rng.integer(0, 1) else abs(v)) for v in _general(rng, math.prod(shape))]
    if values:
        values[0] = rng.sign() * largest
    return values


def outliers(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """Small values ``|v| <= 2**e`` and one or two outliers ``(1 or 1.5) * 2**(e + r)``: the
    statistic is dominated by the outlier and most codes become 0."""
    _, _, _, top = _finfo(dtype)
    ratio = 14 if top <= 16 else 20
    exponent = min(0, top - 2 - ratio)
    values = [math.ldexp(rng.uniform(-1.0, 1.0), exponent) for _ in range(math.prod(shape))]
    for _ in range(min(len(values), rng.integer(1, 2))):
        values[rng.integer(0, len(values) - 1)] = rng.sign() * math.ldexp(rng.choice((1.0, 1.5)), exponent + ratio)
    return values


def near_eps(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """General values scaled by a power of two so the largest lands within a factor 8 of eps
    (1e-5): where clamp, add and no eps differ."""
    values = _general(rng, math.prod(shape))
    largest = max((abs(v) for v in values), default=0.0)
    if largest == 0.0:
        return values
    k = rng.integer(-3, 3) + math.floor(math.log2(1e-5)) - math.floor(math.log2(largest))
    return [math.ldexp(v, k) for v in values]


def mixed(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """``+-m * 2**e``, m in {1, 1.25, 1.5, 1.75}, e over up to 49 binades, both signs."""
    _, tiny, _, top = _finfo(dtype)
    low, high = max(math.frexp(tiny)[1] + 1, -24), min(top - 3, 24)
    n = math.prod(shape)
    values = [rng.sign() * math.ldexp(rng.choice((1.0, 1.25, 1.5, 1.75)), rng.integer(low, high)) for _ in range(n)]
    if n >= 2:
        values[0], values[1] = abs(values[0]), -abs(values[1])
    return values


def _absmean_tie_magnitudes(rng: SplitMix64, n: int) -> list[Fraction]:
    """``n`` magnitudes (units of gamma) with exact mean 1, holding the ties 1/2 and 3/2 when
    ``n >= 2``: concatenated units each summing to their length."""
    units: tuple[tuple[Fraction, ...], ...] = (
        (Fraction(1, 2), Fraction(3, 2)),
        (Fraction(1),),
        (Fraction(0), Fraction(2)),
        (Fraction(1, 2), Fraction(1, 2), Fraction(1), Fraction(2)),
        (Fraction(1, 2), Fraction(5, 2)),
    )
    mags: list[Fraction] = list(units[0]) if n >= 2 else []
    while len(mags) < n:
        unit = rng.choice([u for u in units if len(u) <= n - len(mags)])
        mags += unit
    return rng.shuffled(mags)


def _b158_ties(rng: SplitMix64, shape: Shape) -> list[Fraction]:
    """Weights with ``mean|W| = gamma = c * 2**k`` exactly and elements at +-gamma/2, +-3gamma/2."""
    gamma = rng.choice(_GAMMA_MANTISSAS) * Fraction(2) ** rng.integer(-2, 2)
    mags = _absmean_tie_magnitudes(rng, math.prod(shape))
    return [m * gamma * int(rng.sign()) for m in mags]


def _b1_ties(rng: SplitMix64, shape: Shape) -> list[Fraction]:
    """Weights ``alpha + j * delta`` with offsets j summing to 0 and several j = 0: elements
    exactly equal to the mean, where Sign(0) decides."""
    n = math.prod(shape)
    alpha = Fraction(rng.integer(-16, 16), 8)
    delta = Fraction(rng.choice((1, 3)), 8)
    offsets: list[int] = [0] if n % 2 else []
    while len(offsets) < n:
        j = rng.integer(0, 3)
        offsets += [j, -j]
    return [alpha + j * delta for j in rng.shuffled(offsets)]


def _half_or_whole(rng: SplitMix64) -> Fraction:
    """A quotient ``k + 1/2`` with |k + 1/2| < 127, or an integer in -127..127."""
    if rng.integer(0, 2):
        return Fraction(2 * rng.integer(-127, 126) + 1, 2)
    return Fraction(rng.integer(-127, 127))


def _act_ties(rng: SplitMix64, shape: Shape) -> list[Fraction]:
    """Per token: one +-127 * 2**m (the absmax), the others ``(k + 1/2) * 2**m`` (starting with
    +-1/2 and +-5/2, where half-even and half-away differ) or integers, so that
    ``x * 127 / absmax`` is exactly k + 1/2 or k."""
    values: list[Fraction] = []
    fixed = [Fraction(1, 2), Fraction(-5, 2), Fraction(-1, 2), Fraction(5, 2)]
    for row in _rows(shape):
        unit = Fraction(2) ** rng.integer(-2, 2)
        others = [fixed[i] if i < len(fixed) else _half_or_whole(rng) for i in range(len(row) - 1)]
        quotients = [*others]
        quotients.insert(rng.integer(0, len(others)), Fraction(rng.choice((-127, 127))))
        values += [q * unit for q in quotients]
    return values


def ties(rng: SplitMix64, shape: Shape, dtype: torch.dtype, family: CodeFamily) -> list[float]:
    """Exact ties of the op family's decision: ``W == mean`` (b1), ``W / gamma = +-1/2`` (b1.58),
    ``x * 127 / absmax = k + 1/2`` (activations).  Every value is exact in every dtype."""
    exact = {"b1": _b1_ties, "b158": _b158_ties, "act": _act_ties}[family](rng, shape)
    floats = [float(v) for v in exact]
    if any(Fraction(to_dtype(f, dtype)) != v for f, v in zip(floats, exact, strict=True)):
        raise AssertionError(f"qcheck.golden bug: a tie value is not exact in {dtype}")
    return floats


BUILDERS: dict[str, Builder] = {
    "general": general,
    "ties": ties,
    "all-equal": all_equal,
    "all-zero": all_zero,
    "zero-rows": zero_rows,
    "constant-rows": constant_rows,
    "one-hot": one_hot,
    "subnormal": subnormal,
    "extreme": extreme,
    "outliers": outliers,
    "near-eps": near_eps,
    "mixed": mixed,
}
"""Every edge family by name."""

FAMILY_SPECIFIC: frozenset[str] = frozenset({"ties"})
"""Edge families whose values depend on the op family (b1, b158, act); every other builder
ignores its ``family`` argument, so its input can be shared across ops."""


def build(family_name: str, key: str, shape: Shape, dtype: torch.dtype, code_family: CodeFamily) -> torch.Tensor:
    """The input of one case: family ``family_name``'s values for ``shape``, rounded to ``dtype``,
    drawn from a generator seeded by ``key`` (:func:`qcheck.golden.cases.input_key` for the
    quantizers: family and shape, so every dtype and op gets the same draw)."""
    values = BUILDERS[family_name](SplitMix64(key), shape, dtype, code_family)
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)
