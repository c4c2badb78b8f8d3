"""HF transformers' BitNet packing, reproduced bit for bit without its in-place side effect.

Source: huggingface/transformers ``src/transformers/integrations/bitnet.py``, functions
``pack_weights`` and ``unpack_weights`` (checked against transformers 5.25.0):

* ``pack_weights`` adds 1 to the codes (field = code + 1: 00 = -1, 01 = 0, 10 = +1) **in place**
  (``quantized_weights += 1``, so the caller's tensor is changed), then packs along **dim 0**:
  with ``row_dim = ceil(rows / 4)``, rows ``[i*row_dim, (i+1)*row_dim)`` go to bits ``2i .. 2i+1``
  of packed rows ``0 .. row_dim-1`` (``packed[:(end-start)] |= unpacked[start:end] << 2*i``).
  Packed shape ``(ceil(rows / 4), *rest)``; a 1-d tensor packs to ``(ceil(rows / 4),)``.
* Slots past the last row are never written and stay ``00``, so ``unpack_weights`` (which returns
  ``4 * row_dim`` rows and ignores the original count) reads them as -1.  Our :meth:`unpack`
  returns exactly the requested shape, requires those slots to be ``00`` (what HF writes) and
  rejects ``11`` (HF would decode it as +2).
* Rows = 0 is unsupported: ``pack_weights`` divides by ``row_dim = 0``.
"""

from __future__ import annotations

import dataclasses

import torch

from qcheck.packing.base import Layout

PER_BYTE = 4  # transformers' VALUES_PER_ITEM
PAD_FIELD = 0b00  # never written by pack_weights


@dataclasses.dataclass(frozen=True)
class HfBitnetLayout(Layout):
    """transformers ``pack_weights``: 4 row-blocks of ceil(rows/4) rows per byte, block i in bits 2i."""

    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        if shape[0] < 1:
            return "dim 0 (packed along) must be >= 1 (transformers' pack_weights divides by ceil(rows/4))"
        return None

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (-(-shape[0] // PER_BYTE), *shape[1:])

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        rows, *rest = shape
        row_dim = -(-rows // PER_BYTE)
        fields = torch.full((PER_BYTE * row_dim, *rest), PAD_FIELD, dtype=torch.uint8, device=codes.device)
        fields[:rows] = (codes + 1).to(torch.uint8)
        blocks = fields.reshape(PER_BYTE, row_dim, *rest)
        out = blocks[0].clone()
        for i in range(1, PER_BYTE):
            out |= blocks[i] << (2 * i)
        return out

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        rows = shape[0]
        fields = torch.cat([(packed >> (2 * i)) & 0b11 for i in range(PER_BYTE)], dim=0)
        self._reject(fields == 0b11, "2-bit fields hold 0b11, which has no code")
        pad = fields[rows:]
        self._reject(pad != PAD_FIELD, "padding slots past the last row are not 0b00 as pack_weights leaves them", pad)
        return fields[:rows].to(torch.int8) - 1


HF_BITNET = HfBitnetLayout(
    name="hf-bitnet",
    summary="transformers pack_weights: code+1 in 2 bits, packed along dim 0 in 4 blocks of ceil(rows/4) rows",
    source="huggingface/transformers src/transformers/integrations/bitnet.py (pack_weights, unpack_weights)",
    bits_per_weight=2.0,
)
