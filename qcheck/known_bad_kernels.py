"""Known-bad variants of the ops that consume codes: packers, unpackers and the BitLinear product.

Each is the reference with the one bug it is named for, and says where the bug was seen; the
layout-specific ones declare the layout they imitate (a tq2_0 writer is graded as a tq2_0
backend).  :mod:`qcheck.known_bad` registers them beside the quantizer variants.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from qcheck.arguments import Args
from qcheck.conventions import DEFAULT, Conventions
from qcheck.packing import layout
from qcheck.quantizers.activations import act_fake_quantize, act_quantize
from qcheck.quantizers.bitlinear import bitlinear, group_sums


@dataclasses.dataclass(frozen=True)
class KernelVariant:
    name: str
    op: str
    description: str
    origin: str
    fn: Callable[..., Any]
    symptom: str | None = None
    packing: str = "qcheck"


# ---------------------------------------------------------------- packers


def _qs_consecutive(fields: torch.Tensor) -> torch.Tensor:
    """2-bit fields ``(blocks, 256)`` -> 64 bytes per block, element ``4j + l`` in byte ``j`` bits 2l."""
    grouped = fields.reshape(-1, 64, 4).to(torch.uint8)
    return grouped[..., 0] | grouped[..., 1] << 2 | grouped[..., 2] << 4 | grouped[..., 3] << 6


def pack_tq2_0_consecutive(codes: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    reference = layout("tq2_0").pack(codes)
    blocks = reference.reshape(-1, 66).clone()
    blocks[:, :64] = _qs_consecutive(codes.contiguous().reshape(-1, 256) + 1)
    return blocks.reshape(reference.shape)


def pack_i2_s_64_16(codes: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    reference = layout("i2_s").pack(codes)
    fields = (codes.contiguous().reshape(-1, 4, 16) + 1).to(torch.uint8)  # 64-element blocks, 16-byte groups
    body = (fields[:, 0] << 6 | fields[:, 1] << 4 | fields[:, 2] << 2 | fields[:, 3]).reshape(-1)
    out = reference.clone()
    out[: body.numel()] = body
    return out


def _qcheck_fields(codes: torch.Tensor, pad_field: int, n_bytes: int) -> torch.Tensor:
    *lead, n = codes.shape
    fields = torch.full((*lead, n_bytes * 4), pad_field, dtype=torch.uint8)
    kept = min(n, n_bytes * 4)
    fields[..., :kept] = (codes[..., :kept] + 1).to(torch.uint8)
    grouped = fields.reshape(*lead, n_bytes, 4)
    return grouped[..., 0] | grouped[..., 1] << 2 | grouped[..., 2] << 4 | grouped[..., 3] << 6


def pack_pads_minus_one(codes: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    layout("qcheck").packed_shape(codes.shape)  # the reference's shape rule
    return _qcheck_fields(codes.contiguous(), 0b00, -(-codes.shape[-1] // 4))


def pack_tail_dropped(codes: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    layout("qcheck").packed_shape(codes.shape)
    return _qcheck_fields(codes.contiguous(), 0b01, codes.shape[-1] // 4)


def pack_accepts_partial_block(codes: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    if codes.dim() == 0:
        codes = codes.reshape(1)
    tail = -codes.shape[-1] % 256
    padded = torch.nn.functional.pad(codes.contiguous(), (0, tail)) if tail else codes
    return layout("tq2_0").pack(padded)


def pack_writes_back(codes: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    codes += 1  # transformers pack_weights: `quantized_weights += 1`
    out = _qcheck_fields(codes - 1, 0b01, -(-codes.shape[-1] // 4))
    return out


# ---------------------------------------------------------------- unpackers


def unpack_tq2_0_consecutive(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    packed, shape = args
    layout("tq2_0").unpack(packed, shape)  # the reference's size and field checks
    qs = packed.contiguous().reshape(-1, 66)[:, :64]
    fields = torch.stack([(qs >> (2 * i)) & 0b11 for i in range(4)], dim=-1).reshape(-1, 256)
    return (fields.to(torch.int8) - 1).reshape(tuple(shape))


def unpack_row_padding_ignored(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    packed, shape = args
    layout("qcheck").unpack(packed, shape)
    flat = packed.contiguous().reshape(-1)
    fields = torch.stack([(flat >> (2 * i)) & 0b11 for i in range(4)], dim=-1).reshape(-1)
    n = int(torch.Size(tuple(shape)).numel())
    return (fields[:n].to(torch.int8) - 1).reshape(tuple(shape))


def unpack_tail_block_skipped(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    packed, shape = args
    codes = layout("tq2_0").unpack(packed, shape)
    out = codes.clone()
    out[..., -256:] = 0  # `for (int i = 0; i < nb - 1; ++i)`: the row's last block is never decoded
    return out


def unpack_no_size_check(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    packed, shape = args
    reference = layout("qcheck")
    want = int(torch.Size(reference.packed_shape(shape)).numel())
    flat = packed.contiguous().reshape(-1)[:want]
    if flat.numel() < want:  # reads on past the end: here, zero bytes
        flat = torch.cat([flat, torch.full((want - flat.numel(),), 0x55, dtype=torch.uint8)])
    return reference.unpack(flat, shape)


def unpack_writes_back(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    packed, shape = args
    codes = layout("qcheck").unpack(packed, shape)
    packed.zero_()  # decodes "in place", consuming the caller's buffer
    return codes


# ---------------------------------------------------------------- BitLinear


def _epilogue(
    sums: torch.Tensor, x: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor, bias: Any
) -> torch.Tensor:
    """``sums * x_scale * w_scale (+ bias)`` in float32 (float64 for float64 x), to x's dtype:
    the float part of a kernel, written the way kernels write it."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    y = sums.to(compute) * x_scale.to(compute) * w_scale.to(compute).reshape(-1)
    if bias is not None:
        y = y + bias.to(compute)
    return y.to(x.dtype)


