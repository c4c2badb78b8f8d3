"""ggml TQ1_0: base-3 ternary codes in 256-element blocks with an fp16 absmax scale (54 bytes/block).

Sources: ggml-org/llama.cpp ``ggml/src/ggml-common.h`` (``block_tq1_0 { uint8_t qs[(QK_K - 4 *
QK_K / 64) / 5]; uint8_t qh[QK_K / 64]; ggml_half d; }`` = qs[48], qh[4], d), ``ggml/src/ggml-quants.c``
(``quantize_row_tq1_0_ref``, ``dequantize_row_tq1_0``) and ``gguf-py/gguf/quants.py`` (class ``TQ1_0``):

* Trit = ``q + 1`` in 0..2.  A byte holds a base-3 number ``v`` of 5 trits, the first trit most
  significant (``q *= 3; q += xi``), stored as ``ceil(v * 256 / 243)`` = ``(v*256 + 242) // 243``.
* ``qs[0:32]``: byte ``m`` holds elements ``m + 32*n`` for ``n`` = 0..4 (elements 0..159).
  ``qs[32:48]``: byte ``m`` holds elements ``160 + m + 16*n`` (elements 160..239).
  ``qh[0:4]``: byte ``j`` holds elements ``240 + j + 4*n`` for ``n`` = 0..3, then ``q *= 3`` (a 5th
  trit 0), elements 240..255.
* Decode trit ``n`` of byte ``b``: ``((uint8)(b * 3**n) * 3) >> 8`` (``dequantize_row_tq1_0``,
  ``pow3``); dequantized value ``(trit - 1) * fp16_to_fp32(d)``.
* ``d`` and rounding are as TQ2_0: float32 absmax, ``lroundf(x * (1/d))``, stored as fp16.
* Packed shape: ``(*lead, n // 256 * 54)`` (gguf ``GGML_QUANT_SIZES[TQ1_0] == (256, 2 + 4 * 13)``).

``pack(codes)`` equals ``gguf.quants.quantize(codes.float().numpy(), TQ1_0)``.  There is no invalid
field (every byte decodes to *some* trits), so ``unpack`` instead rejects bytes that ggml's encoder never writes
(13 of 256 values for ``qs``, 175 for ``qh``): a byte must re-encode to itself.  ``d`` is ignored by
``unpack``; :func:`dequantize_tq1_0` decodes any byte as ggml does.
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

QS_BYTES = (QK_K - 4 * QK_K // 64) // 5  # 48
QH_BYTES = QK_K // 64  # 4
CODE_BYTES = QS_BYTES + QH_BYTES  # 52
BLOCK_BYTES = CODE_BYTES + 2  # 54
# (first element, bytes in the group, trits per byte): qs along 32 bytes, qs along 16 bytes, qh.
_GROUPS = ((0, 32, 5), (160, 16, 5), (240, QH_BYTES, 4))


def _encode_values(trits: torch.Tensor) -> torch.Tensor:
    """Trits ``(n_blocks, 256)`` in 0..2 -> the 52 code bytes ``(n_blocks, 52)`` of ``quantize_row_tq1_0_ref``."""
    t = trits.to(torch.int32)
    parts = []
    for start, width, n_trits in _GROUPS:
        group = t[:, start : start + width * n_trits].reshape(-1, n_trits, width)
        v = torch.zeros_like(group[:, 0])
        for n in range(n_trits):
            v = v * 3 + group[:, n]
        if n_trits == 4:
            v = v * 3  # "shift the first value to the most significant trit"
        parts.append(v)
    values = torch.cat(parts, dim=-1)
    return ((values * 256 + (243 - 1)) // 243).to(torch.uint8)


def _decode_trits(code_bytes: torch.Tensor) -> torch.Tensor:
    """Code bytes ``(n_blocks, 52)`` -> trits ``(n_blocks, 256)`` in 0..2, as ``dequantize_row_tq1_0``."""
    b = code_bytes.to(torch.int32)
    parts = []
    offset = 0
    for _, width, n_trits in _GROUPS:
        group = b[:, offset : offset + width]
        offset += width
        trits = [((group * 3**n) & 0xFF) * 3 >> 8 for n in range(n_trits)]
        parts.append(torch.stack(trits, dim=1).reshape(-1, n_trits * width))
    return torch.cat(parts, dim=-1)


def _encode(trits: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return torch.cat([_encode_values(trits), fp16_bytes(d)], dim=-1)


def _byte_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return byte_shape(shape, BLOCK_BYTES)


def _blocks_of(op: str, packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    return blocks_of(op, packed, shape, BLOCK_BYTES, "TQ1_0")


def quantize_tq1_0(x: torch.Tensor) -> torch.Tensor:
    """Quantize float ``x`` (last dim a multiple of 256) to TQ1_0 bytes, bit-exact with gguf-py/ggml.

    Same ``d``/rounding as :func:`qcheck.packing.tq2_0.quantize_tq2_0` (``quantize_row_tq1_0_ref``);
    returns uint8 of shape ``(*lead, n // 256 * 54)``.
    """
    blocks = float_blocks("quantize_tq1_0", x, QK_K)
    d, inv = absmax_scale("quantize_tq1_0", blocks)
    q = round_half_away(blocks * inv).to(torch.int8)
    return _encode(q + 1, d).reshape(_byte_shape(x.shape))


def dequantize_tq1_0(packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """TQ1_0 bytes -> float32 of ``shape``: ``(trit - 1) * fp16_to_fp32(d)`` (``dequantize_row_tq1_0``)."""
    blocks = _blocks_of("dequantize_tq1_0", packed, shape)
    q = (_decode_trits(blocks[:, :CODE_BYTES]) - 1).to(torch.float32)
    return (fp16_from_bytes(blocks[:, CODE_BYTES:]) * q).reshape(tuple(shape))


@dataclasses.dataclass(frozen=True)
class Tq1_0Layout(Layout):
    """ggml TQ1_0 applied to ternary codes: the bytes gguf-py's quantize returns for ``codes.float()``."""

    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        return block_shape_rule(shape, QK_K, "TQ1_0")

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _byte_shape(shape)

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        blocks = codes.reshape(-1, QK_K)
        return _encode(blocks + 1, ternary_block_scale(blocks)).reshape(_byte_shape(shape))

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        code_bytes = packed.reshape(-1, BLOCK_BYTES)[:, :CODE_BYTES]
        trits = _decode_trits(code_bytes)
        bad = _encode_values(trits) != code_bytes
        self._reject(bad, "bytes are not encodings ggml's quantize_row_tq1_0_ref writes (block, byte)", code_bytes)
        return (trits.to(torch.int8) - 1).reshape(shape)


TQ1_0 = Tq1_0Layout(
    name="tq1_0",
    summary="ggml TQ1_0: 256-blocks, base-3 5 trits/byte as ceil(v*256/243): qs[48], qh[4], fp16 d",
    source="ggml-org/llama.cpp ggml/src/ggml-quants.c (quantize_row_tq1_0_ref), gguf-py/gguf/quants.py (TQ1_0)",
    bits_per_weight=BLOCK_BYTES * 8 / QK_K,
)
