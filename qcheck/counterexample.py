"""Failing inputs saved as JSON (no pickle) with every bit and the memory layout kept, a runnable
snippet that reproduces them, and ``replay``: the recorded check run once on the stored input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from qcheck import __version__
from qcheck.arguments import Args
from qcheck.checks.base import Check, Evidence, Implementation
from qcheck.checks.runner import CheckResult, describe_input
from qcheck.conventions import Conventions
from qcheck.ops import Op

SCHEMA = "qcheck-counterexample/1"
SNIPPET_LIMIT = 1024
"""Inputs with more elements than this are loaded from the file in the snippet, not spelled out."""

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


# ---------------------------------------------------------------- bits and layout


def _bits(t: torch.Tensor) -> list[int]:
    """The raw bits of each element of ``t`` in row-major order, as unsigned integers."""
    size = t.element_size()
    flat = t.detach().cpu().contiguous().reshape(-1)
    raw = flat.view(_INT_VIEW[size]).tolist()
    mask = (1 << (8 * size)) - 1
    return [int(v) & mask for v in raw]


def _from_bits(bits: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A 1-D tensor of ``dtype`` whose elements have exactly ``bits``."""
    size = torch.empty((), dtype=dtype).element_size()
    view = _INT_VIEW[size]
    if view is torch.uint8:
        signed = list(bits)
    else:
        half, full = 1 << (8 * size - 1), 1 << (8 * size)
        signed = [b - full if b >= half else b for b in bits]
    return torch.tensor(signed, dtype=view).view(dtype)


def _hex_bits(value: int, dtype: torch.dtype) -> str:
    width = 2 * torch.empty((), dtype=dtype).element_size()
    return f"0x{value:0{width}x}"


def _default_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _extent(shape: Sequence[int], stride: Sequence[int], offset: int) -> int:
    """Storage elements a view reaches: ``offset`` + the farthest element + 1 (0 when empty)."""
    if any(size == 0 for size in shape):
        return offset
    return offset + sum((size - 1) * step for size, step in zip(shape, stride, strict=True)) + 1


def dense(t: torch.Tensor) -> bool:
    """Row-major strides at storage offset 0: the layout ``torch.tensor(...)`` gives."""
    return t.storage_offset() == 0 and tuple(t.stride()) == _default_strides(t.shape)


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------- tensors as JSON


def encode_tensor(t: torch.Tensor) -> dict[str, Any]:
    """A tensor as JSON: dtype, shape, strides, offset and its logical elements, bit-exact.

    ``values_hex`` holds ``float.hex`` of each element (integers: ``hex``); ``nan_bits`` the raw
    bits of NaN elements (``float.hex`` drops payload and sign); ``storage_bits`` the raw bits of
    the storage a non-dense view reaches, gaps included (kernels that ignore strides read them).
    """
    x = t.detach().cpu()
    if x.is_complex() or x.element_size() not in _INT_VIEW:
        raise ValueError(f"cannot store a {x.dtype} tensor")
    flat = x.contiguous().reshape(-1)
    encoded: dict[str, Any] = {
        "dtype": _dtype_name(x.dtype),
        "shape": list(x.shape),
        "stride": list(x.stride()),
        "storage_offset": int(x.storage_offset()),
    }
    if x.is_floating_point():
        values = flat.to(torch.float64).tolist()
        encoded["values_hex"] = [float.hex(v) for v in values]
        encoded["values"] = [v if math.isfinite(v) else str(v) for v in values]
        bits = _bits(flat)
        nan = [i for i, v in enumerate(values) if math.isnan(v)]
        if nan:
            encoded["nan_bits"] = {str(i): _hex_bits(bits[i], x.dtype) for i in nan}
    else:
        ints = [int(v) for v in flat.tolist()]
        encoded["values_hex"] = [hex(v) for v in ints]
        encoded["values"] = ints
    if not dense(x):
        reach = _extent(x.shape, x.stride(), int(x.storage_offset()))
        available = x.untyped_storage().nbytes() // x.element_size()
        storage = torch.as_strided(x, (min(reach, available),), (1,), 0)
        encoded["storage_bits"] = [_hex_bits(b, x.dtype) for b in _bits(storage)]
    return encoded


