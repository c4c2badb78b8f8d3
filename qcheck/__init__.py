"""qcheck: a correctness harness for 1-bit and 1.58-bit (BitNet) quantization kernels."""

__version__ = "0.1.0"
