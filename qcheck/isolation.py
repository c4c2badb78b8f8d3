"""Run a backend in a worker process with a time limit per call: a kernel that segfaults, aborts or
hangs becomes an ERROR verdict (with its input) for the check that found it, and grading goes on.
In-place changes to the input and gradients cross the process boundary as with an in-process backend.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import hashlib
import io
import itertools
import multiprocessing
import multiprocessing.util
import pickle
import re
import signal
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, ClassVar, NoReturn

import torch

from qcheck.arguments import Args
from qcheck.backend import CONTRACT_OPS, BackendLoadError, implementation, load_backend
from qcheck.checks.base import BackendRaised, CheckFailure
from qcheck.conventions import DEFAULT, Conventions

GRAPHS_KEPT = 8
"""Autograd graphs of the most recent differentiable calls the worker keeps for a later backward."""
MESSAGE_LIMIT = 1000
"""Characters kept of an exception message relayed from the worker (one line)."""


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """What :class:`qcheck.backend.Backend` says about a backend, with its ops as names: the
    callables live in the worker process."""

    spec: str
    name: str
    ops: tuple[str, ...]
    conventions: Conventions
    device: str
    differentiable: bool = True

    @property
    def provided(self) -> tuple[str, ...]:
        return tuple(op for op in CONTRACT_OPS if op in self.ops)


# ---------------------------------------------------------------- shared helpers


def _one_line(text: str) -> str:
    line = re.sub(r"\s*\n\s*", " ", text).strip()
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


def _storage_bytes(x: torch.Tensor) -> bytes:
    storage = x.untyped_storage()
    if storage.nbytes() == 0:
        return b""
    return bytes(torch.empty(0, dtype=torch.uint8).set_(storage).numpy().tobytes())


def _rebuild_tensor(
    data: bytes,
    dtype: torch.dtype,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    offset: int,
    requires_grad: bool,
) -> torch.Tensor:
    """A tensor with a private copy of the sent storage (every byte, the gaps of a strided view
    included) and the sent view of it."""
    if data:
        storage = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8)
    else:
        storage = torch.empty(0, dtype=torch.uint8).untyped_storage()
    tensor = torch.empty(0, dtype=dtype).set_(storage, offset, size, stride)
    return tensor.requires_grad_(True) if requires_grad else tensor


def _plain(x: torch.Tensor) -> bool:
    """A dense CPU tensor of class Tensor whose whole state is its storage, view and dtype."""
    return (
        x.layout == torch.strided
        and x.device.type == "cpu"
        and not x.is_quantized
        and not x.is_nested
        and not x.is_conj()
        and not x.is_neg()
        and not any(getattr(x, "names", None) or ())  # named tensors, where torch still has them
        and not x.__dict__
        and not x._backward_hooks
        and (not x.requires_grad or x.grad_fn is None)
    )


class _Pickler(pickle.Pickler):
    """Pickles a plain tensor as its storage bytes and view (an order of magnitude faster than
    torch's own reduction, which goes through ``torch.save``), anything else as usual."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is torch.Tensor and _plain(obj):
            view = (obj.dtype, tuple(obj.shape), obj.stride(), obj.storage_offset(), obj.requires_grad)
            return _rebuild_tensor, (_storage_bytes(obj), *view)
        return NotImplemented


def dumps(message: Any) -> bytes:
    """``pickle.dumps(message)``, with plain tensors reduced to their storage bytes and view."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    return buffer.getvalue()


def _send(conn: Connection, message: Any) -> None:
    # Plain pickle, not the Connection's ForkingPickler: torch registers reducers there that move
    # tensor storage into shared memory, which would let the worker write to the caller's tensor.
    conn.send_bytes(dumps(message))


def _receive(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def _bits(x: torch.Tensor) -> torch.Tensor:
    """The bytes of ``x``'s elements in logical order (NaN payloads and -0.0 distinguished)."""
    flat = torch.empty(x.numel(), dtype=x.dtype)  # fresh: a size-1 dim may keep any stride in a view
    flat.copy_(x.detach().reshape(-1))
    return flat.view(torch.uint8)


def _layout(x: torch.Tensor) -> tuple[Any, ...]:
    return (tuple(x.shape), x.stride(), x.storage_offset(), x.untyped_storage().data_ptr(), x.dtype)


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "it closed its connection without exiting"
    if exitcode < 0:
        try:
            return f"{signal.Signals(-exitcode).name} (signal {-exitcode})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"it exited with status {exitcode}"


def _tensor_arguments(x: Any) -> list[tuple[int, torch.Tensor]]:
    """The tensors a call receives, by argument position: ``x`` itself, or those of an :class:`Args`."""
    if isinstance(x, torch.Tensor):
        return [(0, x)]
    if isinstance(x, Args):
        return x.tensors()
    return []


def _describe_input(x: Any) -> str:
    if isinstance(x, Args):
        return "arguments " + ", ".join(
            f"{tuple(a.shape)} {str(a.dtype).removeprefix('torch.')}" if isinstance(a, torch.Tensor) else repr(a)
            for a in x
        )
    if isinstance(x, torch.Tensor):
        return f"input shape {tuple(x.shape)}, dtype {str(x.dtype).removeprefix('torch.')}"
    return f"input of type {type(x).__name__}"


# ---------------------------------------------------------------- the worker process


def _flat_tensors(result: Any) -> list[tuple[int, torch.Tensor]]:
    if isinstance(result, torch.Tensor):
        return [(0, result)]
    if isinstance(result, tuple | list):
        return [(i, r) for i, r in enumerate(result) if isinstance(r, torch.Tensor)]
    return []


def _detached(result: Any) -> Any:
    if isinstance(result, torch.Tensor):
        return result.detach()
    if isinstance(result, tuple) and hasattr(result, "_fields"):  # a NamedTuple such as Quantized
        return type(result)(*(_detached(r) for r in result))
    if isinstance(result, tuple | list):
        return type(result)(_detached(r) for r in result)
    return result


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    sa, sb = a.untyped_storage(), b.untyped_storage()
    if sa.nbytes() == 0 or sb.nbytes() == 0:
        return False
    start_a, start_b = sa.data_ptr(), sb.data_ptr()
    return start_a < start_b + sb.nbytes() and start_b < start_a + sa.nbytes()


def _serve_call(
    fn: Callable[..., Any],
    x: Any,
    requires_grad: bool,
    call_id: int,
    graphs: collections.OrderedDict[int, tuple[torch.Tensor, list[torch.Tensor]]],
) -> tuple[Any, ...]:
    is_tensor = isinstance(x, torch.Tensor)
    if is_tensor and requires_grad:
        x.requires_grad_(True)
    arguments = _tensor_arguments(x)
    before = {i: (_bits(t), _layout(t)) for i, t in arguments}
    try:
        result = fn(x)
    except BaseException as exc:  # the backend may raise anything, SystemExit included
        return ("raised", type(exc).__name__, _one_line(str(exc)))
    mutated = {
        i: t.detach() for i, t in arguments if _layout(t) != before[i][1] or not torch.equal(_bits(t), before[i][0])
    }
    outputs = _flat_tensors(result)
    aliased = any(_shares_memory(out, t) for _, out in outputs for _, t in arguments)
    differentiable = [(i, out) for i, out in outputs if is_tensor and requires_grad and out.requires_grad]
    try:
        payload = dumps(_detached(result))
    except Exception as exc:
        return ("unpicklable", type(result).__name__, _one_line(f"{type(exc).__name__}: {exc}"))
    if differentiable:
        graphs[call_id] = (x, [out for _, out in differentiable])
        while len(graphs) > GRAPHS_KEPT:
            graphs.popitem(last=False)
    return ("ok", payload, type(result).__name__, mutated or None, aliased, tuple(i for i, _ in differentiable))


def _serve_backward(
    call_id: int,
    grads: list[torch.Tensor],
    graphs: collections.OrderedDict[int, tuple[torch.Tensor, list[torch.Tensor]]],
) -> tuple[Any, ...]:
    if call_id not in graphs:
        return ("raised", "RuntimeError", f"the worker no longer holds the graph of call {call_id}")
    leaf, outputs = graphs[call_id]
    leaf.grad = None
    try:
        torch.autograd.backward(outputs, grads)
    except BaseException as exc:
        return ("raised", type(exc).__name__, _one_line(str(exc)))
    grad = leaf.grad
    leaf.grad = None
    return ("grad", None if grad is None else grad.detach())


def _worker_main(conn: Connection, spec: str) -> None:
    """The worker: load the backend, report what it is, then serve calls until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        backend = load_backend(spec)
    except BackendLoadError as exc:
        _send(conn, ("load-error", _one_line(str(exc))))
        return
    except BaseException as exc:
        _send(conn, ("load-error", _one_line(f"backend {spec!r}: loading raised {type(exc).__name__}: {exc}")))
        return
    info = BackendInfo(
        backend.spec,
        backend.name,
        tuple(backend.ops),
        backend.conventions,
        backend.device,
        backend.differentiable,
    )
    _send(conn, ("ready", info))
    calls = {op: implementation(backend, op) for op in backend.ops}
    graphs: collections.OrderedDict[int, tuple[torch.Tensor, list[torch.Tensor]]] = collections.OrderedDict()
    while True:
        try:
            message = _receive(conn)
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "close":
            return
        try:
            if kind == "call":
                _, call_id, op, x, requires_grad = message
                reply = _serve_call(calls[op], x, requires_grad, call_id, graphs)
            else:
                _, call_id, grads = message
                reply = _serve_backward(call_id, grads, graphs)
        except Exception as exc:  # the harness's side of the call failed, not the backend
            reply = ("internal", _one_line(f"{type(exc).__name__}: {exc}"))
        _send(conn, reply)


# ---------------------------------------------------------------- the parent side


def _stop(process: BaseProcess, conn: Connection, graceful: bool) -> None:
    """End a worker without ever waiting long: ask, then SIGKILL."""
    if graceful and process.is_alive():
        with contextlib.suppress(OSError):
            _send(conn, ("close",))
        process.join(1.0)
    if process.is_alive():
        process.kill()
        process.join(5.0)
    conn.close()


_LIVE: weakref.WeakSet[_Worker] = weakref.WeakSet()


def _stop_all() -> None:
    for worker in list(_LIVE):
        worker.stop(graceful=False)


# Registered after multiprocessing's own exit handler (imported above), so it runs first: that
# handler joins every non-daemon child, and an idle worker would wait for a request forever.
atexit.register(_stop_all)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, spec: str, start_timeout: float, generation: int) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        # Not a daemon: a backend may start processes of its own (torch.compile's compile workers).
        self.process = context.Process(target=_worker_main, args=(child_end, spec), name=f"qcheck-worker-{spec}")
        self.process.start()
        child_end.close()  # the pipe reports EOF once the worker is gone
        self.conn = parent_end
        self.generation = generation
        self._finalizer = weakref.finalize(self, _stop, self.process, parent_end, False)
        _LIVE.add(self)
        try:
            self.info = self._handshake(spec, start_timeout)
        except BaseException:
            self.stop(graceful=False)
            raise

    def _handshake(self, spec: str, start_timeout: float) -> BackendInfo:
        if not self.conn.poll(start_timeout):
            raise BackendLoadError(
                f"backend {spec!r}: the worker process did not finish loading in {start_timeout:g} s"
            )
        try:
            kind, value = _receive(self.conn)
        except (EOFError, OSError):
            self.process.join(5.0)
            raise BackendLoadError(
                f"backend {spec!r}: the worker process died while loading the backend: "
                f"{_exit_description(self.process.exitcode)}"
            ) from None
        if kind == "load-error":
            raise BackendLoadError(value)
        assert isinstance(value, BackendInfo)
        return value

    def exit_description(self) -> str:
        self.process.join(5.0)
        return _exit_description(self.process.exitcode)

    def stop(self, graceful: bool = True) -> None:
        _LIVE.discard(self)
        if self._finalizer.detach() is not None:
            _stop(self.process, self.conn, graceful)


class _Dead(Exception):
    """The worker died (``reason``) or timed out (``reason`` is None) during a request."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class _GraphLink:
    """Where the autograd graph of one call lives: which worker, which call."""

    owner: IsolatedBackend
    op: str
    generation: int
    call_id: int
    dtype: torch.dtype  # the input's, for the returned gradient


class _RemoteGradient(torch.autograd.Function):
    """Forward: the worker's output values.  Backward: the incoming gradients go to the worker,
    which runs the backend's own backward, and the gradient of its input comes back."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, link: _GraphLink, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.link = link
        return tuple(v.clone() for v in values)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[Any, ...]:
        link: _GraphLink = ctx.link
        grad = link.owner._backward(link, [g.detach() for g in grads])
        return (grad, None, *(None for _ in grads))


def _raise(failure: CheckFailure) -> NoReturn:
    """Every crash, timeout and give-up is raised here, outside any ``except`` block: Hypothesis
    tells failures apart by where they were raised (and what they were raised while handling), and a
    remembered failure replayed during shrinking must look the same as the original."""
    raise failure


def _input_key(op: str, x: Any) -> tuple[Any, ...] | None:
    if isinstance(x, Args):
        parts = [_input_key(op, a) if isinstance(a, torch.Tensor) else ("value", repr(a)) for a in x]
        return (op, "args", *parts)
    if not isinstance(x, torch.Tensor):
        return None
    digest = hashlib.sha256(_bits(x).numpy().tobytes()).hexdigest()
    return (op, str(x.dtype), tuple(x.shape), x.stride(), x.requires_grad, digest)


class IsolatedBackend:
    """A backend loaded by :func:`qcheck.backend.load_backend` in a worker process ('spawn').

    A context manager; :meth:`implementation` gives the runner's ``fn(x, conventions)`` for an op.
    A call that crashes the worker or outlives ``call_timeout`` becomes a :class:`CheckFailure`
    with verdict ERROR, and the next call starts a fresh worker.  Loading fails with a one-line
    :class:`BackendLoadError`, as in process.
    """

    max_restarts: ClassVar[int] = 50
    """Crashes and timeouts of one op after which its calls fail at once, without a new worker."""

    def __init__(self, spec: str, *, call_timeout: float = 30.0, start_timeout: float = 120.0) -> None:
        self.spec = spec
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self.restarts = 0
        """Workers started after the first one."""
        self.crashes: dict[str, int] = {}
        """Crashes and timeouts per op (a backward counts for its op)."""
        self._known: dict[tuple[Any, ...], CheckFailure] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count()
        self._generation = 0
        self._closed = False
        self._worker: _Worker | None = _Worker(spec, start_timeout, self._generation)
        self._info = self._worker.info

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> IsolatedBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker (politely for a second, then SIGKILL); never hangs."""
        with self._lock:
            self._closed = True
            self._discard_worker(graceful=True)

    def _discard_worker(self, graceful: bool) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            worker.stop(graceful)

    def _ensure_worker(self, op: str) -> _Worker:
        if self._closed:
            _raise(CheckFailure(f"{op}: the isolated backend {self.spec!r} is closed", "ERROR"))
        if self._worker is None:
            self._generation += 1
            self.restarts += 1
            failure = None
            try:
                self._worker = _Worker(self.spec, self.start_timeout, self._generation)
            except BackendLoadError as exc:
                self.crashes[op] = self.crashes.get(op, 0) + 1
                failure = CheckFailure(f"{op}: the worker process could not be restarted: {exc}", "ERROR")
            if failure is not None:
                _raise(failure)
        assert self._worker is not None
        return self._worker

    # ------------------------------------------------------------ what the backend is

    @property
    def backend(self) -> BackendInfo:
        return self._info

    @property
    def name(self) -> str:
        return self._info.name

    def implementation(self, op: str) -> Callable[[Any, Conventions], Any]:
        """``op`` as the runner calls implementations; it runs in the worker process."""
        if op not in self._info.ops:
            raise KeyError(f"backend {self._info.name!r} does not provide {op!r}")

        def call(x: Any, conventions: Conventions = DEFAULT) -> Any:
            return self._call(op, x)

        call.__name__ = f"{self._info.name}.{op}"
        call.__qualname__ = call.__name__
        return call

    # ------------------------------------------------------------ one request

    def _request(self, worker: _Worker, message: Any) -> Any:
        """Send ``message`` and wait up to ``call_timeout`` for the reply; :class:`_Dead` if the
        worker dies or does not answer in time (it is then killed, and replaced on the next call)."""
        data = dumps(message)
        try:
            worker.conn.send_bytes(data)
            if not worker.conn.poll(self.call_timeout):
                self._discard_worker(graceful=False)
                raise _Dead(None)
            return _receive(worker.conn)
        except (EOFError, OSError):
            reason = worker.exit_description()
            self._discard_worker(graceful=False)
            raise _Dead(reason) from None
        except BaseException:  # KeyboardInterrupt while waiting: a reply may still come, so the
            self._discard_worker(graceful=False)  # worker can no longer be trusted to be in step
            raise

    def _call(self, op: str, x: Any) -> Any:
        with self._lock:
            key = _input_key(op, x) if self._known else None  # hashing every input costs; crashes are rare
            if key is not None and key in self._known:
                known = self._known[key]
                _raise(CheckFailure(known.message, known.verdict))
            failures = self.crashes.get(op, 0)
            if failures >= self.max_restarts:
                _raise(
                    CheckFailure(
                        f"the worker crashed {failures} times; giving up on {op} "
                        f"(crashes and timeouts count; max_restarts={self.max_restarts})",
                        "ERROR",
                    )
                )
            worker = self._ensure_worker(op)
            call_id = next(self._ids)
            requires_grad = isinstance(x, torch.Tensor) and x.requires_grad
            if isinstance(x, torch.Tensor):
                sent: Any = x.detach()
            elif isinstance(x, Args):
                sent = x.map_tensors(torch.Tensor.detach)
            else:
                sent = x
            reason: str | None = ""
            try:
                reply = self._request(worker, ("call", call_id, op, sent, requires_grad))
            except _Dead as dead:
                reason = dead.reason
            if reason != "":
                self.crashes[op] = failures + 1
                if reason is None:
                    message = (
                        f"{op} timed out after {self.call_timeout:g} s "
                        "(the call was abandoned and the worker restarted)"
                    )
                else:
                    message = (
                        f"{op} crashed the worker process: {reason} ({_describe_input(x)}); "
                        "a fresh worker serves the next call"
                    )
                failure = CheckFailure(message, "ERROR")
                key = _input_key(op, x) if key is None else key  # x is as sent: a crash returns no mutation
                if key is not None:
                    self._known[key] = failure
                _raise(CheckFailure(message, "ERROR"))
            return self._result(op, x, reply, worker.generation, call_id)

    def _result(self, op: str, x: Any, reply: tuple[Any, ...], generation: int, call_id: int) -> Any:
        kind = reply[0]
        if kind == "raised":
            raise BackendRaised(f"{op} raised {reply[1]}: {reply[2]}")
        if kind == "internal":
            raise CheckFailure(f"{op}: the worker process could not handle the call: {reply[1]}", "ERROR")
        if kind == "unpicklable":
            raise CheckFailure(
                f"{op} returned a {reply[1]}, which cannot be passed back from the worker process ({reply[2]})",
                "ERROR",
            )
        _, payload, type_name, mutated, aliased, differentiable = reply
        if mutated is not None:
            arguments = dict(_tensor_arguments(x))
            for position, after in mutated.items():
                _apply_mutation(arguments[position], after)
        if aliased:
            raise CheckFailure(
                f"{op} returned an output that shares memory with its input (an alias, not a new tensor)"
            )
        try:
            result = pickle.loads(payload)
        except Exception as exc:
            raise CheckFailure(
                f"{op} returned a {type_name}, which cannot be passed back from the worker process "
                f"({type(exc).__name__}: {_one_line(str(exc))})",
                "ERROR",
            ) from None
        if not differentiable or not isinstance(x, torch.Tensor):
            return result
        link = _GraphLink(self, op, generation, call_id, x.dtype)
        outputs = [result] if isinstance(result, torch.Tensor) else list(result)
        tracked = _RemoteGradient.apply(x, link, *(outputs[i] for i in differentiable))  # type: ignore[no-untyped-call]
        for i, value in zip(differentiable, tracked, strict=True):
            outputs[i] = value
        if isinstance(result, torch.Tensor):
            return outputs[0]
        if isinstance(result, tuple) and hasattr(result, "_fields"):
            return type(result)(*outputs)
        return type(result)(outputs)

    def _backward(self, link: _GraphLink, grads: list[torch.Tensor]) -> torch.Tensor | None:
        """The gradient of the call's input for ``grads``, computed by the worker's graph."""
        with self._lock:
            op = link.op
            if self._worker is None or self._worker.generation != link.generation:
                raise RuntimeError(
                    f"{op} backward: the worker process that computed this output has been replaced "
                    "since (after a crash or timeout); its autograd graph is gone"
                )
            try:
                reply = self._request(self._worker, ("backward", link.call_id, grads))
            except _Dead as dead:
                self.crashes[op] = self.crashes.get(op, 0) + 1
                if dead.reason is None:
                    raise RuntimeError(
                        f"{op} backward timed out after {self.call_timeout:g} s (the worker was restarted)"
                    ) from None
                raise RuntimeError(f"{op} backward crashed the worker process: {dead.reason}") from None
            if reply[0] == "raised":
                raise RuntimeError(f"{op} backward raised {reply[1]}: {reply[2]}")
            if reply[0] == "internal":
                raise RuntimeError(f"{op} backward: the worker process could not handle it: {reply[1]}")
            grad: torch.Tensor | None = reply[1]
            return None if grad is None else grad.to(link.dtype)


def _apply_mutation(x: torch.Tensor, after: torch.Tensor) -> None:
    """Make the caller's ``x`` what the worker's copy became, as an in-place op would have."""
    with torch.no_grad():
        if (tuple(after.shape), after.stride(), after.storage_offset()) == (
            tuple(x.shape),
            x.stride(),
            x.storage_offset(),
        ) and after.dtype == x.dtype:
            x.copy_(after)
        else:  # the backend re-strided or replaced the tensor itself (set_, resize_, as_strided_)
            x.set_(after.untyped_storage(), after.storage_offset(), after.shape, after.stride())
