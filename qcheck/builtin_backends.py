"""The backends qcheck ships: ``reference``, ``reference-numpy``, ``torch-compile``, the reference
packers of the other layouts (``reference-tq2_0``, ...) and every known-bad variant as
``known-bad:<name>``; each is a plain object implementing the contract."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from qcheck import known_bad
from qcheck.arguments import Args
from qcheck.backend import PACKING_OPS, QUANTIZER_OPS
from qcheck.conventions import DEFAULT, PACKING_LAYOUTS, Conventions
from qcheck.implementations import REFERENCE, REFERENCE_NUMPY

LAYOUT_REFERENCES = tuple(f"reference-{name}" for name in PACKING_LAYOUTS if name != DEFAULT.packing)
"""The reference packer and unpacker of each layout but the default one, as a backend."""
BUILTIN = ("reference", "reference-numpy", "torch-compile", *LAYOUT_REFERENCES)


def _as_backend_op(op: str, fn: Callable[..., Any], conventions: Conventions) -> Callable[..., Any]:
    """``fn(value, conventions)`` as the contract calls it: ``op(x)``, or ``op(*args)`` for the
    multi-argument ops (``bitlinear``'s bias may be left out)."""
    if op == "unpack_ternary":
        return lambda packed, shape: fn(Args((packed, shape)), conventions)
    if op == "bitlinear":
        return lambda x, w_codes, w_scale, bias=None: fn(Args((x, w_codes, w_scale, bias)), conventions)
    return functools.partial(fn, conventions=conventions)


def _namespace(
    name: str,
    ops: dict[str, Callable[..., Any]],
    doc: str,
    *,
    differentiable: bool = True,
    conventions: Conventions = DEFAULT,
) -> types.SimpleNamespace:
    bound = {op: _as_backend_op(op, fn, conventions) for op, fn in ops.items()}
    return types.SimpleNamespace(
        name=name, conventions=conventions, device="cpu", differentiable=differentiable, __doc__=doc, **bound
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

    ops = {op: contiguous_first(torch.compile(getattr(fast, op), dynamic=True)) for op in QUANTIZER_OPS}
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
    if spec in LAYOUT_REFERENCES:
        packing = spec.removeprefix("reference-")
        ops = {op: REFERENCE.ops[op] for op in PACKING_OPS}
        doc = f"qcheck's reference packer and unpacker of the {packing} layout (qcheck.packing)"
        return _namespace(spec, ops, doc, conventions=DEFAULT.replace(packing=packing))
    if spec.startswith("known-bad:"):
        try:
            variant = known_bad.by_name(spec.removeprefix("known-bad:"))
        except KeyError:
            return None
        return _namespace(
            spec,
            {variant.op: variant.fn},
            f"{variant.description} [{variant.origin}]",
            conventions=variant.conventions,
        )
    return None


def names() -> list[str]:
    return [*BUILTIN, *(f"known-bad:{v.name}" for v in known_bad.CATALOGUE)]
