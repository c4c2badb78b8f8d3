"""Differential tests: every torch reference quantizer against the independent numpy twin.

Codes, scales and fake-quant values must agree exactly across conventions, dtypes, shapes and
memory layouts, on random, tied, all-zero, subnormal and near-maximal inputs.  The one legitimate
difference (float64 activations whose exact quotient lies within one ulp of a rounding tie) is
counted element by element; known torch deviations are pinned by strict xfail tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import qcheck.quantizers as ref
from qcheck.conventions import (
    B158_PAPER,
    DEFAULT,
    GGML_TQ,
    PER_ROW,
    PER_TENSOR,
    Conventions,
    EpsMode,
    GranularityKind,
    Rounding,
    SignOfZero,
    Statistic,
    per_group,
)
from qcheck.errors import QuantizationInputError
from qcheck.quantizers import numpy_twin as twin

DTYPES = ("float16", "bfloat16", "float32", "float64")
NUMPY_DTYPE: dict[str, type[np.floating[Any]]] = {
    "float16": np.float16,
    "bfloat16": np.float32,  # bfloat16 values held in float32, as the twin takes them
    "float32": np.float32,
    "float64": np.float64,
}
TORCH_DTYPE = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
LARGEST = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}
SMALLEST = {"float16": 2.0**-24, "bfloat16": 2.0**-133, "float32": 2.0**-149, "float64": 2.0**-1074}
# Dyadic k * 2**m with |k| <= 256 is exact in each dtype for m in this range.
DYADIC_EXPONENTS = {
    "float16": (-24, 7),
    "bfloat16": (-133, 119),
    "float32": (-149, 119),
    "float64": (-1074, 1010),
}
# A known torch limitation (pinned by a strict xfail test at the end) that the random float64
# activations stay clear of: among float64 subnormals the zero-point variant's tie test
# (half * gamma) rounds, so float64 magnitudes under this bound are replaced by 0.
FLOAT64_ACTIVATION_TINY = 2.0**-1000

WEIGHT_CONVENTIONS: dict[str, Conventions] = {
    "default": DEFAULT,
    "b158-paper": B158_PAPER,
    "ggml-tq": GGML_TQ,
    "ggml-tq-group-4": GGML_TQ.replace(weight_granularity=per_group(4)),
    "per-row": DEFAULT.replace(weight_granularity=PER_ROW),
    "per-group-4": DEFAULT.replace(weight_granularity=per_group(4)),
    "per-group-3-absmax-add": B158_PAPER.replace(weight_granularity=per_group(3), weight_statistic=Statistic.ABSMAX),
    "half-away": DEFAULT.replace(rounding=Rounding.HALF_AWAY),
    "half-up-per-row": DEFAULT.replace(rounding=Rounding.HALF_UP, weight_granularity=PER_ROW),
    "plus-one": DEFAULT.replace(sign_of_zero=SignOfZero.PLUS_ONE),
    "plus-one-per-group-4": DEFAULT.replace(sign_of_zero=SignOfZero.PLUS_ONE, weight_granularity=per_group(4)),
    "absmean-no-eps-per-row": DEFAULT.replace(eps_mode=EpsMode.NONE, eps=0.0, weight_granularity=PER_ROW),
}
ACTIVATION_CONVENTIONS: dict[str, Conventions] = {
    "default": DEFAULT,
    "b158-paper": B158_PAPER,
    "ggml-tq": GGML_TQ,
    "bits-2": DEFAULT.replace(activation_bits=2),
    "bits-4-half-away": DEFAULT.replace(activation_bits=4, rounding=Rounding.HALF_AWAY),
    "bits-8-per-tensor": DEFAULT.replace(activation_granularity=PER_TENSOR),
    "half-up": DEFAULT.replace(rounding=Rounding.HALF_UP),
    "half-away-per-tensor-no-eps": GGML_TQ.replace(activation_granularity=PER_TENSOR),
    "bits-2-add": B158_PAPER.replace(activation_bits=2),
    "bits-3-big-eps": DEFAULT.replace(activation_bits=3, eps=0.25),
}


def _examples(n: int) -> int:
    """``n`` examples under the default ``qcheck-ci`` profile (150), scaled for other profiles."""
    return max(5, n * settings.default.max_examples // 150)


# --------------------------------------------------------------------------------------------
# Inputs: logical values plus a memory layout, handed to torch and to the twin
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One input: its logical values (row-major, a numpy dtype that holds ``dtype`` exactly) and
    the memory layout torch and the twin receive it in."""

    values: np.ndarray
    dtype: str
    layout: str = "contiguous"  # or "transposed" (last two dims swapped in memory) or "strided"

    @property
    def source_dtype(self) -> str | None:
        return "bfloat16" if self.dtype == "bfloat16" else None

    def twin_input(self) -> np.ndarray:
        return self._arrange(self.values)

    def torch_input(self) -> torch.Tensor:
        a = self.values
        if self.layout == "transposed" and a.ndim >= 2:
            memory = torch.from_numpy(np.ascontiguousarray(a.swapaxes(-1, -2))).to(TORCH_DTYPE[self.dtype])
            out = memory.transpose(-1, -2)
        elif self.layout == "strided" and a.ndim >= 1:
            big = np.full((*a.shape[:-1], 2 * a.shape[-1]), np.nan, dtype=a.dtype)  # NaN in the gaps
            big[..., ::2] = a
            out = torch.from_numpy(big).to(TORCH_DTYPE[self.dtype])[..., ::2]
        else:
            out = torch.from_numpy(np.array(a, order="C")).to(TORCH_DTYPE[self.dtype])
        assert torch.equal(out.to(torch.float64), torch.from_numpy(a.astype(np.float64)))
        return out

    def _arrange(self, a: np.ndarray) -> np.ndarray:
        if self.layout == "transposed" and a.ndim >= 2:
            return np.ascontiguousarray(a.swapaxes(-1, -2)).swapaxes(-1, -2)
        if self.layout == "strided" and a.ndim >= 1:
            big = np.full((*a.shape[:-1], 2 * a.shape[-1]), np.nan, dtype=a.dtype)
            big[..., ::2] = a
            return big[..., ::2]
        return a


