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

The code works on each 128-element half-block as 4 lanes of 32 codes (lane ``l`` = bits ``2l``):
:func:`~qcheck.packing.base.pack_lanes` / :func:`~qcheck.packing.base.unpack_lanes`.  A field ``11``
decodes to code +2 and is found by one ``max``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from qcheck.packing.base import Lanes, Layout, any_above, new_empty, pack_lanes, unpack_lanes
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
GROUP = QK_K // 2  # 128 elements: 4 lanes of 32, packed into 32 bytes
LANE = 32
_SHIFTS = (0, 2, 4, 6)  # lane l in bits 2l
ZERO_BLOCK_QS = 0b01_01_01_01  # every qs byte of an all-zero block


def _encode(
    codes: torch.Tensor, d: torch.Tensor | None, check: Callable[[torch.Tensor], object] | None = None
) -> torch.Tensor:
    """int8 codes ``(n_blocks, 256)`` in -1..1 -> blocks ``(n_blocks, 66)``.

    ``d`` is float32 ``(n_blocks, 1)``, or None for ternary codes' own (see ``ternary_block_scale``);
    ``check`` is passed to ``pack_lanes``.
    """
    qs = new_empty((codes.shape[0], QS_BYTES), torch.uint8, codes.device)
    lanes = Lanes(qs.view(-1, LANE), offset=0, width=LANE, n_lanes=4)
    pack_lanes(codes.view(torch.uint8).reshape(-1), [lanes], period=GROUP, base=4, first_high=False, check=check)
    d = ternary_block_scale([(qs, ZERO_BLOCK_QS)]) if d is None else d
    return torch.cat([qs, fp16_bytes(d)], dim=-1, out=new_empty((qs.shape[0], BLOCK_BYTES), torch.uint8, qs.device))


def _decode_codes(blocks: torch.Tensor) -> torch.Tensor:
    """Blocks ``(n_blocks, 66)`` -> int8 ``field - 1`` ``(n_blocks, 256)`` (a field 11 gives +2)."""
    out = new_empty((blocks.shape[0], QK_K), torch.int8, blocks.device)
    return unpack_lanes(blocks[:, :QS_BYTES], out, width=LANE, shifts=_SHIFTS)


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
    return _encode(q, d).reshape(_byte_shape(x.shape))


def dequantize_tq2_0(packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """TQ2_0 bytes -> float32 of ``shape``: ``(field - 1) * fp16_to_fp32(d)`` (``dequantize_row_tq2_0``)."""
    blocks = _blocks_of("dequantize_tq2_0", packed, shape)
    q = _decode_codes(blocks)
    return (fp16_from_bytes(blocks[:, QS_BYTES:]) * q.to(torch.float32)).reshape(tuple(shape))


@dataclasses.dataclass(frozen=True)
class Tq2_0Layout(Layout):
    """ggml TQ2_0 applied to ternary codes: the bytes gguf-py's quantize returns for ``codes.float()``."""

    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        return block_shape_rule(shape, QK_K, "TQ2_0")

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _byte_shape(shape)

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        blocks = _encode(codes.reshape(-1, QK_K), None, check=lambda piece: self._require_ternary(codes, piece))
        return blocks.reshape(_byte_shape(shape))

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        codes = _decode_codes(packed.reshape(-1, BLOCK_BYTES))
        if any_above(codes, 1):
            self._reject(codes + 1 == 0b11, "2-bit fields hold 0b11, which has no code (position is block, element)")
        return codes.reshape(shape)


TQ2_0 = Tq2_0Layout(
    name="tq2_0",
    summary="ggml TQ2_0: 256-blocks, qs[64] (element g*128+32l+m in byte g*32+m, bits 2l) + fp16 d",
    source="ggml-org/llama.cpp ggml/src/ggml-quants.c (quantize_row_tq2_0_ref), gguf-py/gguf/quants.py (TQ2_0)",
    bits_per_weight=BLOCK_BYTES * 8 / QK_K,
)
