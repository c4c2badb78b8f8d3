"""The backends qcheck ships: ``reference``, ``reference-numpy``, ``torch-compile`` and every
known-bad variant as ``known-bad:<name>``; each is a plain object implementing the contract."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from qcheck import known_bad
from qcheck.conventions import DEFAULT
from qcheck.implementations import REFERENCE, REFERENCE_NUMPY

BUILTIN = ("reference", "reference-numpy", "torch-compile")


def _namespace(
    name: str, ops: dict[str, Callable[..., Any]], doc: str, *, differentiable: bool = True
) -> types.SimpleNamespace:
    bound = {op: functools.partial(fn, conventions=DEFAULT) for op, fn in ops.items()}
    return types.SimpleNamespace(
        name=name, conventions=DEFAULT, device="cpu", differentiable=differentiable, __doc__=doc, **bound
    )


def _compiled() -> types.SimpleNamespace:
    """The kernel-style quantizers (:mod:`qcheck.quantizers.fast`) through ``torch.compile``
    (inductor, a generated C++ kernel on the CPU), graded like any third-party backend."""
    import torch

    from qcheck.quantizers import fast

    # Hypothesis draws many dtypes, ranks and layouts: let dynamo keep a graph for each rather
    # than fall back to eager after 8 (a fallback mixes two kernels with different sum orders)
    torch._dynamo.config.recompile_limit = 512
    torch._dynamo.config.accumulated_recompile_limit = 4096
    def contiguous_first(kernel: Callable[..., Any]) -> Callable[..., Any]:
        # inductor's reduction order follows the memory layout: hand it one layout (GEN-3)
        return lambda x: kernel(x.contiguous())

    ops = {op: contiguous_first(torch.compile(getattr(fast, op), dynamic=True)) for op in REFERENCE.ops}
    return types.SimpleNamespace(
        name="torch-compile", conventions=DEFAULT, device="cpu", differentiable=True, __doc__=_compiled.__doc__, **ops
    )


def lookup(spec: str) -> Any | None:
    """The built-in backend called ``spec``, or None."""
    if spec == "reference":
        return _namespace("reference", dict(REFERENCE.ops), REFERENCE.description)
    if spec == "reference-numpy":
        return _namespace(
            "reference-numpy", dict(REFERENCE_NUMPY.ops), REFERENCE_NUMPY.description, differentiable=False
        )
    if spec == "torch-compile":
        return _compiled()
    if spec.startswith("known-bad:"):
        try:
            variant = known_bad.by_name(spec.removeprefix("known-bad:"))
        except KeyError:
            return None
        return _namespace(spec, {variant.op: variant.fn}, f"{variant.description} [{variant.origin}]")
    return None


def names() -> list[str]:
    return [*BUILTIN, *(f"known-bad:{v.name}" for v in known_bad.CATALOGUE)]
