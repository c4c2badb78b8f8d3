"""Every conformance check, as data: one entry per (op, SPEC requirement).

Each verification takes the implementation, one drawn input and the conventions, and raises
:class:`CheckFailure` with a message a kernel author can act on.  The tolerances used here are
the SPEC's (CMP-1..CMP-4); none is looser than its stated justification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from qcheck import strategies
from qcheck.checks import bitlinear_checks, packing_checks
from qcheck.checks.base import Check, CheckFailure, Evidence, Implementation
from qcheck.checks.helpers import (
    call,
    codes_as_int,
    dequantize,
    fake_output,
    quantized_pair,
    same_layout_copy,
    scale_like_reference,
)
from qcheck.compare import compare_close, compare_codes, same_bits
from qcheck.conventions import Conventions, Rounding, SignOfZero
from qcheck.decisions import Decisions, analyse
from qcheck.ops import OPS, Op, expand_scale
from qcheck.quantizers.validation import scale_dtype_for

SCALE_RTOL_EPS = 16
"""Scales agree within 16 machine epsilons of the scale dtype (float32: 1.9e-6 relative): room for
a float32 sum in another order, nothing more (SPEC CMP-3)."""
FAKE_TOL_EPS = 4
"""Fake-quant outputs agree within 4 epsilons of the *input* dtype times (|expected| + the
element's scale), plus the dtype's smallest subnormal: the rounding of ``code * scale`` to the
input dtype and a scale within CMP-3 (SPEC CMP-4)."""


# ---------------------------------------------------------------- inputs


def inputs_for(op: Op, conventions: Conventions, **kwargs: Any) -> SearchStrategy[torch.Tensor]:
    if op.input_kind == "weight":
        return strategies.weights(conventions=conventions, **kwargs)
    return strategies.activations(conventions=conventions, **kwargs)


def _zero_inputs(op: Op, conventions: Conventions) -> SearchStrategy[torch.Tensor]:
    whole = st.builds(
        torch.zeros,
        st.sampled_from(
            [(1,), (7,), (3, 4), (2, 3, 5)] if op.input_kind == "activation" else [(1,), (16,), (3, 4), (5, 7)]
        ),
        dtype=strategies.dtypes(),
    )
    return st.one_of(whole, inputs_for(op, conventions, families=("zero-rows",)))


def _with_power(op: Op, conventions: Conventions) -> SearchStrategy[tuple[torch.Tensor, int]]:
    return st.tuples(inputs_for(op, conventions), st.integers(-12, 12))


def _pairs(op: Op, conventions: Conventions) -> SearchStrategy[tuple[torch.Tensor, torch.Tensor]]:
    @st.composite
    def pair(draw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = draw(inputs_for(op, conventions))
        y = draw(inputs_for(op, conventions, shape=tuple(x.shape), dtype=x.dtype))
        return x, y

    return pair()


# ---------------------------------------------------------------- shared pieces


def _reference(op: Op, x: torch.Tensor, conventions: Conventions) -> Any:
    return op.reference(x, conventions)


def _quantize(
    impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op
) -> tuple[torch.Tensor, torch.Tensor]:
    return quantized_pair(call(impl, same_layout_copy(x), conventions, op), op)


def _outputs(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> tuple[torch.Tensor, ...]:
    result = call(impl, same_layout_copy(x), conventions, op)
    if op.form == "quantize":
        return quantized_pair(result, op)
    return (fake_output(result, x, op),)


def _diagnose_ties(
    received: torch.Tensor, decisions: Decisions, x: torch.Tensor, conventions: Conventions, op: Op
) -> str:
    """Which declared convention the received codes follow on exact ties, if any."""
    ties = decisions.ties
    if not bool(ties.any()):
        return ""
    quantize = OPS[op.quantize_op].reference
    followed: list[str] = []
    for rounding in Rounding:
        other = conventions.replace(rounding=rounding)
        if other != conventions and torch.equal(quantize(x, other).codes.to(torch.int64)[ties], received[ties]):
            followed.append(f"rounding={rounding.value} (rounds ties {_tie_words(rounding)})")
    if op.family == "b1":
        for sign in SignOfZero:
            other = conventions.replace(sign_of_zero=sign)
            if other != conventions and torch.equal(quantize(x, other).codes.to(torch.int64)[ties], received[ties]):
                followed.append(f"sign_of_zero={sign.value:+d} (Sign(0) = {sign.value:+d})")
        if bool((received[ties] == 0).any()):
            followed.append("Sign(0) = 0, as torch.sign/np.sign give (the b1 paper's Sign(0) is -1)")
    if not followed:
        return "; on exact ties it follows none of the declared conventions"
    return (
        "; on exact ties your implementation behaves like "
        + " or ".join(followed)
        + (f", not the declared {conventions.rounding.value}" if op.family != "b1" else "")
    )


def _tie_words(rounding: Rounding) -> str:
    return {Rounding.HALF_EVEN: "to even", Rounding.HALF_AWAY: "away from zero", Rounding.HALF_UP: "up, towards +inf"}[
        rounding
    ]


def _fake_tolerance(x: torch.Tensor, decisions: Decisions, expected: torch.Tensor) -> torch.Tensor:
    info = torch.finfo(x.dtype)
    smallest = info.tiny * info.eps  # the smallest subnormal
    magnitude = expected.to(torch.float64).abs() + decisions.scale_per_element.abs()
    return FAKE_TOL_EPS * info.eps * magnitude + smallest


# ---------------------------------------------------------------- verifications


def verify_codes_domain(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    codes, scale = _quantize(impl, x, conventions, op)
    values = codes_as_int(codes, x, op)
    if codes.dtype != torch.int8:
        raise CheckFailure(f"{op.name} returned {codes.dtype} codes; the contract says int8")
    low, high, exact = op.allowed_codes(conventions)
    outside = (values < low) | (values > high)
    if exact is not None:
        outside |= ~torch.isin(values, torch.tensor(sorted(exact)))
    if bool(outside.any()):
        bad = sorted({int(v) for v in values[outside].tolist()})
        allowed = "{" + ", ".join(f"{v:+d}" for v in sorted(exact)) + "}" if exact else f"[{low}, {high}]"
        hint = (
            " (0 is what torch.sign gives at 0: the b1 paper's Sign(0) is -1)" if op.family == "b1" and 0 in bad else ""
        )
        raise CheckFailure(f"{op.name} returned codes {bad} outside the allowed {allowed}{hint}")
    reference = _reference(op, x, conventions).scale
    scale64 = scale_like_reference(scale, reference, op)
    if not bool(torch.isfinite(scale64).all()) or bool((scale64 < 0).any()):
        raise CheckFailure(f"{op.name} returned a scale that is negative or not finite: {scale.flatten()[:4].tolist()}")
    return Evidence()


def verify_codes_match(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    codes, _ = _quantize(impl, x, conventions, op)
    values = codes_as_int(codes, x, op)
    decisions = analyse(op, x, conventions)
    result = compare_codes(values, decisions, x)
    if not result.ok:
        raise CheckFailure(result.message + _diagnose_ties(values, decisions, x, conventions, op))
    return Evidence(result.near_boundary)


def verify_scale_match(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    _, scale = _quantize(impl, x, conventions, op)
    reference = _reference(op, x, conventions).scale
    received = scale_like_reference(scale, reference, op)
    expected = reference.to(torch.float64)
    tolerance = SCALE_RTOL_EPS * torch.finfo(scale_dtype_for(x.dtype)).eps * expected.abs()
    result = compare_close(received, expected, tolerance, expected, "scales")
    if not result.ok:
        inverse = (received * expected - 1.0).abs() <= 1e-3
        hint = (
            " - the received scale is the inverse of the expected one (1/scale stored where scale is meant)"
            if bool(inverse.all()) and bool((expected != 1).any())
            else ""
        )
        raise CheckFailure(result.message.replace("input ", "reference scale ") + hint)
    return Evidence()


def verify_zero_input(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    outputs = _outputs(impl, x, conventions, op)
    for out in outputs:
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):
            raise CheckFailure(
                f"{op.name} returned NaN or Inf for an input with all-zero rows (shape {tuple(x.shape)})"
            )
    if op.form == "quantize":
        verify_scale_match(impl, x, conventions, op)
        return verify_codes_match(impl, x, conventions, op)
    return verify_fake_match(impl, x, conventions, op)


def verify_not_mutated(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    target = same_layout_copy(x)  # the drawn input itself stays intact for the report
    strides = target.stride()
    call(impl, target, conventions, op)
    if not same_bits(target, x) or target.stride() != strides:
        changed = int((target.to(torch.float64) != x.to(torch.float64)).sum())
        what = f"{changed} element(s) changed" if changed else "values equal but bits changed, e.g. 0.0 -> -0.0"
        raise CheckFailure(f"{op.name} modified its input in place ({what})")
    return Evidence()


def verify_repeatable_and_fresh(
    impl: Implementation, pair: tuple[torch.Tensor, torch.Tensor], conventions: Conventions, op: Op
) -> Evidence:
    x, y = pair
    reference_x, reference_y = _reference(op, x, conventions), _reference(op, y, conventions)
    first = _outputs(impl, x, conventions, op)
    second = _outputs(impl, y, conventions, op)
    third = _outputs(impl, x, conventions, op)
    if not all(same_bits(a, b) for a, b in zip(first, third, strict=True)):
        raise CheckFailure(f"{op.name} gave different results for the same input on two calls")
    differs = not all(same_bits(a, b) for a, b in zip(_as_tuple(reference_x), _as_tuple(reference_y), strict=True))
    if differs and all(same_bits(a, b) for a, b in zip(first, second, strict=True)):
        raise CheckFailure(
            f"{op.name} returned the same result for two different inputs of shape {tuple(x.shape)} "
            "(a stale cache keyed on the shape?)"
        )
    return (
        verify_codes_match(impl, y, conventions, op)
        if op.form == "quantize"
        else verify_fake_match(impl, y, conventions, op)
    )


def _as_tuple(value: Any) -> tuple[torch.Tensor, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,)


def _other_layouts(x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Views with the same logical values as ``x`` and other memory layouts."""
    base = x.contiguous()
    views: list[tuple[str, torch.Tensor]] = []
    if base.dim() >= 2:
        views.append(("transposed storage", base.transpose(-1, -2).contiguous().transpose(-1, -2)))
    if base.dim() >= 1:
        wide = torch.zeros((*base.shape[:-1], 2 * base.shape[-1]), dtype=base.dtype)
        wide[..., ::2] = base
        views.append(("every-other-element slice", wide[..., ::2]))
    return views


def verify_layout_independent(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    dense = _outputs(impl, x.contiguous(), conventions, op)
    for label, view in _other_layouts(x):
        strided = _outputs(impl, view, conventions, op)
        names = ("codes", "scale") if op.form == "quantize" else ("output",)
        differing = [
            (name, a, b)
            for name, a, b in zip(names, dense, strided, strict=True)
            if not same_bits(a.contiguous(), b.contiguous())
        ]
        if differing:
            name, a, b = differing[0]
            a64, b64 = a.detach().to(torch.float64).reshape(-1), b.detach().to(torch.float64).reshape(-1)
            count = int((a64 != b64).sum()) if a64.shape == b64.shape else -1
            largest = float((a64 - b64).abs().max()) if a64.shape == b64.shape and count else float("nan")
            kind = (
                "the values differ wholesale: does the kernel ignore strides?"
                if name == "codes" or count > 1
                else "a last-bit difference: a reduction whose order depends on the memory layout"
            )
            raise CheckFailure(
                f"{op.name} gives a different {name} for a {label} view (strides {view.stride()}) than for the "
                f"contiguous tensor with the same values ({count} element(s), largest difference {largest:.3g}); "
                + kind
            )
    return Evidence()


def _exactly_scalable(x: torch.Tensor, power: int) -> torch.Tensor | None:
    info = torch.finfo(x.dtype)
    scaled = x * (2.0**power)
    for t in (x, scaled):
        nonzero = t[t != 0].abs().to(torch.float64)
        if nonzero.numel() and (float(nonzero.min()) < info.tiny or float(nonzero.max()) > info.max / 8):
            return None
    if not torch.equal(scaled / (2.0**power), x):
        return None
    return scaled


def verify_power_of_two(
    impl: Implementation, item: tuple[torch.Tensor, int], conventions: Conventions, op: Op
) -> Evidence:
    x, power = item
    scaled = _exactly_scalable(x, power)
    assume(scaled is not None)
    assert scaled is not None
    floor = 4.0 * conventions.eps * op.code_quantum(conventions)
    for t in (x, scaled):
        reference = _reference(op, t, conventions)
        ref_scale = reference.scale if op.form == "quantize" else OPS[op.quantize_op].reference(t, conventions).scale
        assume(bool((ref_scale.to(torch.float64) * op.code_quantum(conventions) >= floor).all()))
        assume(bool((ref_scale.to(torch.float64) >= torch.finfo(scale_dtype_for(x.dtype)).tiny * 2**24).all()))
    base = _outputs(impl, x, conventions, op)
    moved = _outputs(impl, scaled, conventions, op)
    factor = 2.0**power
    if op.form == "quantize":
        if not same_bits(base[0], moved[0]):
            raise CheckFailure(f"{op.name}: scaling the input by 2**{power} changed the codes (they must not change)")
        if not torch.equal(base[1].to(torch.float64) * factor, moved[1].to(torch.float64)):
            raise CheckFailure(
                f"{op.name}: scaling the input by 2**{power} did not scale the scale by exactly 2**{power}"
            )
    else:
        expected = base[0].to(torch.float64) * factor
        if not torch.equal(expected, moved[0].to(torch.float64)):
            raise CheckFailure(
                f"{op.name}: scaling the input by 2**{power} did not scale the output by exactly 2**{power}"
            )
    return Evidence()


def verify_sign_symmetry(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    plus = _outputs(impl, x, conventions, op)
    minus = _outputs(impl, -x, conventions, op)
    decisions = analyse(op, x, conventions)
    # exact ties of b1 go to Sign(0) both ways; elements inside the near-boundary window may land
    # on either side (CMP-2), so symmetry is only asked of the clearly decided ones
    off_tie = ~decisions.near
    if op.family == "b1":
        off_tie &= ~decisions.ties
    a, b = plus[0].to(torch.float64), minus[0].to(torch.float64)
    broken = (a != -b) & off_tie
    if bool(broken.any()):
        index = tuple(int(i) for i in torch.nonzero(broken)[0])
        raise CheckFailure(
            f"{op.name}(-x) is not -{op.name}(x) at {int(broken.sum())} element(s); first at index {index}: "
            f"x = {float(x[index])!r} gives {float(a[index])!r}, -x gives {float(b[index])!r} "
            + ("(Sign is symmetric off exact ties)" if op.family == "b1" else "(the declared rounding is symmetric)")
        )
    if op.form == "quantize" and not torch.equal(plus[1].to(torch.float64), minus[1].to(torch.float64)):
        raise CheckFailure(f"{op.name}: the scale of -x differs from the scale of x")
    return Evidence()


def verify_requantize(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    codes, scale = _quantize(impl, x, conventions, op)
    values = codes_as_int(codes, x, op)
    reference = _reference(op, x, conventions).scale
    scale64 = scale_like_reference(scale, reference, op)
    reference_scale = _reference(op, x, conventions).scale
    assume(bool((reference_scale > 0).all()) or not bool(x.any()))  # an underflowed scale cannot round-trip
    dequantized = dequantize(values, scale64, x, op, conventions)
    assume(bool(torch.isfinite(dequantized).all()))
    again, _ = _quantize(impl, dequantized, conventions, op)
    values_again = codes_as_int(again, x, op)
    if not torch.equal(values, values_again):
        changed = int((values != values_again).sum())
        raise CheckFailure(
            f"{op.name}: quantizing the dequantized result (codes * scale) changed {changed} code(s); "
            "a quantizer must reproduce its own codes"
        )
    return Evidence()


def verify_error_bound(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    codes, scale = _quantize(impl, x, conventions, op)
    values = codes_as_int(codes, x, op)
    reference = _reference(op, x, conventions).scale
    scale64 = scale_like_reference(scale, reference, op)
    per_element = expand_scale(scale64, x.shape, op.granularity(conventions))
    x64 = x.to(torch.float64)
    error = (x64 - values.to(torch.float64) * per_element).abs()
    limit = (op.code_quantum(conventions) + 0.5) * per_element
    unclipped = (x64.abs() <= limit) & (per_element > 0)
    slack = 8 * torch.finfo(scale_dtype_for(x.dtype)).eps * (x64.abs() + per_element)
    broken = unclipped & (error > per_element / 2 + slack)
    if bool(broken.any()):
        index = tuple(int(i) for i in torch.nonzero(broken)[0])
        raise CheckFailure(
            f"{op.name}: |x - code*scale| exceeds scale/2 at {int(broken.sum())} unclipped element(s); first at "
            f"index {index}: x = {float(x64[index])!r}, code {int(values[index])}, scale {float(per_element[index])!r}"
        )
    return Evidence()


def verify_fake_match(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    out = fake_output(call(impl, same_layout_copy(x), conventions, op), x, op)
    decisions = analyse(op, x, conventions)
    expected = _reference(op, x, conventions).to(torch.float64)
    alternative = (decisions.alternative.to(torch.float64) * decisions.scale_per_element).to(x.dtype)
    result = compare_close(
        out,
        expected,
        _fake_tolerance(x, decisions, expected),
        x,
        "dequantized values",
        alternative=alternative,
        near=decisions.near,
    )
    if not result.ok:
        raise CheckFailure(result.message)
    return Evidence(result.near_boundary)


def verify_fake_domain(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    out = fake_output(call(impl, same_layout_copy(x), conventions, op), x, op)
    if not bool(torch.isfinite(out).all()):
        raise CheckFailure(f"{op.name} returned NaN or Inf for a finite input")
    if op.family == "act":
        return Evidence()
    from qcheck.quantizers.grouping import group_layout

    layout = group_layout(op.name, x.shape, conventions.weight_granularity)
    magnitude = out.detach().reshape(-1).abs().to(torch.float64)
    big = torch.zeros(layout.n_groups, dtype=torch.float64).scatter_reduce_(0, layout.ids, magnitude, "amax")
    small = torch.full((layout.n_groups,), float("inf"), dtype=torch.float64)
    candidates = magnitude if op.family == "b1" else torch.where(magnitude > 0, magnitude, float("inf"))
    small = small.scatter_reduce_(0, layout.ids, candidates, "amin")
    # the FAQ's x + (q - x).detach() leaves each value within an ulp or two of q: allowed (CMP-4)
    spread = FAKE_TOL_EPS * torch.finfo(x.dtype).eps * big
    uneven = (small < big - spread) & torch.isfinite(small)
    if bool(uneven.any()):
        group = int(torch.nonzero(uneven)[0])
        kinds = "{-s, +s}" if op.family == "b1" else "{-s, 0, +s}"
        raise CheckFailure(
            f"{op.name} output is not of the form code*scale with codes in {kinds}: a group holds magnitudes "
            f"from {float(small[group])!r} to {float(big[group])!r} (group {group})"
        )
    return Evidence()


def verify_fake_fixed_point(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    once = fake_output(call(impl, same_layout_copy(x), conventions, op), x, op).detach()
    twice = fake_output(call(impl, once.clone(), conventions, op), x, op).detach()
    if op.family != "act":
        if not torch.equal(torch.sign(once), torch.sign(twice)):
            raise CheckFailure(f"{op.name} applied to its own output changes which elements are -, 0 and +")
        return Evidence()
    decisions = analyse(op, x, conventions)
    step = decisions.scale_per_element if x.dtype == torch.bfloat16 else 0.0
    tolerance = _fake_tolerance(x, decisions, once) * 2 + step
    result = compare_close(twice, once, tolerance, x, "re-quantized dequantized values")
    if not result.ok:
        raise CheckFailure(f"{op.name} is not a fixed point of itself: " + result.message)
    return Evidence()


def verify_ste(impl: Implementation, x: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    leaf = same_layout_copy(x).requires_grad_(True)
    out = call(impl, leaf, conventions, op)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise CheckFailure(f"{op.name}: no gradient flows back to the input (the output is detached)")
    grad = (torch.arange(x.numel(), dtype=torch.float64).reshape(x.shape) % 7 - 3).to(x.dtype)
    try:
        out.backward(grad)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise CheckFailure(f"{op.name}: backward raised {type(exc).__name__}: {exc}", "ERROR") from None
    if leaf.grad is None or not same_bits(leaf.grad.contiguous(), grad):
        received = None if leaf.grad is None else leaf.grad.flatten()[:4].tolist()
        raise CheckFailure(
            f"{op.name}: the gradient is not the identity (straight-through estimator); "
            f"incoming {grad.flatten()[:4].tolist()}, passed back {received}"
        )
    return Evidence()


# ---------------------------------------------------------------- the table

Inputs = Callable[[Op, Conventions], SearchStrategy[Any]]
_PREFIX = {"b1": "B1", "b158": "B158", "act": "ACT"}


def _symmetric(conventions: Conventions) -> bool:
    return conventions.rounding is not Rounding.HALF_UP


_QUANTIZE: tuple[
    tuple[str, str, str, Inputs, Callable[..., Evidence], Callable[[Conventions], bool] | None, frozenset[str]], ...
] = (
    (
        "1",
        "codes-domain",
        "codes are int8, in the allowed set, shaped like the input; the scale is finite, >= 0, shaped per granularity",
        inputs_for,
        verify_codes_domain,
        None,
        frozenset(),
    ),
    (
        "2",
        "codes-match-reference",
        "codes equal the exact reference bit for bit (ties by the declared convention)",
        inputs_for,
        verify_codes_match,
        None,
        frozenset(),
    ),
    (
        "3",
        "scale-matches-reference",
        "the dequantization scale equals the reference within 16 eps of the scale dtype",
        inputs_for,
        verify_scale_match,
        None,
        frozenset(),
    ),
    (
        "5",
        "power-of-two-invariance",
        "scaling the input by 2**k leaves codes unchanged and scales the scale by exactly 2**k",
        _with_power,
        verify_power_of_two,
        None,
        frozenset(),
    ),
    (
        "6",
        "sign-symmetry",
        "codes(-x) == -codes(x) (off b1 ties) under a symmetric rounding",
        inputs_for,
        verify_sign_symmetry,
        _symmetric,
        frozenset(),
    ),
    (
        "7",
        "requantize-fixed-point",
        "quantizing codes*scale reproduces the codes",
        inputs_for,
        verify_requantize,
        None,
        frozenset(),
    ),
    (
        "8",
        "error-bound",
        "|x - code*scale| <= scale/2 for every unclipped element",
        inputs_for,
        verify_error_bound,
        None,
        frozenset({"b1"}),
    ),
)
_FAKE: tuple[
    tuple[str, str, str, Inputs, Callable[..., Evidence], Callable[[Conventions], bool] | None, frozenset[str]], ...
] = (
    (
        "4",
        "fake-matches-reference",
        "the dequantized output equals codes*scale of the reference in the input dtype",
        inputs_for,
        verify_fake_match,
        None,
        frozenset(),
    ),
    (
        "5",
        "power-of-two-invariance",
        "scaling the input by 2**k scales the output by exactly 2**k",
        _with_power,
        verify_power_of_two,
        None,
        frozenset(),
    ),
    (
        "6",
        "sign-symmetry",
        "fake(-x) == -fake(x) (off b1 ties) under a symmetric rounding",
        inputs_for,
        verify_sign_symmetry,
        _symmetric,
        frozenset(),
    ),
    (
        "9",
        "fake-domain",
        "the output keeps dtype and shape, is finite, and each group holds one magnitude",
        inputs_for,
        verify_fake_domain,
        None,
        frozenset(),
    ),
    (
        "10",
        "fake-fixed-point",
        "fake-quantizing the output again keeps its pattern (weights) or its values (activations)",
        inputs_for,
        verify_fake_fixed_point,
        None,
        frozenset(),
    ),
)
_COMMON: tuple[tuple[str, str, str, Inputs, Callable[..., Evidence], frozenset[str]], ...] = (
    (
        "IN-5",
        "zero-input",
        "all-zero tensors and rows give finite outputs and the reference codes (never NaN)",
        _zero_inputs,
        verify_zero_input,
        frozenset(),
    ),
    (
        "GEN-1",
        "input-not-mutated",
        "the input tensor is bit-identical after the call",
        inputs_for,
        verify_not_mutated,
        frozenset(),
    ),
    (
        "GEN-2",
        "repeatable-and-fresh",
        "the same input gives the same output; a different input of the same shape is not served from a cache",
        _pairs,
        verify_repeatable_and_fresh,
        frozenset(),
    ),
    (
        "GEN-3",
        "layout-independent",
        "transposed-storage and strided views give exactly the contiguous result",
        inputs_for,
        verify_layout_independent,
        frozenset(),
    ),
    (
        "STE-1",
        "straight-through-gradient",
        "the gradient of the fake-quant op is exactly the identity",
        inputs_for,
        verify_ste,
        frozenset({"quantize"}),
    ),
)


def _build() -> tuple[Check, ...]:
    checks: list[Check] = []
    for op in OPS.values():
        if not op.is_quantizer:
            continue
        table = _QUANTIZE if op.form == "quantize" else _FAKE
        for number, name, proves, inputs, verify, applies, skip in table:
            if op.family in skip:
                continue
            checks.append(_make(f"{_PREFIX[op.family]}-{number}", name, op, proves, inputs, verify, applies))
        for requirement, name, proves, inputs, verify, skip in _COMMON:
            if op.form in skip:
                continue
            checks.append(_make(requirement, name, op, proves, inputs, verify, None))
    return tuple(checks)


def _make(
    requirement: str,
    name: str,
    op: Op,
    proves: str,
    inputs: Inputs,
    verify: Callable[..., Evidence],
    applies: Callable[[Conventions], bool] | None,
) -> Check:
    def strategy(conventions: Conventions, _op: Op = op) -> SearchStrategy[Any]:
        return inputs(_op, conventions)

    return Check(requirement, name, op.name, proves, strategy, verify, applies or (lambda c: True))


CHECKS: tuple[Check, ...] = _build() + packing_checks.CHECKS + bitlinear_checks.CHECKS
"""Every check: the quantizers' (this module), then packing's and BitLinear's."""


def checks_for(op: str) -> tuple[Check, ...]:
    return tuple(c for c in CHECKS if c.op == op)


def by_key(key: str) -> Check:
    for check in CHECKS:
        if check.key == key:
            return check
    raise KeyError(f"no check {key!r}; see `qcheck list`")
