"""The built-in implementations the harness grades itself with: the torch reference, its
independent numpy twin, and every known-bad variant; each maps op names to ``fn(x, conventions)``.

Third-party backends and their loading come with the backend contract (a later issue).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import torch

from qcheck import known_bad
from qcheck.ops import OPS
from qcheck.quantizers import numpy_twin

Expectation = Literal["pass", "fail"]


@dataclasses.dataclass(frozen=True)
class Implementation:
    """A named set of op implementations and what the harness expects of them."""

    name: str
    ops: Mapping[str, Callable[..., Any]]
    description: str
    expected: Expectation
    not_applicable: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Requirement IDs that cannot apply to this implementation, with the reason."""


def _to_numpy(x: torch.Tensor) -> tuple[np.ndarray[Any, Any], str | None]:
    if x.dtype == torch.bfloat16:
        return x.detach().to(torch.float32).contiguous().numpy(), "bfloat16"
    return x.detach().contiguous().numpy(), None


def _to_torch(value: np.ndarray[Any, Any], like: torch.Tensor | None = None) -> torch.Tensor:
    out = torch.from_numpy(np.ascontiguousarray(value))
    return out.to(like.dtype) if like is not None else out


def _twin(name: str) -> Callable[..., Any]:
    twin_fn = getattr(numpy_twin, name)
    form = OPS[name].form

    def call(x: torch.Tensor, conventions: Any = None) -> Any:
        array, source = _to_numpy(x)
        kwargs = {} if conventions is None else {"conventions": conventions}
        result = twin_fn(array, source_dtype=source, **kwargs)
        if form == "fake":
            return _to_torch(result, like=x)
        codes, scale = result[0], result[1]
        return _to_torch(codes), _to_torch(scale)

    call.__name__ = f"numpy_twin.{name}"
    return call


REFERENCE = Implementation(
    "reference",
    {name: op.reference for name, op in OPS.items()},
    "qcheck's torch reference (qcheck.quantizers): exact, the definition",
    "pass",
)
REFERENCE_NUMPY = Implementation(
    "reference-numpy",
    {name: _twin(name) for name in OPS},
    "the independent numpy/Fraction twin (qcheck.quantizers.numpy_twin)",
    "pass",
    {"STE-1": "numpy arrays carry no gradient; the twin checks values only"},
)


def known_bad_implementations() -> list[Implementation]:
    return [
        Implementation(
            f"known-bad:{variant.name}", {variant.op: variant.fn}, f"{variant.description} [{variant.origin}]", "fail"
        )
        for variant in known_bad.CATALOGUE
    ]


def builtin() -> list[Implementation]:
    """Every built-in implementation, references first."""
    return [REFERENCE, REFERENCE_NUMPY, *known_bad_implementations()]


def by_name(name: str) -> Implementation:
    for implementation in builtin():
        if implementation.name == name:
            return implementation
    names = ", ".join(i.name for i in builtin())
    raise KeyError(f"no built-in implementation {name!r}; choose one of: {names}")
