"""Reference quantizers: torch first (the definitions), and an independent numpy twin used only
for differential checks (:mod:`qcheck.quantizers.numpy_twin`)."""

from qcheck.quantizers.activations import (
    act_fake_quantize,
    act_fake_quantize_zero_point,
    act_quantize,
    act_quantize_zero_point,
    code_range,
)
from qcheck.quantizers.bitlinear import bitlinear
from qcheck.quantizers.results import Quantized, ZeroPointQuantized
from qcheck.quantizers.weights import b1_fake_quantize, b1_quantize, b158_fake_quantize, b158_quantize

__all__ = [
    "Quantized",
    "ZeroPointQuantized",
    "act_fake_quantize",
    "act_fake_quantize_zero_point",
    "act_quantize",
    "act_quantize_zero_point",
    "b1_fake_quantize",
    "b1_quantize",
    "b158_fake_quantize",
    "b158_quantize",
    "bitlinear",
    "code_range",
]
