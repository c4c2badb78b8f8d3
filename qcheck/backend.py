"""The backend contract (v1) and how a backend is found: ``package.module:attr``, an entry point
in the ``qcheck.backends`` group, or a built-in name (``reference``, ``reference-numpy``,
``torch-compile``, ``known-bad:<name>``).  See ``docs/backend-contract.md``.

A backend is a module, a class with a no-argument constructor, or an instance, with a ``name`` and
any subset of the contract's ops; loading never lets an import error escape as a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import types
from collections.abc import Callable
from typing import Any

from qcheck.arguments import Args, call_with
from qcheck.conventions import DEFAULT, Conventions, from_declaration
from qcheck.errors import QcheckError

CONTRACT_VERSION = 1
ENTRY_POINT_GROUP = "qcheck.backends"
QUANTIZER_OPS: tuple[str, ...] = (
    "b1_quantize",
    "b1_fake_quantize",
    "b158_quantize",
    "b158_fake_quantize",
    "act_quantize",
    "act_fake_quantize",
)
"""The quantizers: each called as ``op(x)`` with one float tensor."""
PACKING_OPS: tuple[str, ...] = ("pack_ternary", "unpack_ternary")
"""``pack_ternary(codes)`` and ``unpack_ternary(packed, shape)`` in the declared ``packing`` layout."""
PRODUCT_OPS: tuple[str, ...] = ("bitlinear",)
"""``bitlinear(x, w_codes, w_scale, bias)``."""
CONTRACT_OPS: tuple[str, ...] = QUANTIZER_OPS + PACKING_OPS + PRODUCT_OPS
"""Every op of the contract; all are graded."""


class BackendLoadError(QcheckError):
    """A backend spec that names nothing loadable; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """A loaded backend: its ops (called as ``op(tensor)``), declared conventions and device."""

    spec: str
    name: str
    ops: dict[str, Callable[..., Any]]
    conventions: Conventions
    device: str
    differentiable: bool = True
    """False when the backend declares ``differentiable = False`` (an inference-only kernel):
    STE-1 is then not applicable to its fake-quant ops."""

    @property
    def provided(self) -> tuple[str, ...]:
        return tuple(op for op in CONTRACT_OPS if op in self.ops)


def _import_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise BackendLoadError(f"backend {spec!r}: expected package.module:attr or an entry-point name")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of third-party code
        raise BackendLoadError(
            f"backend {spec!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise BackendLoadError(f"backend {spec!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    return target


def _entry_point(name: str) -> Any | None:
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            try:
                return entry.load()
            except Exception as exc:
                raise BackendLoadError(
                    f"backend {name!r}: entry point {entry.value!r} failed to load: {type(exc).__name__}: {exc}"
                ) from None
    return None


def _instantiate(spec: str, target: Any) -> Any:
    if isinstance(target, type):
        try:
            return target()
        except Exception as exc:
            raise BackendLoadError(
                f"backend {spec!r}: {target.__name__}() raised {type(exc).__name__}: {exc}"
            ) from None
    return target


def _builtin(spec: str) -> Any | None:
    from qcheck import builtin_backends

    return builtin_backends.lookup(spec)


def load_backend(spec: str) -> Backend:
    """Resolve ``spec`` to a :class:`Backend`; :class:`BackendLoadError` with one line otherwise."""
    target = _builtin(spec)
    if target is None and ":" in spec and not spec.startswith("known-bad:"):
        target = _import_object(spec)
    if target is None:
        target = _entry_point(spec)
    if target is None:
        from qcheck import builtin_backends

        raise BackendLoadError(
            f"backend {spec!r}: not a built-in ({', '.join(builtin_backends.names()[:3])}, known-bad:<name>), "
            f"not an entry point in {ENTRY_POINT_GROUP!r}, not package.module:attr"
        )
    return describe(spec, _instantiate(spec, target))


def describe(spec: str, obj: Any) -> Backend:
    """The contract view of a backend object."""
    ops = {op: getattr(obj, op) for op in CONTRACT_OPS if callable(getattr(obj, op, None))}
    if not ops:
        raise BackendLoadError(f"backend {spec!r} provides none of the contract's ops ({', '.join(CONTRACT_OPS)})")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        name = obj.__name__ if isinstance(obj, types.ModuleType) else spec
    try:
        conventions = from_declaration(getattr(obj, "conventions", None))
    except ValueError as exc:
        raise BackendLoadError(f"backend {spec!r}: bad conventions declaration: {exc}") from None
    differentiable = bool(getattr(obj, "differentiable", True))
    device = str(getattr(obj, "device", "cpu") or "cpu")
    return Backend(spec, name, ops, conventions, device, differentiable)


def implementation(backend: Backend, op: str) -> Callable[..., Any]:
    """The backend's ``op`` as the runner calls implementations: ``fn(x, conventions)``.

    Inputs move to the backend's device and outputs come back to the CPU; the conventions a check
    runs under are the ones the backend declared, so the argument is not passed on.
    """
    fn = backend.ops[op]
    device = backend.device

    def call(x: Any, conventions: Conventions = DEFAULT) -> Any:
        if device == "cpu":
            moved = x
        elif isinstance(x, Args):
            moved = x.map_tensors(lambda t: t.to(device))
        else:
            moved = x.to(device)
        result = call_with(fn, moved)
        if device == "cpu":
            return result
        if isinstance(result, tuple):
            return tuple(r.cpu() if hasattr(r, "cpu") else r for r in result)
        return result.cpu() if hasattr(result, "cpu") else result

    call.__name__ = f"{backend.name}.{op}"
    return call