def _per_tensor_scale(w_scale: torch.Tensor) -> torch.Tensor:
    return w_scale.reshape(-1)[:1] if w_scale.numel() == 1 else w_scale.reshape(-1)


def bitlinear_int16_accumulator(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x, w_codes, w_scale, bias = args
    codes, x_scale = act_quantize(x, conventions)
    exact = group_sums(codes, w_codes).squeeze(-1)
    wrapped = (exact + 2**15) % 2**16 - 2**15  # int16 lanes wrap on overflow
    return _epilogue(wrapped, x, x_scale, _per_tensor_scale(w_scale), bias)


def bitlinear_float16_accumulator(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x, w_codes, w_scale, bias = args
    codes, x_scale = act_quantize(x, conventions)
    products = codes.to(torch.float32).unsqueeze(-2) * w_codes.to(torch.float32)  # (..., N, K)
    total = torch.zeros(products.shape[:-1], dtype=torch.float16)
    for k in range(products.shape[-1]):  # an fp16 accumulator: rounds after every add
        total = (total.to(torch.float32) + products[..., k]).to(torch.float16)
    return _epilogue(total.to(torch.float64), x, x_scale, _per_tensor_scale(w_scale), bias)


def bitlinear_dropped_bias(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x, w_codes, w_scale, _ = args
    return bitlinear(x, w_codes, w_scale, None, conventions)


def bitlinear_inverted_weight_scale(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x, w_codes, w_scale, bias = args
    return bitlinear(x, w_codes, 1.0 / w_scale, bias, conventions)


def bitlinear_per_tensor_activation_scale(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x, w_codes, w_scale, bias = args
    whole = x.reshape(1, -1)  # one absmax over every token
    codes, x_scale = act_quantize(whole, conventions)
    sums = group_sums(codes.reshape(x.shape), w_codes).squeeze(-1)
    return _epilogue(sums, x, x_scale.reshape(()), _per_tensor_scale(w_scale), bias)


def bitlinear_sequence_first(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x, w_codes, w_scale, bias = args
    if x.dim() != 3:
        return bitlinear(x, w_codes, w_scale, bias, conventions)
    b, s, k = x.shape
    y = bitlinear(x.transpose(0, 1).reshape(-1, k), w_codes, w_scale, bias, conventions)  # rows in (s, b) order
    return y.reshape(b, s, -1)  # read back as (b, s)


def bitlinear_writes_back(args: Args, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x, w_codes, w_scale, bias = args
    y = bitlinear(x, w_codes, w_scale, bias, conventions)
    x.data.copy_(act_fake_quantize(x.detach(), conventions))  # "quantize the activations in place"
    return y


# ---------------------------------------------------------------- behavioural classes, per op


def _reference(op: str, packing: str) -> Callable[[Any, Conventions], Any]:
    from qcheck.ops import OPS

    conventions = DEFAULT.replace(packing=packing)
    return lambda value, _: OPS[op].reference(value, conventions)


def _first_tensor_in_memory_order(value: Any) -> Any:
    def memory_order(t: torch.Tensor) -> torch.Tensor:
        return torch.as_strided(t.detach(), (t.numel(),), (1,)).reshape(t.shape) if t.dim() else t

    if isinstance(value, Args):
        return Args((memory_order(value[0]), *value[1:]))
    return memory_order(value)


def _memory_order(op: str) -> Callable[..., Any]:
    reference = _reference(op, "qcheck")
    return lambda value, conventions=DEFAULT: reference(_first_tensor_in_memory_order(value), conventions)


def _stale_cache(op: str) -> Callable[..., Any]:
    reference = _reference(op, "qcheck")
    cache: dict[Any, Any] = {}

    def shapes(value: Any) -> Any:
        items = value if isinstance(value, Args) else (value,)
        return tuple((tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else repr(a) for a in items)

    def variant(value: Any, conventions: Conventions = DEFAULT) -> Any:
        key = shapes(value)
        if key not in cache:
            cache[key] = reference(value, conventions)
        return cache[key]

    return variant


_MEMORY = "reads numel() elements from data_ptr() in memory order: transposed or strided inputs are scrambled"
_MEMORY_ORIGIN = "class of bug: a kernel that assumes contiguous input (llama.cpp test-backend-ops tests views)"
_CACHE = "caches its result by the arguments' shapes: other inputs of the same shapes get the first result"
_CACHE_ORIGIN = "class of bug: a kernel that caches packed or quantized weights keyed on the shape"

VARIANTS: tuple[KernelVariant, ...] = (
    KernelVariant(
        "tq2_0-consecutive-writer",
        "pack_ternary",
        "writes TQ2_0 with 4 consecutive elements per byte instead of ggml's 32-apart interleave",
        "llama.cpp PR #28769 (CUDA TQ2_0 assumed consecutive packing; plausible-looking but wrong text)",
        pack_tq2_0_consecutive,
        packing="tq2_0",
    ),
    KernelVariant(
        "i2_s-64-16-writer",
        "pack_ternary",
        "writes I2_S in 64-element blocks of 16-byte groups (the ARM layout) where 128/32 is declared",
        "microsoft/BitNet #585, #598 (ARM 64/16 vs x86 128/32 I2_S layouts mixed up)",
        pack_i2_s_64_16,
        packing="i2_s",
    ),
    KernelVariant(
        "pads-minus-one",
        "pack_ternary",
        "pads a row's tail with field 00, which decodes to -1, where the layout pads with code 0",
        "transformers integrations/bitnet.py pack_weights leaves padding at 00: padded rows unpack to -1",
        pack_pads_minus_one,
    ),
    KernelVariant(
        "tail-dropped",
        "pack_ternary",
        "packs n // 4 bytes per row: the codes of a row's last partial byte are lost",
        "class of bug: a vectorised main loop without its remainder loop",
        pack_tail_dropped,
    ),
    KernelVariant(
        "accepts-partial-block",
        "pack_ternary",
        "zero-pads a row that is not whole 256-blocks instead of refusing it: the reader cannot know the length",
        "class of bug: padding a tensor the format cannot describe (ggml requires rows of whole blocks)",
        pack_accepts_partial_block,
        symptom="PACK-2",
        packing="tq2_0",
    ),
    KernelVariant(
        "pack-writes-back",
        "pack_ternary",
        "right bytes, but the caller's codes are incremented in place (`quantized_weights += 1`)",
        "transformers integrations/bitnet.py pack_weights mutates its input",
        pack_writes_back,
        symptom="GEN-1",
    ),
    KernelVariant(
        "tq2_0-consecutive-reader",
        "unpack_ternary",
        "reads TQ2_0 as 4 consecutive elements per byte instead of ggml's 32-apart interleave",
        "llama.cpp PR #28769 (CUDA TQ2_0 dequantize assumed consecutive packing)",
        unpack_tq2_0_consecutive,
        packing="tq2_0",
    ),
    KernelVariant(
        "row-padding-ignored",
        "unpack_ternary",
        "reads the bytes as one stream of codes: each row's padding shifts into the next row",
        "class of bug: padded rows read as data (HF unpack_weights returns the padded rows as -1)",
        unpack_row_padding_ignored,
    ),
    KernelVariant(
        "tail-block-skipped",
        "unpack_ternary",
        "decodes nb - 1 blocks per row (off by one): the last 256 codes of every row read 0",
        "class of bug: an off-by-one block loop bound over the block tail",
        unpack_tail_block_skipped,
        packing="tq2_0",
    ),
    KernelVariant(
        "no-size-check",
        "unpack_ternary",
        "reads the bytes a shape needs without checking the buffer holds them: reads past the end",
        "class of bug: an unchecked buffer size (out-of-bounds read of a truncated tensor)",
        unpack_no_size_check,
        symptom="PACK-6",
    ),
    KernelVariant(
        "unpack-writes-back",
        "unpack_ternary",
        "right codes, but the caller's packed buffer is zeroed (decoded in place)",
        "class of bug: an in-place decode that consumes its input buffer",
        unpack_writes_back,
        symptom="GEN-1",
    ),
    KernelVariant(
        "int16-accumulator",
        "bitlinear",
        "accumulates the int8 x ternary dot product in int16 lanes: wraps once a sum passes 32767",
        "microsoft/BitNet #600, #411 (NEON int16 accumulation overflow: 32 x 4 x 127 x 2 > 32767)",
        bitlinear_int16_accumulator,
    ),
    KernelVariant(
        "float16-accumulator",
        "bitlinear",
        "accumulates the dot product in float16: integers past 2048 lose their low bits",
        "class of bug: a half-precision accumulator (fp16 MMA accumulate) for an integer dot product",
        bitlinear_float16_accumulator,
    ),
    KernelVariant(
        "dropped-bias",
        "bitlinear",
        "ignores the layer's bias",
        "kyegomez/BitNet bitnet/bitlinear.py (drops the layer bias)",
        bitlinear_dropped_bias,
    ),
    KernelVariant(
        "inverted-weight-scale",
        "bitlinear",
        "divides by w_scale: the stored mean|W| is applied as if it were 1/mean",
        "microsoft/BitNet PR #616; mlx-lm ('old BitNet versions use inverted scales')",
        bitlinear_inverted_weight_scale,
    ),
    KernelVariant(
        "per-tensor-activation-scale",
        "bitlinear",
        "quantizes the activations with one absmax over every token instead of one per token",
        "joey00072/ohara #11 (absmax over the wrong dimension)",
        bitlinear_per_tensor_activation_scale,
    ),
    KernelVariant(
        "sequence-first",
        "bitlinear",
        "flattens a (batch, seq, hidden) x as if it were (seq, batch, hidden): the tokens come back shuffled",
        "class of bug: Megatron-style [s, b, h] layout assumed for [b, s, h] activations",
        bitlinear_sequence_first,
    ),
    KernelVariant(
        "bitlinear-writes-back",
        "bitlinear",
        "right output, but the caller's activations are replaced by their fake-quantized values",
        "class of bug: in-place activation quantization inside a fused kernel",
        bitlinear_writes_back,
        symptom="GEN-1",
    ),
    *(
        KernelVariant(f"memory-order-{short}", op, _MEMORY, _MEMORY_ORIGIN, _memory_order(op), symptom="GEN-3")
        for op, short in (("pack_ternary", "pack"), ("unpack_ternary", "unpack"), ("bitlinear", "bitlinear"))
    ),
    *(
        KernelVariant(f"stale-cache-{short}", op, _CACHE, _CACHE_ORIGIN, _stale_cache(op), symptom="GEN-2")
        for op, short in (("pack_ternary", "pack"), ("unpack_ternary", "unpack"), ("bitlinear", "bitlinear"))
    ),
)
