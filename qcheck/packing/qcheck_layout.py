"""qcheck's own 2-bit layout (SPEC PACK-1), the one qcheck's golden vectors and reports use.

Definition (complete; nothing else is implied):

* Codes are packed along the **last** dimension, row by row; all leading dimensions are kept.
  Codes of shape ``(*lead, n)`` pack to uint8 of shape ``(*lead, ceil(n / 4))``.
* Byte ``j`` of a row holds elements ``4j, 4j+1, 4j+2, 4j+3``; element ``4j + i`` is in bits
  ``2i .. 2i+1`` (low bits first): ``byte = f0 | f1 << 2 | f2 << 4 | f3 << 6``.
* A 2-bit field holds ``code + 1``: ``00`` = -1, ``01`` = 0, ``10`` = +1; ``11`` is invalid.
* When ``n`` is not a multiple of 4 the last byte of each row is padded with field ``01``
  (code 0), so padding can never decode to -1 and a reader that ignores ``n`` adds nothing to a
  dot product.  :meth:`unpack` rejects ``11`` anywhere and padding fields other than ``01``.
* Any shape with at least one dimension and a last dimension >= 1 is supported; 0-d is not.

It is not a copy of any third-party layout (compare :mod:`qcheck.packing.hf_bitnet`, which packs
along dim 0, and :mod:`qcheck.packing.i2_s`, which puts the first element in the high bits).

How the code computes it (the definition above is what tests/test_packing_layouts.py checks it against):

* pack: the four fields of a byte, read as the little-endian int32 word
  ``w = f0 | f1 << 8 | f2 << 16 | f3 << 24``, times :data:`FIELDS_TO_TOP_BYTE` have the packed byte
  in their top 8 bits (see there); a shift and a narrowing copy keep it.
* unpack: a 256-entry table gives the four codes of each byte as one int32 word.  A field ``11``
  decodes to +2, so one ``max`` over the result finds any; only then are the fields examined in
  detail, to name the first bad one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from qcheck.packing.base import Layout, any_above, lookup, new_empty, pieces, single_threaded

PER_BYTE = 4
PAD_FIELD = 0b01  # code 0
#: Byte ``i`` of an int32 word (a field <= 2) times ``2**(24 - 6i)`` lands at bits ``24 + 2i``: the
#: top byte of ``w * FIELDS_TO_TOP_BYTE`` (mod 2**32) is ``f0 | f1 << 2 | f2 << 4 | f3 << 6``.  The other
#: products ``f_i * 2**(8i + 24 - 6j)`` fall at or above bit 32 (``i > j``, dropped) or in two bits of
#: their own between bits 6 and 23 (``i < j``), so they never carry into the top byte.
FIELDS_TO_TOP_BYTE = 1 << 24 | 1 << 18 | 1 << 12 | 1 << 6
#: The four codes of each byte value (``field - 1``, so a field 11 gives +2), as one int32 word.
CODES_OF_BYTE = (
    ((torch.arange(256).reshape(-1, 1) >> torch.arange(0, 2 * PER_BYTE, 2)) & 0b11)
    .sub(1)
    .to(torch.int8)
    .view(torch.int32)
    .reshape(-1)
)


@single_threaded
def _pack_rows(
    rows: torch.Tensor, out: torch.Tensor, pad_field: int, check: Callable[[torch.Tensor], object]
) -> torch.Tensor:
    """Pack uint8 code bytes ``rows`` (k, width) into ``out`` (k, ceil(width / 4)): fields low bits first.

    Element ``4j + i`` of a row goes to bits ``2i`` of byte ``j`` as ``code + 1``; a short last byte is
    filled with ``pad_field``.  Rows are done a cache-sized piece at a time, each first passed to ``check``.
    """
    n_rows, width = rows.shape
    row_bytes = out.shape[1]
    parts = pieces(n_rows, PER_BYTE * row_bytes)
    fields = torch.empty((parts[0].stop if parts else 0, PER_BYTE * row_bytes), dtype=torch.uint8, device=rows.device)
    for part in parts:
        f = fields[: part.stop - part.start]
        check(rows[part])
        torch.add(rows[part], 1, out=f[:, :width])  # field = code + 1 (in uint8, 0xff + 1 = 0)
        if width < f.shape[1]:
            f[:, width:] = pad_field
        words = f.view(torch.int32)
        words.mul_(FIELDS_TO_TOP_BYTE).bitwise_right_shift_(24)
        out[part] = words  # the narrowing copy keeps the low byte
    return out


@dataclasses.dataclass(frozen=True)
class QcheckLayout(Layout):
    """SPEC PACK-1: 4 codes per byte along the last dimension, low bits first, field = code + 1."""

    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        if shape[-1] < 1:
            return "the last dimension (packed along) must be >= 1"
        return None

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape[:-1], -(-shape[-1] // PER_BYTE))

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        n = shape[-1]
        # When n % 4 == 0 every 4 consecutive codes make a byte: pack them as rows of 4, with no padding.
        rows = codes.view(torch.uint8).reshape(-1, n if n % PER_BYTE else PER_BYTE)
        out = new_empty((rows.shape[0], -(-rows.shape[1] // PER_BYTE)), torch.uint8, codes.device)
        _pack_rows(rows, out, PAD_FIELD, check=lambda piece: self._require_ternary(codes, piece))
        return out.reshape(self._packed_shape(shape))

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        *lead, n = shape
        decoded = new_empty((*lead, packed.shape[-1] * PER_BYTE), torch.int8, packed.device)
        lookup(CODES_OF_BYTE, packed.reshape(-1), decoded.view(torch.int32).reshape(-1))
        if any_above(decoded, 1) or bool(decoded[..., n:].any()):
            fields = decoded + 1
            self._reject(fields == 0b11, "2-bit fields hold 0b11, which has no code")
            pad = fields[..., n:]
            self._reject(pad != PAD_FIELD, "padding fields are not 0b01 (code 0)", pad)
        if decoded.shape[-1] == n:
            return decoded
        return new_empty(shape, torch.int8, packed.device).copy_(decoded[..., :n])


QCHECK = QcheckLayout(
    name="qcheck",
    summary="4 codes per byte along the last dim, element 4j+i in bits 2i..2i+1, field = code+1, pad 01",
    source="qcheck (SPEC PACK-1; qcheck/packing/qcheck_layout.py)",
    bits_per_weight=2.0,
)