def decode_tensor(encoded: dict[str, Any]) -> torch.Tensor:
    """The tensor :func:`encode_tensor` stored: same dtype, shape, strides, offset and bits."""
    dtype = _dtype(encoded["dtype"])
    shape = tuple(int(s) for s in encoded["shape"])
    stride = tuple(int(s) for s in encoded["stride"])
    offset = int(encoded["storage_offset"])
    texts: list[str] = list(encoded["values_hex"])
    if dtype.is_floating_point:
        values = torch.tensor([float.fromhex(v) for v in texts], dtype=torch.float64).to(dtype)
        for index, raw in encoded.get("nan_bits", {}).items():
            values[int(index)] = _from_bits([int(raw, 16)], dtype)[0]
    elif dtype is torch.bool:
        values = torch.tensor([bool(int(v, 16)) for v in texts], dtype=dtype)
    else:
        values = torch.tensor([int(v, 16) for v in texts], dtype=dtype)
    if math.prod(shape) != values.numel():
        raise ValueError(f"{values.numel()} values for shape {shape}")
    if "storage_bits" not in encoded and stride == _default_strides(shape) and offset == 0:
        return values.reshape(shape)
    reach = _extent(shape, stride, offset)
    stored = [int(b, 16) for b in encoded.get("storage_bits", [])]
    storage = _from_bits(stored + [0] * max(0, reach - len(stored)), dtype)
    # Logical elements are written through integer views, so every bit lands as stored (even a
    # NaN payload), and by index, so a view whose elements overlap (stride 0) is no problem.
    positions = torch.arange(storage.numel()).as_strided(shape, stride, offset).reshape(-1)
    storage.view(_INT_VIEW[storage.element_size()])[positions] = values.view(_INT_VIEW[values.element_size()])
    return storage.as_strided(shape, stride, offset)


def _encode_argument(value: Any) -> dict[str, Any]:
    if value is None:
        return {"kind": "none"}
    if isinstance(value, torch.Tensor):
        return {"kind": "tensor", "tensor": encode_tensor(value)}
    if isinstance(value, tuple | list | torch.Size) and all(isinstance(v, int) for v in value):
        return {"kind": "shape", "value": [int(v) for v in value]}
    raise ValueError(f"cannot store an argument of type {type(value).__name__}")


def _decode_argument(encoded: dict[str, Any]) -> Any:
    if encoded["kind"] == "none":
        return None
    if encoded["kind"] == "shape":
        return tuple(int(v) for v in encoded["value"])
    return decode_tensor(encoded["tensor"])


def encode_witness(witness: Any) -> dict[str, Any]:
    """A check's input as JSON: a tensor or an :class:`Args`, a pair of them, or one with a power."""
    if witness is None:
        return {"kind": "none"}
    if isinstance(witness, torch.Tensor):
        return {"kind": "tensor", "tensor": encode_tensor(witness)}
    if isinstance(witness, Args):
        return {"kind": "args", "args": [_encode_argument(a) for a in witness]}
    if isinstance(witness, tuple) and len(witness) == 2 and isinstance(witness[0], Args):
        first, second = witness
        if isinstance(second, Args):
            return {"kind": "args_pair", "pair": [encode_witness(first), encode_witness(second)]}
        if isinstance(second, int) and not isinstance(second, bool):
            return {"kind": "args_with_power", "args": encode_witness(first), "power": second}
    if isinstance(witness, tuple) and len(witness) == 2 and isinstance(witness[0], torch.Tensor):
        first, second = witness
        if isinstance(second, torch.Tensor):
            return {"kind": "pair", "tensors": [encode_tensor(first), encode_tensor(second)]}
        if isinstance(second, int) and not isinstance(second, bool):
            return {"kind": "with_power", "tensor": encode_tensor(first), "power": second}
    raise ValueError(f"cannot store an input of type {type(witness).__name__}")


