"""How an op with several arguments receives them: one :class:`Args` value.

The quantizers take one tensor, and the runner passes it as is.  ``unpack_ternary(packed, shape)``
and ``bitlinear(x, w_codes, w_scale, bias)`` take several: a check passes an :class:`Args` and the
backend adapter calls ``op(*args)``.  A plain tuple stays a plain value (a check's pair of inputs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class Args(tuple[Any, ...]):
    """The positional arguments of one call of a multi-argument op."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Args{tuple.__repr__(self)}"

    def tensors(self) -> list[tuple[int, torch.Tensor]]:
        """``(position, tensor)`` for every tensor argument."""
        return [(i, a) for i, a in enumerate(self) if isinstance(a, torch.Tensor)]

    def map_tensors(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Args:
        """A copy with ``fn`` applied to every tensor argument."""
        return Args(fn(a) if isinstance(a, torch.Tensor) else a for a in self)


def call_with(fn: Callable[..., Any], value: Any) -> Any:
    """``fn(*value)`` for :class:`Args`, else ``fn(value)``."""
    if isinstance(value, Args):
        return fn(*value)
    return fn(value)
