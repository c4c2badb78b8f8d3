"""The one runner: executes a check against an implementation with Hypothesis, and returns a
verdict with the shrunk counterexample; it never lets the implementation's exception escape.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import torch
from hypothesis import Phase, given, seed, settings
from hypothesis.reporting import with_reporter

from qcheck.checks.base import Check, CheckFailure, Evidence, Implementation, Verdict
from qcheck.conventions import DEFAULT, Conventions
from qcheck.input_domain import fit
from qcheck.ops import OPS
from qcheck.profiles import profile_settings

SHRINK_CALLS = 400
"""Hypothesis shrinks a failure for up to 300 s by default; a grading run bounds shrinking by the
number of times the property runs after the failure is found, so a failing check costs seconds and
the shrunk example (hence the counterexample and the fingerprints) is the same on any machine under
any load.  The verdict never depends on it; only how small the example gets might."""
SHRINK_SECONDS = 60
"""A safety bound in wall-clock seconds on shrinking, for a backend so slow that SHRINK_CALLS calls
take longer; when it stops shrinking the report says so, and the example may differ between runs."""


class _ShrinkClock:
    """Stands in for the ``time`` module inside Hypothesis's engine, whose shrinking deadline is
    its only use of ``perf_counter`` that matters (the others time phases for statistics): the
    engine's seconds become calls of the property, so its deadline ``perf_counter() +
    MAX_SHRINKING_SECONDS`` at the start of shrinking is a budget of SHRINK_CALLS calls.  Past
    SHRINK_SECONDS of real time the clock jumps ahead, which ends shrinking at the next call."""

    JUMP = 1e15

    def __init__(self) -> None:
        self.calls = 0
        self.first_failure: float | None = None
        self.timed_out = False

    def tick(self) -> None:
        self.calls += 1
        if self.first_failure is not None and time.perf_counter() - self.first_failure > SHRINK_SECONDS:
            self.timed_out = True

    def failed(self) -> None:
        if self.first_failure is None:
            self.first_failure = time.perf_counter()

    def perf_counter(self) -> float:
        return self.calls + (self.JUMP if self.timed_out else 0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _bound_shrinking(clock: _ShrinkClock) -> Iterator[None]:
    from hypothesis.internal.conjecture import engine

    # no public setting exists for this bound
    saved = getattr(engine, "time"), engine.MAX_SHRINKING_SECONDS  # noqa: B009
    setattr(engine, "time", clock)  # noqa: B010
    engine.MAX_SHRINKING_SECONDS = SHRINK_CALLS
    try:
        yield
    finally:
        setattr(engine, "time", saved[0])  # noqa: B010
        engine.MAX_SHRINKING_SECONDS = saved[1]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The verdict of one check on one implementation."""

    key: str
    requirement: str
    name: str
    op: str
    verdict: Verdict
    message: str
    counterexample: str | None
    near_boundary: int
    examples: int
    seconds: float
    witness: Any = dataclasses.field(default=None, repr=False, compare=False)
    """The shrunk failing input itself (a tensor or a tuple), for fingerprints and saving."""

    def summary(self) -> dict[str, Any]:
        """Everything but the witness, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "witness"}


def tensor_literal(x: torch.Tensor) -> str:
    """A runnable ``torch.tensor([...], dtype=...)`` for ``x`` (values exact; layout noted)."""
    values = x.detach().to(torch.float64).tolist()
    dtype = str(x.dtype).removeprefix("torch.")
    text = f"torch.tensor({values!r}, dtype=torch.{dtype})"
    if x.dim() and not x.is_contiguous():
        text += f"  # passed as a non-contiguous view, strides {x.stride()}"
    return text


def describe_input(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return tensor_literal(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(describe_input(v) for v in value) + ")"
    return repr(value)


@contextlib.contextmanager
def _without_local_constants() -> Iterator[None]:
    """Hypothesis mixes into its draws literal constants read from the source of every module of
    the local code base imported so far (``sys.modules``), so what a check draws would depend on
    which modules the process happened to import: ``qcheck grade`` in process, in a grading
    worker and under pytest would draw differently, and a backend's own source would steer its
    inputs.  Inside a check only Hypothesis's global constants are mixed in."""
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants

    saved = providers._get_local_constants
    none = Constants()
    providers.CONSTANTS_CACHE.cache.clear()  # entries may hold another run's local constants
    providers._get_local_constants = lambda: none
    try:
        yield
    finally:
        providers._get_local_constants = saved
        providers.CONSTANTS_CACHE.cache.clear()