def decode_witness(encoded: dict[str, Any]) -> Any:
    kind = encoded["kind"]
    if kind == "none":
        return None
    if kind == "tensor":
        return decode_tensor(encoded["tensor"])
    if kind == "args":
        return Args(_decode_argument(a) for a in encoded["args"])
    if kind == "args_pair":
        first, second = encoded["pair"]
        return decode_witness(first), decode_witness(second)
    if kind == "args_with_power":
        return decode_witness(encoded["args"]), int(encoded["power"])
    if kind == "pair":
        first, second = encoded["tensors"]
        return decode_tensor(first), decode_tensor(second)
    if kind == "with_power":
        return decode_tensor(encoded["tensor"]), int(encoded["power"])
    raise ValueError(f"unknown input kind {kind!r}")


# ---------------------------------------------------------------- the snippet


def _float_literals(t: torch.Tensor) -> list[str]:
    """The shortest Python literal per element that ``torch.tensor([...], dtype=t.dtype)`` turns
    back into exactly the same bits (``float.fromhex`` if no decimal literal does)."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    values = flat.to(torch.float64).tolist()
    bits = _bits(flat)
    literals: list[str | None] = [None] * len(values)
    pending = []
    for i, v in enumerate(values):
        if math.isnan(v):
            literals[i] = "float('nan')"
        elif math.isinf(v):
            literals[i] = "float('inf')" if v > 0 else "float('-inf')"
        else:
            pending.append(i)
    for digits in range(1, 18):
        if not pending:
            break
        candidates = [f"{values[i]:.{digits}g}" for i in pending]
        back = _bits(torch.tensor([float(c) for c in candidates], dtype=torch.float64).to(flat.dtype))
        still = []
        for i, text, got in zip(pending, candidates, back, strict=True):
            if got == bits[i]:
                literals[i] = text if any(c in text for c in ".en") else text + ".0"
            else:
                still.append(i)
        pending = still
    for i in pending:
        literals[i] = f"float.fromhex('{float.hex(values[i])}')"
    return [text or "" for text in literals]


def _literals(t: torch.Tensor) -> list[str]:
    if t.is_floating_point():
        return _float_literals(t)
    flat = t.detach().cpu().contiguous().reshape(-1).tolist()
    return [repr(bool(v)) if t.dtype is torch.bool else str(int(v)) for v in flat]


def _wrapped(items: Sequence[str], indent: int, width: int = 100) -> str:
    lines: list[str] = []
    line = ""
    for item in items:
        piece = item if not line else ", " + item
        if line and indent + len(line) + len(piece) > width:
            lines.append(line + ",")
            line = item
        else:
            line += piece
    lines.append(line)
    return ("\n" + " " * indent).join(lines)


def _nested(items: Sequence[str], shape: Sequence[int], indent: int) -> str:
    if len(shape) == 1:
        return "[" + _wrapped(items, indent + 1) + "]"
    chunk = math.prod(shape[1:])
    parts = [_nested(items[i * chunk : (i + 1) * chunk], shape[1:], indent + 1) for i in range(shape[0])]
    return "[" + (",\n" + " " * (indent + 1)).join(parts) + "]"


def tensor_code(name: str, t: torch.Tensor) -> list[str]:
    """Python lines that bind ``name`` to a tensor with exactly ``t``'s values, dtype and layout."""
    x = t.detach().cpu()
    dtype = f"torch.{_dtype_name(x.dtype)}"
    if dense(x):
        if x.dim() == 0:
            return [f"{name} = torch.tensor({_literals(x)[0]}, dtype={dtype})"]
        if x.numel() == 0:
            return [f"{name} = torch.empty({tuple(x.shape)!r}, dtype={dtype})"]
        prefix = f"{name} = torch.tensor("
        return [prefix + _nested(_literals(x), x.shape, len(prefix)) + f", dtype={dtype})"]
    reach = _extent(x.shape, x.stride(), int(x.storage_offset()))
    storage = torch.as_strided(x, (reach,), (1,), 0)
    prefix = f"{name}_storage = torch.tensor("
    return [
        f"# {name} is a non-contiguous view: the storage below (gaps included), then as_strided",
        prefix + "[" + _wrapped(_literals(storage), len(prefix) + 1) + f"], dtype={dtype})",
        f"{name} = {name}_storage.as_strided({tuple(x.shape)!r}, {tuple(x.stride())!r}, {x.storage_offset()})",
    ]