def _bf16_from_bits(bits: int) -> float:
    return float(np.array([bits << 16], dtype=np.uint32).view(np.float32)[0])


def _in_dtype(value: float, dtype: str) -> float:
    """``value`` rounded to ``dtype`` (torch's cast, round half to even)."""
    return float(torch.tensor(value, dtype=torch.float64).to(TORCH_DTYPE[dtype]).double())


def scalars(dtype: str, tiny: float | None = None) -> st.SearchStrategy[float]:
    """Finite values of ``dtype``: dyadic ``k * 2**m`` (tie-prone), any value (subnormals and the
    dtype's extremes included), and a few specials; values with ``0 < |v| < tiny`` are replaced
    by 0 when ``tiny`` is given."""
    lo, hi = DYADIC_EXPONENTS[dtype]
    largest, smallest = LARGEST[dtype], SMALLEST[dtype]
    dyadic = st.builds(math.ldexp, st.integers(-256, 256), st.integers(max(lo, -30), min(hi, 7)))
    wide_dyadic = st.builds(math.ldexp, st.integers(-256, 256), st.integers(lo, hi))
    anything: st.SearchStrategy[float]
    if dtype == "bfloat16":
        finite = st.integers(0, 0xFFFF).filter(lambda b: (b >> 7) & 0xFF != 0xFF)
        anything = finite.map(_bf16_from_bits)
    else:
        width = {"float16": 16, "float32": 32, "float64": 64}[dtype]
        anything = st.floats(width=width, allow_nan=False, allow_infinity=False)
    special_values = [0.0, -0.0, largest, smallest, _in_dtype(0.3, dtype), _in_dtype(1 / 3, dtype)]
    specials = st.sampled_from(special_values + [-v for v in special_values])
    out = st.one_of(dyadic, anything, specials, wide_dyadic)
    if tiny is not None:
        out = out.map(lambda v: v if abs(v) >= tiny else 0.0)
    return out


@st.composite
def cases(
    draw: st.DrawFn,
    *,
    min_dims: int,
    dtypes: Sequence[str] = DTYPES,
    tiny_float64: float | None = None,
) -> Case:
    """A random input of 1..~500 elements, sometimes with all-zero rows or one repeated value."""
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=8))
    tiny = tiny_float64 if dtype == "float64" else None
    values = draw(hnp.arrays(NUMPY_DTYPE[dtype], shape, elements=scalars(dtype, tiny)))
    values = np.array(values)  # a fresh array we may edit
    if values.ndim >= 1 and draw(st.booleans()):
        rows = values.reshape(-1, values.shape[-1])
        rows[draw(st.integers(0, rows.shape[0] - 1))] = 0.0
    if draw(st.integers(0, 9)) == 0:
        values[...] = draw(scalars(dtype, tiny))  # every element equal
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    return Case(values, dtype, layout)


