"""Hypothesis strategies for weights and activations aimed at the boundaries where kernels break.

Every tensor is built from Hypothesis primitives, so failures shrink to small shapes and simple
values; a list longer than :data:`ELEMENT_DRAWS` repeats a palette of that many drawn elements at
positions fixed by a drawn seed (:func:`_elements`), which keeps large tensors cheap to draw.
Nothing here quantizes or judges a result.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import DrawFn, SearchStrategy

from qcheck.conventions import (
    DEFAULT,
    PER_ROW,
    PER_TENSOR,
    Conventions,
    EpsMode,
    Granularity,
    GranularityKind,
    Statistic,
)
from qcheck.quantizers.exact import exact_group_means
from qcheck.quantizers.grouping import group_layout
from qcheck.quantizers.statistics import apply_eps, group_absmax
from qcheck.quantizers.validation import scale_dtype_for

Shape = tuple[int, ...]
Role = Literal["weight", "activation"]
_Builder = Callable[[DrawFn, Shape, torch.dtype, Conventions], list[float]]

FLOAT_DTYPES: tuple[torch.dtype, ...] = (
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float64,
)
"""The float dtypes the references accept; float32 first, so a failing dtype shrinks to it."""

ALL_WEIGHT_FAMILIES: tuple[str, ...] = (
    "general",
    "ties",
    "all-equal",
    "zero-rows",
    "subnormal",
    "extreme",
    "outliers",
    "mixed",
    "near-eps",
)
ALL_ACTIVATION_FAMILIES: tuple[str, ...] = (
    "general",
    "ties",
    "zero-rows",
    "subnormal",
    "extreme",
    "outliers",
    "one-hot",
    "constant-rows",
    "near-eps",
)

_PROBE = "qcheck.strategies"
_GAMMA_MANTISSAS: tuple[Fraction, ...] = (
    Fraction(1),
    Fraction(3, 2),
    Fraction(5, 4),
    Fraction(7, 4),
)
"""Weight-tie scales are ``c * 2**k``: c = 1 makes ``1/gamma`` exact too; the others expose
kernels that multiply by a rounded reciprocal (``w * (1/gamma)`` is not ``w / gamma``)."""


# --------------------------------------------------------------------------------------------
# strategies are built once per distinct set of arguments

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")
STRATEGY_CACHE_SIZE = 4096
"""Distinct argument sets remembered per strategy function (shapes drawn inside a composite, such
as the second tensor of a pair, make each shape one entry)."""


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple) and not isinstance(value, torch.Size):
        return tuple(_frozen(v) for v in value)
    return value


def memoized(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` (a function returning a strategy) built once per distinct arguments.

    Building a strategy is not free: ``st.composite`` inspects the source of the function it wraps,
    and composites that draw other strategies build them on every draw.  Strategies are immutable
    descriptions, so a shared one draws exactly what a fresh one would.  Lists become tuples for
    the key; arguments that cannot be hashed skip the cache."""
    cached = functools.lru_cache(maxsize=STRATEGY_CACHE_SIZE)(fn)

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        frozen_args = tuple(_frozen(a) for a in args)
        frozen_kwargs = {k: _frozen(v) for k, v in kwargs.items()}
        try:
            hash((frozen_args, tuple(frozen_kwargs.items())))
        except TypeError:
            return fn(*args, **kwargs)
        return cached(*frozen_args, **frozen_kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------
# dtype facts and small helpers


@dataclasses.dataclass(frozen=True)
class _Limits:
    """Finite range of a float dtype: ``max``, smallest normal ``tiny``, smallest subnormal,
    ``precision`` (significand bits incl. the implicit one) and ``top`` (every |v| < 2**top)."""

    max: float
    tiny: float
    smallest_subnormal: float
    precision: int
    top: int


@functools.cache
def _limits(dtype: torch.dtype) -> _Limits:
    info = torch.finfo(dtype)
    precision = 1 - int(math.log2(info.eps))
    return _Limits(info.max, info.tiny, info.tiny * info.eps, precision, math.frexp(info.max)[1])


def _log2_exact(power_of_two: float) -> int:
    mantissa, exponent = math.frexp(power_of_two)
    assert mantissa == 0.5, power_of_two
    return exponent - 1


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in FLOAT_DTYPES:
        raise InvalidArgument(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")


def _check_shape(shape: Sequence[int]) -> Shape:
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise InvalidArgument(f"shape must have non-negative sizes, got {shape!r}")
    return out


def _signed(magnitudes: SearchStrategy[float]) -> SearchStrategy[float]:
    """``magnitudes`` with a drawn sign; shrinks to the positive value."""
    return st.tuples(st.booleans(), magnitudes).map(lambda p: -p[1] if p[0] else p[1])


def _fixed_list(elements: SearchStrategy[_T], n: int) -> SearchStrategy[list[_T]]:
    return st.lists(elements, min_size=n, max_size=n)


ELEMENT_DRAWS = 64
"""Elements of one list that Hypothesis draws one by one; longer lists repeat a drawn palette."""
_PLACEMENT_SEEDS: SearchStrategy[int] = st.integers(0, 2**32 - 1)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finalizer on uint64 arrays (wrapping arithmetic): a fixed, portable hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return mixed


def _placement(seed: int, n: int, k: int) -> list[int]:
    """For each of ``n`` positions, which of ``k < n`` palette entries it holds: every entry at
    least once, at positions and with repeats fixed by ``seed`` (a portable hash, not an RNG whose
    stream could change between numpy versions)."""
    counter = np.arange(2 * n, dtype=np.uint64) + np.full(2 * n, seed, dtype=np.uint64) * _GOLDEN
    hashes = _mix64(counter)
    which = hashes[:n] % np.uint64(k)
    order = np.argsort(hashes[n:], kind="stable")  # a permutation of the positions
    which[order[:k]] = np.arange(k, dtype=np.uint64)
    return [int(i) for i in which.tolist()]


def _elements(draw: DrawFn, pool: SearchStrategy[_T], n: int) -> list[_T]:
    """``n`` elements of ``pool``.  Up to :data:`ELEMENT_DRAWS`, each is its own Hypothesis draw
    (this is ``draw(st.lists(pool, min_size=n, max_size=n))``); beyond, Hypothesis draws a palette
    of ELEMENT_DRAWS elements and a placement seed, and every position holds a palette entry,
    each entry at least once.  Drawing hundreds of elements one by one costs milliseconds per
    example, and the boundary values the pools aim at are as likely in the palette as in any
    ELEMENT_DRAWS positions; a failure shrinks the palette entries like any element, and the
    shape towards sizes drawn element by element."""
    if n <= ELEMENT_DRAWS:
        return draw(_fixed_list(pool, n))
    palette = draw(_fixed_list(pool, ELEMENT_DRAWS))
    seed = draw(_PLACEMENT_SEEDS)
    return [palette[i] for i in _placement(seed, n, ELEMENT_DRAWS)]


@functools.cache
def _groups(shape: Shape, granularity: Granularity) -> tuple[tuple[int, ...], ...]:
    """Flat row-major indices of each non-empty group (the references' own grouping)."""
    if len(shape) == 0:
        return ((0,),)
    layout = group_layout(_PROBE, torch.Size(shape), granularity)
    members: list[list[int]] = [[] for _ in range(layout.n_groups)]
    for index, group in enumerate(layout.ids.tolist()):
        members[group].append(index)
    return tuple(tuple(m) for m in members if m)


def _rows(shape: Shape) -> tuple[tuple[int, ...], ...]:
    return _groups(shape, PER_ROW) if len(shape) else ((0,),)


def _assemble(values: list[float], shape: Shape, dtype: torch.dtype, *, exact: bool) -> torch.Tensor:
    """The values as a contiguous tensor of ``dtype`` (round to nearest even unless ``exact``)."""
    source = torch.tensor(values, dtype=torch.float64).reshape(shape)
    out = source.to(dtype)
    if exact and not torch.equal(out.to(torch.float64), source):
        raise AssertionError(f"qcheck.strategies bug: a constructed value is not exact in {dtype}")
    return out


# --------------------------------------------------------------------------------------------
# basic vocabulary


@memoized
def dtypes(allowed: Sequence[torch.dtype] = FLOAT_DTYPES) -> SearchStrategy[torch.dtype]:
    """One of ``allowed`` (shrinks to the first: float32 by default)."""
    for dtype in allowed:
        _check_dtype(dtype)
    return st.sampled_from(tuple(allowed))


@memoized
def shapes(*, min_dims: int = 1, max_dims: int = 2, max_side: int = 9, min_side: int = 1) -> SearchStrategy[Shape]:
    """Shapes of ``min_dims..max_dims`` dimensions with sides in ``min_side..max_side``.

    Every size is equally reachable, so (1,), (1, 1) and odd sizes (7, 9) all occur; shrinks to
    ``(min_side,) * min_dims``.
    """
    if not 0 <= min_dims <= max_dims or not 0 <= min_side <= max_side:
        raise InvalidArgument(f"bad shape bounds: dims {min_dims}..{max_dims}, sides {min_side}..{max_side}")
    sides = st.integers(min_side, max_side)
    return st.lists(sides, min_size=min_dims, max_size=max_dims).map(tuple)


@memoized
def _shapes_with_long_rows(*, min_dims: int, max_dims: int, max_side: int) -> SearchStrategy[Shape]:
    """Like :func:`shapes` but the last side is at least 2, so a row can hold a tie."""
    lead = st.lists(st.integers(1, max_side), min_size=max(min_dims - 1, 0), max_size=max(max_dims - 1, 0))
    last = st.integers(min(2, max_side), max_side)
    return st.tuples(lead, last).map(lambda p: (*p[0], p[1]))


@memoized
def powers_of_two(min_exp: int = -8, max_exp: int = 8) -> SearchStrategy[float]:
    """``2.0 ** k`` for k in ``min_exp..max_exp`` (shrinks to 1.0): scales that multiply exactly."""
    return st.integers(min_exp, max_exp).map(lambda k: math.ldexp(1.0, k))


def _round_scalar(value: float, dtype: torch.dtype) -> float:
    return float(torch.tensor(value, dtype=torch.float64).to(dtype))


def _round_all(values: list[float], dtype: torch.dtype) -> list[float]:
    """:func:`_round_scalar` of each value, in one conversion."""
    if dtype == torch.float64:
        return list(values)
    rounded: list[float] = torch.tensor(values, dtype=torch.float64).to(dtype).to(torch.float64).tolist()
    return rounded


@memoized
def finite_floats_for(
    dtype: torch.dtype,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    allow_subnormal: bool = True,
) -> SearchStrategy[float]:
    """Finite Python floats exactly representable in ``dtype`` (bfloat16 by rounding float32)."""
    _check_dtype(dtype)
    if dtype == torch.bfloat16:
        top = _limits(dtype).max
        low = -top if min_value is None else max(min_value, -top)
        high = top if max_value is None else min(max_value, top)
        return (
            st.floats(low, high, width=32, allow_subnormal=allow_subnormal)
            .map(lambda v: _round_scalar(v, torch.bfloat16))
            .filter(lambda v: low <= v <= high)
        )
    widths: dict[torch.dtype, Literal[16, 32, 64]] = {
        torch.float16: 16,
        torch.float32: 32,
        torch.float64: 64,
    }
    return st.floats(
        min_value,
        max_value,
        allow_nan=False,
        allow_infinity=False,
        allow_subnormal=allow_subnormal,
        width=widths[dtype],
    )


# --------------------------------------------------------------------------------------------
# element pools

_SIMPLE: tuple[float, ...] = (
    0.0,
    1.0,
    -1.0,
    0.5,
    -0.5,
    2.0,
    -2.0,
    0.25,
    -0.25,
    1.5,
    -1.5,
    3.0,
    0.75,
)
_EQUAL_VALUES: tuple[float, ...] = (0.3, 0.1, -0.7, 1 / 3, 0.2, -0.3, 2 / 3, 1.0, -0.5)

_GENERAL: SearchStrategy[float] = st.one_of(
    st.sampled_from(_SIMPLE),
    st.integers(-4, 4).map(float),
    st.builds(lambda p, q: p / q, st.integers(-8, 8), st.integers(2, 9)),
    st.floats(-4.0, 4.0, allow_nan=False, allow_subnormal=False),
)
_GENERAL_NONZERO: SearchStrategy[float] = st.one_of(
    st.sampled_from(tuple(v for v in _SIMPLE if v)),
    _signed(st.integers(1, 4).map(float)),
    _signed(st.builds(lambda p, q: p / q, st.integers(1, 8), st.integers(2, 9))),
    _signed(st.floats(0.0625, 4.0)),
)
_SMALL: SearchStrategy[float] = st.one_of(
    st.sampled_from((0.0, 0.5, -0.5, 1.0, -1.0, 0.25, 0.75)), st.floats(-1.0, 1.0)
)
_EQUAL: SearchStrategy[float] = st.one_of(st.sampled_from(_EQUAL_VALUES), _GENERAL_NONZERO)


@functools.cache
def _subnormal_pools(dtype: torch.dtype) -> tuple[SearchStrategy[float], SearchStrategy[float]]:
    """(strict subnormals, the family's element pool).

    The pool adds zeros, the smallest normals and ``u = 2**floor(log2(smallest_subnormal) / 2)``
    (about 2.6e-23 in float32): normal, but ``u * u`` underflows to 0, the trap of a kernel that
    scales before taking a sign (FIELD-NOTES: ``sign((w - e) * s)``).
    """
    lim = _limits(dtype)
    sub, tiny = lim.smallest_subnormal, lim.tiny
    u = math.ldexp(1.0, _log2_exact(sub) // 2)
    strict = _signed(
        st.one_of(
            st.integers(1, 8).map(lambda j: j * sub),
            st.sampled_from((tiny / 2, tiny / 4, 3 * tiny / 4, tiny - sub)),
        )
    )
    near = _signed(st.sampled_from((tiny, 2 * tiny, 1.5 * tiny, u, 1.5 * u, 0.75 * u)))
    return strict, st.one_of(strict, st.just(0.0), near)


@functools.cache
def _extreme_pools(dtype: torch.dtype) -> tuple[SearchStrategy[float], SearchStrategy[float]]:
    """(values >= max/4, the family's pool: values near max mixed with moderate ones)."""
    lim = _limits(dtype)
    big_power = math.ldexp(1.0, lim.top - 1)
    huge = (lim.max, lim.max / 2, big_power, 1.5 * big_power, lim.max / 4)
    forced = _signed(st.sampled_from(huge))
    pool = st.one_of(_signed(st.sampled_from((*huge, lim.max / 8, lim.max / 16))), _GENERAL)
    return forced, pool


# --------------------------------------------------------------------------------------------
# layouts


def _relayout(t: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "transposed":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if kind == "strided":
        big = torch.full((*t.shape[:-1], 2 * t.shape[-1]), math.nan, dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    if kind == "offset":
        storage = torch.full((t.numel() + 1,), math.nan, dtype=t.dtype)
        storage[1:] = t.reshape(-1)
        return storage[1:].view(t.shape)
    return t.clone()


def layouts(t: torch.Tensor) -> SearchStrategy[torch.Tensor]:
    """Views whose logical values (``.contiguous()``) are exactly ``t``'s, in other memory layouts.

    "transposed": the last two dims stored column-major (``base.t()`` of transpose-built data);
    "strided": every other element of a buffer whose gaps hold NaN junk (``big[..., ::2]``);
    "offset": contiguous but at storage offset 1 after a NaN.  Targets kernels that assume a
    dense row-major pointer (ignore strides or ``storage_offset``).  Shrinks to a contiguous copy.
    """
    return _layout_kinds(t.dim(), t.numel() > 0).map(lambda kind: _relayout(t, kind))


@functools.cache
def _layout_kinds(dim: int, nonempty: bool) -> SearchStrategy[str]:
    kinds = ["contiguous"]
    if dim >= 2 and nonempty:
        kinds.append("transposed")
    if dim >= 1 and nonempty:
        kinds += ["strided", "offset"]
    return st.sampled_from(kinds)


@st.composite
def _tensors(
    draw: DrawFn,
    builder: _Builder,
    exact: bool,
    dtype: torch.dtype | None,
    shape: Shape | None,
    conventions: Conventions,
    shape_strategy: SearchStrategy[Shape],
    non_contiguous: bool,
) -> torch.Tensor:
    dt = dtype if dtype is not None else draw(dtypes())
    shp = shape if shape is not None else draw(shape_strategy)
    values = builder(draw, shp, dt, conventions)
    t = _assemble(values, shp, dt, exact=exact)
    return _relayout(t, draw(_layout_kinds(t.dim(), t.numel() > 0))) if non_contiguous else t


@memoized
def _family(
    builder: _Builder,
    *,
    exact: bool,
    dtype: torch.dtype | None,
    shape: Sequence[int] | None,
    conventions: Conventions,
    shape_strategy: SearchStrategy[Shape],
    non_contiguous: bool,
) -> SearchStrategy[torch.Tensor]:
    """Draw dtype, then shape, then values (``builder``), then a layout."""
    if dtype is not None:
        _check_dtype(dtype)
    fixed = _check_shape(shape) if shape is not None else None
    return _tensors(builder, exact, dtype, fixed, conventions, shape_strategy, non_contiguous)


# --------------------------------------------------------------------------------------------
# value builders shared by weights and activations


def _general_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    return _elements(draw, _GENERAL, math.prod(shape))


def _all_equal_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    value = _round_scalar(draw(_EQUAL), dtype)
    return [value] * math.prod(shape)


def _zero_units_values(units: tuple[tuple[int, ...], ...], draw: DrawFn, n: int) -> list[float]:
    """General values with some units (rows, tokens or groups) exactly zero (+0.0 or -0.0)."""
    values = _elements(draw, _GENERAL, n)
    if not units:
        return values
    whole = draw(st.booleans())
    forced = draw(st.integers(0, len(units) - 1))
    for i, unit in enumerate(units):
        if whole or i == forced or draw(st.booleans()):
            zero = -0.0 if draw(st.booleans()) else 0.0
            for index in unit:
                values[index] = zero
    return values


def _subnormal_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    strict, pool = _subnormal_pools(dtype)
    n = math.prod(shape)
    values = _elements(draw, pool, n)
    if n:
        values[draw(st.integers(0, n - 1))] = draw(strict)
    return values


def _extreme_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    forced, pool = _extreme_pools(dtype)
    n = math.prod(shape)
    values = _round_all(_elements(draw, pool, n), dtype)
    if n:
        values[draw(st.integers(0, n - 1))] = draw(forced)
    return values


def _outlier_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    """Small values ``|v| <= 2**e`` and one or two outliers ``(1 or 1.5) * 2**(e + r)``, with
    ``r`` in 14..20 (ratio 1.6e4..1.6e6); ``e`` keeps everything finite and the small values
    normal in ``dtype``."""
    lim = _limits(dtype)
    n = math.prod(shape)
    ratio = draw(st.integers(14, 20))
    high = lim.top - 1 - ratio
    low = _log2_exact(lim.tiny) + 5
    exponent = draw(st.integers(max(low, min(high, 0) - 4), min(high, max(low, 0) + 4)))
    small = _elements(draw, _SMALL, n)
    values = _round_all([math.ldexp(v, exponent) for v in small], dtype)
    if n:
        outlier = _signed(st.sampled_from((1.0, 1.5)).map(lambda m: math.ldexp(m, exponent + ratio)))
        for _ in range(draw(st.integers(1, 2))):
            values[draw(st.integers(0, n - 1))] = draw(outlier)
    return values


def _near_eps_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    """General values scaled by a power of two so that the largest lands within a factor 8 of eps
    (the declared eps, 1e-5 when none) and the rest spread below it: where clamp, add and a
    missing eps differ, and where an absolute threshold (|x| < 1e-6 -> 0) shows."""
    eps = c.eps if c.eps > 0 else 1e-5
    values = _elements(draw, _GENERAL, math.prod(shape))
    largest = max((abs(v) for v in values), default=0.0)
    if largest == 0.0:
        return values
    k = draw(st.integers(-3, 3)) + math.floor(math.log2(eps)) - math.floor(math.log2(largest))
    return _round_all([math.ldexp(v, k) for v in values], dtype)


def _mixed_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    """``±m * 2**e`` with m in {1, 1.5, 1.25, 1.75} and e spread over up to 49 binades (normal
    in ``dtype``); both signs occur whenever there are two elements."""
    lim = _limits(dtype)
    low, high = max(_log2_exact(lim.tiny) + 2, -24), min(lim.top - 3, 24)
    n = math.prod(shape)
    magnitude = st.builds(math.ldexp, st.sampled_from((1.0, 1.5, 1.25, 1.75)), st.integers(low, high))
    signs = _elements(draw, st.booleans(), n)
    mags = _elements(draw, magnitude, n)
    if n >= 2 and len(set(signs)) == 1:
        flip = draw(st.integers(0, n - 1))
        signs[flip] = not signs[flip]
    return [-m if s else m for s, m in zip(signs, mags, strict=True)]


# --------------------------------------------------------------------------------------------
# ties


def _exponent_window(valid: list[int], what: str) -> tuple[int, int]:
    """A window of at most 9 exponents inside the valid interval, near 0 when possible."""
    if not valid:
        raise InvalidArgument(f"qcheck.strategies: no scale exponent builds exact {what} here")
    lo, hi = valid[0], valid[-1]
    if lo <= 0 <= hi:
        return max(lo, -4), min(hi, 4)
    if lo > 0:
        return lo, min(hi, lo + 8)
    return max(lo, hi - 8), hi


def _eps_leaves_intact(stats: list[list[float]], dtype: torch.dtype, conventions: Conventions) -> list[bool]:
    """Per row of candidate statistics: whether the reference's divisor equals every one of them
    (eps does not clamp or, under EpsMode.ADD, rounds away in the scale dtype)."""
    values = torch.tensor(stats, dtype=torch.float64)
    divisor = apply_eps(values.reshape(-1), conventions, scale_dtype_for(dtype)).reshape(values.shape)
    return [bool(r) for r in (divisor == values).all(dim=1)]


def _finite_in(mantissa: float, k: int, lim: _Limits) -> bool:
    """Whether ``mantissa * 2**k`` is at most the dtype's max."""
    try:
        return math.ldexp(mantissa, k) <= lim.max
    except OverflowError:
        return False


def _candidate_exponents(lim: _Limits) -> range:
    """Every exponent k with 2**k a normal number of the dtype."""
    return range(_log2_exact(lim.tiny), lim.top)


@functools.cache
def _weight_tie_exponents(dtype: torch.dtype, conventions: Conventions) -> tuple[int, int]:
    """Exponents k for which every ``gamma = c * 2**k`` (c in _GAMMA_MANTISSAS) keeps elements
    from gamma/4 to 8 * 1.75 * gamma normal and finite, and survives the declared eps."""
    lim = _limits(dtype)
    ks = [k for k in _candidate_exponents(lim) if math.ldexp(0.25, k) >= lim.tiny and _finite_in(14.0, k, lim)]
    stats = [[math.ldexp(float(c), k) for c in _GAMMA_MANTISSAS] for k in ks]
    ok = _eps_leaves_intact(stats, dtype, conventions) if ks else []
    return _exponent_window([k for k, good in zip(ks, ok, strict=True) if good], "weight ties")


@functools.cache
def _activation_tie_exponents(dtype: torch.dtype, conventions: Conventions) -> tuple[int, int]:
    """Exponents m for which ``absmax = Qp * 2**m`` and ``0.5 * 2**m`` are normal and finite and
    the declared eps leaves ``absmax`` intact."""
    lim = _limits(dtype)
    qp = 2 ** (conventions.activation_bits - 1) - 1
    ks = [k for k in _candidate_exponents(lim) if math.ldexp(0.5, k) >= lim.tiny and _finite_in(float(qp), k, lim)]
    stats = [[qp * math.ldexp(1.0, k)] for k in ks]
    ok = _eps_leaves_intact(stats, dtype, conventions) if ks else []
    return _exponent_window([k for k, good in zip(ks, ok, strict=True) if good], "activation ties")


_HALF = Fraction(1, 2)
_RUN_VALUES: tuple[Fraction, ...] = (_HALF, Fraction(0), Fraction(1))
_ABSMAX_OTHERS: tuple[Fraction, ...] = (
    _HALF,
    Fraction(0),
    Fraction(1),
    Fraction(1, 4),
    Fraction(3, 4),
)


def _absmean_tie_group(draw: DrawFn, n: int) -> list[Fraction]:
    """``n`` magnitudes (in units of gamma) whose exact mean is 1, with a 1/2 when ``n >= 2``.

    The group is a shuffled concatenation of units.  A unit is a run of ``a`` (0..7) elements
    from {1/2, 0, 1} followed by one balancing element ``b = (a + 1) - sum(run)``, so the unit's
    magnitudes sum to exactly its length and ``b`` lies in {1, 3/2, ..., 8}: every unit averages
    1, hence so does the group.  The first unit has ``a >= 1`` and starts with 1/2 (the tie);
    ``a = 1`` with run [1/2] gives the pair (1/2, 3/2), the tie at 0.5 and at 1.5.
    """
    mags: list[Fraction] = []
    remaining = n
    while remaining > 0:
        first = not mags
        min_run = 1 if first and remaining >= 2 else 0
        run_length = draw(st.integers(min_run, min(7, remaining - 1)))
        run = [draw(st.sampled_from(_RUN_VALUES)) for _ in range(run_length)]
        if first and run:
            run[0] = _HALF
        mags += [*run, (run_length + 1) - sum(run, Fraction(0))]
        remaining -= run_length + 1
    order = draw(st.permutations(range(n)))
    return [mags[i] for i in order]


def _absmax_tie_group(draw: DrawFn, n: int) -> list[Fraction]:
    """``n`` magnitudes (units of gamma) with max exactly 1 and a 1/2 next to it when n >= 2."""
    others = [draw(st.sampled_from(_ABSMAX_OTHERS)) for _ in range(n - 1)]
    if others:
        others[0] = _HALF
    where = draw(st.integers(0, n - 1))
    return [*others[:where], Fraction(1), *others[where:]]


@memoized
def _weight_tie_values_for(power_of_two_scales: bool) -> _Builder:
    def build(draw: DrawFn, shape: Shape, dtype: torch.dtype, conventions: Conventions) -> list[float]:
        lo, hi = _weight_tie_exponents(dtype, conventions)
        mantissas = _GAMMA_MANTISSAS[:1] if power_of_two_scales else _GAMMA_MANTISSAS
        absmax = conventions.weight_statistic is Statistic.ABSMAX
        values = [0.0] * math.prod(shape)
        for group in _groups(shape, conventions.weight_granularity):
            gamma = draw(st.sampled_from(mantissas)) * Fraction(2) ** draw(st.integers(lo, hi))
            n = len(group)
            mags = _absmax_tie_group(draw, n) if absmax else _absmean_tie_group(draw, n)
            signs = draw(_fixed_list(st.booleans(), n))
            exact = [-m * gamma if s else m * gamma for m, s in zip(mags, signs, strict=True)]
            floats = [float(v) for v in exact]
            # Fraction-exact check of the construction: the group's statistic is gamma itself.
            if [Fraction(f) for f in floats] != exact:
                raise AssertionError("qcheck.strategies bug: a tie value is not a float")
            statistic = max(abs(v) for v in exact) if absmax else sum(map(abs, exact), Fraction(0)) / n
            if statistic != gamma or (n >= 2 and gamma / 2 not in map(abs, exact)):
                raise AssertionError("qcheck.strategies bug: tie group statistic is not gamma")
            for index, value in zip(group, floats, strict=True):
                values[index] = value
        return values

    return build


@functools.cache
def _activation_tie_pools(qp: int) -> tuple[SearchStrategy[float], SearchStrategy[float]]:
    """(half-integers ``k + 1/2`` with |k + 1/2| < Qp, those or integers ``k`` with |k| <= Qp)."""
    half_ints = st.integers(-qp, qp - 1).map(lambda k: k + 0.5)
    return half_ints, st.one_of(half_ints, st.integers(-qp, qp).map(float))


def _activation_tie_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, conventions: Conventions) -> list[float]:
    """Per group (token): one ``±Qp * 2**m`` (the absmax), the others ``(k + 1/2) * 2**m`` with
    |k + 1/2| < Qp or integers ``k * 2**m``, so ``x * Qp / absmax`` is exactly k + 1/2 or k."""
    qp = 2 ** (conventions.activation_bits - 1) - 1
    lo, hi = _activation_tie_exponents(dtype, conventions)
    half_ints, others_pool = _activation_tie_pools(qp)
    values = [0.0] * math.prod(shape)
    for group in _groups(shape, conventions.activation_granularity):
        m = draw(st.integers(lo, hi))
        n = len(group)
        others = [draw(half_ints)] if n >= 2 else []
        others += _elements(draw, others_pool, max(n - 2, 0))
        top = float(-qp if draw(st.booleans()) else qp)
        where = draw(st.integers(0, n - 1))
        quotients = [*others[:where], top, *others[where:]]
        for index, q in zip(group, quotients, strict=True):
            # q has at most 9 significant bits and m keeps q * 2**m normal: scaling is exact
            values[index] = math.ldexp(q, m)
            if math.ldexp(values[index], -m) != q or (q and abs(values[index]) < _limits(dtype).tiny):
                raise AssertionError("qcheck.strategies bug: an activation tie is not a float")
    return values


# --------------------------------------------------------------------------------------------
# weight families


class WeightFamily(Protocol):
    """The signature every named weight family shares."""

    def __call__(
        self,
        *,
        dtype: torch.dtype | None = ...,
        shape: Sequence[int] | None = ...,
        conventions: Conventions = ...,
        max_side: int = ...,
        non_contiguous: bool = ...,
    ) -> SearchStrategy[torch.Tensor]: ...


class ActivationFamily(Protocol):
    """The signature every named activation family shares."""

    def __call__(
        self,
        *,
        dtype: torch.dtype | None = ...,
        shape: Sequence[int] | None = ...,
        conventions: Conventions = ...,
        min_dims: int = ...,
        max_dims: int = ...,
        max_side: int = ...,
        non_contiguous: bool = ...,
    ) -> SearchStrategy[torch.Tensor]: ...


@memoized
def _weight_shapes(max_side: int) -> SearchStrategy[Shape]:
    return shapes(min_dims=1, max_dims=2, max_side=max_side)


@memoized
def general_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """Moderate values (|w| <= 4; simple fractions, small integers, floats) rounded to the dtype:
    the baseline on which any wrong formula (scale inverted, wrong dim, no rounding) shows."""
    return _family(
        _general_values,
        exact=False,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_weight_shapes(max_side),
        non_contiguous=non_contiguous,
    )


@memoized
def weight_ties(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
    power_of_two_scales: bool = False,
) -> SearchStrategy[torch.Tensor]:
    """Weights where ``W / gamma`` is exactly ±1/2 (and ±3/2, ±1, 0, ...) for the conventions'
    statistic and granularity: targets the rounding rule (half-even vs half-away vs
    ``floor(x + 0.5)``) and a mean computed inexactly.

    Each group (tensor, row or group of G) is built on its own with ``gamma = c * 2**k``:
    absmean groups by :func:`_absmean_tie_group` (balanced units, exact mean gamma), absmax
    groups with one ±gamma and others in {1/2, 0, 1, 1/4, 3/4} * gamma.  k is chosen so that
    every value is a normal number of the dtype (bfloat16 included) and eps neither clamps nor
    (EpsMode.ADD) survives rounding in the scale dtype, so the reference's divisor is gamma.
    ``power_of_two_scales`` keeps c = 1, where ``w * (1/gamma)`` is exact too; otherwise
    c in {1, 1.5, 1.25, 1.75} also catches reciprocal-multiplication kernels (legitimately
    different in the last bit; see FIELD-NOTES).  A group of one element cannot tie under
    absmean (|w| = gamma), so when this draws the shape every row has at least 2 elements.
    """
    return _family(
        _weight_tie_values_for(power_of_two_scales),
        exact=True,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_shapes_with_long_rows(min_dims=1, max_dims=2, max_side=max_side),
        non_contiguous=non_contiguous,
    )


@memoized
def _equal_shapes(max_side: int) -> SearchStrategy[Shape]:
    counts = [(7,), (4, 4), (5, 9), (1, 7), (2, 8), (9, 5), (7, 1)]
    fitting = [s for s in counts if max(s) <= max_side]
    general = _weight_shapes(max_side)
    return st.one_of(general, st.sampled_from(fitting)) if fitting else general


@memoized
def all_equal_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """Every element the same value (0.3, 0.1, -0.7, 1/3, ... rounded to the dtype), counts 7, 16,
    45 among others: b1's tie ``W == mean(W)``, where a float mean (16 x 0.3 in float32) is not
    the value and ``Sign(W - alpha)`` must still give Sign(0) everywhere."""
    return _family(
        _all_equal_values,
        exact=True,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_equal_shapes(max_side),
        non_contiguous=non_contiguous,
    )


def _zero_row_weight_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    per_group = c.weight_granularity.kind is GranularityKind.PER_GROUP
    units = _groups(shape, c.weight_granularity) if per_group and draw(st.booleans()) else _rows(shape)
    return _zero_units_values(units if math.prod(shape) else (), draw, math.prod(shape))


@memoized
def zero_row_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """At least one row (or, per group, one group; or the whole tensor) exactly zero (±0.0), the
    rest general: division by a zero statistic (NaN), eps handling, Sign(0), -0.0."""
    return _family(
        _zero_row_weight_values,
        exact=False,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_weight_shapes(max_side),
        non_contiguous=non_contiguous,
    )


@memoized
def subnormal_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """At least one subnormal of the dtype (down to the smallest), mixed with zeros, the smallest
    normals and ~sqrt(smallest subnormal) values: flush-to-zero, eps clamps, a statistic that
    underflows, and the scale-before-sign underflow."""
    return _family(
        _subnormal_values,
        exact=True,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_weight_shapes(max_side),
        non_contiguous=non_contiguous,
    )


@memoized
def extreme_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """Finite values near the dtype's max (max, max/2, 2**emax, 1.5 * 2**emax, ...), both signs,
    at least one >= max/4: a sum that overflows (float16 65504) though the mean is finite."""
    return _family(
        _extreme_values,
        exact=True,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_weight_shapes(max_side),
        non_contiguous=non_contiguous,
    )


@memoized
def outlier_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """Mostly small values with one or two 1.6e4..1.6e6 times larger: absmax vs absmean, the
    statistic over the wrong dimension, and everything else quantizing to 0."""
    return _family(
        _outlier_values,
        exact=False,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_weight_shapes(max_side),
        non_contiguous=non_contiguous,
    )


@memoized
def mixed_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """Both signs over many binades (±m * 2**e, |e| <= 24): accumulation order and precision of
    the statistic, sign handling."""
    return _family(
        _mixed_values,
        exact=True,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_weight_shapes(max_side),
        non_contiguous=non_contiguous,
    )


@memoized
def near_eps_weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """Weights whose statistic is within a factor 16 of eps: eps clamped vs added vs missing,
    absolute thresholds (|w| < 1e-6 -> 0) that only show at this scale."""
    return _family(
        _near_eps_values,
        exact=False,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=_weight_shapes(max_side),
        non_contiguous=non_contiguous,
    )


WEIGHT_FAMILIES: Mapping[str, WeightFamily] = {
    "general": general_weights,
    "ties": weight_ties,
    "all-equal": all_equal_weights,
    "zero-rows": zero_row_weights,
    "subnormal": subnormal_weights,
    "extreme": extreme_weights,
    "outliers": outlier_weights,
    "mixed": mixed_weights,
    "near-eps": near_eps_weights,
}


def _check_families(families: Sequence[str], known: Mapping[str, object]) -> tuple[str, ...]:
    chosen = (families,) if isinstance(families, str) else tuple(families)
    unknown = [f for f in chosen if f not in known]
    if not chosen or unknown:
        raise InvalidArgument(f"families must be a non-empty subset of {tuple(known)}, got {families!r}")
    return chosen


@memoized
def weights(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    families: Sequence[str] = ALL_WEIGHT_FAMILIES,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """A weight tensor from one of ``families`` (shrinks towards "general", float32, contiguous,
    shape (1,))."""
    chosen = _check_families(families, WEIGHT_FAMILIES)
    return st.one_of(
        [
            WEIGHT_FAMILIES[f](
                dtype=dtype,
                shape=shape,
                conventions=conventions,
                max_side=max_side,
                non_contiguous=non_contiguous,
            )
            for f in chosen
        ]
    )


# --------------------------------------------------------------------------------------------
# activation families


def _token_units(shape: Shape) -> tuple[tuple[int, ...], ...]:
    return _rows(shape) if math.prod(shape) else ()


def _zero_token_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    return _zero_units_values(_token_units(shape), draw, math.prod(shape))


def _one_hot_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    values = [0.0] * math.prod(shape)
    for token in _token_units(shape):
        values[token[draw(st.integers(0, len(token) - 1))]] = _round_scalar(draw(_GENERAL_NONZERO), dtype)
    return values


def _constant_token_values(draw: DrawFn, shape: Shape, dtype: torch.dtype, c: Conventions) -> list[float]:
    values = [0.0] * math.prod(shape)
    for token in _token_units(shape):
        value = _round_scalar(draw(_EQUAL), dtype)
        for index in token:
            values[index] = value
    return values


_ActivationBuilder = tuple[_Builder, bool, bool]  # builder, exact, needs rows of length >= 2

_ACTIVATION_BUILDERS: dict[str, _ActivationBuilder] = {
    "general": (_general_values, False, False),
    "ties": (_activation_tie_values, True, True),
    "zero-rows": (_zero_token_values, False, False),
    "subnormal": (_subnormal_values, True, False),
    "extreme": (_extreme_values, True, False),
    "outliers": (_outlier_values, False, False),
    "one-hot": (_one_hot_values, True, False),
    "constant-rows": (_constant_token_values, True, False),
    "near-eps": (_near_eps_values, False, False),
}


@memoized
def _activation_family(
    name: str,
    *,
    dtype: torch.dtype | None,
    shape: Sequence[int] | None,
    conventions: Conventions,
    min_dims: int,
    max_dims: int,
    max_side: int,
    non_contiguous: bool,
) -> SearchStrategy[torch.Tensor]:
    builder, exact, long_rows = _ACTIVATION_BUILDERS[name]
    if long_rows:
        shape_strategy = _shapes_with_long_rows(min_dims=min_dims, max_dims=max_dims, max_side=max_side)
    else:
        shape_strategy = shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side)
    return _family(
        builder,
        exact=exact,
        dtype=dtype,
        shape=shape,
        conventions=conventions,
        shape_strategy=shape_strategy,
        non_contiguous=non_contiguous,
    )


def _activation_strategy(name: str, public_name: str, doc: str) -> ActivationFamily:
    """A named activation family (``public_name``) drawing family ``name``."""

    def strategy(
        *,
        dtype: torch.dtype | None = None,
        shape: Sequence[int] | None = None,
        conventions: Conventions = DEFAULT,
        min_dims: int = 1,
        max_dims: int = 3,
        max_side: int = 9,
        non_contiguous: bool = True,
    ) -> SearchStrategy[torch.Tensor]:
        return _activation_family(
            name,
            dtype=dtype,
            shape=shape,
            conventions=conventions,
            min_dims=min_dims,
            max_dims=max_dims,
            max_side=max_side,
            non_contiguous=non_contiguous,
        )

    strategy.__doc__ = doc
    strategy.__name__ = strategy.__qualname__ = public_name
    return strategy


general_activations = _activation_strategy(
    "general",
    "general_activations",
    "Moderate activations (|x| <= 4) rounded to the dtype: the baseline for wrong formulas.",
)
activation_ties = _activation_strategy(
    "ties",
    "activation_ties",
    "Per token (or tensor) absmax ``Qp * 2**m`` (``Qp = 2**(bits-1) - 1``) and other elements "
    "``(k + 1/2) * 2**m`` or ``k * 2**m``, so ``x * Qp / absmax`` is exactly k + 1/2 or k: the "
    "rounding rule and ``floor(x + 0.5)``.  m keeps every value normal and eps from moving the "
    "absmax; ``Qp / absmax = 2**-m`` so the FAQ's reciprocal form is exact too.  Rows have >= 2 "
    "elements when the shape is drawn here.",
)
zero_token_activations = _activation_strategy(
    "zero-rows",
    "zero_token_activations",
    "At least one token (or the whole tensor) exactly zero (±0.0), the rest general: division "
    "by a zero absmax (NaN), eps handling.",
)
subnormal_activations = _activation_strategy(
    "subnormal",
    "subnormal_activations",
    "At least one subnormal, with zeros, the smallest normals and ~sqrt(smallest subnormal): "
    "flush-to-zero and an absmax below eps.",
)
extreme_activations = _activation_strategy(
    "extreme",
    "extreme_activations",
    "Values near the dtype's max, both signs, at least one >= max/4: ``x * Qp`` overflows "
    "although ``x * Qp / absmax`` is at most Qp.",
)
outlier_activations = _activation_strategy(
    "outliers",
    "outlier_activations",
    "Mostly small values with one or two 1.6e4..1.6e6 times larger: absmax over the wrong "
    "dimension (sequence instead of hidden), per-tensor instead of per-token.",
)
one_hot_activations = _activation_strategy(
    "one-hot",
    "one_hot_activations",
    "One nonzero per token: codes ±Qp for it, 0 elsewhere; catches clamps of [-Qp, Qp] vs "
    "[-Q, Q-1] and off-by-one ranges.",
)
constant_token_activations = _activation_strategy(
    "constant-rows",
    "constant_token_activations",
    "Each token constant (0.3, 0.1, -0.7, ...; tokens differ): |x| == absmax everywhere, so "
    "every code is ±Qp exactly and a reciprocal-scaled kernel may land on Qp ± 1 ulp.",
)

near_eps_activations = _activation_strategy(
    "near-eps",
    "near_eps_activations",
    "Tokens whose absmax is within a factor 16 of eps: the eps clamp decides the scale.",
)

ACTIVATION_FAMILIES: Mapping[str, ActivationFamily] = {
    "general": general_activations,
    "ties": activation_ties,
    "zero-rows": zero_token_activations,
    "subnormal": subnormal_activations,
    "extreme": extreme_activations,
    "outliers": outlier_activations,
    "one-hot": one_hot_activations,
    "constant-rows": constant_token_activations,
    "near-eps": near_eps_activations,
}


@memoized
def activations(
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    conventions: Conventions = DEFAULT,
    families: Sequence[str] = ALL_ACTIVATION_FAMILIES,
    min_dims: int = 1,
    max_dims: int = 3,
    max_side: int = 9,
    non_contiguous: bool = True,
) -> SearchStrategy[torch.Tensor]:
    """An activation tensor (1-D to 3-D: batch, seq, hidden) from one of ``families``."""
    chosen = _check_families(families, ACTIVATION_FAMILIES)
    return st.one_of(
        [
            _activation_family(
                f,
                dtype=dtype,
                shape=shape,
                conventions=conventions,
                min_dims=min_dims,
                max_dims=max_dims,
                max_side=max_side,
                non_contiguous=non_contiguous,
            )
            for f in chosen
        ]
    )


# --------------------------------------------------------------------------------------------
# exact scaling, for scale-invariance properties


def _times_power_of_two(x: torch.Tensor, power: int) -> torch.Tensor:
    """``x * 2**power`` in float64 by steps that never overflow the factor itself."""
    while power:
        step = max(-1000, min(1000, power))
        x = x * math.ldexp(1.0, step)
        power -= step
    return x


def with_scale(tensor: torch.Tensor, power: int) -> torch.Tensor:
    """``tensor * 2**power`` in the tensor's dtype, exactly; ValueError if any value would overflow,
    lose bits as a subnormal, or is not finite.  A dense layout (e.g. transposed) is kept."""
    source = tensor.detach().to(torch.float64)
    scaled = _times_power_of_two(source, power)
    out = scaled.to(tensor.dtype)
    exact = (
        bool(torch.isfinite(scaled).all())
        and torch.equal(out.to(torch.float64), scaled)
        and torch.equal(_times_power_of_two(scaled, -power), source)
    )
    if not exact:
        finite = bool(torch.isfinite(source).all())
        lo, hi = _exact_power_range(source, tensor.dtype) if finite else (0, -1)
        raise ValueError(
            f"with_scale: tensor * 2**{power} is not exact in {tensor.dtype} (exact powers for this tensor: {lo}..{hi})"
        )
    result = torch.empty_like(tensor)
    result.copy_(out)
    return result


def _exact_power_range(x: torch.Tensor, dtype: torch.dtype) -> tuple[int, int]:
    """The k for which finite float64 ``x`` (values of ``dtype``) times ``2**k`` is exact in dtype:
    the top bit stays below 2**top and the lowest set bit stays at or above the smallest
    subnormal.  An all-zero ``x`` gets the dtype's whole exponent span."""
    lim = _limits(dtype)
    bottom = _log2_exact(lim.smallest_subnormal)
    span = lim.top - bottom
    lo, hi = -span, span
    nonzero = x.reshape(-1)[x.reshape(-1) != 0]
    if nonzero.numel():
        mantissa, exponent = torch.frexp(nonzero)
        hi = min(hi, lim.top - int(exponent.max()))
        significand = (mantissa.abs() * float(2**53)).to(torch.int64)
        lowest_bit = (significand & -significand).to(torch.float64)
        trailing = torch.frexp(lowest_bit)[1] - 1
        lowest_exponent = exponent - 53 + trailing
        lo = max(lo, bottom - int(lowest_exponent.min()))
    return lo, hi


def _min_shift(statistic: Fraction, floor: Fraction) -> int:
    """The least k with ``statistic * 2**k >= floor`` (both positive)."""
    ratio = floor / statistic
    k = ratio.numerator.bit_length() - ratio.denominator.bit_length()
    while statistic * Fraction(2) ** k < floor:
        k += 1
    while statistic * Fraction(2) ** (k - 1) >= floor:
        k -= 1
    return k


def _group_statistics(x: torch.Tensor, shape: torch.Size, conventions: Conventions, role: Role) -> list[Fraction]:
    if role == "weight":
        statistic, granularity = conventions.weight_statistic, conventions.weight_granularity
    else:
        statistic, granularity = Statistic.ABSMAX, conventions.activation_granularity
    if len(shape) == 0:
        granularity = PER_TENSOR
    layout = group_layout(_PROBE, shape, granularity)
    if statistic is Statistic.ABSMAX:
        return [Fraction(v) for v in group_absmax(x, layout).tolist()]
    return exact_group_means(x.abs(), layout.ids, layout.counts).exact


def safe_power_range(t: torch.Tensor, conventions: Conventions = DEFAULT, *, role: Role = "weight") -> tuple[int, int]:
    """``(lo, hi)``: for every k in lo..hi, ``t * 2**k`` is exact in t's dtype (no overflow, no bit
    lost to a subnormal) and every nonzero group statistic (the weight statistic, or the absmax
    for ``role="activation"``, per the conventions' granularity) stays in the regime where the
    quantizer commutes with the scale: ``>= 4 * eps`` and normal in the scale dtype, or, under
    EpsMode.ADD, large enough that eps rounds away (``>= eps * 2**(precision + 1)``).

    So quantizing ``t * 2**a`` and ``t * 2**b`` gives the same codes for any a, b in the range;
    it contains 0 only when ``t`` itself is in that regime, and ``lo > hi`` means no such k.
    """
    x = t.detach().reshape(-1).to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("safe_power_range: the tensor has non-finite values")
    lo, hi = _exact_power_range(x, t.dtype)
    scale_dtype = scale_dtype_for(t.dtype)
    scale_lim = _limits(scale_dtype)
    eps = Fraction(float(torch.tensor(conventions.eps, dtype=scale_dtype)))
    if conventions.eps_mode is EpsMode.ADD:
        floor = eps * 2 ** (scale_lim.precision + 1)
    else:
        floor = max(4 * eps, Fraction(scale_lim.tiny))
    for statistic in _group_statistics(x, t.shape, conventions, role):
        if statistic > 0:
            lo = max(lo, _min_shift(statistic, floor))
    return lo, hi


def scalable_powers(
    t: torch.Tensor, conventions: Conventions = DEFAULT, *, role: Role = "weight"
) -> SearchStrategy[int]:
    """Integers k in :func:`safe_power_range` (shrinking to 0); nothing if the range is empty."""
    lo, hi = safe_power_range(t, conventions, role=role)
    return st.integers(lo, hi) if lo <= hi else st.nothing()


__all__ = [
    "ACTIVATION_FAMILIES",
    "ALL_ACTIVATION_FAMILIES",
    "ALL_WEIGHT_FAMILIES",
    "FLOAT_DTYPES",
    "WEIGHT_FAMILIES",
    "activation_ties",
    "activations",
    "all_equal_weights",
    "constant_token_activations",
    "dtypes",
    "extreme_activations",
    "extreme_weights",
    "finite_floats_for",
    "general_activations",
    "general_weights",
    "layouts",
    "mixed_weights",
    "near_eps_activations",
    "near_eps_weights",
    "one_hot_activations",
    "outlier_activations",
    "outlier_weights",
    "powers_of_two",
    "safe_power_range",
    "scalable_powers",
    "shapes",
    "subnormal_activations",
    "subnormal_weights",
    "weight_ties",
    "weights",
    "with_scale",
    "zero_row_weights",
    "zero_token_activations",
]
