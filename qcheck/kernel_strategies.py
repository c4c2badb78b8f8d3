"""Hypothesis strategies for the ops that consume codes: ternary packing and the BitLinear product.

Shapes come from one list of boundary sizes (1, 3, 4, 5, 31-33, 127-129, 255-257, ...) filtered by
what the declared layout can store, so every layout meets its own tails and block edges; code
patterns target classes of bug (a one-hot code finds a misplaced field, constant codes find a
wrong field encoding, random codes everything else).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from qcheck import strategies
from qcheck.arguments import Args
from qcheck.conventions import Conventions
from qcheck.quantizers.bitlinear import weight_scale_shape

Shape = tuple[int, ...]

BOUNDARY_SHAPES: tuple[Shape, ...] = (
    (1,),
    (2,),
    (3,),
    (4,),
    (5,),
    (7,),
    (8,),
    (31,),
    (33,),
    (127,),
    (128,),
    (129,),
    (255,),
    (256,),
    (257,),
    (384,),
    (512,),
    (1024,),
    (1, 1),
    (2, 3),
    (3, 4),
    (5, 7),
    (4, 8),
    (5, 6),
    (3, 128),
    (2, 256),
    (3, 256),
    (1, 513),
    (2, 768),
    (6, 128),
    (2, 2, 5),
    (2, 3, 256),
    (7, 256),
    (9, 128),
)
"""Sizes around every multiple a layout cares about (4 codes per byte, 128- and 256-element blocks)."""

CODE_PATTERNS: tuple[str, ...] = ("random", "binary", "sparse", "one-hot", "all-minus-one", "all-zero", "all-plus-one")


def supported_shapes(supports: Callable[[Sequence[int]], str | None]) -> list[Shape]:
    """The boundary shapes a layout can store (``supports`` returns None for those)."""
    return [shape for shape in BOUNDARY_SHAPES if supports(shape) is None]


def unsupported_shapes(supports: Callable[[Sequence[int]], str | None]) -> list[Shape]:
    """Shapes a layout must reject: the 0-d shape and the boundary shapes it cannot store."""
    candidates: list[Shape] = [(), *BOUNDARY_SHAPES]
    return [shape for shape in candidates if supports(shape) is not None]


def _pattern(name: str, shape: Shape, seed: int, position: int, sign: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if name == "random":
        return torch.randint(-1, 2, shape, generator=generator, dtype=torch.int8)
    if name == "binary":
        return (torch.randint(0, 2, shape, generator=generator, dtype=torch.int8) * 2 - 1).to(torch.int8)
    if name == "sparse":
        values = torch.randint(-1, 2, shape, generator=generator, dtype=torch.int8)
        keep = torch.rand(shape, generator=generator) < 0.05
        return torch.where(keep, values, torch.zeros_like(values))
    if name == "one-hot":
        codes = torch.zeros(shape, dtype=torch.int8)
        if codes.numel():
            codes.view(-1)[position % codes.numel()] = sign
        return codes
    fill = {"all-minus-one": -1, "all-zero": 0, "all-plus-one": 1}[name]
    return torch.full(shape, fill, dtype=torch.int8)


def ternary_codes(shapes: Sequence[Shape], patterns: Sequence[str] = CODE_PATTERNS) -> SearchStrategy[torch.Tensor]:
    """int8 codes in {-1, 0, +1} of one of ``shapes``, in one of ``patterns``; contiguous."""
    if not shapes:
        raise ValueError("ternary_codes needs at least one shape")
    return st.builds(
        _pattern,
        st.sampled_from(list(patterns)),
        st.sampled_from(list(shapes)),
        st.integers(0, 2**16),
        st.integers(0, 2**12),
        st.sampled_from([-1, 1]),
    )


def code_layouts(codes: torch.Tensor) -> SearchStrategy[torch.Tensor]:
    """The same codes as a contiguous tensor, with transposed storage, or as a strided view
    (gaps filled with 0x7f, a value no ternary reader should ever see)."""
    kinds = ["contiguous", "strided"] + (["transposed"] if codes.dim() >= 2 else [])

    def relayout(kind: str) -> torch.Tensor:
        if kind == "transposed":
            return codes.transpose(-1, -2).contiguous().transpose(-1, -2)
        if kind == "strided":
            wide = torch.full((*codes.shape[:-1], 2 * codes.shape[-1]), 0x7F, dtype=codes.dtype)
            wide[..., ::2] = codes
            return wide[..., ::2]
        return codes.clone()

    return st.sampled_from(kinds).map(relayout)


# ---------------------------------------------------------------- BitLinear

BITLINEAR_FAMILIES = ("general", "ties", "zero-rows", "subnormal", "outliers", "one-hot", "constant-rows", "near-eps")
"""Activation families for BitLinear inputs: all but ``extreme`` (whose products overflow the
output dtype, a float-range question the activation checks already settle)."""
IN_FEATURES = (1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 64, 127, 128, 129, 256, 300)
OUT_FEATURES = (1, 2, 3, 5, 8)


def _weight_codes(draw: Any, out_features: int, in_features: int) -> torch.Tensor:
    pattern = draw(st.sampled_from(["random", "binary", "all-plus-one", "all-minus-one", "one-hot", "sparse"]))
    seed = draw(st.integers(0, 2**16))
    position = draw(st.integers(0, 2**12))
    return _pattern(pattern, (out_features, in_features), seed, position, draw(st.sampled_from([-1, 1])))


def _positive_scale(draw: Any, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Scales far from 1 (``mantissa * 2**e``): a scale applied in the wrong sense never hides."""
    n = 1
    for side in shape:
        n *= side
    mantissas = draw(st.lists(st.floats(1.0, 1.99, allow_nan=False), min_size=n, max_size=n))
    exponents = draw(st.lists(st.sampled_from([-9, -5, -2, 2, 4, 7]), min_size=n, max_size=n))
    values = [m * 2.0**e for m, e in zip(mantissas, exponents, strict=True)]
    return torch.tensor(values, dtype=dtype).reshape(shape)