def _seed_for(check: Check, base_seed: int) -> int:
    digest = hashlib.sha256(f"{check.key}:{base_seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def run_check(
    check: Check,
    impl: Implementation,
    conventions: Conventions = DEFAULT,
    *,
    profile: str = "ci",
    base_seed: int = 0,
    max_examples: int | None = None,
) -> CheckResult:
    """Run ``check`` on ``impl`` under ``conventions``; same check, seed and profile, same verdict."""
    op = OPS[check.op]
    started = time.perf_counter()
    if not check.applies(conventions):
        return CheckResult(
            check.key,
            check.requirement,
            check.name,
            check.op,
            "NOT APPLICABLE",
            f"does not apply under {conventions.describe()}",
            None,
            0,
            0,
            0.0,
        )
    base = profile_settings(profile)
    chosen = settings(
        base,
        max_examples=max_examples or base.max_examples,
        report_multiple_bugs=False,
        derandomize=False,
        # the explain phase only annotates Hypothesis's own report, which a grade discards
        phases=tuple(p for p in base.phases if p is not Phase.explain),
    )
    clock = _ShrinkClock()
    last_failure: list[tuple[Any, CheckFailure]] = []
    near = [0]
    examples = [0]

    @seed(_seed_for(check, base_seed))
    @chosen
    @given(check.inputs(conventions).map(lambda value: fit(value, check.op, conventions)))
    def property_(value: Any) -> None:
        clock.tick()
        examples[0] += 1
        try:
            evidence: Evidence = check.verify(impl, value, conventions, op)
        except CheckFailure as failure:
            last_failure.append((value, failure))
            clock.failed()
            raise
        except BaseException:
            clock.failed()
            raise
        near[0] += evidence.near_boundary

    verdict: Verdict = "PASS"
    message = "passed"
    counterexample = None
    witness: Any = None
    reports: list[str] = []
    try:
        # no Hypothesis chatter on stdout
        with with_reporter(lambda text: reports.append(str(text))), _bound_shrinking(clock), _without_local_constants():
            property_()
    except CheckFailure:
        value, failure = last_failure[-1]  # Hypothesis replays the shrunk example last
        verdict, message, counterexample = failure.verdict, failure.message, describe_input(value)
        witness = value
    except Exception as exc:  # a harness error: report it as ERROR, never a lost report
        verdict, message = "ERROR", f"the check itself failed: {type(exc).__name__}: {exc}"
        if last_failure:
            counterexample = describe_input(last_failure[-1][0])
            witness = last_failure[-1][0]
    if verdict in ("FAIL", "ERROR") and clock.timed_out:
        message += f" (shrinking stopped after {SHRINK_SECONDS} s: the example may not be minimal)"
    elif verdict in ("FAIL", "ERROR") and any("slow progress" in text for text in reports):
        message += f" (shrinking stopped after {SHRINK_CALLS} calls: the example may not be minimal)"
    if verdict == "PASS" and near[0]:
        message = f"passed; {near[0]} element(s) differed only inside the near-boundary window (counted)"
    return CheckResult(
        check.key,
        check.requirement,
        check.name,
        check.op,
        verdict,
        message,
        counterexample,
        near[0],
        examples[0],
        time.perf_counter() - started,
        witness,
    )