def _grid(shape: tuple[int, ...], conventions: Conventions, for_weights: bool) -> list[list[int]]:
    """Flat row-major index lists of the groups a granularity makes of ``shape``."""
    gran = conventions.weight_granularity if for_weights else conventions.activation_granularity
    numel = math.prod(shape)
    if gran.kind is GranularityKind.PER_TENSOR or not shape:
        return [list(range(numel))]
    k = shape[-1]
    size = k if gran.kind is GranularityKind.PER_ROW else gran.group_size
    assert size is not None
    return [
        list(range(r * k + s, r * k + min(s + size, k)))
        for r in range(numel // k if k else 0)
        for s in range(0, k, size)
    ]


@st.composite
def tie_integers(draw: st.DrawFn, length: int, statistic: Statistic) -> list[int]:
    """Integers whose mean |v| (ABSMEAN) or max |v| (ABSMAX) is ``2t`` and which contain ``+-t``:
    scaled by a power of two they put weights exactly on ``|w| / gamma = 1/2``.  All are <= 256."""
    t = draw(st.integers(1, 32))
    sign = st.sampled_from([1, -1])
    if statistic is Statistic.ABSMAX:
        rest = draw(st.lists(st.integers(-2 * t, 2 * t), min_size=max(0, length - 2), max_size=max(0, length - 2)))
        out = [draw(sign) * t, draw(sign) * 2 * t, *rest][:length]
    else:  # pairs 2t -+ d have mean |v| = 2t; d = t gives the tie t (and 3t); an odd one out is 2t
        out = []
        for i in range(length // 2):
            d = t if i == 0 else draw(st.integers(0, 2 * t))
            out += [draw(sign) * (2 * t - d), draw(sign) * (2 * t + d)]
        if length % 2:
            out.append(draw(sign) * 2 * t)
    return draw(st.permutations(out))


@st.composite
def weight_tie_cases(draw: st.DrawFn, conventions: Conventions) -> Case:
    """Weights with ``w / gamma = +-1/2`` exactly in every group (when gamma is not eps-bound)."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7))
    flat = [0] * math.prod(shape)
    for group in _grid(shape, conventions, for_weights=True):
        for i, v in zip(group, draw(tie_integers(len(group), conventions.weight_statistic)), strict=True):
            flat[i] = v
    lo, hi = DYADIC_EXPONENTS[dtype]
    m = draw(st.integers(max(lo, -16), min(hi, 7)))  # mean >= 2**-16 > eps: gamma is the statistic
    values = np.array([math.ldexp(v, m) for v in flat], dtype=NUMPY_DTYPE[dtype]).reshape(shape)
    return Case(values, dtype, draw(st.sampled_from(["contiguous", "transposed", "strided"])))


@st.composite
def equal_weight_cases(draw: st.DrawFn) -> Case:
    """All-equal weights, counts 7 and 16 among others: W - alpha is exactly 0 everywhere."""
    dtype = draw(st.sampled_from(DTYPES))
    count = draw(st.sampled_from([7, 16, 1, 3, 45, 100]))
    value = draw(st.one_of(st.sampled_from([0.3, -0.3, 0.1, 1 / 3, 0.0]), scalars(dtype)))
    rows = draw(st.sampled_from([1, 2]))
    values = np.full((rows, count), value, dtype=np.float64)
    values = torch.from_numpy(values).to(TORCH_DTYPE[dtype]).to(torch.float64).numpy()  # to the dtype
    return Case(values.astype(NUMPY_DTYPE[dtype]), dtype, draw(st.sampled_from(["contiguous", "strided"])))


def _next(value: float, steps: int, dtype: str) -> float:
    """The ``dtype`` value ``steps`` (-1, 0 or +1) places from ``value``; 0 stays 0 (a subnormal
    zero point next to values near 1 is the known float32 zero-point deviation, pinned below)."""
    if steps == 0 or value == 0:
        return value
    if dtype == "bfloat16":
        bits = int(np.array([value], dtype=np.float32).view(np.uint32)[0]) >> 16
        bits += 1 if (value > 0) == (steps > 0) else -1  # away from or towards zero
        return _bf16_from_bits(bits)
    typed = NUMPY_DTYPE[dtype]
    return float(np.nextafter(typed(value), typed(math.inf if steps > 0 else -math.inf)))


@st.composite
def activation_tie_cases(draw: st.DrawFn, conventions: Conventions, zero_point: bool) -> Case:
    """Tokens on exact rounding ties: absmax ``Qp * 2**m`` and values ``(k + 1/2) * 2**m``
    (absmax), or ``x - eta = (k + 1/2) * gamma / Q_b`` (zero-point); sometimes with values nudged
    one ulp of their dtype off the tie (for float64: the legitimate difference)."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=7))
    q_b = 2 ** (conventions.activation_bits - 1)
    top = 2 * q_b if zero_point else 2 * (q_b - 1)  # absmax in units of 2**(m - 1)
    flat = [0] * math.prod(shape)
    for group in _grid(shape, conventions, for_weights=False):
        if zero_point:
            eta = draw(st.integers(-top, 0))
            odd = st.integers(0, (top - eta - 1) // 2).map(lambda j, e=eta: e + 2 * j + 1)
            extreme = -top if eta == -top else top
            rest = draw(st.lists(odd, min_size=len(group) - 2, max_size=len(group) - 2))
            row = [eta, extreme, *rest]
        else:
            odd = st.integers(-(top // 2), top // 2 - 1).map(lambda j: 2 * j + 1)
            rest = draw(st.lists(odd, min_size=len(group) - 1, max_size=len(group) - 1))
            row = [draw(st.sampled_from([top, -top])), *rest]
        for i, v in zip(group, draw(st.permutations(row)), strict=True):
            flat[i] = v
    lo, hi = DYADIC_EXPONENTS[dtype]
    m = draw(st.integers(max(lo, -14), min(hi, 7)))
    values = np.array([math.ldexp(v, m - 1) for v in flat], dtype=NUMPY_DTYPE[dtype])
    if draw(st.booleans()):  # one ulp of the dtype off the ties (zeros stay: see _next)
        steps = st.sampled_from([-1, 0, 1])
        nudges = draw(st.lists(steps, min_size=values.size, max_size=values.size))
        values = np.array([_next(v, n, dtype) for v, n in zip(values.tolist(), nudges, strict=True)])
    values = values.astype(NUMPY_DTYPE[dtype]).reshape(shape)
    return Case(
        values,
        dtype,
        draw(st.sampled_from(["contiguous", "transposed", "strided"])),
    )


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def assert_identical(what: str, got: torch.Tensor, want: np.ndarray, case: Case) -> None:
    """Same shape, same dtype (bfloat16 as float32), same values (``-0.0 == 0.0``: exact arithmetic
    has no signed zero)."""
    g = _numpy(got)
    context = f"{what} for {case.dtype} {case.layout} input {case.values.tolist()!r}"
    assert g.shape == want.shape, f"{context}: shape torch {g.shape} != twin {want.shape}"
    assert g.dtype == want.dtype, f"{context}: dtype torch {g.dtype} != twin {want.dtype}"
    differ = g != want
    if differ.any():
        first = tuple(int(i) for i in np.argwhere(differ)[0])
        raise AssertionError(
            f"{context}: {int(differ.sum())} of {g.size} element(s) differ; first at {first}: "
            f"torch {g[first]!r}, twin {want[first]!r}"
        )


def _exact_divisors(case: Case, conventions: Conventions) -> tuple[list[Fraction], list[Fraction]]:
    """Per element (flat), its exact value and its token's divisor ``a = apply_eps(absmax)``."""
    flat = [Fraction(v) for v in case.values.astype(np.float64).ravel().tolist()]
    scale_fmt = twin.FLOAT64 if case.dtype == "float64" else twin.FLOAT32
    divisors = [Fraction(0)] * len(flat)
    for group in _grid(case.values.shape, conventions, for_weights=False):
        divisor = twin.apply_eps(max(abs(flat[i]) for i in group), conventions, scale_fmt)
        for i in group:
            divisors[i] = divisor
    return flat, divisors


def _exact_quotients(case: Case, conventions: Conventions, zero_point: bool) -> list[Fraction | None]:
    """Per element, the exact ``x * Qp / a`` (or ``(x - eta) * Q_b / gamma``); None where a == 0."""
    flat, divisors = _exact_divisors(case, conventions)
    q_b = 2 ** (conventions.activation_bits - 1)
    out: list[Fraction | None] = [None] * len(flat)
    for group in _grid(case.values.shape, conventions, for_weights=False):
        eta = min(flat[i] for i in group)
        for i in group:
            if divisors[i]:
                x = flat[i] - eta if zero_point else flat[i]
                out[i] = x * (q_b if zero_point else q_b - 1) / divisors[i]
    return out


def _rounded_twice(code: int, divisor: Fraction, q_p: int) -> float:
    """torch's float64 fake-quant value as its ``dequantize_exactly`` describes it, computed exactly
    here: ``fl(fl(c * (a * 2**-8)) / Qp) * 2**8``, brought back to at most ``a`` in magnitude."""
    first = twin.round_rational(code * divisor / 256, twin.FLOAT64)  # a * 2**-8 is exact
    value = twin.round_rational(first / q_p, twin.FLOAT64) * 256
    return float(value if abs(value) <= divisor else divisor * (1 if value > 0 else -1))


def _near_tie(q: Fraction | None) -> bool:
    """Whether ``q`` lies within one float64 ulp of ``k + 1/2``, the nearest half-integer below or
    above it."""
    if q is None:
        return False
    tie = math.floor(q) + Fraction(1, 2)
    return abs(q - tie) <= Fraction(math.ulp(float(tie)))


def check_activation_codes(
    case: Case, conventions: Conventions, got: torch.Tensor, want: np.ndarray, zero_point: bool
) -> np.ndarray:
    """Codes must be identical, except that float64 codes may be one off where the exact quotient
    is within one ulp of a rounding tie (torch rounds the quotient in float64 first).  Returns the
    mask of such elements after checking each of them and that their count is bounded by the
    number of near-tie elements in the input."""
    g = _numpy(got)
    assert g.dtype == want.dtype and g.shape == want.shape, (
        f"codes dtype/shape: {g.dtype}{g.shape} vs {want.dtype}{want.shape}"
    )
    differ = g != want
    if not differ.any():
        return differ
    if case.dtype != "float64":
        assert_identical("codes", got, want, case)  # raises with the details
    quotients = _exact_quotients(case, conventions, zero_point)
    near = [_near_tie(q) for q in quotients]
    for flat_index in np.flatnonzero(differ.ravel()):
        q = quotients[flat_index]
        index = np.unravel_index(flat_index, g.shape)
        assert near[flat_index], (
            f"float64 codes differ at {index}, exact quotient {q} not within one ulp of a tie: "
            f"torch {g[index]}, twin {want[index]}, input {case.values.tolist()!r}"
        )
        assert abs(int(g[index]) - int(want[index])) == 1, f"codes at {index} differ by more than one"
    assert int(differ.sum()) <= sum(near), "more differing codes than near-tie elements"
    return differ


def _per_element(scale: np.ndarray, shape: tuple[int, ...], conventions: Conventions, for_weights: bool) -> np.ndarray:
    out = np.empty(math.prod(shape), dtype=np.float64)
    for value, group in zip(
        scale.astype(np.float64).ravel().tolist(),
        _grid(shape, conventions, for_weights),
        strict=True,
    ):
        out[group] = value
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------

WeightFns = tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any], Callable[..., Any]]
B1: WeightFns = (ref.b1_quantize, ref.b1_fake_quantize, twin.b1_quantize, twin.b1_fake_quantize)
B158: WeightFns = (
    ref.b158_quantize,
    ref.b158_fake_quantize,
    twin.b158_quantize,
    twin.b158_fake_quantize,
)


def compare_weights(fns: WeightFns, case: Case, conventions: Conventions) -> None:
    torch_q, torch_fake, twin_q, twin_fake = fns
    t, n = case.torch_input(), case.twin_input()
    got = torch_q(t, conventions)
    want = twin_q(n, conventions, source_dtype=case.source_dtype)
    assert_identical("codes", got.codes, want.codes, case)
    assert_identical("scale", got.scale, want.scale, case)
    assert_identical(
        "fake-quant",
        torch_fake(t, conventions),
        twin_fake(n, conventions, source_dtype=case.source_dtype),
        case,
    )


weight_conventions = st.sampled_from(sorted(WEIGHT_CONVENTIONS))


def _weight_case(conventions: Conventions) -> st.SearchStrategy[Case]:
    per_tensor = conventions.weight_granularity.kind is GranularityKind.PER_TENSOR
    return cases(min_dims=0 if per_tensor else 1)


@settings(max_examples=_examples(120), deadline=None)
@given(data=st.data(), name=weight_conventions)
def test_b1_quantize_matches_twin(data: st.DataObject, name: str) -> None:
    conventions = WEIGHT_CONVENTIONS[name]
    compare_weights(B1, data.draw(_weight_case(conventions)), conventions)


@settings(max_examples=_examples(120), deadline=None)
@given(data=st.data(), name=weight_conventions)
def test_b158_quantize_matches_twin(data: st.DataObject, name: str) -> None:
    conventions = WEIGHT_CONVENTIONS[name]
    compare_weights(B158, data.draw(_weight_case(conventions)), conventions)


@settings(max_examples=_examples(80), deadline=None)
@given(data=st.data(), name=weight_conventions)
def test_b158_codes_match_twin_on_exact_half_ties(data: st.DataObject, name: str) -> None:
    conventions = WEIGHT_CONVENTIONS[name]
    case = data.draw(weight_tie_cases(conventions))
    compare_weights(B158, case, conventions)
    groups = _grid(case.values.shape, conventions, for_weights=True)
    if conventions.eps_mode is not EpsMode.ADD and max(map(len, groups)) >= 2:
        scale = twin.b158_quantize(case.twin_input(), conventions, source_dtype=case.source_dtype).scale
        gamma = _per_element(scale, case.values.shape, conventions, for_weights=True)
        assert (2 * np.abs(case.values.astype(np.float64)) == gamma).any(), "no tie was built"


@settings(max_examples=_examples(60), deadline=None)
@given(
    case=equal_weight_cases(),
    name=st.sampled_from(["default", "plus-one", "per-row", "plus-one-per-group-4", "ggml-tq"]),
)
def test_b1_codes_match_twin_on_all_equal_weights(case: Case, name: str) -> None:
    conventions = WEIGHT_CONVENTIONS[name]
    compare_weights(B1, case, conventions)
    codes = twin.b1_quantize(case.twin_input(), conventions, source_dtype=case.source_dtype).codes
    assert (codes == conventions.sign_of_zero.value).all(), "Sign(W - mean(W)) of equal W is Sign(0)"


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

activation_conventions = st.sampled_from(sorted(ACTIVATION_CONVENTIONS))
activation_cases = cases(min_dims=1, tiny_float64=FLOAT64_ACTIVATION_TINY)


def compare_act(case: Case, conventions: Conventions) -> None:
    """``act_quantize`` and ``act_fake_quantize``: identical, but for counted float64 near-ties,
    and float64 fake values, which torch rounds twice (a known deviation pinned below): where
    they differ from the twin they must be exactly torch's documented two-rounding value for
    torch's own code."""
    t, n = case.torch_input(), case.twin_input()
    got = ref.act_quantize(t, conventions)
    want = twin.act_quantize(n, conventions, source_dtype=case.source_dtype)
    assert_identical("scale", got.scale, want.scale, case)
    check_activation_codes(case, conventions, got.codes, want.codes, zero_point=False)
    expected_fake = twin.act_fake_quantize(n, conventions, source_dtype=case.source_dtype)
    torch_fake = ref.act_fake_quantize(t, conventions)
    if case.dtype == "float64":
        fake = _numpy(torch_fake)
        differ = np.flatnonzero((fake != expected_fake).ravel())
        if differ.size:
            _, divisors = _exact_divisors(case, conventions)
            codes = _numpy(got.codes).ravel()
            q_p = 2 ** (conventions.activation_bits - 1) - 1
            for i in differ:
                twice = _rounded_twice(int(codes[i]), divisors[i], q_p)
                assert fake.ravel()[i] == twice, (
                    f"float64 fake-quant at flat index {i}: torch {fake.ravel()[i]!r}, rounded "
                    f"once {expected_fake.ravel()[i]!r}, rounded twice {twice!r}; "
                    f"input {case.values.tolist()!r}"
                )
            expected_fake = np.where(fake != expected_fake, fake, expected_fake)
    assert_identical("fake-quant", torch_fake, expected_fake, case)


def compare_act_zero_point(case: Case, conventions: Conventions) -> None:
    """Zero-point codes, scale, zero point and fake values: identical, but for counted float64
    near-ties, and float64 fake values, which torch rounds twice (a known deviation pinned
    below): where they differ from the twin they must be exactly ``fl(fl(c * s) + z)`` for
    torch's own code ``c``."""
    t, n = case.torch_input(), case.twin_input()
    got = ref.act_quantize_zero_point(t, conventions)
    want = twin.act_quantize_zero_point(n, conventions, source_dtype=case.source_dtype)
    assert_identical("scale", got.scale, want.scale, case)
    assert_identical("zero point", got.zero_point, want.zero_point, case)
    check_activation_codes(case, conventions, got.codes, want.codes, zero_point=True)
    expected_fake = twin.act_fake_quantize_zero_point(n, conventions, source_dtype=case.source_dtype)
    torch_fake = ref.act_fake_quantize_zero_point(t, conventions)
    if case.dtype == "float64":
        s = _per_element(want.scale, case.values.shape, conventions, for_weights=False)
        z = _per_element(want.zero_point, case.values.shape, conventions, for_weights=False)
        twice = _numpy(got.codes).astype(np.float64) * s + z  # IEEE: fl(fl(c * s) + z)
        fake = _numpy(torch_fake)
        differ = fake != expected_fake
        assert (fake[differ] == twice[differ]).all(), (
            f"float64 zero-point fake-quant is neither rounded once nor fl(fl(c * s) + z): "
            f"torch {fake[differ].tolist()}, once {expected_fake[differ].tolist()}, "
            f"twice {twice[differ].tolist()}; input {case.values.tolist()!r}"
        )
        expected_fake = np.where(differ, fake, expected_fake)
    assert_identical("fake-quant", torch_fake, expected_fake, case)


@settings(max_examples=_examples(150), deadline=None)
@given(case=activation_cases, name=activation_conventions)
def test_act_quantize_matches_twin(case: Case, name: str) -> None:
    compare_act(case, ACTIVATION_CONVENTIONS[name])


@settings(max_examples=_examples(150), deadline=None)
@given(case=activation_cases, name=activation_conventions)
def test_act_quantize_zero_point_matches_twin(case: Case, name: str) -> None:
    compare_act_zero_point(case, ACTIVATION_CONVENTIONS[name])


@settings(max_examples=_examples(100), deadline=None)
@given(data=st.data(), name=activation_conventions)
def test_act_codes_match_twin_on_exact_half_ties(data: st.DataObject, name: str) -> None:
    conventions = ACTIVATION_CONVENTIONS[name]
    compare_act(data.draw(activation_tie_cases(conventions, zero_point=False)), conventions)


@settings(max_examples=_examples(100), deadline=None)
@given(data=st.data(), name=activation_conventions)
def test_zero_point_codes_match_twin_on_exact_half_ties(data: st.DataObject, name: str) -> None:
    conventions = ACTIVATION_CONVENTIONS[name]
    compare_act_zero_point(data.draw(activation_tie_cases(conventions, zero_point=True)), conventions)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 5), (2, 0, 3), (0, 0), (0, 1, 4)])
