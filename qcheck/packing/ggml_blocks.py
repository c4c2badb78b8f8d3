"""Pieces shared by the ggml ternary block formats TQ2_0 and TQ1_0 (256-element super-blocks).

Sources: ggml-org/llama.cpp ``ggml/src/ggml-quants.c`` (``quantize_row_tq1_0_ref``,
``quantize_row_tq2_0_ref``, ``dequantize_row_tq1_0``, ``dequantize_row_tq2_0``) and its Python
twin ``gguf-py/gguf/quants.py`` (``TQ1_0``, ``TQ2_0``, ``np_roundf``, ``__Quant.quantize``), which
gguf-py's ``tests/test_quants.py`` checks bit-exactly against the C library.  Not a layout itself.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from qcheck.packing.errors import PackingInputError

QK_K = 256  # ggml-common.h: elements per super-block

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT_OF_BYTES = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}


def block_shape_rule(shape: tuple[int, ...], block: int, fmt: str) -> str | None:
    """The shapes a ggml row-blocked format stores: rows (last dim) made of whole blocks.

    gguf-py ``__Quant.can_quantize``: ``tensor.shape[-1] % block_size == 0`` (``QuantError``
    otherwise); ggml asserts ``k % QK_K == 0`` per row.  Empty tensors are refused here.
    """
    if shape[-1] % block != 0 or shape[-1] == 0:
        return f"{fmt} needs the last dim to be a positive multiple of {block} (ggml packs rows in {block}-blocks)"
    if any(d == 0 for d in shape):
        return f"{fmt} does not store empty tensors"
    return None


def float_blocks(op: str, x: torch.Tensor, block: int) -> torch.Tensor:
    """``x`` as float32 blocks ``(n_blocks, block)``, after gguf-py's ``rows.astype(np.float32)``.

    Non-finite input is refused: ggml's ``lroundf`` of a NaN/inf product is undefined.
    """
    if not isinstance(x, torch.Tensor):
        raise PackingInputError(f"{op}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise PackingInputError(f"{op}: x must be a floating tensor, got {x.dtype}")
    reason = block_shape_rule(tuple(x.shape), block, op) if x.dim() >= 1 else "x must have at least 1 dimension"
    if reason is not None:
        raise PackingInputError(f"{op}: cannot quantize shape {tuple(x.shape)}: {reason}")
    blocks = x.to(torch.float32).reshape(-1, block)
    if not bool(torch.isfinite(blocks).all()):
        raise PackingInputError(f"{op}: x has non-finite values; ggml's rounding of them is undefined")
    return blocks


def absmax_scale(op: str, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per block ``d = amax |x|`` and ``id = d ? 1.0f/d : 0.0f``, both float32, shape ``(n_blocks, 1)``.

    ggml-quants.c ``quantize_row_tq{1,2}_0_ref``; gguf-py ``np.where(d == 0, 0, 1 / d)``.  A block
    whose ``1/d`` overflows (``d`` below about 2.9e-39) would make ``x * id`` inf/NaN, which ggml
    rounds to an undefined value: such blocks are refused.
    """
    d = blocks.abs().amax(dim=-1, keepdim=True)
    inv = torch.where(d == 0, torch.zeros_like(d), 1.0 / d)
    if bool(torch.isinf(inv).any()):
        raise PackingInputError(f"{op}: a block's absmax is so small that 1/d overflows float32 (ggml: undefined)")
    return d, inv


def round_half_away(p: torch.Tensor) -> torch.Tensor:
    """Round half away from zero exactly, as C ``lroundf`` and gguf-py ``np_roundf`` do.

    gguf-py ``np_roundf``: ``a = |n|; f = floor(a); sign(n) * (f + floor(2 * (a - f)))``; ``a - f``
    is exact, so unlike ``floor(a + 0.5)`` it does not round 0.49999997 up.
    """
    a = p.abs()
    f = torch.floor(a)
    return torch.sign(p) * (f + torch.floor(2 * (a - f)))


def ternary_block_scale(parts: Sequence[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """The ``d`` ggml computes for blocks that are already ternary codes, found from their packed bytes.

    ``d = amax |code|`` is 1.0 for a block with a nonzero code and 0.0 for an all-zero block, which
    packs to one fixed byte value in each part.  ``parts`` is ``(bytes, zero_byte)`` pairs, ``bytes``
    contiguous uint8 ``(n_blocks, k)``; returns float32 ``(n_blocks, 1)``.  Bytes are compared as 8-,
    4- or 2-byte words, and the per-word flags (bools are bytes) are folded the same way, instead of
    reducing each short row.
    """
    nonzero = torch.zeros((parts[0][0].shape[0], 1), dtype=torch.bool, device=parts[0][0].device)
    for rows, zero_byte in parts:
        width = _word_bytes(rows.shape[1])
        flags = rows.view(_INT_OF_BYTES[width]) != int.from_bytes(bytes([zero_byte]) * width, "little", signed=True)
        while flags.shape[1] > 1:  # a word of 8 (4, 2) flags is nonzero if one of them is
            width = _word_bytes(flags.shape[1])
            flags = flags.view(_INT_OF_BYTES[width]) != 0 if width > 1 else flags.any(dim=1, keepdim=True)
        nonzero |= flags
    return nonzero.to(torch.float32)


def _word_bytes(n: int) -> int:
    """The widest word (8, 4, 2 or 1 bytes) that rows of ``n`` bytes are made of."""
    return next(w for w in (8, 4, 2, 1) if n % w == 0)


def fp16_bytes(d: torch.Tensor) -> torch.Tensor:
    """``(n_blocks, 1)`` float32 ``d`` as little-endian fp16 bytes ``(n_blocks, 2)``.

    ``GGML_FP32_TO_FP16`` / numpy ``astype(np.float16)``: round to nearest even, overflow to inf.
    """
    raw = d.to(torch.float16).contiguous().view(torch.uint8).reshape(-1, 2)
    return raw.flip(-1) if sys.byteorder == "big" else raw


def fp16_from_bytes(raw: torch.Tensor) -> torch.Tensor:
    """Little-endian fp16 bytes ``(n_blocks, 2)`` as float32 ``(n_blocks, 1)`` (``GGML_FP16_TO_FP32``)."""
    raw = raw.flip(-1) if sys.byteorder == "big" else raw
    return raw.contiguous().view(torch.float16).to(torch.float32).reshape(-1, 1)


def byte_shape(shape: Sequence[int], block_bytes: int) -> tuple[int, ...]:
    """The packed shape of a block format as gguf returns it: ``(*lead, n // 256 * block_bytes)``."""
    return (*shape[:-1], shape[-1] // QK_K * block_bytes)


def blocks_of(op: str, packed: torch.Tensor, shape: Sequence[int], block_bytes: int, fmt: str) -> torch.Tensor:
    """``packed`` as ``(n_blocks, block_bytes)`` after checking it holds codes of ``shape``."""
    dims = tuple(int(d) for d in shape)
    reason = block_shape_rule(dims, QK_K, fmt) if dims else "a 0-d tensor has no rows"
    if reason is not None:
        raise PackingInputError(f"{op}: cannot dequantize to shape {dims}: {reason}")
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise PackingInputError(f"{op}: packed must be a uint8 torch.Tensor")
    want = byte_shape(dims, block_bytes)
    if packed.numel() != torch.Size(want).numel():
        raise PackingInputError(f"{op}: shape {dims} takes {torch.Size(want).numel()} bytes, got {packed.numel()}")
    return packed.contiguous().reshape(-1, block_bytes)
