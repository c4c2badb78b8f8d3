"""The ops qcheck checks, named as in the backend contract, with their torch references.

The three quantize ops use the streaming versions (:mod:`qcheck.quantizers.streaming`), which are
bit-identical to the readable references (tests/test_streaming.py) and fast at layer sizes.

An op is identified by its contract name (``b158_quantize``); its family says which codes it
produces and its form whether it returns ``(codes, scale)`` or a dequantized tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import torch

from qcheck import quantizers
from qcheck.arguments import Args
from qcheck.conventions import Conventions, Granularity
from qcheck.quantizers import streaming

Family = Literal["b1", "b158", "act", "packing", "product"]
Form = Literal["quantize", "fake", "pack", "unpack", "bitlinear"]


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation of the contract: its name, code family, output form and reference."""

    name: str
    family: Family
    form: Form
    reference: Callable[..., Any]
    summary: str

    @property
    def is_quantizer(self) -> bool:
        """A quantizer (one float tensor in; codes and scale, or dequantized values, out)."""
        return self.family in ("b1", "b158", "act")

    @property
    def input_kind(self) -> str:
        kinds = {"act": "activation", "packing": "codes" if self.form == "pack" else "packed", "product": "linear"}
        return kinds.get(self.family, "weight")

    @property
    def quantize_op(self) -> str:
        """The ``(codes, scale)`` op of this family (itself for a quantize op)."""
        return f"{self.family}_quantize"

    def granularity(self, conventions: Conventions) -> Granularity:
        if self.family == "act":
            return conventions.activation_granularity
        return conventions.weight_granularity

    def allowed_codes(self, conventions: Conventions) -> tuple[int, int, frozenset[int] | None]:
        """``(low, high, exact set or None)`` of the codes this op may produce."""
        if self.family == "b1":
            return -1, 1, frozenset({-1, 1})
        if self.family == "b158":
            return -1, 1, frozenset({-1, 0, 1})
        low, high = quantizers.code_range(conventions.activation_bits)
        return low, high, None

    def code_quantum(self, conventions: Conventions) -> int:
        """The largest code magnitude that maps to the statistic: Qp for activations, 1 else."""
        if self.family == "act":
            return quantizers.code_range(conventions.activation_bits)[1]
        return 1


def _pack_reference(codes: torch.Tensor, conventions: Conventions) -> torch.Tensor:
    from qcheck.packing import layout

    return layout(conventions.packing).pack(codes)


def _unpack_reference(args: Args, conventions: Conventions) -> torch.Tensor:
    from qcheck.packing import layout

    packed, shape = args
    return layout(conventions.packing).unpack(packed, shape)


def _bitlinear_reference(args: Args, conventions: Conventions) -> torch.Tensor:
    x, w_codes, w_scale, bias = args
    return quantizers.bitlinear(x, w_codes, w_scale, bias, conventions)


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("b1_quantize", "b1", "quantize", streaming.b1_quantize, "b1 weights to {-1,+1} codes and beta"),
        Op("b1_fake_quantize", "b1", "fake", quantizers.b1_fake_quantize, "b1 weights, dequantized (codes*beta)"),
        Op("b158_quantize", "b158", "quantize", streaming.b158_quantize, "b1.58 weights to {-1,0,+1} codes and gamma"),
        Op("b158_fake_quantize", "b158", "fake", quantizers.b158_fake_quantize, "b1.58 weights, dequantized"),
        Op("act_quantize", "act", "quantize", streaming.act_quantize, "per-token absmax activations to int8"),
        Op("act_fake_quantize", "act", "fake", quantizers.act_fake_quantize, "per-token activations, dequantized"),
        Op("pack_ternary", "packing", "pack", _pack_reference, "int8 ternary codes to the declared packed layout"),
        Op("unpack_ternary", "packing", "unpack", _unpack_reference, "packed bytes back to int8 codes of a shape"),
        Op("bitlinear", "product", "bitlinear", _bitlinear_reference, "int8 activations x ternary weights, scaled"),
    )
}
QUANTIZER_OPS: tuple[str, ...] = tuple(name for name, op in OPS.items() if op.is_quantizer)


def expand_scale(scale: torch.Tensor, shape: torch.Size, granularity: Granularity) -> torch.Tensor:
    """A scale of the reference's shape broadcast to every element of a tensor of ``shape``."""
    if granularity.group_size is None:
        return scale.expand(shape)
    size = granularity.group_size
    return scale.repeat_interleave(size, dim=-1)[..., : shape[-1]]