@st.composite
def bitlinear_args(
    draw: Any,
    conventions: Conventions,
    *,
    in_features: Sequence[int] = IN_FEATURES,
    with_bias: bool | None = None,
) -> Args:
    """``Args(x, w_codes, w_scale, bias)``: x 2-D ``(M, K)`` or 3-D ``(B, S, K)`` of any float dtype
    from the activation families, ternary or binary weight codes ``(N, K)``, a weight scale shaped
    per the declared weight granularity (float32; float64 for float64 x), bias ``(N,)`` or None."""
    k = draw(st.sampled_from(list(in_features)))
    n = draw(st.sampled_from(list(OUT_FEATURES)))
    dtype = draw(strategies.dtypes())
    lead = draw(st.sampled_from([(1,), (2,), (4,), (1, 1), (2, 3), (3, 1)]))
    x = draw(
        strategies.activations(
            conventions=conventions,
            dtype=dtype,
            shape=(*lead, k),
            families=BITLINEAR_FAMILIES,
            non_contiguous=False,
        )
    )
    w_codes = _weight_codes(draw, n, k)
    scale_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    w_scale = _positive_scale(draw, weight_scale_shape(n, k, conventions), scale_dtype)
    bias_wanted = draw(st.booleans()) if with_bias is None else with_bias
    bias = None
    if bias_wanted:
        magnitudes = draw(st.lists(st.floats(-64.0, 64.0, allow_nan=False, width=16), min_size=n, max_size=n))
        bias = torch.tensor(magnitudes, dtype=torch.float32).to(dtype)
    return Args((x, w_codes, w_scale, bias))


@st.composite
def worst_case_accumulation(draw: Any, conventions: Conventions) -> Args:
    """Every activation at the int8 extreme (+-absmax: codes +-127) and every weight +-1 with the
    same sign, so the dot product is ``127 * K``: past int16 from K = 259, up to K = 16385."""
    k = draw(st.sampled_from([259, 300, 1024, 2048, 4095, 4096, 4097, 8192, 16384, 16385]))
    n = draw(st.sampled_from([1, 2, 3]))
    tokens = draw(st.sampled_from([1, 2]))
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float64]))  # float16 overflows at 65504
    magnitude = draw(st.sampled_from([0.5, 1.0, 3.0, 0.125]))
    sign = draw(st.sampled_from([-1, 1]))
    alternating = draw(st.booleans())
    x = torch.full((tokens, k), magnitude * sign, dtype=dtype)
    w_codes = torch.full((n, k), sign, dtype=torch.int8)
    if alternating:  # the same sum through mixed signs: x and w flip together
        flip = torch.arange(k) % 2 == 1
        x[:, flip] = -x[:, flip]
        w_codes[:, flip] = -w_codes[:, flip]
    scale_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    w_scale = _positive_scale(draw, weight_scale_shape(n, k, conventions), scale_dtype)
    return Args((x, w_codes, w_scale, None))


# ---------------------------------------------------------------- fixed probes (fingerprints)


def probes(op: str, conventions: Conventions) -> list[Any]:
    """Fixed inputs of a packing or BitLinear op that tell its known-bad variants apart: one-hot
    codes at byte and block edges and row tails in the declared layout; a batch of tokens with a
    bias, and a dot product past int16."""
    from qcheck.packing import layout

    if op in ("pack_ternary", "unpack_ternary"):
        ref = layout(conventions.packing)
        shapes = [s for s in [(5,), (3, 7), (2, 256), (3, 128), (2, 512)] if ref.supports(s) is None][:3]
        codes = [
            _pattern(pattern, shape, 1, position, -1)
            for shape in shapes
            for pattern, position in (("one-hot", 1), ("one-hot", 33), ("one-hot", 255), ("random", 0))
        ]
        if op == "pack_ternary":
            return codes
        return [Args((ref.pack(c), tuple(c.shape))) for c in codes]
    generator = torch.Generator().manual_seed(7)
    k, n = 300, 4
    w_codes = torch.randint(-1, 2, (n, k), generator=generator, dtype=torch.int8)
    w_scale = torch.full(weight_scale_shape(n, k, conventions), 0.37)
    return [
        Args((torch.randn(2, 3, k, generator=generator), w_codes, w_scale, torch.randn(n, generator=generator))),
        Args((torch.full((1, k), 2.0), torch.ones(n, k, dtype=torch.int8), w_scale, None)),
        Args((torch.randn(3, k, generator=generator) * 5, w_codes, w_scale, None)),
    ]
