"""A check is data: the SPEC requirement it proves, the op, the inputs and the verification.

One runner (:mod:`qcheck.checks.runner`) executes every check; adding a check is one entry in
:mod:`qcheck.checks.catalogue`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from hypothesis.strategies import SearchStrategy

from qcheck.conventions import Conventions
from qcheck.ops import Op

Verdict = Literal["PASS", "FAIL", "ERROR", "NOT PROVIDED", "NOT APPLICABLE"]
Implementation = Callable[..., Any]
"""An op implementation called as ``fn(tensor, conventions)``."""


class CheckFailure(Exception):
    """The implementation under test broke the check's requirement (verdict FAIL or ERROR)."""

    def __init__(self, message: str, verdict: Verdict = "FAIL") -> None:
        super().__init__(message)
        self.message = message
        self.verdict = verdict


class BackendRaised(CheckFailure):
    """The implementation raised an exception (verdict ERROR, unless a check expects a rejection)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "ERROR")


@dataclasses.dataclass
class Evidence:
    """What one passing example showed: elements that differed only near a boundary."""

    near_boundary: int = 0


Verify = Callable[[Implementation, Any, Conventions, Op], Evidence]


def always(conventions: Conventions) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Check:
    """One conformance check of one op."""

    requirement: str
    name: str
    op: str
    proves: str
    inputs: Callable[[Conventions], SearchStrategy[Any]]
    verify: Verify
    applies: Callable[[Conventions], bool] = always

    @property
    def key(self) -> str:
        """Unique across the harness: ``b158_quantize:B158-3``."""
        return f"{self.op}:{self.requirement}"

    @property
    def title(self) -> str:
        return f"{self.requirement} {self.name}"
