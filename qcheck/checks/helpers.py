"""Calling an implementation under test safely, and reading its outputs against the contract.

Everything that can go wrong on the implementation's side (it raises, returns the wrong type,
dtype or shape) becomes a :class:`CheckFailure` with a message, never a traceback.
"""

from __future__ import annotations

from typing import Any

import torch

from qcheck.arguments import Args
from qcheck.checks.base import BackendRaised, CheckFailure, Implementation
from qcheck.conventions import Conventions
from qcheck.ops import Op, expand_scale


def same_layout_copy(x: Any) -> Any:
    """:func:`same_layout_tensor_copy` of ``x``, or of every tensor in an :class:`Args`."""
    if isinstance(x, Args):
        return x.map_tensors(same_layout_tensor_copy)
    return same_layout_tensor_copy(x)


def same_layout_tensor_copy(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` with the same sizes, strides, storage offset and storage contents, gaps
    included (a transposed view stays transposed; a kernel that reads between the elements of a
    strided view reads the same filler every time, never uninitialized memory)."""
    if x.dim() == 0 or (x.is_contiguous() and x.storage_offset() == 0):
        return x.detach().clone().requires_grad_(x.requires_grad)
    storage = x.detach().untyped_storage().clone()  # type: ignore[no-untyped-call]
    out = torch.empty(0, dtype=x.dtype).set_(storage, x.storage_offset(), x.size(), x.stride())
    return out.requires_grad_(x.requires_grad)


def describe_arguments(x: Any) -> str:
    """``input shape (3, 4), dtype float32`` or the same for each argument of an :class:`Args`."""

    def one(a: Any) -> str:
        if isinstance(a, torch.Tensor):
            return f"shape {tuple(a.shape)}, dtype {str(a.dtype).removeprefix('torch.')}"
        return repr(a)

    if isinstance(x, Args):
        return "arguments: " + "; ".join(one(a) for a in x)
    return f"input {one(x)}"


def call(impl: Implementation, x: Any, conventions: Conventions, op: Op) -> Any:
    """``impl(x, conventions)``; an exception becomes an ERROR verdict naming it
    (:class:`BackendRaised`, which a check that expects a rejection catches)."""
    try:
        result = impl(x, conventions)
    except CheckFailure:
        raise  # already a verdict (an isolated backend's crash, timeout or alias)
    except Exception as exc:  # the implementation under test may raise anything
        raise BackendRaised(f"{op.name} raised {type(exc).__name__}: {exc} ({describe_arguments(x)})") from None
    for _, tensor in x.tensors() if isinstance(x, Args) else [(0, x)]:
        check_not_aliased(result, tensor, op)
    return result


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    return bool(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


def check_not_aliased(result: Any, x: torch.Tensor, op: Op) -> None:
    """An output that shares memory with the input is a view of it, not a result (SPEC GEN-1)."""
    outputs = result if isinstance(result, tuple | list) else (result,)
    if any(isinstance(out, torch.Tensor) and _shares_memory(out, x) for out in outputs):
        raise CheckFailure(
            f"{op.name} returned an output that shares memory with its input (an alias, not a new tensor)"
        )


def quantized_pair(result: Any, op: Op) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes, scale)`` from a quantize op's result, or a failure saying what came back."""
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise CheckFailure(
            f"{op.name} returned {type(result).__name__}, expected a pair (codes, scale)", verdict="ERROR"
        )
    codes, scale = result
    for label, value in (("codes", codes), ("scale", scale)):
        if not isinstance(value, torch.Tensor):
            raise CheckFailure(f"{op.name} returned {label} of type {type(value).__name__}, expected a tensor", "ERROR")
    return codes, scale


def fake_output(result: Any, x: torch.Tensor, op: Op) -> torch.Tensor:
    """A fake-quant op's tensor, checked for type, dtype and shape."""
    if not isinstance(result, torch.Tensor):
        raise CheckFailure(f"{op.name} returned {type(result).__name__}, expected a tensor", "ERROR")
    if result.shape != x.shape:
        raise CheckFailure(f"{op.name} returned shape {tuple(result.shape)} for input shape {tuple(x.shape)}")
    if result.dtype != x.dtype:
        raise CheckFailure(
            f"{op.name} returned dtype {result.dtype} for {x.dtype} input; the output keeps the input dtype"
        )
    return result


def codes_as_int(codes: torch.Tensor, x: torch.Tensor, op: Op) -> torch.Tensor:
    """Codes of the right shape, as int64 for comparison; a failure if they are not integers."""
    if codes.shape != x.shape:
        raise CheckFailure(f"{op.name} returned codes of shape {tuple(codes.shape)} for input shape {tuple(x.shape)}")
    if codes.is_floating_point():
        integral = bool(torch.all(torch.isfinite(codes) & (codes == torch.round(codes))))
        hint = "" if integral else " - they look like dequantized values (what the fake-quant op returns)"
        raise CheckFailure(f"{op.name} returned {codes.dtype} codes, expected int8{hint}")
    return codes.to(torch.int64)


def scale_like_reference(scale: torch.Tensor, reference: torch.Tensor, op: Op) -> torch.Tensor:
    """The scale reshaped to the reference's shape (any shape with the same element count is
    accepted: ``(1,)`` for a per-tensor ``()``), as float64."""
    if scale.numel() != reference.numel():
        raise CheckFailure(
            f"{op.name} returned a scale of shape {tuple(scale.shape)}; the conventions call for "
            f"{tuple(reference.shape)} ({reference.numel()} value(s))"
        )
    if not scale.is_floating_point():
        raise CheckFailure(f"{op.name} returned a {scale.dtype} scale, expected a floating-point scale")
    return scale.reshape(reference.shape).to(torch.float64)


def dequantize(
    codes: torch.Tensor, scale: torch.Tensor, x: torch.Tensor, op: Op, conventions: Conventions
) -> torch.Tensor:
    """``codes * scale`` per element, float64 (scale already in the reference's shape)."""
    per_element = expand_scale(scale, x.shape, op.granularity(conventions))
    return codes.to(torch.float64) * per_element
