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
"""

from __future__ import annotations

import dataclasses

import torch

from qcheck.packing.base import Layout

PER_BYTE = 4
PAD_FIELD = 0b01  # code 0


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
        *lead, n = shape
        n_bytes = -(-n // PER_BYTE)
        fields = torch.full((*lead, n_bytes * PER_BYTE), PAD_FIELD, dtype=torch.uint8, device=codes.device)
        fields[..., :n] = (codes + 1).to(torch.uint8)
        fields = fields.reshape(*lead, n_bytes, PER_BYTE)
        out = fields[..., 0].clone()
        for i in range(1, PER_BYTE):
            out |= fields[..., i] << (2 * i)
        return out

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        *lead, n = shape
        fields = torch.stack([(packed >> (2 * i)) & 0b11 for i in range(PER_BYTE)], dim=-1)
        fields = fields.reshape(*lead, packed.shape[-1] * PER_BYTE)
        self._reject(fields == 0b11, "2-bit fields hold 0b11, which has no code")
        pad = fields[..., n:]
        self._reject(pad != PAD_FIELD, "padding fields are not 0b01 (code 0)", pad)
        return fields[..., :n].to(torch.int8) - 1


QCHECK = QcheckLayout(
    name="qcheck",
    summary="4 codes per byte along the last dim, element 4j+i in bits 2i..2i+1, field = code+1, pad 01",
    source="qcheck (SPEC PACK-1; qcheck/packing/qcheck_layout.py)",
    bits_per_weight=2.0,
)
