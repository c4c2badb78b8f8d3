"""A check at LLM layer scale: a backend's ``b158_quantize`` and ``pack_ternary`` on one whole layer
(by default 8192×28672 bfloat16, a 70B-class MLP projection) against the streaming reference.

Small Hypothesis inputs cannot show what only happens at scale: a float32 element counter that
stops at 2**24, a float16 or float32 running sum of hundreds of millions of |w|, an int32 offset
past 2**31 bytes, a tail block after millions of full ones.  This compares codes and packed bytes
bit-exactly and the scale bit-exactly, tile by tile, so that the comparison itself adds no
full-size temporary (issue 6, target 2: quantized, packed and checked within 8 GiB resident).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch

from qcheck.checks.runner import CheckResult
from qcheck.conventions import DEFAULT, Conventions
from qcheck.packing import layout
from qcheck.quantizers import streaming
from qcheck.quantizers.results import Quantized
from qcheck.quantizers.tiles import TILE_ELEMENTS

LAYER_SHAPE = (8192, 28672)
"""The thorough profile's layer: a 70B-class MLP projection (Llama-2-70B's up/gate are 8192×28672)."""
PROOF_SHAPE = (4096, 4097)
"""Just over 2**24 elements: the smallest layer on which a float32 element counter goes wrong."""
REQUIREMENT = "LAYER-1"
LAYER_NAMES = (f"b158_quantize:{REQUIREMENT}", REQUIREMENT, "layer-scale")
"""What ``--only`` matches the layer check by: its key, requirement and name."""


@dataclasses.dataclass(frozen=True)
class LayerVerdict:
    """What the layer check found: ``passed``, and for a failure where and how it differs;
    ``crashed`` when the backend raised (or timed out) instead of answering."""

    passed: bool
    message: str
    crashed: bool = False


def layer_weight(
    shape: tuple[int, int] = LAYER_SHAPE, dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> torch.Tensor:
    """A seeded Gaussian weight of ``shape`` in ``dtype``, made row block by row block (no float32
    copy of the whole layer)."""
    rows, cols = shape
    out = torch.empty(shape, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    step = max(1, TILE_ELEMENTS * 16 // cols)
    for r in range(0, rows, step):
        out[r : r + step] = torch.randn(min(step, rows - r), cols, generator=generator)
    return out


def _first_difference(got: torch.Tensor, want: torch.Tensor) -> int | None:
    """Flat index of the first element where two same-shaped tensors differ, or None."""
    got_flat, want_flat = got.reshape(-1), want.reshape(-1)
    step = TILE_ELEMENTS * 16
    for start in range(0, got_flat.numel(), step):
        differs = got_flat[start : start + step] != want_flat[start : start + step]
        if bool(differs.any()):
            return start + int(torch.nonzero(differs)[0])
    return None


def check_layer(
    quantize: Callable[[torch.Tensor], Any],
    pack: Callable[[torch.Tensor], torch.Tensor] | None,
    w: torch.Tensor,
    conventions: Conventions = DEFAULT,
) -> LayerVerdict:
    """``quantize(w)`` (a backend's ``b158_quantize``) and ``pack(codes)`` against the reference."""
    want = streaming.b158_quantize(w, conventions)
    try:
        codes, scale = quantize(w)
    except Exception as error:  # a broken backend gets a verdict, not a traceback
        return LayerVerdict(False, f"b158_quantize raised {type(error).__name__}: {error}", crashed=True)
    if not isinstance(codes, torch.Tensor) or codes.shape != want.codes.shape or codes.dtype != want.codes.dtype:
        return LayerVerdict(False, f"codes: expected int8 of shape {tuple(want.codes.shape)}, got {_describe(codes)}")
    where = _first_difference(codes, want.codes)
    if where is not None:
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(where), tuple(w.shape)))
        return LayerVerdict(
            False,
            f"codes differ first at {index}: w = {float(w[index])!r}, got {int(codes[index])}, "
            f"expected {int(want.codes[index])} (scale {_describe(scale)} vs {float(want.scale)!r})",
        )
    if not isinstance(scale, torch.Tensor) or not torch.equal(scale.reshape(want.scale.shape), want.scale):
        return LayerVerdict(False, f"scale: expected {want.scale.tolist()!r}, got {_describe(scale)}")
    if pack is not None:
        expected = layout(conventions.packing).pack(want.codes)
        try:
            packed = pack(codes)
        except Exception as error:
            return LayerVerdict(False, f"pack_ternary raised {type(error).__name__}: {error}", crashed=True)
        if not isinstance(packed, torch.Tensor) or packed.shape != expected.shape or packed.dtype != expected.dtype:
            return LayerVerdict(False, f"packed: expected uint8 {tuple(expected.shape)}, got {_describe(packed)}")
        byte = _first_difference(packed, expected)
        if byte is not None:
            return LayerVerdict(False, f"packed bytes differ first at flat byte {byte}")
    return LayerVerdict(True, f"{tuple(w.shape)} {w.dtype}: codes, scale and packed bytes identical to the reference")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}" if value.numel() > 1 else f"{value.dtype} {value.tolist()!r}"
    return type(value).__name__


def float32_counter_b158(w: torch.Tensor) -> Quantized:
    """A known-bad b1.58 quantizer that is exact below 2**24 elements: the element count is kept in a
    float32 counter, and ``count += 1`` stops growing at 2**24, so the mean of a larger tensor is too
    big (class of bug: a reduction that counts in the accumulator's float type, as a CUDA block
    reduction summing ``1.0f`` per element does).  It proves LAYER-1, which no small input can."""
    count = float(min(w.numel(), 2**24))
    gamma = (w.to(torch.float64).abs().sum() / count).to(torch.float32).clamp(min=1e-5)
    codes = (w.to(torch.float64) / gamma.to(torch.float64)).round().clamp(-1, 1).to(torch.int8)
    return Quantized(codes, gamma)


def layer_result(
    quantize: Callable[[torch.Tensor], Any],
    pack: Callable[[torch.Tensor], torch.Tensor] | None,
    conventions: Conventions = DEFAULT,
    *,
    shape: tuple[int, int] | None = None,
    seed: int = 0,
) -> CheckResult:
    """LAYER-1 as a check result for the grader (``qcheck grade --profile thorough``), on a layer
    of ``shape`` (default :data:`LAYER_SHAPE`)."""
    started = time.perf_counter()
    shape = LAYER_SHAPE if shape is None else shape
    w = layer_weight(shape, torch.bfloat16, seed)
    verdict = check_layer(quantize, pack, w, conventions)
    recipe = f"qcheck.layer_check.layer_weight({shape}, torch.bfloat16, seed={seed})"
    return CheckResult(
        key=f"b158_quantize:{REQUIREMENT}",
        requirement=REQUIREMENT,
        name="layer-scale",
        op="b158_quantize",
        verdict="PASS" if verdict.passed else "ERROR" if verdict.crashed else "FAIL",
        message=verdict.message,
        counterexample=None if verdict.passed else recipe,
        near_boundary=0,
        examples=1,
        seconds=time.perf_counter() - started,
    )
