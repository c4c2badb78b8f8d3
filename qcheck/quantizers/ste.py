"""The straight-through estimator: forward gives the fake-quantized value, backward the identity.

The FAQ writes ``x + (quant(x) - x).detach()``, whose forward value is not bit-exactly
``quant(x)`` in floating point; an autograd Function gives exactly ``quant(x)`` forward and exactly
the incoming gradient backward (SPEC STE-1).
"""

from __future__ import annotations

from typing import Any

import torch


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
        return quantized.clone()

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        (grad,) = grad_outputs
        return grad, None


def straight_through(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` forward; d(out)/dx is the identity backward (gradient flows to ``x`` only)."""
    if not x.requires_grad:
        return quantized
    out = _StraightThrough.apply(x, quantized.detach())  # type: ignore[no-untyped-call]
    assert isinstance(out, torch.Tensor)
    return out
