"""bitnet.cpp I2_S: 2-bit ternary codes in 128-element blocks, then one fp32 tensor scale (+ 32-byte tail).

Source: microsoft/BitNet ``src/ggml-bitnet-mad.cpp``, ``quantize_i2_s`` (the architecture-independent
version with ``static constexpr auto QK_I2 = 128``, commit 5cad0d40), the size override in the
bitnet llama.cpp fork ``ggml/src/ggml.c`` ``ggml_nbytes`` (``nbytes = nbytes / 4 + 32`` for I2_S) and
``utils/convert-hf-to-gguf-bitnet.py``, which writes the already-ternary weights (``weight_quant``)
as F16 for ``llama-quantize`` to turn into I2_S:

* Over the **whole tensor flattened** (``n = nrow * n_per_row``): ``scale = max |w|`` (computed in
  double, stored as float32); field ``q8 = 1`` if ``|w| < 1e-6``, else ``2`` if ``w * scale > 0``
  else ``0``.  So field 00 = -1, 01 = 0, 10 = +1 (``code + 1``); ``11`` is never written.
* Block ``i`` of 128 elements -> bytes ``32*i .. 32*i+31``; element ``j`` of the block goes to
  byte ``32*i + j % 32`` at shift ``6 - 2*(j // 32)``, i.e. byte ``m`` =
  ``q[m] << 6 | q[32+m] << 4 | q[64+m] << 2 | q[96+m]`` (first element in the **high** bits).
* At byte offset ``n / 4``: the scale as a float32 (native = little-endian on x86/ARM); the tensor
  occupies ``n / 4 + 32`` bytes (``return nrow * row_size / 4 + 32``, "32B for alignment").  The
  other 28 bytes are never written by ``quantize_i2_s`` (their content is whatever the buffer held);
  :meth:`pack` writes zeros there and :meth:`unpack` ignores them.

Decisions where the source leaves room:

* ``pack(codes)`` is what ``quantize_i2_s`` writes for ternary input: scale 1.0, or 0.0 when every
  code is 0 (``max |w|`` = 0).  ``unpack`` returns the codes and does not check the scale; see
  :func:`i2_s_scale`.
* Supported shapes: at least 1-d, no zero dimension, and the **last dim a multiple of 128**.
  ``quantize_i2_s`` itself only needs ``n % 128 == 0`` (it silently drops a remainder), but the
  matmul kernel ``ggml_vec_dot_i2_i8_s`` reads each row from ``x + row * bx / 4`` as whole
  128-blocks, so a row that is not whole blocks cannot be used.
* Other layouts in the same file are **not** this one: later versions define ``QK_I2_S`` as 64 on
  ARM NEON (16-byte groups: ``j / 16``, ``i * 16``) and add an x86 path (without ``ACT_PARALLEL``)
  that interleaves 4 rows per byte (``quantize_i2_s_1x4``); microsoft/BitNet #585/#598 are the
  ARM 64/16 vs 128/32 mismatch.  This module is the x86 128/32 layout.

The code treats each block as 4 lanes of 32 codes (lane ``l`` in bits ``6 - 2l``):
:func:`~qcheck.packing.base.pack_lanes` / :func:`~qcheck.packing.base.unpack_lanes`.  A field ``11``
decodes to code +2 and is found by one ``max``; whether any code is nonzero (scale 1.0, else 0.0)
comes with the check that the codes are ternary.
"""

from __future__ import annotations

import dataclasses
import struct

import torch

from qcheck.packing.base import Lanes, Layout, any_above, new_empty, pack_lanes, unpack_lanes
from qcheck.packing.errors import PackingInputError

QK_I2 = 128
GROUP = 32  # bytes per block; also the stride between the 4 elements of a byte
TAIL_BYTES = 32
_SHIFTS = (6, 4, 2, 0)  # lane l (elements 32l .. 32l+31 of a block) in bits 6 - 2l


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def i2_s_scale(packed: torch.Tensor, shape: tuple[int, ...]) -> float:
    """The float32 tensor scale stored at byte ``n / 4`` of an I2_S tensor of ``shape``."""
    n = _numel(tuple(shape))
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.numel() != n // 4 + TAIL_BYTES:
        raise PackingInputError(f"i2_s: shape {tuple(shape)} needs {n // 4 + TAIL_BYTES} uint8 bytes")
    raw = bytes(packed.reshape(-1)[n // 4 : n // 4 + 4].tolist())
    return float(struct.unpack("<f", raw)[0])


@dataclasses.dataclass(frozen=True)
class I2SLayout(Layout):
    """bitnet.cpp ``quantize_i2_s`` on ternary input: 128-blocks, high bits first, fp32 scale after the codes."""

    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        if any(d == 0 for d in shape):
            return "I2_S does not store empty tensors"
        if shape[-1] % QK_I2 != 0:
            return f"I2_S needs the last dim to be a multiple of {QK_I2} (the kernel reads rows as whole 128-blocks)"
        return None

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (_numel(shape) // 4 + TAIL_BYTES,)

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        n = _numel(shape)
        out = new_empty((n // 4 + TAIL_BYTES,), torch.uint8, codes.device)
        body = out[: n // 4]
        x = codes.view(torch.uint8).reshape(-1)
        nonzero: list[bool] = []  # per piece of codes, found by its check

        def check(piece: torch.Tensor) -> None:
            nonzero.append(self._require_ternary(codes, piece))

        lanes = Lanes(body.view(-1, GROUP), offset=0, width=GROUP, n_lanes=4)
        pack_lanes(x, [lanes], period=QK_I2, base=4, first_high=True, check=check)
        scale = 1.0 if any(nonzero) else 0.0  # max |w|: 0.0 when every code is 0
        out[n // 4 :] = 0
        out[n // 4 : n // 4 + 4] = torch.tensor(list(struct.pack("<f", scale)), dtype=torch.uint8)
        return out

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        body = packed[: _numel(shape) // 4].view(-1, GROUP)
        out = new_empty(shape, torch.int8, packed.device)
        codes = unpack_lanes(body, out.view(-1, QK_I2), width=GROUP, shifts=_SHIFTS).view(-1, 4, GROUP)
        if any_above(codes, 1):
            self._reject(
                codes + 1 == 0b11, "2-bit fields hold 0b11, which quantize_i2_s never writes (block, sub, byte)"
            )
        return out


I2_S = I2SLayout(
    name="i2_s",
    summary="bitnet.cpp I2_S: 128-blocks, byte m = q[m]<<6|q[32+m]<<4|q[64+m]<<2|q[96+m], then fp32 scale + 28 pad",
    source="microsoft/BitNet src/ggml-bitnet-mad.cpp (quantize_i2_s, QK_I2 = 128)",
    bits_per_weight=2.0,
)
