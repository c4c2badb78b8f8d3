"""The golden cases: which op, on which input, under which conventions, and the reference's
outputs.  Cases are data; adding one is one entry in a table below.

Every case runs under :data:`qcheck.conventions.DEFAULT` (for packing, with ``packing`` set to
the layout).  Computing outputs uses the torch references only; encoding lives in
:mod:`qcheck.golden.arrays`.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from collections.abc import Callable, Iterator
from typing import Any

import torch

from qcheck.backend import QUANTIZER_OPS
from qcheck.conventions import DEFAULT, Conventions, Granularity
from qcheck.golden.arrays import Array, from_tensor
from qcheck.golden.inputs import FAMILY_SPECIFIC, CodeFamily, Shape, build
from qcheck.golden.rng import SplitMix64
from qcheck.ops import OPS
from qcheck.packing import LAYOUTS

DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclasses.dataclass(frozen=True)
class Case:
    """One golden case: a stable readable ``id`` (``op/family/dtype/shape``), the op, the
    conventions it follows, extra parameters, and its input and output arrays."""

    id: str
    op: str
    family: str
    conventions: Conventions
    inputs: tuple[Array, ...]
    outputs: tuple[Array, ...]
    params: tuple[tuple[str, str], ...] = ()


def conventions_json(conventions: Conventions) -> dict[str, Any]:
    """Every knob as plain JSON: enums as their values, granularities as text (``per-row``)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(conventions):
        value = getattr(conventions, field.name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, Granularity):
            value = str(value)
        out[field.name] = value
    return out


def shape_text(shape: Shape) -> str:
    """``3x4``; ``scalar`` for a 0-d shape."""
    return "x".join(str(s) for s in shape) if shape else "scalar"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --------------------------------------------------------------------------------------------
# quantizers

_WEIGHT_SHAPES: dict[str, tuple[Shape, ...]] = {
    "general": ((), (1,), (7,), (3, 5), (2, 3, 5)),
    "ties": ((2,), (3, 4), (5, 7)),
    "all-equal": ((7,), (4, 4), (5, 9)),
    "all-zero": ((1,), (3, 4)),
    "zero-rows": ((3, 5), (2, 3, 5)),
    "subnormal": ((7,), (3, 5)),
    "extreme": ((7,), (3, 5)),
    "outliers": ((16,), (3, 5)),
    "mixed": ((7,), (4, 6)),
    "near-eps": ((7,), (3, 5)),
}
"""Weight edge families and their shapes: odd sizes (1, 7, 3x5, 2x3x5), counts where a float
mean of equal values is not the value (16, 45)."""

_ACTIVATION_SHAPES: dict[str, tuple[Shape, ...]] = {
    "general": ((1,), (7,), (3, 5), (2, 3, 5)),
    "ties": ((3, 4), (2, 3, 5), (4, 16)),
    "all-zero": ((1,), (3, 4)),
    "zero-rows": ((3, 5), (2, 3, 5)),
    "constant-rows": ((7,), (3, 5)),
    "one-hot": ((7,), (3, 5)),
    "subnormal": ((7,), (3, 5)),
    "extreme": ((7,), (3, 5)),
    "outliers": ((16,), (3, 5)),
    "near-eps": ((7,), (3, 5)),
}
"""Activation edge families (a row is a token) and their shapes."""


def _quantizer_outputs(op: str, x: torch.Tensor) -> tuple[Array, ...]:
    result = OPS[op].reference(x, DEFAULT)
    if isinstance(result, torch.Tensor):
        return (from_tensor("y", result),)
    codes, scale = result
    return from_tensor("codes", codes), from_tensor("scale", scale)


def input_key(family: str, code_family: CodeFamily, shape: Shape) -> str:
    """The seed key of a quantizer input: one draw per edge family and shape, the same for every
    dtype (rounded to each) and for every op (b1, b1.58 and activation quantizers, quantize and
    fake), except where the family's values depend on the op family (``ties``: the decision that
    ties).  Shared inputs are stored once, and equal codes across dtypes too."""
    where = f"{family}/{shape_text(shape)}"
    return f"{code_family}/{where}" if family in FAMILY_SPECIFIC else f"input/{where}"


def quantizer_cases() -> Iterator[Case]:
    """Every quantizer op x edge family x dtype x shape.  Inputs are shared (see
    :func:`input_key`), so a kernel can check an op and its fake form, or b1 and b1.58, on one
    input."""
    for op in QUANTIZER_OPS:
        code_family: CodeFamily = OPS[op].family  # type: ignore[assignment]
        shapes = _ACTIVATION_SHAPES if code_family == "act" else _WEIGHT_SHAPES
        for family, family_shapes in shapes.items():
            for dtype in DTYPES:
                for shape in family_shapes:
                    x = build(family, input_key(family, code_family, shape), shape, dtype, code_family)
                    where = f"{family}/{dtype_name(dtype)}/{shape_text(shape)}"
                    yield Case(f"{op}/{where}", op, family, DEFAULT, (from_tensor("x", x),), _quantizer_outputs(op, x))


# --------------------------------------------------------------------------------------------
# bitlinear


def _ternary(key: str, shape: Shape, pattern: str) -> torch.Tensor:
    """int8 codes: ``random`` ternary, or all ``zero``, ``minus`` (-1), ``plus`` (+1)."""
    n = torch.Size(shape).numel()
    if pattern == "random":
        rng = SplitMix64(key)
        values = [rng.integer(-1, 1) for _ in range(n)]
    else:
        values = [{"zero": 0, "minus": -1, "plus": 1}[pattern]] * n
    return torch.tensor(values, dtype=torch.int8).reshape(shape)