def _tensors(witness: Any) -> list[torch.Tensor]:
    if isinstance(witness, torch.Tensor):
        return [witness]
    if isinstance(witness, tuple):
        return [t for w in witness for t in ([w] if isinstance(w, torch.Tensor) else _tensors(w))]
    return []


ARGUMENT_NAMES = {"unpack_ternary": ("packed", "shape"), "bitlinear": ("x", "w_codes", "w_scale", "bias")}
"""How the snippet names the arguments of the multi-argument ops."""


def _args_code(op: str, args: Args, suffix: str) -> tuple[list[str], str]:
    """Lines defining each argument, and the argument list of the call."""
    names = [f"{name}{suffix}" for name in ARGUMENT_NAMES.get(op, tuple(f"arg{i}" for i in range(len(args))))]
    lines: list[str] = []
    for name, value in zip(names, args, strict=True):
        lines += tensor_code(name, value) if isinstance(value, torch.Tensor) else [f"{name} = {value!r}"]
    return lines, ", ".join(names)


def _args_snippet(op: str, witness: Any, big: bool, path: str | None) -> list[str]:
    """The snippet's body for a multi-argument op: define ``args`` (and ``other`` or ``power``),
    then call the op as the grader did."""
    call = f"{op}(*(a.to(backend.device) if isinstance(a, torch.Tensor) else a for a in {{}}))"
    expected = f"OPS[{op!r}].reference({{}}, backend.conventions)"
    lines = ["from qcheck.arguments import Args"]
    second = None if isinstance(witness, Args) else witness[1]
    if big and path is not None:
        lines += [
            "from qcheck.counterexample import load_counterexample",
            f"_, witness = load_counterexample({path!r})  # too large to spell out",
            "args = witness" if second is None else "args, other = witness",
        ]
        if isinstance(second, int):
            lines.append("power = other")
    else:
        first = witness if isinstance(witness, Args) else witness[0]
        defined, names = _args_code(op, first, "")
        lines += [*defined, f"args = Args(({names},))"]
        if isinstance(second, Args):
            defined, names = _args_code(op, second, "_2")
            lines += [*defined, f"other = Args(({names},))"]
        elif second is not None:
            lines.append(f"power = {second}")
    if second is None:
        return [*lines, f"print({call.format('args')})", f"print('expected:', {expected.format('args')})"]
    if isinstance(second, Args):
        return [
            *lines,
            "# the same arguments twice must give the same output; other arguments a fresh one",
            f"print({call.format('args')})",
            f"print({call.format('other')})",
            f"print({call.format('args')})",
            f"print('expected:', {expected.format('args')}, {expected.format('other')})",
        ]
    return [
        *lines,
        "scaled = Args((*args[:2], args[2] * 2.0**power, args[3]))  # w_scale * 2**k: exactly y * 2**k",
        f"print({call.format('args')})",
        f"print({call.format('scaled')})",
    ]


def snippet(backend_spec: str, op: str, witness: Any, path: str | None = None) -> str:
    """A runnable Python snippet: the failing input as a literal and the backend's call on it."""
    if witness is None:
        return "# no failing input was recorded (the check itself failed before one was drawn)"
    lines = [
        "import torch",
        "from qcheck.backend import load_backend",
        "from qcheck.ops import OPS",
        "",
        f"backend = load_backend({backend_spec!r})",
        f"{op} = backend.ops[{op!r}]",
    ]
    big = sum(t.numel() for t in _tensors(witness)) > SNIPPET_LIMIT
    if isinstance(witness, Args) or (isinstance(witness, tuple) and isinstance(witness[0], Args)):
        return "\n".join(lines + _args_snippet(op, witness, big, path)) + "\n"
    if big and path is not None:
        lines[1:1] = ["from qcheck.counterexample import load_counterexample"]
        lines.append(f"_, witness = load_counterexample({path!r})  # too large to spell out")
        names = {"tensor": "x", "pair": "x, y", "with_power": "x, power"}
        lines.append(f"{names[_kind(witness)]} = witness")
    elif isinstance(witness, torch.Tensor):
        lines += tensor_code("x", witness)
    elif isinstance(witness[1], torch.Tensor):
        lines += tensor_code("x", witness[0]) + tensor_code("y", witness[1])
    else:
        lines += [*tensor_code("x", witness[0]), f"power = {witness[1]}"]
    device = ".to(backend.device)"
    expected = f"OPS[{op!r}].reference({{}}, backend.conventions)"
    if isinstance(witness, torch.Tensor):
        lines += [
            f"print({op}(x{device}))",
            f"print('expected:', {expected.format('x')})",
        ]
    elif isinstance(witness[1], torch.Tensor):
        lines += [
            "# the same input twice must give the same output; a different input a fresh one",
            f"print({op}(x{device}))",
            f"print({op}(y{device}))",
            f"print({op}(x{device}))",
            f"print('expected for x:', {expected.format('x')})",
            f"print('expected for y:', {expected.format('y')})",
        ]
    else:
        lines += [
            "scaled = x * 2.0**power  # exact: the check only uses powers that keep every bit",
            f"print({op}(x{device}))",
            f"print({op}(scaled{device}))",
        ]
    return "\n".join(lines) + "\n"


