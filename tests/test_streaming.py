"""The streaming quantizers (qcheck.quantizers.streaming) against the readable references.

Bit-identical codes and scales (values, dtype, shape) on every input family of the property suite
(qcheck.strategies: ties, all-equal, subnormal, extreme, outlier, near-eps weights; every
activation family), every convention set of the differential tests, every dtype and memory
layout; with tiles of the real size and with tiles of a few elements (so that rows split across
tiles and the fsum combination are exercised on small inputs).  Plus: the fast path is really
taken on ordinary input (a fallback-everything bug would pass the comparisons), and the
interval/threshold helpers against brute force.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qcheck import strategies as qst
from qcheck.conventions import DEFAULT, PER_ROW, Conventions
from qcheck.quantizers import (
    activations,
    dtype_bounds,
    fused_kernels,
    streaming,
    streaming_statistics,
    tiles,
    weights,
)
from qcheck.quantizers.results import Quantized
from tests.test_differential import ACTIVATION_CONVENTIONS, WEIGHT_CONVENTIONS

Op = Callable[[torch.Tensor, Conventions], Quantized]
PAIRS: dict[str, tuple[Op, Op]] = {
    "b158_quantize": (streaming.b158_quantize, weights.b158_quantize),
    "b1_quantize": (streaming.b1_quantize, weights.b1_quantize),
    "act_quantize": (streaming.act_quantize, activations.act_quantize),
}
TILE_SIZES: tuple[int | str, ...] = (tiles.TILE_ELEMENTS, 5, "fused")


@contextlib.contextmanager
def tile_elements(budget: int | str) -> Iterator[None]:
    """Tiles of ``budget`` elements within the block (rows split across tiles on small inputs), or
    with ``"fused"`` the fused kernels at every size (tiles of 5 for the sums, so that pieces and
    the fsum tail are exercised), which must not have fallen back to eager."""
    with pytest.MonkeyPatch.context() as patch:
        size = 5 if budget == "fused" else int(budget)
        patch.setattr(tiles, "TILE_ELEMENTS", size)
        patch.setattr(streaming_statistics, "TILE_ELEMENTS", size)
        if budget == "fused":
            patch.setattr(fused_kernels, "MIN_ELEMENTS", 0)
            with torch._dynamo.config.patch(recompile_limit=1024, accumulated_recompile_limit=100_000):
                yield
            assert not fused_kernels._state["broken"], "the fused kernels fell back to eager"
        else:
            yield


def assert_same(name: str, x: torch.Tensor, conventions: Conventions) -> None:
    fast, simple = PAIRS[name]
    try:
        want = simple(x, conventions)
    except Exception as error:  # the reference rejects it: so must the fast path, the same way
        with pytest.raises(type(error), match=None) as raised:
            fast(x, conventions)
        assert str(raised.value) == str(error)
        return
    got = fast(x, conventions)
    for what, g, w in (("codes", got.codes, want.codes), ("scale", got.scale, want.scale)):
        assert g.dtype == w.dtype and g.shape == w.shape, (
            f"{name} {what}: {g.dtype}{tuple(g.shape)} vs {w.dtype}{tuple(w.shape)}"
        )
        same = torch.equal(g.view(-1).view(torch.uint8), w.reshape(-1).contiguous().view(torch.uint8))
        assert same, f"{name} {what} differ on {x.dtype}{tuple(x.shape)} {conventions}:\n{x}\nfast {g}\nreference {w}"


weight_names = st.sampled_from(sorted(WEIGHT_CONVENTIONS))
activation_names = st.sampled_from(sorted(ACTIVATION_CONVENTIONS))


@pytest.mark.parametrize("tile_size", TILE_SIZES)
@pytest.mark.parametrize("name", ["b158_quantize", "b1_quantize"])
@given(data=st.data(), conventions_name=weight_names)
def test_weight_quantizers_match_the_reference(
    tile_size: int | str, name: str, data: Any, conventions_name: str
) -> None:
    conventions = WEIGHT_CONVENTIONS[conventions_name]
    w = data.draw(qst.weights(conventions=conventions, max_side=12), label="w")
    with tile_elements(tile_size):
        assert_same(name, w, conventions)


@pytest.mark.parametrize("tile_size", TILE_SIZES)
@given(data=st.data(), conventions_name=activation_names)
def test_act_quantize_matches_the_reference(tile_size: int | str, data: Any, conventions_name: str) -> None:
    conventions = ACTIVATION_CONVENTIONS[conventions_name]
    x = data.draw(qst.activations(conventions=conventions, max_side=12), label="x")
    with tile_elements(tile_size):
        assert_same("act_quantize", x, conventions)


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("seed", range(3))
def test_large_random_inputs_match_and_take_the_fast_path(
    name: str, dtype: torch.dtype, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ordinary input several tiles long: identical, and decided without the reference."""
    x = torch.randn(67, 3001, generator=torch.Generator().manual_seed(seed)).to(dtype)
    expected = PAIRS[name][1](x, DEFAULT)

    def refuse(*_: object) -> None:
        raise AssertionError(f"{name} fell back to the reference on ordinary input")

    monkeypatch.setattr(weights, name, refuse, raising=False)
    monkeypatch.setattr(activations, name, refuse, raising=False)
    got = PAIRS[name][0](x, DEFAULT)
    assert torch.equal(got.codes, expected.codes)
    assert torch.equal(got.scale, expected.scale)