@pytest.mark.parametrize("name", ["default", "bits-8-per-tensor"])
def test_zero_tokens_give_the_same_empty_outputs(dtype: str, shape: tuple[int, ...], name: str) -> None:
    conventions = ACTIVATION_CONVENTIONS[name]
    case = Case(np.zeros(shape, dtype=NUMPY_DTYPE[dtype]), dtype)
    compare_act(case, conventions)
    compare_act_zero_point(case, conventions)


@pytest.mark.parametrize("dtype", DTYPES)
def test_near_maximal_and_subnormal_values_match_twin(dtype: str) -> None:
    largest, smallest = LARGEST[dtype], SMALLEST[dtype]
    act_small = FLOAT64_ACTIVATION_TINY if dtype == "float64" else smallest
    rows = {
        "weights": [
            [largest, -largest, largest / 3],
            [smallest, -smallest, 3 * smallest],
            [0.0, 0.0, 0.0],
        ],
        "activations": [
            [largest, -largest / 2, largest / 7],
            [act_small, -act_small, 5 * act_small],
            [0.0, -0.0, 0.0],
        ],
    }
    to_dtype = {k: torch.tensor(v, dtype=torch.float64).to(TORCH_DTYPE[dtype]) for k, v in rows.items()}
    assert all(bool(torch.isfinite(v).all()) for v in to_dtype.values())
    weights = Case(to_dtype["weights"].double().numpy().astype(NUMPY_DTYPE[dtype]), dtype, "transposed")
    acts = Case(to_dtype["activations"].double().numpy().astype(NUMPY_DTYPE[dtype]), dtype, "strided")
    for conventions in WEIGHT_CONVENTIONS.values():
        compare_weights(B1, weights, conventions)
        compare_weights(B158, weights, conventions)
    for conventions in ACTIVATION_CONVENTIONS.values():
        compare_act(acts, conventions)
        compare_act_zero_point(acts, conventions)


