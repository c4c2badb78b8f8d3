"""GEN-1..GEN-3 for the ops that take codes or several arguments (packing, BitLinear).

The quantizers' versions (:mod:`qcheck.checks.catalogue`) take one float tensor; these take the
op's whole input (a tensor or an :class:`~qcheck.arguments.Args`) and compare outputs bitwise, so
the same three promises hold for every op of the contract: the inputs are left alone, a call
depends on its inputs only, and memory layout does not change a bit of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from qcheck.arguments import Args
from qcheck.checks.base import CheckFailure, Evidence, Implementation
from qcheck.checks.helpers import call, same_layout_copy
from qcheck.compare import same_bits
from qcheck.conventions import Conventions
from qcheck.ops import Op

Views = Callable[[Any], list[tuple[str, Any]]]
"""Other memory layouts of an op's input with the same logical values: ``[(label, input)]``."""
Match = Callable[[Implementation, Any, Conventions, Op], Evidence]
"""An op's correctness check on one input (used on the second input of GEN-2)."""


def output_tensors(result: Any, op: Op) -> tuple[torch.Tensor, ...]:
    """The tensors of an output, for bitwise comparisons; anything else is a FAIL naming it."""
    values = tuple(result) if isinstance(result, tuple | list) else (result,)
    if not values or not all(isinstance(v, torch.Tensor) for v in values):
        raise CheckFailure(f"{op.name} must return a tensor, got {type(result).__name__}")
    return tuple(v.detach() for v in values)


def arguments(value: Any) -> list[tuple[int, torch.Tensor]]:
    if isinstance(value, Args):
        return value.tensors()
    return [(0, value)] if isinstance(value, torch.Tensor) else []


def verify_inputs_not_mutated(impl: Implementation, value: Any, conventions: Conventions, op: Op) -> Evidence:
    """GEN-1: every tensor argument is bit-identical, strides included, after the call."""
    target = same_layout_copy(value)
    strides = {i: t.stride() for i, t in arguments(target)}
    call(impl, target, conventions, op)
    originals = dict(arguments(value))
    for position, after in arguments(target):
        before = originals[position]
        if after.stride() != strides[position] or not same_bits(after.contiguous(), before.contiguous()):
            changed = (
                int((after.to(torch.float64) != before.to(torch.float64)).sum()) if after.shape == before.shape else -1
            )
            raise CheckFailure(
                f"{op.name} modified its argument {position + 1} in place "
                f"({changed} element(s) changed)"
                + (" — HF pack_weights does this: `quantized_weights += 1`" if op.name == "pack_ternary" else "")
            )
    return Evidence()


def verify_repeatable_and_fresh(
    impl: Implementation, pair: tuple[Any, Any], conventions: Conventions, op: Op, match: Match
) -> Evidence:
    """GEN-2: the same input twice gives the same bits; a different input of the same shapes is not
    served from a cache; and the second input's result is right (``match``)."""
    first_input, second_input = pair
    first = output_tensors(call(impl, same_layout_copy(first_input), conventions, op), op)
    second = output_tensors(call(impl, same_layout_copy(second_input), conventions, op), op)
    again = output_tensors(call(impl, same_layout_copy(first_input), conventions, op), op)
    if len(first) != len(again) or not all(same_bits(a, b) for a, b in zip(first, again, strict=True)):
        raise CheckFailure(f"{op.name} gave different results for the same input on two calls")
    expected_first = output_tensors(op.reference(first_input, conventions), op)
    expected_second = output_tensors(op.reference(second_input, conventions), op)
    references_differ = not all(same_bits(a, b) for a, b in zip(expected_first, expected_second, strict=True))
    if references_differ and all(same_bits(a, b) for a, b in zip(first, second, strict=True)):
        raise CheckFailure(
            f"{op.name} returned the same result for two different inputs of the same shapes "
            "(a stale cache keyed on the shape?)"
        )
    return match(impl, second_input, conventions, op)


def verify_layout_independent(
    impl: Implementation, value: Any, conventions: Conventions, op: Op, views: Views
) -> Evidence:
    """GEN-3: every view of the input with other strides gives the contiguous input's bits."""
    dense_input = value.map_tensors(torch.Tensor.contiguous) if isinstance(value, Args) else value.contiguous()
    dense = output_tensors(call(impl, same_layout_copy(dense_input), conventions, op), op)
    for label, view in views(value):
        strided = output_tensors(call(impl, same_layout_copy(view), conventions, op), op)
        for a, b in zip(dense, strided, strict=True):
            if not same_bits(a.contiguous(), b.contiguous()):
                count = int((a.to(torch.float64) != b.to(torch.float64)).sum()) if a.shape == b.shape else -1
                raise CheckFailure(
                    f"{op.name} gives a different result for {label} than for the contiguous input with the "
                    f"same values ({count} element(s) differ): does the kernel read memory without its strides?"
                )
    return Evidence()


def strided_copy(t: torch.Tensor, filler: float | int) -> torch.Tensor:
    """Every other element of a buffer whose gaps hold ``filler``: same values, stride 2."""
    wide = torch.full((*t.shape[:-1], 2 * t.shape[-1]), filler, dtype=t.dtype)
    wide[..., ::2] = t
    return wide[..., ::2]


def transposed_storage(t: torch.Tensor) -> torch.Tensor:
    """The same values with the last two dimensions stored column-major."""
    return t.transpose(-1, -2).contiguous().transpose(-1, -2)
