"""Grade a backend: run every check of every op it provides, under the conventions it declares,
and on failure name the known-bad variants that reproduce its output (fingerprints).

The data classes here are what reports are written from (:mod:`qcheck.report`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fnmatch
import io
import multiprocessing
import multiprocessing.connection
import os
import pickle
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import torch

from qcheck import known_bad
from qcheck.arguments import Args
from qcheck.backend import CONTRACT_OPS, Backend, load_backend
from qcheck.backend import implementation as in_process_implementation
from qcheck.checks import CHECKS, Check, CheckFailure, CheckResult, run_check
from qcheck.checks.catalogue import SCALE_RTOL_EPS
from qcheck.checks.helpers import same_layout_copy
from qcheck.conventions import DEFAULT, Conventions
from qcheck.input_domain import fit
from qcheck.kernel_strategies import probes as kernel_probes
from qcheck.layer_check import LAYER_NAMES, layer_result
from qcheck.ops import OPS

FAILING = ("FAIL", "ERROR")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One check's result for one backend, with what the grader learned from a failure."""

    result: CheckResult
    fingerprints: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    counterexample_file: str | None = None
    replay_command: str | None = None
    expected_to_fail: bool = False

    @property
    def verdict(self) -> str:
        """PASS, FAIL, ERROR, NOT APPLICABLE, or XFAIL (a listed expected failure that failed)."""
        if self.expected_to_fail and self.result.verdict in FAILING:
            return "XFAIL"
        return self.result.verdict

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING


@dataclasses.dataclass(frozen=True)
class BackendGrade:
    """Everything graded for one backend spec."""

    spec: str
    name: str
    conventions: str
    provided: tuple[str, ...]
    not_provided: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    load_error: str | None
    seconds: float
    unmatched_xfails: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Loaded, provides at least one graded op, and no check failed."""
        return self.load_error is None and bool(self.provided) and not any(o.failed for o in self.outcomes)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for outcome in self.outcomes:
            for name in outcome.fingerprints:
                seen.setdefault(name)
        return tuple(seen)


@dataclasses.dataclass(frozen=True)
class XfailList:
    """Expected failures: lines of ``CHECK`` or ``BACKEND::CHECK`` (glob patterns on check keys
    like ``b158_quantize:B158-2`` or requirement IDs like ``B158-2``); ``#`` starts a comment."""

    entries: tuple[tuple[str | None, str], ...] = ()

    @classmethod
    def read(cls, path: Path) -> XfailList:
        entries: list[tuple[str | None, str]] = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            backend, _, pattern = line.rpartition("::")
            entries.append((backend or None, pattern.strip()))
        return cls(tuple(entries))

    def matches(self, backend: str, check: Check) -> tuple[str, ...]:
        """The entries that mark ``check`` as expected to fail for ``backend``."""
        hits = []
        for owner, pattern in self.entries:
            if owner not in (None, backend):
                continue
            if fnmatch.fnmatchcase(check.key, pattern) or fnmatch.fnmatchcase(check.requirement, pattern):
                hits.append(self.text(owner, pattern))
        return tuple(hits)

    @staticmethod
    def text(owner: str | None, pattern: str) -> str:
        return f"{owner}::{pattern}" if owner else pattern


Implementations = Callable[[str], Callable[..., Any]]


@dataclasses.dataclass(frozen=True)
class LoadedBackend:
    """What grading needs of a backend, in process or isolated in a worker."""

    spec: str
    name: str
    provided: tuple[str, ...]
    conventions: Conventions
    implementation: Implementations
    differentiable: bool = True


@contextlib.contextmanager
def open_backend(spec: str, *, isolate: bool, timeout: float) -> Iterator[LoadedBackend]:
    """Load ``spec`` in process or in a worker process; raises ``BackendLoadError``."""
    if isolate:
        from qcheck.isolation import IsolatedBackend

        with IsolatedBackend(spec, call_timeout=timeout) as isolated:
            info = isolated.backend
            yield LoadedBackend(
                spec,
                info.name,
                tuple(info.provided),
                info.conventions,
                isolated.implementation,
                info.differentiable,
            )
        return
    backend: Backend = load_backend(spec)
    yield LoadedBackend(
        spec,
        backend.name,
        backend.provided,
        backend.conventions,
        lambda op: in_process_implementation(backend, op),
        backend.differentiable,
    )


