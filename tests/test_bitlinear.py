"""The BitLinear reference (``qcheck.quantizers.bitlinear``, SPEC BL-1) against an independent numpy
computation, on the worst-case accumulation, and its input policy.

The independent product takes the activation codes and scales from ``act_quantize`` (checked by
their own tests) and does the rest without torch: an int64 numpy matmul per weight group (exact:
``|sum| <= 127 * K``), then float64 ``sum * (x_scale * w_scale)`` per group, the groups added left to
right, the bias added, and one rounding to x's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qcheck import strategies
from qcheck.arguments import Args
from qcheck.conventions import DEFAULT, PER_ROW, PER_TENSOR, Conventions, GranularityKind, per_group
from qcheck.errors import QuantizationInputError
from qcheck.kernel_strategies import BITLINEAR_FAMILIES
from qcheck.known_bad_kernels import bitlinear_int16_accumulator
from qcheck.quantizers import act_quantize, bitlinear
from qcheck.quantizers.bitlinear import weight_scale_shape

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
GRANULARITIES = {
    "per-tensor": DEFAULT.replace(weight_granularity=PER_TENSOR),
    "per-row": DEFAULT.replace(weight_granularity=PER_ROW),
    "per-group(64)": DEFAULT.replace(weight_granularity=per_group(64)),
}
IN_FEATURES = (1, 2, 3, 31, 63, 64, 65, 100, 128, 129, 200, 256, 300)
"""Around the group size 64: one short group, whole groups, and a short last group."""
LEADING = ((1,), (3,), (2, 1), (2, 3))
"""x is 2-D (M, K) or 3-D (B, S, K)."""


# ---------------------------------------------------------------- the independent computation


def group_bounds(in_features: int, conventions: Conventions) -> list[tuple[int, int]]:
    """``[start, stop)`` of each weight group along K: one group unless per-group, whose groups are
    ``group_size`` consecutive elements with a shorter last one (SPEC CONV-4)."""
    granularity = conventions.weight_granularity
    if granularity.kind is not GranularityKind.PER_GROUP:
        return [(0, in_features)]
    assert granularity.group_size is not None
    size = granularity.group_size
    return [(start, min(start + size, in_features)) for start in range(0, in_features, size)]


def numpy_bitlinear(
    x: torch.Tensor,
    w_codes: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    conventions: Conventions,
) -> torch.Tensor:
    codes, x_scale = act_quantize(x, conventions)
    k = x.shape[-1]
    n = w_codes.shape[0]
    xc = codes.numpy().astype(np.int64).reshape(-1, k)  # (M, K)
    wc = w_codes.numpy().astype(np.int64)  # (N, K)
    xs = x_scale.to(torch.float64).numpy().reshape(-1, 1)  # (M, 1)
    bounds = group_bounds(k, conventions)
    ws = w_scale.to(torch.float64).numpy().reshape(-1)
    scales = np.broadcast_to(ws, (n, len(bounds))) if ws.size == 1 else ws.reshape(n, len(bounds))
    y = np.zeros((xc.shape[0], n), dtype=np.float64)
    for g, (start, stop) in enumerate(bounds):
        acc = np.matmul(xc[:, start:stop], wc[:, start:stop].T)  # exact int64
        assert acc.dtype == np.int64
        y = y + acc.astype(np.float64) * (xs * scales[:, g][np.newaxis, :])
    if bias is not None:
        y = y + bias.to(torch.float64).numpy()[np.newaxis, :]
    return torch.from_numpy(y).reshape(*x.shape[:-1], n).to(x.dtype)


def ulp(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of ``dtype`` at ``|values|`` (float64 in, float64 out; subnormal spacing at 0)."""
    info = torch.finfo(dtype)
    _, exponent = torch.frexp(values.abs())
    return torch.maximum(
        info.eps * torch.pow(2.0, (exponent - 1).to(torch.float64)), torch.tensor(info.tiny * info.eps)
    )