# --------------------------------------------------------------------------------------------
# Input policy: both sides reject the same inputs with QuantizationInputError
# --------------------------------------------------------------------------------------------

TORCH_FNS: dict[str, Callable[..., Any]] = {
    "b1_quantize": ref.b1_quantize,
    "b1_fake_quantize": ref.b1_fake_quantize,
    "b158_quantize": ref.b158_quantize,
    "b158_fake_quantize": ref.b158_fake_quantize,
    "act_quantize": ref.act_quantize,
    "act_fake_quantize": ref.act_fake_quantize,
    "act_quantize_zero_point": ref.act_quantize_zero_point,
    "act_fake_quantize_zero_point": ref.act_fake_quantize_zero_point,
}
WEIGHT_OPS = [k for k in TORCH_FNS if k.startswith("b1")]
ACT_OPS = [k for k in TORCH_FNS if k.startswith("act")]
BAD_INPUTS: dict[str, tuple[np.ndarray, list[str], Conventions]] = {
    "int32": (np.array([1, 2, 3], dtype=np.int32), list(TORCH_FNS), DEFAULT),
    "nan": (np.array([[1.0, np.nan]], dtype=np.float32), list(TORCH_FNS), DEFAULT),
    "inf": (np.array([[np.inf, 1.0]], dtype=np.float16), list(TORCH_FNS), DEFAULT),
    "minus-inf": (np.array([-np.inf]), list(TORCH_FNS), DEFAULT),
    "empty-weight": (np.zeros((0,), dtype=np.float32), WEIGHT_OPS, DEFAULT),
    "empty-rows-weight": (np.zeros((2, 0), dtype=np.float32), WEIGHT_OPS, DEFAULT),
    "0-d-activation": (np.array(1.5, dtype=np.float32), ACT_OPS, DEFAULT),
    "rows-of-length-0": (np.zeros((3, 0), dtype=np.float32), ACT_OPS, DEFAULT),
    "one-empty-row": (np.zeros((0,), dtype=np.float64), ACT_OPS, DEFAULT),
    "0-d-per-row-weight": (
        np.array(1.5, dtype=np.float32),
        WEIGHT_OPS,
        WEIGHT_CONVENTIONS["per-row"],
    ),
    "0-d-per-group-weight": (
        np.array(1.5, dtype=np.float32),
        WEIGHT_OPS,
        WEIGHT_CONVENTIONS["per-group-4"],
    ),
}