def _kind(witness: Any) -> str:
    if isinstance(witness, torch.Tensor):
        return "tensor"
    if isinstance(witness, tuple) and len(witness) == 2 and isinstance(witness[1], torch.Tensor):
        return "pair"
    return "with_power"


def layout_note(witness: Any) -> str | None:
    """What a replay must keep about the memory layout, if the input was not a dense tensor."""
    notes = []
    tensors = _tensors(witness)
    labels = ("x", "y") if len(tensors) <= 2 else tuple(f"argument {i + 1}" for i in range(len(tensors)))
    for label, t in zip(labels, tensors, strict=False):
        if not dense(t):
            kind = "non-contiguous view" if not t.is_contiguous() else "view at a storage offset"
            notes.append(
                f"{label} is a {kind}: shape {tuple(t.shape)}, strides {tuple(t.stride())}, storage offset "
                f"{t.storage_offset()}"
            )
    if not notes:
        return None
    return (
        "; ".join(notes) + ". The replay rebuilds the same layout: a storage holding the stored bits (gaps "
        "included) and torch.as_strided over it; a kernel that ignores strides or the offset fails again."
    )


# ---------------------------------------------------------------- files


def safe_name(text: str) -> str:
    """``text`` as one file-name component: ``known-bad:round-half-up`` -> ``known-bad_round-half-up``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "backend"
    return name[:120]


def counterexample_path(directory: Path, backend_name: str, key: str) -> Path:
    return directory / "counterexamples" / safe_name(backend_name) / (safe_name(key.replace(":", "__")) + ".json")


def replay_command(path: str | Path, backend_spec: str) -> str:
    return f"qcheck replay {shlex.quote(str(path))} --backend {shlex.quote(backend_spec)}"


def save_counterexample(
    directory: Path, backend_spec: str, backend_name: str, result: CheckResult, *, conventions_text: str
) -> tuple[str, str]:
    """Write ``result``'s failing input under ``directory/counterexamples/``; returns the path and
    the command that replays it.  An input that cannot be stored is recorded as text only."""
    from qcheck.verify import write_atomically

    path = counterexample_path(directory, backend_name, result.key)
    command = replay_command(path, backend_spec)
    try:
        encoded = encode_witness(result.witness)
        code = snippet(backend_spec, result.op, result.witness, str(path))
        note = layout_note(result.witness)
    except ValueError as exc:
        encoded = {"kind": "unsupported", "reason": str(exc)}
        code, note = f"# the input could not be stored: {exc}", None
    payload = {
        "schema": SCHEMA,
        "qcheck_version": __version__,
        "check": result.key,
        "op": result.op,
        "requirement": result.requirement,
        "name": result.name,
        "verdict": result.verdict,
        "message": result.message,
        "backend_spec": backend_spec,
        "backend_name": backend_name,
        "conventions": conventions_text,
        "input": encoded,
        "counterexample": result.counterexample
        if result.counterexample is not None
        else (describe_input(result.witness) if result.witness is not None else None),
        "snippet": code,
        "layout_note": note,
        "replay": command,
    }
    write_atomically(path, json.dumps(payload, indent=1, allow_nan=False) + "\n")
    return str(path), command


def saver(directory: Path, backend_spec: str) -> Callable[..., tuple[str, str]]:
    """A ``save`` callback for :func:`qcheck.grade.grade_backend` that writes under ``directory``:
    called as ``save(backend_name, result)`` or ``save(backend_name, result, conventions_text)``."""

    def save(backend_name: str, result: CheckResult, conventions_text: str = "") -> tuple[str, str]:
        return save_counterexample(directory, backend_spec, backend_name, result, conventions_text=conventions_text)

    return save


def load_counterexample(path: str | Path) -> tuple[dict[str, Any], Any]:
    """The metadata and the stored input, rebuilt with the same dtype, shape, strides and bits."""
    metadata: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    if metadata.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a qcheck counterexample (schema {metadata.get('schema')!r}, expected {SCHEMA})")
    encoded = metadata["input"]
    if encoded.get("kind") == "unsupported":
        return metadata, None
    return metadata, decode_witness(encoded)


# ---------------------------------------------------------------- replay


@dataclasses.dataclass(frozen=True)
class Replay:
    """The verdict of one recorded check, run once on the stored input."""

    verdict: str
    message: str
    check: str = ""
    backend: str = ""


def _verify_once(check: Check, impl: Implementation, witness: Any, conventions: Conventions, op: Op) -> Evidence | None:
    """``check.verify`` run once on ``witness``, inside Hypothesis so that the check's ``assume``
    works as in a grading run; None when an assumption rejects the input."""
    from hypothesis import Phase, example, given, settings
    from hypothesis import strategies as st

    done: list[Evidence] = []

    @settings(phases=[Phase.explicit], database=None, deadline=None)
    @given(st.just(None))
    @example(witness)
    def once(value: Any) -> None:
        done.append(check.verify(impl, value, conventions, op))

    once()
    return done[0] if done else None


def replay(path: str | Path, backend_spec: str | None = None) -> Replay:
    """Run the recorded check once on the stored input against ``backend_spec`` (by default the
    backend that failed), under the conventions that backend declares now."""
    from qcheck.backend import BackendLoadError, implementation, load_backend
    from qcheck.checks.base import CheckFailure
    from qcheck.checks.catalogue import by_key
    from qcheck.ops import OPS

    metadata, witness = load_counterexample(path)
    spec = backend_spec or str(metadata["backend_spec"])
    key = str(metadata["check"])
    try:
        check = by_key(key)
    except KeyError as exc:
        return Replay("ERROR", str(exc.args[0]), key, spec)
    try:
        backend = load_backend(spec)
    except BackendLoadError as exc:
        return Replay("ERROR", str(exc), key, spec)
    if check.op not in backend.provided:
        return Replay("NOT PROVIDED", f"{backend.name} does not provide {check.op}", key, spec)
    conventions = backend.conventions
    if not check.applies(conventions):
        return Replay("NOT APPLICABLE", f"{key} does not apply under {conventions.describe()}", key, spec)
    if witness is None:
        return Replay("ERROR", f"{path} holds no replayable input", key, spec)
    recorded = metadata.get("conventions")
    changed = (
        f" (recorded under {recorded}; {backend.name} declares {conventions.describe()})"
        if recorded and recorded != conventions.describe()
        else ""
    )
    try:
        evidence = _verify_once(check, implementation(backend, check.op), witness, conventions, OPS[check.op])
    except CheckFailure as failure:
        return Replay(failure.verdict, failure.message + changed, key, spec)
    except Exception as exc:  # a harness error: reported, never a traceback
        return Replay("ERROR", f"the check itself failed: {type(exc).__name__}: {exc}" + changed, key, spec)
    if evidence is None:
        return Replay(
            "NOT APPLICABLE", "the stored input does not meet the check's preconditions here" + changed, key, spec
        )
    message = "passed"
    if evidence.near_boundary:
        message += f"; {evidence.near_boundary} element(s) differed only inside the near-boundary window (counted)"
    return Replay("PASS", message + changed, key, spec)