def assert_within_one_ulp(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    g64, e64 = got.to(torch.float64), expected.to(torch.float64)
    same = g64 == e64  # includes a float16 overflow to the same infinity on both sides
    allowed = torch.maximum(ulp(g64, got.dtype), ulp(e64, got.dtype))
    close = torch.isfinite(g64) & torch.isfinite(e64) & ((g64 - e64).abs() <= allowed)
    bad = ~(same | close)
    if bool(bad.any()):
        i = tuple(int(j) for j in torch.nonzero(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {got.numel()} element(s) differ by more than one ulp of {got.dtype}; "
            f"first at {i}: reference {float(g64[i])!r}, numpy {float(e64[i])!r}"
        )


# ---------------------------------------------------------------- inputs


@st.composite
def bitlinear_inputs(draw: Any, dtype: torch.dtype, conventions: Conventions) -> dict[str, Any]:
    k = draw(st.sampled_from(IN_FEATURES))
    n = draw(st.sampled_from((1, 2, 3, 5)))
    lead = draw(st.sampled_from(LEADING))
    x = draw(
        strategies.activations(
            conventions=conventions,
            dtype=dtype,
            shape=(*lead, k),
            families=BITLINEAR_FAMILIES,
            non_contiguous=False,
        )
    )
    kind = draw(st.sampled_from(("b1", "b158")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "b1":
        w = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, k))
    else:
        w = rng.integers(-1, 2, size=(n, k), dtype=np.int8)
    w_codes = torch.from_numpy(w)
    shape = weight_scale_shape(n, k, conventions)
    count = int(np.prod(shape)) if shape else 1
    scale_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    values = draw(
        st.lists(st.floats(2.0**-12, 2.0**8, allow_nan=False, allow_infinity=False), min_size=count, max_size=count)
    )
    w_scale = torch.tensor(values, dtype=scale_dtype).reshape(shape)
    bias = None
    if draw(st.booleans()):
        terms = draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=n, max_size=n))
        bias = torch.tensor(terms, dtype=torch.float32).to(dtype)
    return {"x": x, "w_codes": w_codes, "w_scale": w_scale, "bias": bias, "kind": kind}


# ---------------------------------------------------------------- the reference equals the independent product


@pytest.mark.parametrize("granularity", list(GRANULARITIES))
def test_reference_equals_an_independent_numpy_product(granularity: str) -> None:
    """Within one ulp of x's dtype, not bitwise: both sides evaluate the same float64 expression
    on the same exact integer sums (``sum * (x_scale * w_scale)`` per group, then the bias) and
    round once to x's dtype, but the reference adds the per-group terms with a torch reduction whose
    order is its own; a last-bit difference in float64 can move the final rounding by one ulp of
    the output dtype and no more.  (The weight groups themselves are not a rounding question: a
    wrong group boundary is off by whole terms.)"""
    conventions = GRANULARITIES[granularity]
    seen: set[tuple[str, object]] = set()

    @settings(max_examples=160)
    @given(st.sampled_from(FLOAT_DTYPES).flatmap(lambda dtype: bitlinear_inputs(dtype, conventions)))
    def check(case: dict[str, Any]) -> None:
        x, w_codes, w_scale, bias = case["x"], case["w_codes"], case["w_scale"], case["bias"]
        seen.update({("dtype", x.dtype), ("codes", case["kind"]), ("bias", bias is not None), ("dims", x.dim())})
        got = bitlinear(x, w_codes, w_scale, bias, conventions)
        assert got.dtype == x.dtype
        assert tuple(got.shape) == (*x.shape[:-1], w_codes.shape[0])
        assert_within_one_ulp(got, numpy_bitlinear(x, w_codes, w_scale, bias, conventions))

    check()
    wanted = {("dtype", d) for d in FLOAT_DTYPES} | {("codes", "b1"), ("codes", "b158")}
    wanted |= {("bias", True), ("bias", False), ("dims", 2), ("dims", 3)}
    assert wanted <= seen, f"not exercised: {sorted(map(str, wanted - seen))}"


def test_the_independent_product_sees_each_group_scale() -> None:
    """The oracle itself is not vacuous: per group (64), scaling one group's scale changes exactly the
    terms of that group, and a wrong group would be whole terms off."""
    conventions = GRANULARITIES["per-group(64)"]
    x = torch.ones(1, 130)  # codes 127 everywhere, x_scale = 1/127
    w = torch.ones(1, 130, dtype=torch.int8)
    w_scale = torch.tensor([[1.0, 2.0, 4.0]])
    y = numpy_bitlinear(x, w, w_scale, None, conventions)
    x_scale = float(act_quantize(x).scale)
    assert float(y) == pytest.approx(127 * x_scale * (64 * 1.0 + 64 * 2.0 + 2 * 4.0), rel=1e-6)


