"""The harness tests itself: both references pass every check, every known-bad variant is caught
by at least one named check, and every check catches at least one known-bad variant (SPEC: a check
is only real if it fails on a wrong implementation).  Runs the ``quick`` profile once per module.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from qcheck import known_bad, strategies
from qcheck.checks import CHECKS, by_key, run_check
from qcheck.implementations import builtin
from qcheck.verify import Graded, grade, unproven_checks

PROFILE = "quick"


@pytest.fixture(scope="module")
def graded() -> dict[str, Graded]:
    return {i.name: grade(i, profile=PROFILE, seed=0, log=False) for i in builtin()}


@pytest.mark.parametrize("name", ["reference", "reference-numpy"])
def test_reference_passes_every_check(graded: dict[str, Graded], name: str) -> None:
    failures = [f"{r.key}: {r.message} <- {r.counterexample}" for r in graded[name].failed]
    assert not failures, "\n".join(failures)
    assert sum(r.verdict == "PASS" for r in graded[name].results) >= len(CHECKS) - 3


@pytest.mark.parametrize("variant", [v.name for v in known_bad.CATALOGUE])
def test_every_known_bad_variant_is_caught_by_a_named_check(graded: dict[str, Graded], variant: str) -> None:
    result = graded[f"known-bad:{variant}"]
    assert result.failed, f"known-bad {variant!r} passed every check of {known_bad.by_name(variant).op}"
    for failure in result.failed:
        assert failure.requirement and failure.message and failure.counterexample


def test_every_check_catches_a_known_bad_variant(graded: dict[str, Graded]) -> None:
    assert unproven_checks(list(graded.values())) == []


def test_sign_before_scale_is_reported_as_scale_valued_codes_with_a_minimal_example() -> None:
    check = by_key("b1_quantize:B1-1")
    result = run_check(check, known_bad.by_name("sign-before-scale").fn, profile=PROFILE)
    assert result.verdict == "FAIL"
    assert "codes" in result.message and "int8" in result.message
    assert result.counterexample is not None and result.counterexample.startswith("torch.tensor([")


def test_scale_before_sign_gives_zero_on_ties_with_a_minimal_example() -> None:
    result = run_check(by_key("b1_quantize:B1-1"), known_bad.by_name("scale-before-sign").fn, profile=PROFILE)
    assert result.verdict == "FAIL"
    assert "[0]" in result.message and "Sign(0)" in result.message
    assert result.counterexample is not None


def test_scale_before_sign_gives_all_zeros_on_tiny_weights() -> None:
    tiny = dataclasses.replace(
        by_key("b1_quantize:B1-2"),
        inputs=lambda c: strategies.weights(conventions=c, families=("subnormal",), dtype=torch.float32),
    )
    result = run_check(tiny, known_bad.by_name("scale-before-sign").fn, profile="ci")
    assert result.verdict == "FAIL"
    assert "received 0" in result.message
    assert result.counterexample is not None and "e-" in result.counterexample
