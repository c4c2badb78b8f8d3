"""Conformance checks as data (:mod:`.catalogue`) and the one runner that executes them."""

from qcheck.checks.base import Check, CheckFailure, Evidence
from qcheck.checks.catalogue import CHECKS, by_key, checks_for
from qcheck.checks.runner import CheckResult, run_check

__all__ = ["CHECKS", "Check", "CheckFailure", "CheckResult", "Evidence", "by_key", "checks_for", "run_check"]
