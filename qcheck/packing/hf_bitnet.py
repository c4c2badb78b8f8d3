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

How the code computes it: each row block is a contiguous slice, so pack adds the blocks into the
packed rows with ``alpha = 4**i`` in uint8 arithmetic (``sum 4**i * (code + 1)`` is at most 170, so
wrapping mod 256 is exact), and unpack writes field ``i`` of every byte, minus 1, into block ``i``.
A field ``11`` decodes to +2 and is found by one ``max``.
"""

from __future__ import annotations

import dataclasses

import torch

from qcheck.packing.base import Layout, any_above, new_empty

PER_BYTE = 4  # transformers' VALUES_PER_ITEM
PAD_FIELD = 0b00  # never written by pack_weights


def _block_rows(rows: int, row_dim: int) -> list[int]:
    """How many rows each of the 4 blocks has (block i: rows ``i*row_dim`` .. ``(i+1)*row_dim - 1`` < rows)."""
    return [min(max(rows - i * row_dim, 0), row_dim) for i in range(PER_BYTE)]


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
        self._require_ternary(codes)
        rows, *rest = shape
        row_dim = -(-rows // PER_BYTE)
        u = codes.view(torch.uint8).reshape(rows, torch.Size(rest).numel())
        out = new_empty((row_dim, u.shape[1]), torch.uint8, codes.device)
        present = _block_rows(rows, row_dim)
        # block 0 plus the "+ 1" of each block present in the row: packed rows below present[i] have
        # blocks 0..i, so they start at 1 + 4 + ... + 4**i
        for i, (end, start) in enumerate(zip(present, [*present[1:], 0], strict=True)):
            torch.add(u[start:end], sum(4**j for j in range(i + 1)), out=out[start:end])
        for i, n in enumerate(present[1:], start=1):
            out[:n].add_(u[i * row_dim : i * row_dim + n], alpha=4**i)  # + 4**i * code
        return out.reshape(row_dim, *rest)

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        rows, *rest = shape
        row_dim = packed.shape[0]
        p = packed.reshape(row_dim, torch.Size(rest).numel())
        out = new_empty((rows, p.shape[1]), torch.int8, packed.device)
        padding_ok = True
        for i, n in enumerate(_block_rows(rows, row_dim)):
            block = out.view(torch.uint8)[i * row_dim : i * row_dim + n]
            torch.bitwise_right_shift(p[:n], 2 * i, out=block)
            block.bitwise_and_(0b11).sub_(1)  # code = field - 1 (in uint8, 0 - 1 = 0xff = -1)
            padding_ok &= not bool(((p[n:] >> (2 * i)) & 0b11).any())
        if any_above(out, 1) or not padding_ok:
            fields = torch.cat([(packed >> (2 * i)) & 0b11 for i in range(PER_BYTE)], dim=0)
            self._reject(fields == 0b11, "2-bit fields hold 0b11, which has no code")
            pad = fields[rows:]
            self._reject(
                pad != PAD_FIELD, "padding slots past the last row are not 0b00 as pack_weights leaves them", pad
            )
        return out.reshape(shape)


HF_BITNET = HfBitnetLayout(
    name="hf-bitnet",
    summary="transformers pack_weights: code+1 in 2 bits, packed along dim 0 in 4 blocks of ceil(rows/4) rows",
    source="huggingface/transformers src/transformers/integrations/bitnet.py (pack_weights, unpack_weights)",
    bits_per_weight=2.0,
)
