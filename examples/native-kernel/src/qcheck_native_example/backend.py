"""The qcheck backend of the C kernels in ``bitnet_kernels.c``: a ctypes adapter, one class per build.

``Backend`` (entry point ``native-c``) is the correct kernel; ``Int16Backend`` (``native-c-int16``)
is the same source built with an int16 accumulator, which qcheck must fail at BL-2. The adapter
only moves memory: dtype conversion, contiguous copies, output allocation. Every number is the C's.
"""

from __future__ import annotations

import ctypes
from typing import ClassVar

import torch

from qcheck_native_example.build import build

_P = ctypes.c_void_p  # every array argument: a pointer to a dense, row-major buffer
_N = ctypes.c_size_t
_SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
    "b158_quantize_f32": (ctypes.c_int, [_P, _N, _P, _P]),
    "b158_quantize_f64": (ctypes.c_int, [_P, _N, _P, _P]),
    "act_quantize_f32": (None, [_P, _N, _N, _P, _P]),
    "act_quantize_f64": (None, [_P, _N, _N, _P, _P]),
    "bitlinear_f32": (ctypes.c_int, [_P, _N, _N, _P, _N, ctypes.c_float, _P, _P]),
    "bitlinear_f64": (ctypes.c_int, [_P, _N, _N, _P, _N, ctypes.c_double, _P, _P]),
    "bitnet_accumulator_bits": (ctypes.c_int, []),
}
_STATUS = {1: "more than 2**32 - 1 elements", 2: "out of memory"}
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_LIBRARIES: dict[str, ctypes.CDLL] = {}


def load(variant: str) -> ctypes.CDLL:
    """The kernel library of ``variant`` ("int32" or "int16"), built on first use, with signatures."""
    if variant not in _LIBRARIES:
        library = ctypes.CDLL(str(build(variant)))
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(library, name)
            function.restype = restype
            function.argtypes = argtypes
        _LIBRARIES[variant] = library
    return _LIBRARIES[variant]


def _pointer(t: torch.Tensor) -> ctypes.c_void_p:
    assert t.is_contiguous() and t.device.type == "cpu"
    return ctypes.c_void_p(t.data_ptr())


def _check(status: int, op: str) -> None:
    if status != 0:
        raise RuntimeError(f"{op}: the C kernel failed: {_STATUS.get(status, status)}")


def _float_input(op: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dtype not in _FLOATS:
        kind = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{op}: expected a float16, bfloat16, float32 or float64 tensor, got {kind}")
    return t


def _kernel_input(t: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    """A dense row-major copy the C can read, in the kernel's dtype (float64 stays float64;
    float16/bfloat16 widen to float32 exactly, the kernel is written for float32 and float64)."""
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.detach().to(dtype).contiguous(), dtype  # a view of `t` only when already dense: read only


class Backend:
    """Ternary weights, int8 activations and BitLinear in C, under qcheck's default conventions."""

    name = "native-c"
    # The conventions this kernel follows. These are the defaults (absmean per tensor, clamp at 1e-5,
    # ties to even, int8 per token); a kernel that differs declares it here, e.g.
    # {"rounding": "half-away"} for roundf, or {"weight_statistic": "absmax",
    # "weight_granularity": "per-group(256)", "eps_mode": "none"} for ggml-style blocks.
    conventions: ClassVar[str | dict[str, object]] = "default"
    differentiable = False  # an inference kernel: no fake-quant ops, no gradients (STE-1 not applicable)
    variant: ClassVar[str] = "int32"

    def __init__(self) -> None:
        self._lib = load(self.variant)  # build errors surface when qcheck loads the backend
        bits = self._lib.bitnet_accumulator_bits()
        if bits != int(self.variant.removeprefix("int")):
            raise RuntimeError(f"loaded a library with a {bits}-bit accumulator for variant {self.variant}")

    def b158_quantize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(codes int8 like w, gamma ())``: gamma = max(fl(mean|W|), 1e-5), codes = RoundClip(W/gamma)."""
        src, dtype = _kernel_input(_float_input("b158_quantize", w))
        if src.numel() == 0:
            raise ValueError("b158_quantize: an empty weight has no mean")
        codes = torch.empty(w.shape, dtype=torch.int8)
        gamma = torch.empty((), dtype=dtype)  # the scale dtype: float64 for float64 weights, else float32
        kernel = self._lib.b158_quantize_f64 if dtype == torch.float64 else self._lib.b158_quantize_f32
        _check(kernel(_pointer(src), src.numel(), _pointer(codes), _pointer(gamma)), "b158_quantize")
        return codes, gamma

    def act_quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(codes int8 like x, scale (..., 1))`` per token (row along the last dimension)."""
        if _float_input("act_quantize", x).dim() == 0 or x.shape[-1] == 0:
            raise ValueError(f"act_quantize: needs rows of at least one element, got shape {tuple(x.shape)}")
        src, dtype = _kernel_input(x)
        k = x.shape[-1]
        codes = torch.empty(x.shape, dtype=torch.int8)
        scale = torch.empty((*x.shape[:-1], 1), dtype=dtype)
        if src.numel():
            kernel = self._lib.act_quantize_f64 if dtype == torch.float64 else self._lib.act_quantize_f32
            kernel(_pointer(src), src.numel() // k, k, _pointer(codes), _pointer(scale))
        return codes, scale

    def bitlinear(
        self, x: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(act_codes(x) . w_codes^T) * x_scale * w_scale (+ bias)`` in x's dtype, shaped (..., N)."""
        op = "bitlinear"
        _float_input(op, x)
        k = x.shape[-1] if x.dim() else 0
        if k == 0 or w_codes.dtype != torch.int8 or w_codes.dim() != 2 or w_codes.shape[1] != k:
            shapes = f"{tuple(x.shape)}, {w_codes.dtype} {tuple(w_codes.shape)}"
            raise ValueError(f"{op}: needs x (..., K) with K > 0 and int8 w_codes (N, K); got {shapes}")
        n = w_codes.shape[0]
        if w_scale.numel() != 1:
            raise ValueError(f"{op}: this kernel takes a per-tensor w_scale (one element), got {tuple(w_scale.shape)}")
        if bias is not None and tuple(bias.shape) != (n,):
            raise ValueError(f"{op}: bias must be shaped ({n},), got {tuple(bias.shape)}")
        src, dtype = _kernel_input(x)
        weights = w_codes.detach().contiguous()
        scale = float(w_scale.detach().reshape(-1)[0])  # exact; ctypes rounds it to float for the f32 kernel
        bias_buffer = None if bias is None else bias.detach().to(dtype).contiguous()
        y = torch.empty((*x.shape[:-1], n), dtype=dtype)
        kernel = self._lib.bitlinear_f64 if dtype == torch.float64 else self._lib.bitlinear_f32
        rows = src.numel() // k
        bias_pointer = None if bias_buffer is None else _pointer(bias_buffer)
        _check(kernel(_pointer(src), rows, k, _pointer(weights), n, scale, bias_pointer, _pointer(y)), op)
        return y if y.dtype == x.dtype else y.to(x.dtype)  # float16/bfloat16: the float32 result, rounded


class Int16Backend(Backend):
    """Deliberately broken: the same kernels built with ``-DQCHECK_EXAMPLE_INT16_ACCUMULATOR``, whose
    BitLinear dot product wraps past 32767. qcheck fails it at ``bitlinear:BL-2`` and fingerprints it
    as known-bad ``int16-accumulator``; the quantizers are unchanged and pass."""

    name = "native-c-int16"
    variant: ClassVar[str] = "int16"
