"""The harness tests itself: both references pass every check, every known-bad variant is caught
by at least one named check, and every check catches at least one known-bad variant (SPEC: a check
is only real if it fails on a wrong implementation).  Runs the ``quick`` profile once per module.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import torch

from qcheck import builtin_backends, known_bad, strategies
from qcheck.checks import CHECKS, by_key, run_check
from qcheck.verify import Verdict, grade_builtins, unproven_checks

PROFILE = "quick"


# torch-compile is graded by `nox -s verify` (inductor's compile time does not belong in a unit run)
SPECS = [s for s in builtin_backends.names() if s != "torch-compile"]


@pytest.fixture(scope="module")
def graded() -> dict[str, Verdict]:
    return {v.grade.spec: v for v in grade_builtins(SPECS, profile=PROFILE, seed=0, log=False)}


@pytest.mark.parametrize("name", ["reference", "reference-numpy", *builtin_backends.LAYOUT_REFERENCES])
def test_reference_passes_every_check(graded: dict[str, Verdict], name: str) -> None:
    failures = [f"{o.result.key}: {o.result.message} <- {o.result.counterexample}" for o in graded[name].caught]
    assert not failures, "\n".join(failures)
    provided = graded[name].grade.provided
    graded_checks = [c for c in CHECKS if c.op in provided]
    assert graded_checks and len(graded[name].grade.outcomes) == len(graded_checks)
    assert sum(o.verdict == "PASS" for o in graded[name].grade.outcomes) >= len(graded_checks) - 3


@pytest.mark.parametrize("variant", [v.name for v in known_bad.CATALOGUE])
def test_every_known_bad_variant_is_caught_and_fingerprinted(graded: dict[str, Verdict], variant: str) -> None:
    verdict = graded[f"known-bad:{variant}"]
    assert verdict.caught, f"known-bad {variant!r} passed every check of {known_bad.by_name(variant).op}"
    for outcome in verdict.caught:
        assert outcome.result.requirement and outcome.result.message and outcome.result.counterexample
    assert variant in verdict.grade.fingerprints, f"{variant!r} not among its fingerprints {verdict.grade.fingerprints}"


def test_every_check_catches_a_known_bad_variant(graded: dict[str, Verdict]) -> None:
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


def test_shrinking_stops_after_a_number_of_calls_and_is_repeatable(monkeypatch: pytest.MonkeyPatch) -> None:
    from qcheck.checks import runner

    monkeypatch.setattr(runner, "SHRINK_CALLS", 20)
    check, variant = by_key("b158_quantize:GEN-3"), known_bad.by_name("truncation").fn
    first, second = (run_check(check, variant, profile=PROFILE) for _ in range(2))
    assert first.verdict == "FAIL" and "shrinking stopped after 20 calls" in first.message
    assert (first.message, first.counterexample, first.examples) == (
        second.message,
        second.counterexample,
        second.examples,
    )
    assert first.examples <= 40 + 20 + 1  # quick: at most 40 examples before the failure


def test_what_a_check_draws_does_not_depend_on_the_modules_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hypothesis mixes in literal constants of the local modules in sys.modules; a check must not
    # (a grading worker imports other modules than `qcheck grade` in process)
    check, variant = by_key("bitlinear:BL-1"), known_bad.by_name("sequence-first").fn
    before = run_check(check, variant, profile=PROFILE)
    constants = ", ".join(str(v) for v in [*range(-9, 10), 127, -127, 255, 256, 0.375, 1.25, -2.5, 3e-8])
    (tmp_path / "qcheck_local_constants_probe.py").write_text(f"VALUES = ({constants})\nNAMES = ('ab', 'cd')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("qcheck_local_constants_probe")
    after = run_check(check, variant, profile=PROFILE)
    assert (before.verdict, before.examples, before.counterexample) == (
        after.verdict,
        after.examples,
        after.counterexample,
    )