@pytest.mark.parametrize("name", ["b158_quantize", "b1_quantize"])
def test_undecided_rows_are_computed_exactly_without_the_whole_reference(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row whose absmean is exactly a float32 midpoint (1 + 2**-24: the interval straddles it) and
    an all-equal row (every element inside b1's mean interval) are decided exactly, per row."""
    conventions = DEFAULT.replace(weight_granularity=PER_ROW)
    w = torch.randn(64, 1000, generator=torch.Generator().manual_seed(7))
    w[5] = 0.3
    w[7, :500], w[7, 500:] = 1.0, 1.0 + 2.0**-23
    w[9, ::2], w[9, 1::2] = -(1.0 + 2.0**-23), 1.0  # signed mean -2**-24, not a float32 midpoint
    expected = PAIRS[name][1](w, conventions)
    monkeypatch.setattr(weights, name, lambda *_: pytest.fail("fell back to the whole reference"))
    got = PAIRS[name][0](w, conventions)
    assert torch.equal(got.codes, expected.codes)
    assert torch.equal(got.scale.view(torch.int32), expected.scale.view(torch.int32))


def test_a_non_finite_weight_is_rejected_with_the_references_message() -> None:
    w = torch.randn(300, 300)
    w[123, 45] = float("nan")
    for name in PAIRS:
        assert_same(name, w, DEFAULT)


DTYPES = [torch.float16, torch.bfloat16, torch.float32]


@given(t=st.floats(allow_nan=False, allow_infinity=False, width=64), dtype=st.sampled_from(DTYPES))
def test_floor_and_ceil_in_a_dtype_are_tight(t: float, dtype: torch.dtype) -> None:
    value = torch.tensor([t], dtype=torch.float64)
    floor, ceil = dtype_bounds.floor_in(value, dtype), dtype_bounds.ceil_in(value, dtype)
    below, above = dtype_bounds.below_in(value, dtype), dtype_bounds.above_in(value, dtype)
    inf = torch.full_like(floor, float("inf"))
    assert floor.dtype == dtype and ceil.dtype == dtype
    assert float(floor) <= t <= float(ceil)
    assert float(torch.nextafter(floor, inf)) > t  # nothing in the dtype between floor and t
    assert float(torch.nextafter(ceil, -inf)) < t
    assert float(below) < t <= float(torch.nextafter(below, inf))
    assert float(above) > t >= float(torch.nextafter(above, -inf))


@given(
    values=st.lists(st.floats(-(2.0**100), 2.0**100, width=32), min_size=1, max_size=40),
    budget=st.integers(1, 9),
)
def test_the_mean_interval_holds_the_exact_mean(values: list[float], budget: int) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    with tile_elements(budget):
        sums = streaming_statistics.group_sums(tiles.GroupMatrix(x.reshape(1, -1), ()), signed=True)
    for signed in (False, True):
        low, high = sums.mean_interval(signed=signed)
        exact = sum((Fraction(abs(v)) if not signed else Fraction(v)) for v in x.tolist()) / len(values)
        assert Fraction(float(low)) <= exact <= Fraction(float(high))