def _matches(only: str | None, *texts: str) -> bool:
    return not only or any(fnmatch.fnmatchcase(text, only) or only in text for text in texts)


def selected_checks(provided: Sequence[str], only: str | None) -> list[Check]:
    """Checks of the provided ops, filtered by a glob on the key, requirement or name (the layer
    check, LAYER-1, runs in the thorough profile only: see :func:`grade_backend`)."""
    return [c for c in CHECKS if c.op in provided and _matches(only, c.key, c.requirement, c.name)]


def _inputs(witness: Any) -> list[Any]:
    """The op inputs inside a witness: the tensor or :class:`Args` itself, or those of a tuple."""
    if isinstance(witness, torch.Tensor | Args):
        return [witness]
    if isinstance(witness, tuple):
        return [w for w in witness if isinstance(w, torch.Tensor | Args)]
    return []


def _outputs(value: Any) -> tuple[torch.Tensor, ...] | None:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, tuple | list) and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(value)
    return None


def _same(a: Any, b: Any) -> bool:
    if a is RAISED or b is RAISED:
        return a is b
    left, right = _outputs(a), _outputs(b)
    if left is None or right is None or len(left) != len(right):
        return False
    for x, y in zip(left, right, strict=True):
        if x.numel() != y.numel():
            return False
        xs, ys = x.detach().reshape(-1), y.detach().reshape(-1)
        if x.is_floating_point() != y.is_floating_point():
            return False
        left64, right64 = xs.to(torch.float64), ys.to(torch.float64)
        equal = (left64 == right64) | (left64.isnan() & right64.isnan())  # NaN matches NaN
        if x.is_floating_point():  # scales and outputs: within the scale tolerance (CMP-3) of their dtype
            eps = max(torch.finfo(torch.float32).eps, torch.finfo(y.dtype).eps if y.is_floating_point() else 0.0)
            equal |= (left64 - right64).abs() <= SCALE_RTOL_EPS * eps * right64.abs()
        if not bool(equal.all()):
            return False
    return True


RAISED = object()
"""What :func:`_safe_call` returns when the call raised: two calls that both raise agree."""


def _safe_call(fn: Callable[..., Any], x: Any, conventions: Conventions) -> Any:
    try:
        with torch.no_grad():
            return fn(same_layout_copy(x), conventions)
    except Exception:
        return RAISED


def probes(op: str, conventions: Conventions = DEFAULT) -> list[Any]:
    """Fixed inputs that tell known-bad variants apart: exact ties, all-equal, tiny, zero rows,
    a transposed view and an outlier (each aimed at one class of bug); for the packing ops, one-hot
    codes at the edges of bytes and blocks in the declared layout; for BitLinear, a batch of
    tokens, a bias and a dot product past int16."""
    if not OPS[op].is_quantizer:
        return kernel_probes(op, conventions)
    if OPS[op].input_kind == "weight":
        return [
            torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, 1.0]),  # mean |w| = 1: +-0.5 are ties
            torch.tensor([[1.0, -1.0, 0.5, -0.5], [2.0, 1.0, 0.25, -0.25]]),
            torch.full((16,), 0.3),
            torch.tensor([1e-23, -1e-23, 3e-23]),
            torch.tensor([[0.0, 0.0, 0.0], [1.5, -2.0, 0.25]]),
            torch.arange(-6.0, 6.0).reshape(3, 4).t(),
            torch.tensor([0.1, -0.2, 0.3, 300.0, -0.05, 0.07, 0.01, -0.4]),
            torch.cat([torch.ones(199), torch.tensor([1000.0])]),  # outlier at 166 gamma: int8 wrap
            torch.full((2000,), 100.0, dtype=torch.float16),  # a float16 sum overflows
        ]
    return [
        torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -127.0]]),  # x * 127 / absmax on ties
        torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.25]]),
        torch.arange(-6.0, 6.0).reshape(3, 4).t(),
        torch.tensor([[[0.1, -0.2, 3.0], [0.5, 0.25, -0.125]], [[5e-7, -2e-6, 3e-6], [1.0, 1.0, 1.0]]]),
    ]


def _fails_alike(check: Check, variant: Callable[..., Any], witness: Any, conventions: Conventions) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `assume` outside a Hypothesis test warns
            check.verify(variant, witness, conventions, OPS[check.op])
    except CheckFailure:
        return True
    except Exception:  # includes an unsatisfied assumption: not comparable
        return False
    return False