@pytest.mark.parametrize("bad", sorted(BAD_INPUTS))
def test_both_reject_the_same_inputs(bad: str) -> None:
    values, ops, conventions = BAD_INPUTS[bad]
    for op in ops:
        with pytest.raises(QuantizationInputError):
            TORCH_FNS[op](torch.from_numpy(values), conventions)
        with pytest.raises(QuantizationInputError):
            getattr(twin, op)(values, conventions)


def test_twin_rejects_a_wrong_source_dtype() -> None:
    not_bf16 = np.array([1.0 + 2.0**-20], dtype=np.float32)
    with pytest.raises(QuantizationInputError, match="not bfloat16"):
        twin.b158_quantize(not_bf16, source_dtype="bfloat16")
    with pytest.raises(QuantizationInputError, match="cannot be held"):
        twin.act_quantize(np.array([1.0]), source_dtype="bfloat16")
    with pytest.raises(QuantizationInputError):
        twin.act_quantize(np.array([1.0], dtype=np.float32), source_dtype="int8")


# --------------------------------------------------------------------------------------------
# The twin's rounding routine against numpy's and torch's casts
# --------------------------------------------------------------------------------------------


@settings(max_examples=_examples(300), deadline=None)
@given(v=st.floats(allow_nan=False, allow_infinity=False))
def test_twin_rounding_matches_numpy_and_torch_casts(v: float) -> None:
    with np.errstate(over="ignore"):
        assert twin.round_to_format(Fraction(v), twin.FLOAT16) == float(np.float16(v))
        f32 = np.float32(v)
        assert twin.round_to_format(Fraction(v), twin.FLOAT32) == float(f32)
    if math.isfinite(f32):
        bf16 = torch.tensor(float(f32), dtype=torch.float32).to(torch.bfloat16).item()
        assert twin.round_to_format(Fraction(float(f32)), twin.BFLOAT16) == bf16
    assert twin.round_to_format(Fraction(v), twin.FLOAT64) == v


