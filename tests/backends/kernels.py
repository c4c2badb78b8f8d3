"""Backends of the ops that consume codes (ternary packing and BitLinear), written outside qcheck's
catalogue: one correct, and others with one bug each, for grading through the contract (in process
or in the isolation worker).  Each op is a plain method called with the contract's arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from qcheck.packing import layout
from qcheck.quantizers import bitlinear as reference_bitlinear

_QCHECK = layout("qcheck")
_TQ2_0 = layout("tq2_0")


class Good:
    """qcheck's own references behind the contract: every check passes."""

    name = "kernels-good"
    conventions = "default"

    def pack_ternary(self, codes: torch.Tensor) -> torch.Tensor:
        return _QCHECK.pack(codes)

    def unpack_ternary(self, packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        return _QCHECK.unpack(packed, shape)

    def bitlinear(
        self, x: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        return reference_bitlinear(x, w_codes, w_scale, bias)


class WritesAndAliases(Good):
    """Right BitLinear output, but the activations are halved in place afterwards; the unpacker
    hands back its input's bytes reinterpreted as int8 (a view of the input: an alias)."""

    name = "kernels-writes-and-aliases"

    def unpack_ternary(self, packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        _QCHECK.unpack(packed, shape)  # the size and field checks: a wrong-sized buffer still raises
        return packed.view(torch.int8)

    def bitlinear(
        self, x: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        y = reference_bitlinear(x, w_codes, w_scale, bias)
        x.mul_(0.5)
        return y


class PadsPartialBlocks:
    """A TQ2_0 packer that zero-pads each row to whole 256-element blocks instead of refusing a row
    the format cannot describe (last dim 100 gives one block; the reader cannot know the length)."""

    name = "pads-partial-blocks"
    conventions: ClassVar[dict[str, str]] = {"packing": "tq2_0"}

    def pack_ternary(self, codes: torch.Tensor) -> torch.Tensor:
        rows = codes.reshape(1) if codes.dim() == 0 else codes
        short = -rows.shape[-1] % 256
        padded = torch.nn.functional.pad(rows, (0, short)) if short else rows
        return _TQ2_0.pack(padded)


class ReadsShortBuffers:
    """A qcheck-layout unpacker that never checks the buffer's size: it reads the bytes the shape
    needs, and what lies past the end of a short buffer (here 0x55, four zero codes per byte)."""

    name = "reads-short-buffers"

    def unpack_ternary(self, packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        needed = int(torch.Size(_QCHECK.packed_shape(shape)).numel())
        flat = packed.contiguous().reshape(-1)[:needed]
        if flat.numel() < needed:
            flat = torch.cat([flat, torch.full((needed - flat.numel(),), 0x55, dtype=torch.uint8)])
        return _QCHECK.unpack(flat, shape)
