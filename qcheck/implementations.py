"""The two reference implementations as op maps, ``fn(x, conventions)``: the torch reference and
an adapter around its independent numpy twin.  :mod:`qcheck.builtin_backends` turns them into
backends; known-bad variants come from :mod:`qcheck.known_bad` directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from qcheck.ops import OPS
from qcheck.quantizers import numpy_twin


@dataclasses.dataclass(frozen=True)
class Implementation:
    """A named set of op implementations."""

    name: str
    ops: Mapping[str, Callable[..., Any]]
    description: str


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
)
REFERENCE_NUMPY = Implementation(
    "reference-numpy",
    {name: _twin(name) for name, op in OPS.items() if op.is_quantizer},
    "the independent numpy/Fraction twin (qcheck.quantizers.numpy_twin); values only, no gradient",
)