def test_twin_weight_quantizers_are_fast_enough() -> None:
    import time

    w = np.random.default_rng(0).standard_normal((256, 256))
    start = time.perf_counter()
    twin.b1_fake_quantize(w)
    twin.b158_fake_quantize(w, WEIGHT_CONVENTIONS["per-group-4"])
    assert time.perf_counter() - start < 4.0


# --------------------------------------------------------------------------------------------
# Known deviations of the torch reference from the SPEC, checked against exact arithmetic here
# --------------------------------------------------------------------------------------------


def _exact_round_half_even(q: Fraction) -> int:
    return round(q)  # Fraction.__round__ rounds half to even, exactly


def test_act_quantize_float64_near_max_codes_are_exact() -> None:
    x = np.array([1.7976931348623157e308, 1e308])
    want = [127, _exact_round_half_even(Fraction(1e308) * 127 / Fraction(1.7976931348623157e308))]
    assert want == [127, 71]
    assert twin.act_quantize(x).codes.tolist() == want
    assert ref.act_quantize(torch.from_numpy(x)).codes.tolist() == want


def test_zero_point_float64_near_max_codes_are_exact() -> None:
    x = np.array([1.7976931348623157e308, 2.0**1023, 0.0])
    assert twin.act_quantize_zero_point(x).codes.tolist() == [128, 64, 0]
    assert ref.act_quantize_zero_point(torch.from_numpy(x)).codes.tolist() == [128, 64, 0]


def test_zero_point_float32_codes_are_exact_when_eta_is_tiny() -> None:
    x = np.array([1.0, 2.0**-8, -(2.0**-100)], dtype=np.float32)
    # (2**-8 + 2**-100) * 128 / 1 = 1/2 + 2**-93: just above the tie, so 1 under every rounding
    q = (Fraction(2) ** -8 + Fraction(2) ** -100) * 128
    assert q > Fraction(1, 2) and _exact_round_half_even(q) == 1
    assert twin.act_quantize_zero_point(x).codes.tolist() == [128, 1, 0]
    assert ref.act_quantize_zero_point(torch.from_numpy(x)).codes.tolist() == [128, 1, 0]