def fingerprint(check: Check, witness: Any, impl: Callable[..., Any], conventions: Conventions) -> tuple[str, ...]:
    """Known-bad variants of the check's op that fail the same check on the same input and whose
    outputs equal the backend's exactly on that input and on the fixed :func:`probes` (so that a
    match is specific, not a shared corner case)."""
    op = check.op
    inputs = _inputs(witness)
    if not inputs:
        return ()
    inputs += [fit(probe, op, conventions) for probe in probes(op, conventions)]  # in the declared domain
    received = [_safe_call(impl, x, conventions) for x in inputs]
    names = []
    for variant in known_bad.for_op(op):
        if variant.symptom is not None and variant.symptom != check.requirement:
            continue  # a behavioural bug is named only where it shows
        if not _fails_alike(check, variant.fn, witness, conventions):
            continue
        calls = [_safe_call(variant.fn, x, variant.conventions) for x in inputs]
        if all(_same(v, r) for v, r in zip(calls, received, strict=True)):
            names.append(variant.name)
    return tuple(names)


def hints(op: str, witnesses: Sequence[Any], impl: Callable[..., Any], conventions: Conventions) -> tuple[str, ...]:
    """Diagnoses that are not a catalogue match: a quantize op that returns dequantized values."""
    if OPS[op].form != "quantize":
        return ()
    fake = OPS[f"{OPS[op].family}_fake_quantize"].reference
    for x in (t for w in witnesses for t in _inputs(w)):
        result = _outputs(_safe_call(impl, x, conventions))
        if result and result[0].is_floating_point():
            expected = fake(x, conventions)
            if result[0].shape == expected.shape and torch.allclose(result[0].double(), expected.double(), rtol=1e-3):
                return (
                    f"{op} returns dequantized values (codes * scale) where int8 codes are meant: "
                    f"it looks like {OPS[op].family}_fake_quantize",
                )
    return ()


def not_applicable(check: Check, reason: str) -> CheckResult:
    return CheckResult(check.key, check.requirement, check.name, check.op, "NOT APPLICABLE", reason, None, 0, 0, 0.0)


Progress = Callable[[Outcome], None]


def grade_backend(
    spec: str,
    *,
    profile: str = "ci",
    seed: int = 0,
    only: str | None = None,
    xfails: XfailList | None = None,
    isolate: bool = True,
    timeout: float = 30.0,
    save: Callable[[str, CheckResult, str], tuple[str, str] | None] | None = None,
    progress: Progress | None = None,
) -> BackendGrade:
    """Grade one backend.  ``save(backend_name, result, conventions_text)`` stores a counterexample
    and returns its path and replay command; ``progress`` sees each outcome as it is decided."""
    from qcheck.backend import BackendLoadError

    started = time.perf_counter()
    xfails = xfails or XfailList()
    try:
        with open_backend(spec, isolate=isolate, timeout=timeout) as backend:
            outcomes: list[Outcome] = []
            used_xfails: set[str] = set()
            for check in selected_checks(backend.provided, only):
                impl = backend.implementation(check.op)
                if check.requirement == "STE-1" and not backend.differentiable:
                    result = not_applicable(check, "the backend declares differentiable = False")
                else:
                    result = run_check(check, impl, backend.conventions, profile=profile, base_seed=seed)
                listed = xfails.matches(backend.name, check)
                used_xfails.update(listed)
                outcome = Outcome(result, expected_to_fail=bool(listed))
                if result.verdict in FAILING:
                    witnesses = [result.witness]
                    outcome = dataclasses.replace(
                        outcome,
                        fingerprints=fingerprint(check, result.witness, impl, backend.conventions),
                        hints=hints(check.op, witnesses, impl, backend.conventions),
                    )
                    stored = save(backend.name, result, backend.conventions.describe()) if save else None
                    if stored:
                        outcome = dataclasses.replace(outcome, counterexample_file=stored[0], replay_command=stored[1])
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
            if profile == "thorough" and "b158_quantize" in backend.provided and _matches(only, *LAYER_NAMES):
                pack = backend.implementation("pack_ternary") if "pack_ternary" in backend.provided else None
                quantize = backend.implementation("b158_quantize")
                layer = Outcome(layer_result(quantize, pack, backend.conventions, seed=seed))
                outcomes.append(layer)
                if progress:
                    progress(layer)
            all_entries = {XfailList.text(o, p) for o, p in xfails.entries if o in (None, backend.name)}
            return BackendGrade(
                spec,
                backend.name,
                backend.conventions.describe(),
                backend.provided,
                tuple(op for op in CONTRACT_OPS if op not in backend.provided),
                tuple(outcomes),
                None,
                time.perf_counter() - started,
                tuple(sorted(all_entries - used_xfails)),
            )
    except BackendLoadError as exc:
        return BackendGrade(spec, spec, "", (), CONTRACT_OPS, (), str(exc), time.perf_counter() - started)


