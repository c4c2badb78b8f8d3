"""The one runner: executes a check against an implementation with Hypothesis, and returns a
verdict with the shrunk counterexample; it never lets the implementation's exception escape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import torch
from hypothesis import given, seed, settings
from hypothesis.reporting import with_reporter

from qcheck.checks.base import Check, CheckFailure, Evidence, Implementation, Verdict
from qcheck.conventions import DEFAULT, Conventions
from qcheck.input_domain import fit
from qcheck.ops import OPS
from qcheck.profiles import profile_settings

SHRINK_SECONDS = 10
"""Hypothesis shrinks a failure for up to 300 s by default; a grading run bounds it so a failing
check costs seconds.  The verdict never depends on it; only how small the example gets might."""


def _bound_shrinking() -> None:
    from hypothesis.internal.conjecture import engine

    engine.MAX_SHRINKING_SECONDS = SHRINK_SECONDS  # no public setting exists for this bound


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
    _bound_shrinking()
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
        base, max_examples=max_examples or base.max_examples, report_multiple_bugs=False, derandomize=False
    )
    last_failure: list[tuple[Any, CheckFailure]] = []
    near = [0]
    examples = [0]

    @seed(_seed_for(check, base_seed))
    @chosen
    @given(check.inputs(conventions).map(lambda value: fit(value, check.op, conventions)))
    def property_(value: Any) -> None:
        examples[0] += 1
        try:
            evidence: Evidence = check.verify(impl, value, conventions, op)
        except CheckFailure as failure:
            last_failure.append((value, failure))
            raise
        near[0] += evidence.near_boundary

    verdict: Verdict = "PASS"
    message = "passed"
    counterexample = None
    witness: Any = None
    reports: list[str] = []
    try:
        with with_reporter(lambda text: reports.append(str(text))):  # no Hypothesis chatter on stdout
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
    if verdict in ("FAIL", "ERROR") and any("slow progress" in text for text in reports):
        message += f" (shrinking stopped after {SHRINK_SECONDS} s: the example may not be minimal)"
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
