"""ggml TQ2_0: 2-bit ternary codes in 256-element blocks with an fp16 absmax scale (66 bytes/block).

Sources: ggml-org/llama.cpp ``ggml/src/ggml-common.h`` (``block_tq2_0 { uint8_t qs[QK_K/4];
ggml_half d; }``), ``ggml/src/ggml-quants.c`` (``quantize_row_tq2_0_ref``, ``dequantize_row_tq2_0``)
and ``gguf-py/gguf/quants.py`` (class ``TQ2_0``):

* Each row (last dim, a multiple of 256) is cut into 256-element blocks; block = ``qs[64]`` then ``d``.
* Field = ``q + 1`` (00 = -1, 01 = 0, 10 = +1).  Element ``g*128 + 32*l + m`` (``g`` in 0..1,
  ``l`` in 0..3, ``m`` in 0..31) is in byte ``qs[g*32 + m]``, bits ``2l .. 2l+1`` (low bits first):
  C ``q += (xi & 3) << (2*n)`` over ``x[m + n*32]``; gguf ``reshape((n_blocks, -1, 4, 32)) << [0, 2, 4, 6]``.
* ``d`` = absmax of the block in float32, stored as fp16 (little-endian); ``q = lroundf(x * (1/d))``
  (half away from zero; ``1/d`` taken as 0 when ``d == 0``).  Dequantize: ``(q) * fp16_to_fp32(d)``.
* Packed shape (as gguf returns it): ``(*lead, n // 256 * 66)``.

``pack(codes)`` equals ``gguf.quants.quantize(codes.float().numpy(), TQ2_0)``: ``d`` is 1.0 for a
block with a nonzero code and 0.0 for an all-zero block.  ``unpack`` ignores ``d`` and rejects the
field ``11``; :func:`dequantize_tq2_0`, like ggml, decodes ``11`` as ``+2 * d``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from qcheck.packing.base import Layout
from qcheck.packing.ggml_blocks import (
    QK_K,
    absmax_scale,
    block_shape_rule,
    blocks_of,
    byte_shape,
    float_blocks,
    fp16_bytes,
    fp16_from_bytes,
    round_half_away,
    ternary_block_scale,
)

QS_BYTES = QK_K // 4  # 64
BLOCK_BYTES = QS_BYTES + 2  # 66, gguf GGML_QUANT_SIZES[TQ2_0] == (256, 2 + 64)
_SHIFTS = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).reshape(1, 1, 4, 1)


def _encode(fields: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Fields ``(n_blocks, 256)`` in 0..2 and float32 ``d`` ``(n_blocks, 1)`` -> blocks ``(n_blocks, 66)``."""
    f = fields.reshape(-1, 2, 4, 32) << _SHIFTS.to(fields.device)
    qs = (f[:, :, 0] | f[:, :, 1] | f[:, :, 2] | f[:, :, 3]).reshape(-1, QS_BYTES)
    return torch.cat([qs, fp16_bytes(d)], dim=-1)


def _decode_fields(blocks: torch.Tensor) -> torch.Tensor:
    """Blocks ``(n_blocks, 66)`` -> 2-bit fields ``(n_blocks, 256)`` (0..3)."""
    qs = blocks[:, :QS_BYTES].reshape(-1, 2, 1, 32)
    return ((qs >> _SHIFTS.to(blocks.device)) & 0b11).reshape(-1, QK_K)


def _byte_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return byte_shape(shape, BLOCK_BYTES)


def _blocks_of(op: str, packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return blocks_of(op, packed, shape, BLOCK_BYTES, "TQ2_0")


def quantize_tq2_0(x: torch.Tensor) -> torch.Tensor:
    """Quantize float ``x`` (last dim a multiple of 256) to TQ2_0 bytes, bit-exact with gguf-py/ggml.

    ``x`` is first converted to float32 (gguf-py ``quantize_rows``); then per block ``d = amax|x|``,
    ``q = round_half_away(x * (1/d))`` in float32, ``d`` stored as fp16 (``quantize_row_tq2_0_ref``).
    Returns uint8 of shape ``(*lead, n // 256 * 66)``.
    """
    blocks = float_blocks("quantize_tq2_0", x, QK_K)
    d, inv = absmax_scale("quantize_tq2_0", blocks)
    q = round_half_away(blocks * inv).to(torch.int8)
    return _encode((q + 1).to(torch.uint8), d).reshape(_byte_shape(x.shape))


def dequantize_tq2_0(packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """TQ2_0 bytes -> float32 of ``shape``: ``(field - 1) * fp16_to_fp32(d)`` (``dequantize_row_tq2_0``)."""
    blocks = _blocks_of("dequantize_tq2_0", packed, shape)
    q = _decode_fields(blocks).to(torch.int8) - 1
    return (fp16_from_bytes(blocks[:, QS_BYTES:]) * q.to(torch.float32)).reshape(tuple(shape))


@dataclasses.dataclass(frozen=True)
class Tq2_0Layout(Layout):
    """ggml TQ2_0 applied to ternary codes: the bytes gguf-py's quantize returns for ``codes.float()``."""

    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        return block_shape_rule(shape, QK_K, "TQ2_0")

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _byte_shape(shape)

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        blocks = codes.reshape(-1, QK_K)
        return _encode((blocks + 1).to(torch.uint8), ternary_block_scale(blocks)).reshape(_byte_shape(shape))

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        fields = _decode_fields(packed.reshape(-1, BLOCK_BYTES))
        self._reject(fields == 0b11, "2-bit fields hold 0b11, which has no code (position is block, element)")
        return (fields.to(torch.int8) - 1).reshape(shape)


TQ2_0 = Tq2_0Layout(
    name="tq2_0",
    summary="ggml TQ2_0: 256-blocks, qs[64] (element g*128+32l+m in byte g*32+m, bits 2l) + fp16 d",
    source="ggml-org/llama.cpp ggml/src/ggml-quants.c (quantize_row_tq2_0_ref), gguf-py/gguf/quants.py (TQ2_0)",
    bits_per_weight=BLOCK_BYTES * 8 / QK_K,
)
