"""Reference packers and unpackers for ternary storage layouts, each bit-exact with its source.

``LAYOUTS`` maps a name ("qcheck", "hf-bitnet", "tq2_0", "tq1_0", "i2_s") to a :class:`Layout`
with ``supports`` / ``packed_shape`` / ``pack`` / ``unpack``; the ggml block formats also have
float quantizers.  Not kernels: these are the definitions that kernels are checked against.
"""

from qcheck.packing.base import Layout
from qcheck.packing.errors import PackingInputError, UnknownLayout, UnsupportedShape
from qcheck.packing.hf_bitnet import HF_BITNET
from qcheck.packing.i2_s import I2_S, i2_s_scale
from qcheck.packing.qcheck_layout import QCHECK
from qcheck.packing.registry import LAYOUTS, layout
from qcheck.packing.tq1_0 import TQ1_0, dequantize_tq1_0, quantize_tq1_0
from qcheck.packing.tq2_0 import TQ2_0, dequantize_tq2_0, quantize_tq2_0

__all__ = [
    "HF_BITNET",
    "I2_S",
    "LAYOUTS",
    "QCHECK",
    "TQ1_0",
    "TQ2_0",
    "Layout",
    "PackingInputError",
    "UnknownLayout",
    "UnsupportedShape",
    "dequantize_tq1_0",
    "dequantize_tq2_0",
    "i2_s_scale",
    "layout",
    "quantize_tq1_0",
    "quantize_tq2_0",
]