@pytest.mark.parametrize("k", [65, 100, 129, 300])
def test_per_group_reference_uses_groups_of_the_declared_size(k: int) -> None:
    """SPEC CONV-4: groups of 64 consecutive elements, the last one shorter, exactly the groups the
    weight quantizers give their scales to.  x = 1 (codes 127, x_scale 1/127) and w = +1 make the
    product the sum of (group length * group scale)."""
    conventions = GRANULARITIES["per-group(64)"]
    groups = group_bounds(k, conventions)
    x = torch.ones(1, k, dtype=torch.float64)
    w = torch.ones(1, k, dtype=torch.int8)
    scales = [2.0**g for g in range(len(groups))]
    w_scale = torch.tensor([scales], dtype=torch.float64)
    assert tuple(w_scale.shape) == weight_scale_shape(1, k, conventions)
    x_scale = float(act_quantize(x).scale)
    expected = sum((stop - start) * 127 * (x_scale * s) for (start, stop), s in zip(groups, scales, strict=True))
    got = float(bitlinear(x, w, w_scale, None, conventions))
    assert got == pytest.approx(expected, rel=1e-12), (
        f"K = {k}: groups {groups} with scales {scales} give {expected}, the reference gives {got}"
    )


# ---------------------------------------------------------------- worst-case accumulation


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k", [259, 4097, 16384])
def test_worst_case_accumulation_is_exact(k: int, dtype: torch.dtype) -> None:
    """x all +3.0 gives codes 127, w all +1: every dot product is 127 * K (K = 259 is already past
    int16: 127 * 259 = 32893 > 32767).  With a power-of-two w_scale the float64 value
    127 * K * x_scale * w_scale has one rounding at most (127 * x_scale needs 31 bits for a float32
    scale, a float64 one rounds once), so the result is that value rounded once to x's dtype."""
    assert 127 * 259 > 2**15 - 1
    x = torch.full((2, k), 3.0, dtype=dtype)
    w = torch.ones(3, k, dtype=torch.int8)
    w_scale = torch.tensor(0.5, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    codes, x_scale = act_quantize(x)
    assert bool((codes == 127).all())
    xs, ws = float(x_scale.reshape(-1)[0]), float(w_scale)
    exact = (127 * k * xs) * ws
    assert exact == 127 * k * (xs * ws)  # the association does not matter: ws is a power of two
    y = bitlinear(x, w, w_scale)
    assert y.dtype == dtype
    assert torch.equal(y, torch.full((2, 3), exact, dtype=torch.float64).to(dtype))
    assert float(y[0, 0]) == pytest.approx(3.0 * k * 0.5, rel=1e-6)  # 127 * x_scale is ~ absmax = 3
    # an int16 accumulator is far off here (the sum wraps to a negative number)
    wrapped = bitlinear_int16_accumulator(Args((x, w, w_scale, None)))
    assert not torch.equal(wrapped, y)


def test_worst_case_with_per_row_scales_and_mixed_signs() -> None:
    """The same 127 * K sum reached through alternating signs of x and w (each product is +127), one
    scale per output row."""
    k = 16384
    conventions = GRANULARITIES["per-row"]
    x = torch.full((1, k), 3.0)
    x[:, 1::2] = -3.0
    w = torch.ones(2, k, dtype=torch.int8)
    w[:, 1::2] = -1
    w_scale = torch.tensor([[0.25], [2.0]])
    x_scale = float(act_quantize(x).scale)
    y = bitlinear(x, w, w_scale, None, conventions)
    expected = torch.tensor([[127 * k * x_scale * 0.25, 127 * k * x_scale * 2.0]], dtype=torch.float64)
    assert torch.equal(y, expected.to(torch.float32))


# ---------------------------------------------------------------- input validation


def _valid(n: int = 3, k: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.linspace(-1.0, 1.0, 2 * k).reshape(2, k)
    w = torch.tensor([[1, 0, -1, 1, 0, -1, 1, 0]] * n, dtype=torch.int8)[:, :k]
    return x, w, torch.tensor(0.5)


def test_valid_arguments_are_accepted() -> None:
    x, w, w_scale = _valid()
    assert bitlinear(x, w, w_scale, torch.zeros(3)).shape == (2, 3)


@pytest.mark.parametrize(
    ("w_codes", "message"),
    [
        (torch.ones(3, 8, dtype=torch.int32), r"w_codes must be an int8 tensor, got torch\.int32"),
        (torch.ones(3, 8, dtype=torch.float32), r"w_codes must be an int8 tensor, got torch\.float32"),
        (torch.ones(3, 8, dtype=torch.uint8), r"w_codes must be an int8 tensor, got torch\.uint8"),
        ([[1] * 8] * 3, r"w_codes must be an int8 tensor, got list"),
    ],
    ids=["int32", "float32", "uint8", "list"],
)
def test_non_int8_weight_codes_are_rejected(w_codes: Any, message: str) -> None:
    x, _, w_scale = _valid()
    with pytest.raises(QuantizationInputError, match=message):
        bitlinear(x, w_codes, w_scale)


@pytest.mark.parametrize("bad", [2, -2, 127, -128])
def test_codes_outside_ternary_are_rejected(bad: int) -> None:
    x, w, w_scale = _valid()
    w = w.clone()
    w[1, 5] = bad
    with pytest.raises(QuantizationInputError, match=r"w_codes must hold only -1, 0 and \+1"):
        bitlinear(x, w, w_scale)


@pytest.mark.parametrize(
    "w_codes",
    [torch.ones(3, 7, dtype=torch.int8), torch.ones(3, 9, dtype=torch.int8), torch.ones(8, dtype=torch.int8)],
    ids=["short", "long", "1-d"],
)
def test_in_features_mismatch_is_rejected(w_codes: torch.Tensor) -> None:
    x, _, w_scale = _valid()
    with pytest.raises(
        QuantizationInputError, match=r"w_codes must be shaped \(out_features, 8\) for x's last dimension 8"
    ):
        bitlinear(x, w_codes, w_scale)


@pytest.mark.parametrize(
    ("granularity", "w_scale", "message"),
    [
        ("per-tensor", torch.tensor([0.5, 0.5]), r"a per-tensor w_scale has one element, got shape \(2,\)"),
        ("per-row", torch.full((3,), 0.5), r"w_scale must be shaped \(3, 1\), got \(3,\)"),
        ("per-row", torch.full((1, 3), 0.5), r"w_scale must be shaped \(3, 1\), got \(1, 3\)"),
        ("per-group(64)", torch.full((3, 2), 0.5), r"w_scale must be shaped \(3, 1\), got \(3, 2\)"),
    ],
)
def test_wrong_weight_scale_shape_is_rejected(granularity: str, w_scale: torch.Tensor, message: str) -> None:
    x, w, _ = _valid()
    with pytest.raises(QuantizationInputError, match=message):
        bitlinear(x, w, w_scale, None, GRANULARITIES[granularity])


@pytest.mark.parametrize(
    ("w_scale", "message"),
    [
        (torch.tensor(-0.5), r"w_scale must be finite and >= 0"),
        (torch.tensor(float("nan")), r"w_scale must be finite and >= 0"),
        (torch.tensor(2, dtype=torch.int32), r"w_scale must be a floating-point tensor"),
    ],
    ids=["negative", "nan", "int"],
)
def test_bad_weight_scale_values_are_rejected(w_scale: torch.Tensor, message: str) -> None:
    x, w, _ = _valid()
    with pytest.raises(QuantizationInputError, match=message):
        bitlinear(x, w, w_scale)


@pytest.mark.parametrize(
    "bias",
    [torch.zeros(4), torch.zeros(1, 3), torch.zeros(3, dtype=torch.int64), torch.zeros(()), [0.0, 0.0, 0.0]],
    ids=["too-long", "2-d", "int", "0-d", "list"],
)
def test_bias_of_the_wrong_shape_or_kind_is_rejected(bias: Any) -> None:
    x, w, w_scale = _valid()
    with pytest.raises(QuantizationInputError, match=r"bias must be None or a float tensor shaped \(3,\)"):
        bitlinear(x, w, w_scale, bias)


def test_non_finite_bias_is_rejected() -> None:
    x, w, w_scale = _valid()
    with pytest.raises(QuantizationInputError, match="bias contains NaN or Inf"):
        bitlinear(x, w, w_scale, torch.tensor([0.0, float("inf"), 1.0]))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_activations_are_rejected(value: float) -> None:
    x, w, w_scale = _valid()
    x = x.clone()
    x[1, 2] = value
    with pytest.raises(
        QuantizationInputError, match=r"bitlinear: activation contains 1 non-finite value\(s\).*index \(1, 2\)"
    ):
        bitlinear(x, w, w_scale)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.ones(2, 8, dtype=torch.int8), r"activation dtype torch\.int8 is not supported"),
        (torch.ones(0, 8), r"activation of shape \(0, 8\) has no elements"),
        (torch.tensor(1.0), r"activation needs at least 1 dimension"),
    ],
    ids=["int8", "empty", "0-d"],
)
def test_activations_of_the_wrong_kind_are_rejected(x: torch.Tensor, message: str) -> None:
    _, w, w_scale = _valid()
    with pytest.raises(QuantizationInputError, match=message):
        bitlinear(x, w, w_scale)
