"""Checks of ``bitlinear(x, w_codes, w_scale, bias)`` (SPEC BL-*).

The integer part of the product is exact in any correct kernel, so the tolerance covers only the
float multiplies after it (SPEC BL-1): ``BITLINEAR_TOL_EPS`` machine epsilons of the compute dtype
(float32; float64 for float64 x) of the sum of the terms' magnitudes, plus the rounding to the
output dtype, plus one code step for every activation the act-quantizer checks would also excuse
(inside the near-boundary window of CMP-2, never on a tie).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from qcheck import kernel_strategies, strategies
from qcheck.arguments import Args
from qcheck.checks import calls
from qcheck.checks.base import Check, CheckFailure, Evidence, Implementation
from qcheck.checks.helpers import call, same_layout_copy
from qcheck.compare import same_bits
from qcheck.conventions import Conventions
from qcheck.decisions import analyse
from qcheck.ops import OPS, Op
from qcheck.quantizers.bitlinear import bitlinear_terms, group_sums

BITLINEAR_TOL_EPS = 8
"""Roundings a kernel may spend after the exact integer sum: ``acc * x_scale * w_scale + bias``
(three), ``x_scale`` as ``a/127`` or ``1/(127/a)`` (two), and slack; per-group scales add one per
group (the groups' partial results are summed in float)."""


def tolerance(value: Args, expected: torch.Tensor, conventions: Conventions) -> torch.Tensor:
    """The allowed ``|received - expected|`` per output element (float64), as the module says."""
    x, w_codes, w_scale, bias = value
    _, sums, factor = bitlinear_terms(x, w_codes, w_scale, conventions)
    groups = sums.shape[-1]
    magnitude = (sums.abs().to(torch.float64) * factor).sum(dim=-1)
    if bias is not None:
        magnitude = magnitude + bias.detach().abs().to(torch.float64)
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    out = torch.finfo(x.dtype)
    near = analyse(OPS["act_quantize"], x, conventions).near
    steps = group_sums(near.to(torch.int8), w_codes.abs(), conventions.weight_granularity.group_size)
    one_code_each = (steps.to(torch.float64) * factor).sum(dim=-1)
    return (
        (BITLINEAR_TOL_EPS + groups) * torch.finfo(compute).eps * magnitude
        + out.eps * expected.to(torch.float64).abs()
        + out.tiny * out.eps
        + one_code_each
    )


def _output(impl: Implementation, value: Args, conventions: Conventions, op: Op) -> torch.Tensor:
    out = call(impl, same_layout_copy(value), conventions, op)
    x, w_codes = value[0], value[1]
    want = (*x.shape[:-1], w_codes.shape[0])
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        kind = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckFailure(f"bitlinear must return a float tensor, got {kind}")
    if tuple(out.shape) != want or out.dtype != x.dtype:
        raise CheckFailure(
            f"bitlinear returned {str(out.dtype).removeprefix('torch.')} shaped {tuple(out.shape)}; "
            f"x of shape {tuple(x.shape)} and dtype {str(x.dtype).removeprefix('torch.')} needs {want} in x's dtype"
        )
    return out.detach()


def _diagnosis(value: Args, received: torch.Tensor, conventions: Conventions) -> str:
    """Name the classic mistakes when the output is explained by one of them."""
    x, w_codes, w_scale, bias = value
    r = received.to(torch.float64)
    _, sums, factor = bitlinear_terms(x, w_codes, w_scale, conventions)
    exact = (sums.to(torch.float64) * factor).sum(dim=-1)
    bias64 = torch.zeros_like(exact) if bias is None else bias.detach().to(torch.float64)

    def close(candidate: torch.Tensor) -> bool:
        return bool(torch.allclose(r, candidate, rtol=1e-3, atol=1e-6 * float(candidate.abs().max().clamp(min=1))))

    wrapped = ((sums + 2**15) % 2**16 - 2**15).to(torch.float64)
    scale = w_scale.detach().to(torch.float64)
    inverse = (sums.to(torch.float64) * factor / scale.reshape(-1, sums.shape[-1]) ** 2).sum(dim=-1)
    if bias is not None and bool((exact != 0).any()) and close(bias64):
        return "; the output is the bias alone: the product term vanished (an overflowed or zero scale?)"
    if bias is not None and close(exact):
        return "; the output is the product without the bias: is the bias dropped?"
    if bool((sums.abs() > 2**15 - 1).any()) and close((wrapped * factor).sum(dim=-1) + bias64):
        return "; the output is what an int16 accumulator gives (the dot products pass 32767 and wrap)"
    if close(inverse + bias64):
        return "; the output divides by w_scale: the weight scale is applied as 1/mean where mean|W| is meant"
    return ""


def verify_matches_reference(impl: Implementation, value: Args, conventions: Conventions, op: Op) -> Evidence:
    """BL-1: the output equals the exact product within the stated tolerance."""
    expected = op.reference(value, conventions)
    received = _output(impl, value, conventions, op)
    allowed = tolerance(value, expected, conventions)
    r64, e64 = received.to(torch.float64), expected.to(torch.float64)
    error = (r64 - e64).abs()
    failing = ~((error <= allowed) | (r64 == e64))
    if bool(failing.any()):
        excess = torch.where(failing, error - allowed, torch.full_like(error, -1.0)).nan_to_num(nan=float("inf"))
        flat_index = torch.argmax(excess.reshape(-1))
        index = tuple(int(i) for i in torch.unravel_index(flat_index, expected.shape))
        x = value[0]
        raise CheckFailure(
            f"bitlinear output differs at {int(failing.sum())} of {expected.numel()} element(s); worst at {index}: "
            f"expected {float(e64[index]):.9g}, got {float(r64[index]):.9g}, allowed difference "
            f"{float(allowed[index]):.3g} (K = {x.shape[-1]}, x {str(x.dtype).removeprefix('torch.')})"
            + _diagnosis(value, received, conventions)
        )
    return Evidence()


def verify_power_of_two_weight_scale(
    impl: Implementation, value: tuple[Args, int], conventions: Conventions, op: Op
) -> Evidence:
    """BL-3: ``w_scale * 2**k`` gives exactly ``y * 2**k`` (where the reference's own result does):
    the weight scale is a multiplier, applied once, in the right sense."""
    args, power = value
    x, w_codes, w_scale, bias = args
    scaled = Args((x, w_codes, w_scale * 2.0**power, bias))
    expected, expected_scaled = op.reference(args, conventions), op.reference(scaled, conventions)
    assume(same_bits(expected_scaled, (expected.to(torch.float64) * 2.0**power).to(expected.dtype)))
    assume(bool(torch.isfinite(expected_scaled).all()) and bool((expected != 0).any()))
    first = _output(impl, args, conventions, op)
    second = _output(impl, scaled, conventions, op)
    predicted = (first.to(torch.float64) * 2.0**power).to(first.dtype)
    if not same_bits(second, predicted):
        ratio = (second.to(torch.float64) / first.to(torch.float64)).nan_to_num(nan=1.0)
        finite = ratio[torch.isfinite(ratio) & (first != 0)]
        seen = f"{float(finite.reshape(-1)[0]):.6g}" if finite.numel() else "not a constant"
        sense = (
            " — the scale is applied inverted (divided by w_scale)"
            if finite.numel() and abs(float(finite.reshape(-1)[0]) - 2.0**-power) < 1e-3 * 2.0**-power
            else ""
        )
        raise CheckFailure(
            f"multiplying w_scale by 2**{power} multiplied the output by {seen}, not exactly {2.0**power:g}{sense}"
        )
    return verify_matches_reference(impl, args, conventions, op)


def verify_rows_independent(impl: Implementation, value: Args, conventions: Conventions, op: Op) -> Evidence:
    """BL-5: each token's output is what the token alone gives (batch and sequence dims only
    index; a token never sees another token's scale)."""
    x, w_codes, w_scale, bias = value
    batched = _output(impl, value, conventions, op)
    rows = x.reshape(-1, x.shape[-1])
    flat = batched.reshape(-1, batched.shape[-1])
    for i in range(rows.shape[0]):
        alone_args = Args((rows[i : i + 1].clone(), w_codes, w_scale, bias))
        alone = _output(impl, alone_args, conventions, op)
        expected = op.reference(alone_args, conventions)
        allowed = 2 * tolerance(alone_args, expected, conventions)
        error = (alone.to(torch.float64) - flat[i : i + 1].to(torch.float64)).abs()
        if not bool(((error <= allowed) | (alone == flat[i : i + 1])).all()):
            index = tuple(int(j) for j in torch.unravel_index(torch.tensor(i), x.shape[:-1]))
            raise CheckFailure(
                f"token {index} of x shaped {tuple(x.shape)} gives another output in the batch than alone "
                f"(largest difference {float(error.max()):.3g}): tokens are mixed (a shared activation scale, "
                "or batch and sequence dims flattened in the wrong order)"
            )
    return verify_matches_reference(impl, value, conventions, op)


# ---------------------------------------------------------------- inputs


def _args(conventions: Conventions) -> SearchStrategy[Args]:
    return kernel_strategies.bitlinear_args(conventions)


def _with_bias(conventions: Conventions) -> SearchStrategy[Args]:
    return kernel_strategies.bitlinear_args(conventions, with_bias=True).filter(lambda a: bool((a[3] != 0).any()))


def _batched(conventions: Conventions) -> SearchStrategy[Args]:
    return kernel_strategies.bitlinear_args(conventions).filter(lambda a: a[0].reshape(-1, a[0].shape[-1]).shape[0] > 1)


def _with_power(conventions: Conventions) -> SearchStrategy[tuple[Args, int]]:
    return st.tuples(kernel_strategies.bitlinear_args(conventions, with_bias=False), st.integers(-6, 6).filter(bool))


def _pairs(conventions: Conventions) -> SearchStrategy[tuple[Args, Args]]:
    @st.composite
    def pair(draw: Any) -> tuple[Args, Args]:
        first = draw(kernel_strategies.bitlinear_args(conventions))
        x, w_codes, w_scale, bias = first
        other_x = draw(
            strategies.activations(
                conventions=conventions,
                dtype=x.dtype,
                shape=tuple(x.shape),
                non_contiguous=False,
                families=kernel_strategies.BITLINEAR_FAMILIES,
            )
        )
        other_w = draw(kernel_strategies.ternary_codes([tuple(w_codes.shape)], patterns=("random", "binary")))
        return first, Args((other_x, other_w, w_scale, bias))

    return pair()


def views(value: Args) -> list[tuple[str, Any]]:
    x, w_codes, w_scale, bias = value
    found: list[tuple[str, Any]] = [
        ("x as an every-other-element view", Args((calls.strided_copy(x, float("nan")), w_codes, w_scale, bias))),
        ("w_codes with transposed storage", Args((x, calls.transposed_storage(w_codes), w_scale, bias))),
        ("w_codes as an every-other-element view", Args((x, calls.strided_copy(w_codes, 0x7F), w_scale, bias))),
    ]
    if x.dim() >= 2 and x.shape[-2] > 1:
        found.append(("x with transposed storage", Args((calls.transposed_storage(x), w_codes, w_scale, bias))))
    return found


def _build() -> tuple[Check, ...]:
    op = "bitlinear"
    return (
        Check(
            "BL-1",
            "matches-reference",
            op,
            "y = (x_codes . w_codes^T) * x_scale * w_scale + bias within the float-epilogue tolerance",
            _args,
            verify_matches_reference,
        ),
        Check(
            "BL-2",
            "exact-accumulation",
            op,
            "dot products of 127*K (all codes at the extreme, K up to 16385) are accumulated exactly",
            kernel_strategies.worst_case_accumulation,
            verify_matches_reference,
        ),
        Check(
            "BL-3",
            "weight-scale-sense",
            op,
            "w_scale * 2**k scales the output by exactly 2**k: mean|W| is a multiplier, not a divisor",
            _with_power,
            verify_power_of_two_weight_scale,
        ),
        Check(
            "BL-4",
            "bias-applied",
            op,
            "a nonzero bias is added once to every output",
            _with_bias,
            verify_matches_reference,
        ),
        Check(
            "BL-5",
            "tokens-independent",
            op,
            "each token of a 2-D or 3-D x gives what it gives alone (no shared scale, no mixed rows)",
            _batched,
            verify_rows_independent,
        ),
        Check(
            "GEN-1",
            "input-not-mutated",
            op,
            "x, w_codes, w_scale and bias are bit-identical after the call",
            _args,
            calls.verify_inputs_not_mutated,
        ),
        Check(
            "GEN-2",
            "repeatable-and-fresh",
            op,
            "the same arguments give the same bits; other arguments of the same shapes are not served from a cache",
            _pairs,
            functools.partial(calls.verify_repeatable_and_fresh, match=verify_matches_reference),
        ),
        Check(
            "GEN-3",
            "layout-independent",
            op,
            "strided and transposed x and w_codes give the contiguous arguments' bits",
            _args,
            functools.partial(calls.verify_layout_independent, views=views),
        ),
    )


CHECKS: tuple[Check, ...] = _build()
