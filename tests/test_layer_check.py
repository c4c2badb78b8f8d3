"""The layer-scale check (qcheck.layer_check) passes the reference and catches a bug that only
shows beyond 2**24 elements, which no Hypothesis-sized input can show."""

from __future__ import annotations

import torch

from qcheck.conventions import DEFAULT
from qcheck.layer_check import check_layer, layer_weight
from qcheck.packing import layout
from qcheck.quantizers import streaming
from qcheck.quantizers.results import Quantized

# just over 2**24 = 16,777,216 elements, in bfloat16 (34 MB)
SHAPE = (4096, 4097)


def float32_counter_b158(w: torch.Tensor) -> Quantized:
    """b158 with the element count kept in a float32 counter: ``count += 1`` stops growing at 2**24
    (class of bug: a reduction that counts in the accumulator's float type), so the mean of a
    larger tensor is too big; exact below 2**24 elements."""
    count = float(min(w.numel(), 2**24))
    gamma = (w.to(torch.float64).abs().sum() / count).to(torch.float32).clamp(min=1e-5)
    codes = (w.to(torch.float64) / gamma.to(torch.float64)).round().clamp(-1, 1).to(torch.int8)
    return Quantized(codes, gamma)


def test_the_reference_passes_the_layer_check() -> None:
    w = layer_weight(SHAPE, seed=1)
    verdict = check_layer(lambda t: streaming.b158_quantize(t), layout(DEFAULT.packing).pack, w)
    assert verdict.passed, verdict.message


def test_a_float32_element_counter_fails_at_layer_scale_only() -> None:
    small = layer_weight((64, 256), seed=2)
    assert check_layer(float32_counter_b158, None, small).passed  # right below 2**24 elements
    verdict = check_layer(float32_counter_b158, None, layer_weight(SHAPE, seed=1))
    assert not verdict.passed
    assert verdict.message.startswith("scale: expected"), verdict.message


def test_a_raising_or_misshaped_backend_gets_a_verdict() -> None:
    w = layer_weight((8, 300), seed=3)

    def raises(_: torch.Tensor) -> Quantized:
        raise RuntimeError("kernel launch failed")

    verdict = check_layer(raises, None, w)
    assert not verdict.passed and "RuntimeError: kernel launch failed" in verdict.message
    flat = check_layer(lambda t: Quantized(streaming.b158_quantize(t).codes.reshape(-1), torch.tensor(1.0)), None, w)
    assert not flat.passed and "codes: expected int8 of shape (8, 300)" in flat.message
    bad_pack = check_layer(lambda t: streaming.b158_quantize(t), lambda c: torch.zeros(1, dtype=torch.uint8), w)
    assert not bad_pack.passed and "packed:" in bad_pack.message