@dataclasses.dataclass(frozen=True)
class _BitLinearSpec:
    family: str
    x_shape: Shape
    out_features: int
    bias: bool


_BITLINEAR_SPECS: tuple[_BitLinearSpec, ...] = (
    _BitLinearSpec("random", (2, 16), 8, False),
    _BitLinearSpec("random", (2, 3, 16), 8, False),
    _BitLinearSpec("random-bias", (3, 20), 5, True),
    _BitLinearSpec("random-bias", (2, 3, 16), 8, True),
    _BitLinearSpec("worst-case", (3, 259), 3, False),
    _BitLinearSpec("worst-case", (3, 4096), 3, False),
    _BitLinearSpec("worst-case-bias", (3, 259), 3, True),
)
"""random: general x, random ternary W with ``w_scale = mean|W|`` from b158_quantize;
worst-case: every x element +-absmax (all activation codes +-127; rows all +, all -, mixed) and
W all +1, so the integer sum reaches 127 * K."""


def _bitlinear_case(spec: _BitLinearSpec, dtype: torch.dtype) -> Case:
    k, n = spec.x_shape[-1], spec.out_features
    where = f"{spec.family}/{dtype_name(dtype)}/{shape_text(spec.x_shape)}-n{n}"
    # one x and W per shape, whatever the dtype and bias: the stored arrays are shared
    key = f"bitlinear/{spec.family.removesuffix('-bias')}/{shape_text(spec.x_shape)}-n{n}"
    if spec.family.startswith("worst-case"):
        rng = SplitMix64(key)
        rows = spec.x_shape[0]
        signs = [[1.0] * k, [-1.0] * k, [rng.sign() for _ in range(k)]][:rows]
        x = (torch.tensor(signs, dtype=torch.float64) * 1.5).to(dtype)
        w_codes = _ternary(key, (n, k), "plus")
        w_scale = torch.tensor(0.25, dtype=torch.float32)
    else:
        x = build("general", key, spec.x_shape, dtype, "act")
        weights = build("general", f"{key}/w", (n, k), torch.float32, "b158")
        w_codes, w_scale = OPS["b158_quantize"].reference(weights, DEFAULT)
    bias = build("general", f"{key}/bias", (n,), dtype, "act") if spec.bias else None
    from qcheck.quantizers.bitlinear import bitlinear

    y = bitlinear(x, w_codes, w_scale, bias, DEFAULT)
    inputs = [from_tensor("x", x), from_tensor("w_codes", w_codes), from_tensor("w_scale", w_scale)]
    if bias is not None:
        inputs.append(from_tensor("bias", bias))
    return Case(f"bitlinear/{where}", "bitlinear", spec.family, DEFAULT, tuple(inputs), (from_tensor("y", y),))


def bitlinear_cases() -> Iterator[Case]:
    """BitLinear: random and worst-case accumulation, with and without bias, 2-D and 3-D x."""
    for spec in _BITLINEAR_SPECS:
        dtypes = (torch.float32, torch.bfloat16) if spec.x_shape[-1] > 1000 else DTYPES
        for dtype in dtypes:
            yield _bitlinear_case(spec, dtype)


# --------------------------------------------------------------------------------------------
# packing

PACKING_LAYOUTS: tuple[str, ...] = ("qcheck", "hf-bitnet", "tq2_0", "tq1_0", "i2_s")
_PACKING_SHAPES: tuple[Shape, ...] = ((4,), (7,), (3, 5), (2, 3, 5), (128,), (256,), (2, 256), (4, 128), (3, 260))
"""Shapes offered to every layout; a layout's ``supports(shape)`` decides which it takes (sizes
not a multiple of 4 or of a block only where the layout allows them)."""
_CODE_PATTERNS: tuple[str, ...] = ("random", "zero", "minus", "plus")


def packing_cases() -> Iterator[Case]:
    """For each layout, codes (random ternary, all 0, all -1, all +1) in the shapes it supports,
    and the packed bytes.  The same case checks ``unpack_ternary(packed, shape) == codes``."""
    for name in PACKING_LAYOUTS:
        layout = LAYOUTS[name]
        conventions = DEFAULT.replace(packing=name)
        for shape in _PACKING_SHAPES:
            if layout.supports(shape) is not None:
                continue
            for pattern in _CODE_PATTERNS:
                where = f"{name}/{pattern}/int8/{shape_text(shape)}"
                codes = _ternary(f"pack_ternary/{pattern}/{shape_text(shape)}", shape, pattern)  # shared by layouts
                packed = layout.pack(codes)
                if not torch.equal(layout.unpack(packed, shape), codes):
                    raise AssertionError(f"qcheck.packing: {name} does not round-trip {where}")
                yield Case(
                    f"pack_ternary/{where}",
                    "pack_ternary",
                    pattern,
                    conventions,
                    (from_tensor("codes", codes),),
                    (from_tensor("packed", packed),),
                    (("layout", name),),
                )


CASE_SOURCES: tuple[Callable[[], Iterator[Case]], ...] = (quantizer_cases, packing_cases, bitlinear_cases)
"""Every family of cases in the reference set: a new family is one entry here.  The set never
depends on what happens to be importable."""


def all_cases() -> list[Case]:
    """Every case, sorted by id."""
    cases = [case for source in CASE_SOURCES for case in source()]
    duplicates = sorted(i for i, n in collections.Counter(case.id for case in cases).items() if n > 1)
    if duplicates:
        raise AssertionError(f"qcheck.golden bug: duplicate case ids {duplicates}")
    return sorted(cases, key=lambda case: case.id)