# ---------------------------------------------------------------- several backends, across cores


@dataclasses.dataclass(frozen=True)
class GradeTask:
    """One :func:`grade_backend` call to make in a worker process: ``options`` are its keyword
    arguments, picklable (``progress`` and ``save`` module-level functions or partials of them)."""

    spec: str
    options: dict[str, Any]
    directory: str = dataclasses.field(default_factory=os.getcwd)
    """The working directory to grade in (a forkserver's child starts in the server's)."""


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one: a child is a fork of a server process that imported qcheck
    and torch and ran nothing else; elsewhere spawn.  Either way every backend starts from the
    same fresh state.

    The server runs with one OpenMP thread: a fork of a process whose OpenMP thread pool has
    started hangs in its first parallel region, and importing torch (or code that runs tensor
    operations at import) starts that pool.  Each child sets the caller's thread count again."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["qcheck.grade", "qcheck.builtin_backends"])
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    try:
        forkserver.ensure_running()  # a no-op once it runs
    finally:
        _restore_environment(saved)
    return context


def _restore_environment(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _grade_task(conn: Connection, task: GradeTask, environment: dict[str, str | None], threads: int) -> None:
    """Worker process: grade ``task`` with the caller's thread settings, sending back the grade
    and whatever it printed."""
    from qcheck.isolation import dumps

    output = io.StringIO()
    try:
        _restore_environment(environment)  # for the backend's own worker processes too
        torch.set_num_threads(threads)
        os.chdir(task.directory)
        with contextlib.redirect_stdout(output):
            grade = grade_backend(task.spec, **task.options)
        message: tuple[Any, ...] = ("ok", grade, output.getvalue())
    except BaseException as exc:  # a harness bug: reported for this backend, the others go on
        message = ("error", f"grading raised {type(exc).__name__}: {exc}", output.getvalue())
    conn.send_bytes(dumps(message))
    conn.close()


def _failed_grade(spec: str, reason: str) -> BackendGrade:
    return BackendGrade(spec, spec, "", (), CONTRACT_OPS, (), reason, 0.0)


def grade_in_workers(tasks: Sequence[GradeTask], jobs: int) -> Iterator[tuple[BackendGrade, str]]:
    """Grade each task in a fresh worker process, up to ``jobs`` at a time, and yield each grade
    with what its grading printed, in the order of ``tasks`` (as soon as that order allows).

    A fresh process per backend makes every grade independent of what was graded before it
    (known-bad variants that cache results, torch.compile state): so ``jobs`` changes only the
    wall time, never a report.  A worker that dies gives a grade with a load error."""
    context = _context()
    environment = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    threads = torch.get_num_threads()
    pending = collections.deque(enumerate(tasks))
    running: dict[Connection, tuple[int, BaseProcess]] = {}
    done: dict[int, tuple[BackendGrade, str]] = {}
    following = 0
    try:
        while pending or running:
            while pending and len(running) < max(jobs, 1):
                index, task = pending.popleft()
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(  # type: ignore[attr-defined]
                    target=_grade_task, args=(sender, task, environment, threads), name=f"qcheck-grade-{task.spec}"
                )
                process.start()
                sender.close()
                running[receiver] = (index, process)
            for ready in multiprocessing.connection.wait(list(running)):
                assert isinstance(ready, Connection)
                index, process = running.pop(ready)
                spec = tasks[index].spec
                try:
                    kind, value, printed = pickle.loads(ready.recv_bytes())
                except (EOFError, OSError):
                    process.join()
                    kind, value, printed = "error", f"the grading process died (exit code {process.exitcode})", ""
                ready.close()
                process.join()
                done[index] = (value, printed) if kind == "ok" else (_failed_grade(spec, value), printed)
            while following in done:
                yield done.pop(following)
                following += 1
    finally:
        for receiver, (_, process) in running.items():
            process.kill()
            process.join()
            receiver.close()
