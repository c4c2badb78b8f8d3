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

How the code computes it:

* pack: each group of code bytes is lanes of codes, one base-3 digit per lane
  (:func:`~qcheck.packing.base.pack_lanes`); ``v`` becomes ``ceil(v * 256 / 243)`` by table lookup,
  two bytes at a time.
* unpack: every byte is copied to the elements it holds (as 16-, 4-byte words), multiplied by the
  ``3**n`` of each element's trit (mod 256), and ``trit - 1 = (x > 170) - (x <= 85)`` for
  ``x = (uint8)(b * 3**n)`` (ggml's ``(x * 3) >> 8`` is 0, 1, 2 at 0..85, 86..170, 171..255).
* validity: ``b`` is some ``ceil(256 v / 243)`` exactly when ``(uint8)(b * 243) <= 242`` (``243 b =
  256 v + r`` with ``0 <= r < 243``); a ``qh`` byte must also have a last trit 0, ``(uint8)(b * 81) <= 85``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from qcheck.packing.base import Lanes, Layout, any_above, lookup, new_empty, pack_lanes, pieces, single_threaded
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
#: The byte ggml stores for the base-3 value v (0..242): ceil(v * 256 / 243).
_BYTE_OF_VALUE = ((torch.arange(256) * 256 + (243 - 1)) // 243).clamp(max=255)
#: The same for two values at once (a little-endian uint16 -> int16): half as many lookups.
_BYTES_OF_VALUES = (_BYTE_OF_VALUE.reshape(-1, 1) << 8 | _BYTE_OF_VALUE.reshape(1, -1)).reshape(-1).to(torch.int16)
#: Per element of a block, 3**n for its trit n (mod 256): the byte holding it times this has the trit on top.
_TRIT_POWER = torch.tensor(
    [3**n % 256 for _, width, n_trits in _GROUPS for n in range(n_trits) for _ in range(width)], dtype=torch.uint8
)
#: What each group's bytes are in an all-zero block (every trit 1): ceil(121 * 256 / 243) = 128, qh 127.
_ZERO_BLOCK_BYTES = [int(_BYTE_OF_VALUE[(3**n_trits - 1) // 2 * 3 ** (5 - n_trits)]) for _, _, n_trits in _GROUPS]


def _encode_groups(codes: torch.Tensor, check: Callable[[torch.Tensor], object] | None = None) -> list[torch.Tensor]:
    """int8 codes ``(n_blocks, 256)`` -> the code bytes of ``quantize_row_tq1_0_ref``, ``(n_blocks, width)`` a group."""
    lane_sets = [
        Lanes(new_empty((codes.shape[0], width), torch.uint8, codes.device), start, width, n_trits)
        for start, width, n_trits in _GROUPS
    ]
    pack_lanes(codes.view(torch.uint8).reshape(-1), lane_sets, period=QK_K, base=3, first_high=True, check=check)
    groups = []
    for v, _, _, n_trits in lane_sets:
        if n_trits == 4:
            v.mul_(3)  # qh: "shift the first value to the most significant trit"
        lookup(_BYTES_OF_VALUES, v.view(torch.uint16).view(-1), v.view(torch.int16).view(-1))  # widths are even
        groups.append(v)
    return groups


@single_threaded
def _decode_codes(code_bytes: torch.Tensor) -> torch.Tensor:
    """Code bytes ``(n_blocks, 52)`` -> int8 ``trit - 1`` ``(n_blocks, 256)``, as ``dequantize_row_tq1_0`` decodes."""
    n_blocks = code_bytes.shape[0]
    out = new_empty((n_blocks, QK_K), torch.int8, code_bytes.device)
    parts = pieces(n_blocks, QK_K)
    staged = torch.zeros(((parts[0].stop if parts else 0), 64), dtype=torch.uint8, device=code_bytes.device)
    trit_power = _TRIT_POWER.to(code_bytes.device)
    above, below = torch.empty((2, staged.shape[0], QK_K), dtype=torch.uint8, device=code_bytes.device)
    for part in parts:
        k = part.stop - part.start
        b = staged[:k]
        b[:, :CODE_BYTES] = code_bytes[part]
        x = out[part].view(torch.uint8)
        # every element gets a copy of the byte that holds it: each lane of a group is a copy of the
        # group's bytes, moved as 16-byte words (complex128 only as a container: copies keep the bytes)
        # or, for qh, 4-byte words
        offset = 0
        for start, width, n_trits in _GROUPS:
            word = torch.complex128 if width % 16 == 0 else torch.int32
            size = word.itemsize
            lanes = x.view(word)[:, start // size : (start + n_trits * width) // size].view(k, n_trits, width // size)
            for w in range(width // size):
                lanes[:, :, w] = b.view(word)[:, offset // size + w, None].expand(k, n_trits)
            offset += width
        x.mul_(trit_power)  # (uint8)(b * 3**n): trit n on top
        torch.gt(x, 170, out=above[:k])
        torch.le(x, 85, out=below[:k])
        torch.sub(above[:k], below[:k], out=x)  # trit - 1
    return out


def _invalid_bytes(code_bytes: torch.Tensor) -> torch.Tensor:
    """Per code byte ``(n_blocks, 52)``: True where it is no ``ceil(256 v / 243)`` (see the module docstring)."""
    bad = code_bytes * 243 > 242
    bad[:, QS_BYTES:] |= code_bytes[:, QS_BYTES:] * 81 > 85
    return bad


def _blocks(groups: list[torch.Tensor], d: torch.Tensor) -> torch.Tensor:
    out = new_empty((d.shape[0], BLOCK_BYTES), torch.uint8, d.device)
    return torch.cat([*groups, fp16_bytes(d)], dim=-1, out=out)


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
    return _blocks(_encode_groups(q), d).reshape(_byte_shape(x.shape))


def dequantize_tq1_0(packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """TQ1_0 bytes -> float32 of ``shape``: ``(trit - 1) * fp16_to_fp32(d)`` (``dequantize_row_tq1_0``)."""
    blocks = _blocks_of("dequantize_tq1_0", packed, shape)
    q = _decode_codes(blocks[:, :CODE_BYTES]).to(torch.float32)
    return (fp16_from_bytes(blocks[:, CODE_BYTES:]) * q).reshape(tuple(shape))


@dataclasses.dataclass(frozen=True)
class Tq1_0Layout(Layout):
    """ggml TQ1_0 applied to ternary codes: the bytes gguf-py's quantize returns for ``codes.float()``."""

    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        return block_shape_rule(shape, QK_K, "TQ1_0")

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _byte_shape(shape)

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        groups = _encode_groups(codes.reshape(-1, QK_K), check=lambda piece: self._require_ternary(codes, piece))
        d = ternary_block_scale(list(zip(groups, _ZERO_BLOCK_BYTES, strict=True)))
        return _blocks(groups, d).reshape(_byte_shape(shape))

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        code_bytes = packed.reshape(-1, BLOCK_BYTES)[:, :CODE_BYTES]
        # (uint8)(b * 243) <= 242 and, for qh, (uint8)(b * 81) <= 85: see the module docstring
        if any_above(code_bytes * 243, 242) or any_above(code_bytes[:, QS_BYTES:] * 81, 85):
            bad = _invalid_bytes(code_bytes)
            self._reject(bad, "bytes are not encodings ggml's quantize_row_tq1_0_ref writes (block, byte)", code_bytes)
        return _decode_codes(code_bytes).reshape(shape)


TQ1_0 = Tq1_0Layout(
    name="tq1_0",
    summary="ggml TQ1_0: 256-blocks, base-3 5 trits/byte as ceil(v*256/243): qs[48], qh[4], fp16 d",
    source="ggml-org/llama.cpp ggml/src/ggml-quants.c (quantize_row_tq1_0_ref), gguf-py/gguf/quants.py (TQ1_0)",
    bits_per_weight=BLOCK_BYTES * 8 / QK_K,
)
