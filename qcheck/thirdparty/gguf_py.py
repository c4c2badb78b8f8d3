"""gguf-py's ternary block formats (``gguf/quants.py``: ``TQ2_0``, ``TQ1_0``) as qcheck backends.

gguf-py is the Python twin of ggml's C quantizers (its ``tests/test_quants.py`` compares them bit
for bit).  Each format is one backend; every value comes from ``gguf.quants.quantize`` /
``dequantize``, the adapter only moves arrays between torch and numpy and reads the block fields:

* ``pack_ternary(codes)`` = ``quantize(codes as float32)``; ``unpack_ternary`` = ``dequantize``,
  then int8 (ternary codes quantize with ``d = 1``, or ``d = 0`` for an all-zero block).
* ``b158_quantize(w)`` = ``quantize(w)``, read back: the codes are ``dequantize`` of the same
  blocks with their ``d`` field set to fp16 1.0, the scale is ``d`` (fp16 -> float32) shaped
  ``(..., n_blocks)``; ``b158_fake_quantize(w)`` = ``dequantize(quantize(w))`` in ``w.dtype``.

ggml stores whole 256-element blocks per row: gguf refuses any other row length (``QuantError``
from ``__Quant.quantize``, ``ValueError`` from ``quant_shape_to_byte_shape``).  The backends declare
that domain (``row_multiple=256``, SPEC IN-6), so the quantizer checks draw rows of whole blocks
(zero-padded); the adapters pass every shape through to gguf as it is and let gguf refuse the rest.
numpy arrays have no gradient, so the backends are not ``differentiable``.
"""

from __future__ import annotations

import numpy as np
import torch
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from qcheck.conventions import GGML_TQ, Conventions
from qcheck.quantizers.validation import scale_dtype_for

D_BYTES = 2
"""Both blocks end in ``ggml_half d`` (ggml-common.h ``block_tq2_0``, ``block_tq1_0``)."""
ONE_FP16 = np.frombuffer(np.float16(1.0).tobytes(), dtype=np.uint8)


def _numpy_input(x: torch.Tensor) -> np.ndarray:
    """``x`` as numpy, as it is (gguf converts every input to float32 itself: ``quantize_rows``'s
    ``rows.astype(np.float32)``).  numpy has no bfloat16: bfloat16 goes to float32 first, which
    is exact, so gguf sees the same float32 values either way."""
    source = x.detach()
    if source.dtype == torch.bfloat16:
        source = source.to(torch.float32)
    return source.numpy()


class _GgufTernary:
    """One gguf-py ternary block format behind the contract."""

    name: str
    qtype: GGMLQuantizationType
    conventions: Conventions
    differentiable = False

    def _quantize(self, x: torch.Tensor) -> np.ndarray:
        packed: np.ndarray = quants.quantize(_numpy_input(x), self.qtype)
        return packed

    def _dequantize(self, packed: np.ndarray) -> np.ndarray:
        values: np.ndarray = quants.dequantize(packed, self.qtype)
        return values

    def pack_ternary(self, codes: torch.Tensor) -> torch.Tensor:
        """``quantize(codes.float())``: the bytes, shaped ``(*lead, n // 256 * block bytes)``."""
        return torch.from_numpy(self._quantize(codes.to(torch.float32)))

    def unpack_ternary(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """``dequantize(packed)`` as int8 codes of ``shape``.  gguf reads the row count from the
        bytes' shape, so flat bytes are first viewed in ``quant_shape_to_byte_shape(shape)``, which
        refuses rows that are not whole blocks; ``reshape`` refuses a buffer of the wrong size."""
        byte_shape = quants.quant_shape_to_byte_shape(shape, self.qtype)
        if tuple(packed.shape) != byte_shape:
            packed = packed.reshape(byte_shape)
        values = self._dequantize(packed.numpy())
        return torch.from_numpy(values).to(torch.int8)

    def _codes_and_d(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        packed = self._quantize(w)
        _, block_bytes = GGML_QUANT_SIZES[self.qtype]
        blocks = packed.reshape(-1, block_bytes)
        d = blocks[:, -D_BYTES:].copy().view(np.float16).astype(np.float32)
        unit = blocks.copy()
        unit[:, -D_BYTES:] = ONE_FP16  # d = 1: dequantize gives the codes themselves
        codes = self._dequantize(unit.reshape(packed.shape))
        lead = tuple(w.shape[:-1])
        return torch.from_numpy(codes).to(torch.int8), torch.from_numpy(d).reshape(*lead, -1)

    def b158_quantize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``quantize(w)`` read back: int8 codes shaped like ``w`` and the blocks' fp16 ``d`` as the
        scale, shaped ``(..., n_blocks)`` (float64 for float64 ``w``: the conversion is exact)."""
        codes, d = self._codes_and_d(w)
        return codes.reshape(w.shape), d.to(scale_dtype_for(w.dtype))

    def b158_fake_quantize(self, w: torch.Tensor) -> torch.Tensor:
        """``dequantize(quantize(w))`` (float32 ``d * q``) in ``w.dtype``."""
        return torch.from_numpy(self._dequantize(self._quantize(w))).reshape(w.shape).to(w.dtype)


class GgufTq2_0(_GgufTernary):
    """gguf-py ``TQ2_0``: 2-bit fields in 256-blocks of 66 bytes, fp16 absmax ``d``, ``np_roundf``."""

    name = "gguf-tq2_0"
    qtype = GGMLQuantizationType.TQ2_0
    conventions = GGML_TQ.replace(packing="tq2_0", row_multiple=256)


class GgufTq1_0(_GgufTernary):
    """gguf-py ``TQ1_0``: base-3 fields in 256-blocks of 54 bytes, fp16 absmax ``d``, ``np_roundf``."""

    name = "gguf-tq1_0"
    qtype = GGMLQuantizationType.TQ1_0
    conventions = GGML_TQ.replace(packing="tq1_0", row_multiple=256)