@pytest.mark.xfail(strict=True, reason="torch computes codes * scale + zero_point in float64: two roundings")
def test_zero_point_float64_fake_is_rounded_once() -> None:
    x = np.array([0.6, 0.3, 0.8])
    codes, scale, zero_point = twin.act_quantize_zero_point(x)
    assert codes.tolist() == [48, 0, 80]
    exact = 48 * Fraction(scale.item()) + Fraction(zero_point.item())
    want = twin.round_to_format(exact, twin.FLOAT64)
    assert want == 0.6 and float(exact) == 0.6  # float(Fraction) is correctly rounded
    assert twin.act_fake_quantize_zero_point(x)[0] == want
    assert (
        ref.act_fake_quantize_zero_point(torch.from_numpy(x))[0].item() == want
    )  # torch (float64, documented): 0.6000000000000001


def test_zero_point_float32_fake_is_rounded_once() -> None:
    x = np.array([1.0 + 2.0**-23, 0.0234375, -(2.0**-100)], dtype=np.float32)
    codes, scale, zero_point = twin.act_quantize_zero_point(x)
    assert codes.tolist() == [128, 3, 0]
    exact = 3 * Fraction(scale.item()) + Fraction(zero_point.item())
    below, above = np.float32(0.02343750186264515), np.float32(0.0234375037252903)
    assert np.nextafter(below, np.float32(1.0)) == above  # neighbours; torch returns `above`
    assert Fraction(float(below)) < exact < (Fraction(float(below)) + Fraction(float(above))) / 2
    want = float(below)  # exact is 2**-100 under the midpoint: rounded once, it goes down
    assert twin.round_to_format(exact, twin.FLOAT32) == want
    assert float(twin.act_fake_quantize_zero_point(x)[1]) == want
    assert ref.act_fake_quantize_zero_point(torch.from_numpy(x))[1].item() == want


def test_act_fake_float16_is_rounded_once() -> None:
    x = np.array([0.00017189979553222656, 0.00014460086822509766], dtype=np.float16)
    codes, _ = twin.act_quantize(x, B158_PAPER)
    assert codes.tolist() == [120, 101]  # a = absmax + eps > absmax
    a = Fraction(float(x[0])) + Fraction(float(np.float32(1e-5)))  # ADD: fl32(absmax + eps)
    a = Fraction(float(np.float32(float(a))))
    assert a == Fraction(0.00018189979891758412)
    exact = 101 * a / 127
    want = twin.round_to_format(exact, twin.FLOAT16)
    assert want == float(x[1])  # the exact value rounds back to the input itself
    lower, upper = Fraction(float(x[1])), Fraction(float(np.nextafter(x[1], np.float16(1))))
    assert lower < exact < (lower + upper) / 2
    assert float(twin.act_fake_quantize(x, B158_PAPER)[1]) == want
    got = ref.act_fake_quantize(torch.from_numpy(x), B158_PAPER)[1].item()
    assert got == want  # torch: 0.00014472007751464844, the float16 above


@pytest.mark.xfail(strict=True, reason="torch computes code * a / Qp in float64: two roundings")
def test_act_fake_float64_is_rounded_once() -> None:
    x = np.array([0.296875, 1 / 3])
    codes, _ = twin.act_quantize(x)
    assert codes.tolist() == [113, 127]
    exact = 113 * Fraction(1 / 3) / 127
    want = twin.round_to_format(exact, twin.FLOAT64)
    assert want == float(exact) == 0.29658792650918636  # float(Fraction) rounds correctly
    assert float(twin.act_fake_quantize(x)[0]) == want
    assert ref.act_fake_quantize(torch.from_numpy(x))[0].item() == want  # torch: ...1863


@pytest.mark.xfail(strict=True, reason="float64 zero-point: half * gamma rounds among float64 subnormals")
def test_act_float64_subnormal_codes_are_exact() -> None:
    x = np.array([2.5e-323, 5e-324])  # 5 and 1 times the smallest subnormal; eps "none"
    assert twin.act_quantize(x, GGML_TQ).codes.tolist() == [127, 25]  # 127 / 5 = 25.4
    assert twin.act_quantize_zero_point(x, GGML_TQ).codes.tolist() == [102, 0]  # 4/5 * 128
    assert ref.act_quantize(torch.from_numpy(x), GGML_TQ).codes.tolist() == [127, 25]  # torch: 0, 0
    got = ref.act_quantize_zero_point(torch.from_numpy(x), GGML_TQ).codes.tolist()
    assert got == [102, 0]  # torch: 0, 0


def test_act_fake_float64_subnormal_divisor_is_not_flushed() -> None:
    x = np.array([2.5e-323, 5e-324])  # 5 and 1 times the smallest subnormal; eps "none"
    codes, _ = twin.act_quantize(x, GGML_TQ)
    assert codes.tolist() == [127, 25]  # 127 / 5 = 25.4
    want = [2.5e-323, twin.round_to_format(25 * Fraction(2.5e-323) / 127, twin.FLOAT64)]
    assert want == [2.5e-323, 5e-324]
    assert twin.act_fake_quantize(x, GGML_TQ).tolist() == want
    assert ref.act_fake_quantize(torch.from_numpy(x), GGML_TQ).tolist() == want  # torch: 0, 0
