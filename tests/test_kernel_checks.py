"""The checks of the ops that consume codes (pack_ternary, unpack_ternary, bitlinear) through
``grade_backend``: the references pass every one, each known-bad kernel variant fails the check
aimed at it and is named by its fingerprint, the isolation worker carries multi-argument calls
(mutation of an argument, an alias of one), and the checks catch the same bugs in foreign code.

Grading is expensive, so each grade is run once per (backend, check filter) and shared, and a known-bad
variant is graded on the one check aimed at its bug (its ``symptom``, or the table below) rather than
on every check of its op.  Shrinking is bounded at 1 s instead of the runner's 10 s: the verdict never
depends on it (only how small the counterexample gets).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
import torch

from qcheck.arguments import Args
from qcheck.checks import CHECKS, CheckFailure, Evidence, runner
from qcheck.checks.packing_checks import verify_pack_rejects, verify_unpack_rejects
from qcheck.conventions import DEFAULT
from qcheck.grade import BackendGrade, Outcome, grade_backend
from qcheck.isolation import IsolatedBackend
from qcheck.known_bad_kernels import VARIANTS, KernelVariant
from qcheck.ops import OPS
from qcheck.packing import layout
from tests.backends import kernels

KERNEL_OPS = ("pack_ternary", "unpack_ternary", "bitlinear")
LAYOUT_REFERENCES = ("reference-tq2_0", "reference-tq1_0", "reference-hf-bitnet", "reference-i2_s")
GOOD = "tests.backends.kernels:Good"
BAD = "tests.backends.kernels:WritesAndAliases"

CAUGHT_BY: dict[str, str] = {
    "tq2_0-consecutive-writer": "PACK-4",
    "i2_s-64-16-writer": "PACK-4",
    "pads-minus-one": "PACK-1",
    "tail-dropped": "PACK-3",
    "tq2_0-consecutive-reader": "PACK-5",
    "row-padding-ignored": "PACK-5",
    "tail-block-skipped": "PACK-5",
    "int16-accumulator": "BL-2",
    "float16-accumulator": "BL-2",
    "dropped-bias": "BL-4",
    "inverted-weight-scale": "BL-3",
    "per-tensor-activation-scale": "BL-5",
    "sequence-first": "BL-5",
}
"""The check aimed at each variant without a ``symptom`` (a wrong value, not a behaviour)."""


@pytest.fixture(scope="module", autouse=True)
def short_shrinking() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "SHRINK_CALLS", 100)
        yield


@functools.cache
def graded(spec: str, only: str | None = None, isolate: bool = False) -> BackendGrade:
    return grade_backend(spec, profile="quick", only=only, isolate=isolate)


def by_key(grade: BackendGrade) -> dict[str, Outcome]:
    return {outcome.result.key: outcome for outcome in grade.outcomes}


def keys_of(*ops: str) -> set[str]:
    return {check.key for check in CHECKS if check.op in ops}


def failures(grade: BackendGrade) -> dict[str, str]:
    return {o.result.key: f"{o.verdict}: {o.result.message}" for o in grade.outcomes if o.failed}


def requirement_for(variant: KernelVariant) -> str:
    return variant.symptom or CAUGHT_BY[variant.name]


# ---------------------------------------------------------------- the references pass


@pytest.mark.parametrize(
    ("only", "ops"), [("*_ternary:*", ("pack_ternary", "unpack_ternary")), ("bitlinear:*", ("bitlinear",))]
)
def test_reference_passes_every_kernel_check(only: str, ops: tuple[str, ...]) -> None:
    grade = graded("reference", only)
    assert grade.load_error is None
    outcomes = by_key(grade)
    assert set(outcomes) == keys_of(*ops)  # every check of these ops ran, and nothing else
    assert not failures(grade)
    assert all(o.verdict == "PASS" for o in outcomes.values())
    assert all(o.result.examples > 0 for o in outcomes.values())


@pytest.mark.parametrize("spec", LAYOUT_REFERENCES)
def test_layout_references_pass_every_packing_check(spec: str) -> None:
    grade = graded(spec)
    assert grade.provided == ("pack_ternary", "unpack_ternary")
    assert grade.conventions == DEFAULT.replace(packing=spec.removeprefix("reference-")).describe()
    assert set(by_key(grade)) == keys_of("pack_ternary", "unpack_ternary")
    assert not failures(grade)
    assert grade.passed


# ---------------------------------------------------------------- every known-bad kernel is caught and named


def test_every_variant_has_a_check_aimed_at_it() -> None:
    without = {v.name for v in VARIANTS if v.symptom is None}
    assert without == set(CAUGHT_BY), "a new known-bad kernel needs its check in CAUGHT_BY"
    for variant in VARIANTS:
        assert f"{variant.op}:{requirement_for(variant)}" in keys_of(variant.op)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_known_bad_variant_fails_and_is_fingerprinted(variant: KernelVariant) -> None:
    key = f"{variant.op}:{requirement_for(variant)}"
    grade = graded(f"known-bad:{variant.name}", key)
    assert grade.load_error is None
    assert grade.provided == (variant.op,)
    outcome = by_key(grade)[key]
    assert outcome.failed, f"{variant.name} passed {key}: {outcome.result.message}"
    assert not grade.passed
    assert outcome.result.counterexample
    assert variant.name in grade.fingerprints
    assert variant.name in outcome.fingerprints  # named where it fails
    if variant.symptom is not None:
        assert outcome.result.requirement == variant.symptom


# ---------------------------------------------------------------- the bitlinear diagnoses


@pytest.mark.parametrize(
    ("name", "requirement", "words"),
    [
        ("int16-accumulator", "BL-2", ("int16 accumulator", "32767")),
        ("inverted-weight-scale", "BL-3", ("inverted", "divided by w_scale")),
        ("dropped-bias", "BL-4", ("bias", "without the bias")),
    ],
)
def test_bitlinear_failures_name_the_classic_mistake(name: str, requirement: str, words: tuple[str, ...]) -> None:
    key = f"bitlinear:{requirement}"
    outcome = by_key(graded(f"known-bad:{name}", key))[key]
    assert outcome.verdict == "FAIL"
    for word in words:
        assert word in outcome.result.message, outcome.result.message


def test_a_diagnosis_is_given_only_when_it_explains_the_output() -> None:
    """The diagnoses are specific: a float16 accumulator is wrong on the same worst-case input, but is
    neither an int16 wrap, an inverted scale nor a dropped bias, so its message names none of them."""
    grade = graded("known-bad:float16-accumulator", "bitlinear:BL-2")
    message = by_key(grade)["bitlinear:BL-2"].result.message
    assert "differs" in message
    assert "int16" not in message and "inverted" not in message and "bias" not in message


# ---------------------------------------------------------------- isolation with Args


def test_isolated_good_kernels_pass_everything() -> None:
    grade = graded(GOOD, None, True)
    assert grade.load_error is None
    assert grade.name == "kernels-good"
    assert grade.provided == KERNEL_OPS
    assert set(by_key(grade)) == keys_of(*KERNEL_OPS)
    assert not failures(grade)
    assert grade.passed


def test_isolated_mutation_and_alias_of_arguments_fail() -> None:
    grade = graded(BAD, "GEN-1", True)
    outcomes = by_key(grade)
    assert set(outcomes) == {"pack_ternary:GEN-1", "unpack_ternary:GEN-1", "bitlinear:GEN-1"}
    assert outcomes["pack_ternary:GEN-1"].verdict == "PASS"  # the inherited packer is left alone
    mutated = outcomes["bitlinear:GEN-1"]
    assert mutated.verdict == "FAIL"
    assert "bitlinear modified its argument 1 in place" in mutated.result.message  # argument 1 is x
    aliased = outcomes["unpack_ternary:GEN-1"]
    assert aliased.verdict == "FAIL"
    assert "shares memory with its input" in aliased.result.message
    assert not grade.passed


def test_isolated_mutation_reaches_the_callers_tensor() -> None:
    x = torch.tensor([[1.0, -2.0, 0.5, 4.0]])
    w = torch.tensor([[1, 0, -1, 1]], dtype=torch.int8)
    w_scale = torch.tensor(0.5)
    with IsolatedBackend(BAD, call_timeout=30) as backend:
        y = backend.implementation("bitlinear")(Args((x, w, w_scale, None)), DEFAULT)
    assert torch.equal(y, OPS["bitlinear"].reference(Args((x * 2, w, w_scale, None)), DEFAULT))
    assert torch.equal(x, torch.tensor([[0.5, -1.0, 0.25, 2.0]]))  # halved in the worker, and here
    assert torch.equal(w, torch.tensor([[1, 0, -1, 1]], dtype=torch.int8))


# ---------------------------------------------------------------- PACK-2 and PACK-6 on foreign code


def test_pack_2_catches_a_packer_that_pads_a_partial_block() -> None:
    packer = kernels.PadsPartialBlocks()
    codes = torch.ones(3, 100, dtype=torch.int8)
    assert layout("tq2_0").supports(codes.shape) is not None
    silently = packer.pack_ternary(codes)  # no error: one padded block per row
    assert silently.dtype == torch.uint8 and silently.numel() == 3 * 66

    def impl(value: torch.Tensor, conventions: object) -> torch.Tensor:
        return packer.pack_ternary(value)

    conventions = DEFAULT.replace(packing="tq2_0")
    with pytest.raises(CheckFailure) as rejected:
        verify_pack_rejects(impl, codes, conventions, OPS["pack_ternary"])
    assert "accepted codes of shape (3, 100), which the tq2_0 layout cannot store" in rejected.value.message
    assert "it must raise" in rejected.value.message

    grade = graded("tests.backends.kernels:PadsPartialBlocks", "pack_ternary:*")
    assert grade.conventions == conventions.describe()
    assert set(failures(grade)) == {"pack_ternary:PACK-2"}  # every other check passes: only PACK-2 sees it
    assert "must raise" in by_key(grade)["pack_ternary:PACK-2"].result.message
    assert by_key(grade)["pack_ternary:PACK-2"].fingerprints == ("accepts-partial-block",)


def test_pack_2_passes_a_packer_that_refuses() -> None:
    codes = torch.ones(3, 100, dtype=torch.int8)

    def impl(value: torch.Tensor, conventions: object) -> torch.Tensor:
        return layout("tq2_0").pack(value)

    assert verify_pack_rejects(impl, codes, DEFAULT.replace(packing="tq2_0"), OPS["pack_ternary"]) == Evidence()


def test_pack_6_catches_an_unpacker_that_reads_a_short_buffer() -> None:
    reader = kernels.ReadsShortBuffers()
    codes = torch.tensor([[1, -1, 0, 1, 1], [0, 0, -1, 1, -1]], dtype=torch.int8)
    packed = layout("qcheck").pack(codes)
    short = packed.reshape(-1)[:-1].clone()
    assert torch.equal(reader.unpack_ternary(packed, (2, 5)), codes)
    assert reader.unpack_ternary(short, (2, 5)).shape == (2, 5)  # no error, with a byte made up

    def impl(value: Args, conventions: object) -> torch.Tensor:
        return reader.unpack_ternary(*value)

    with pytest.raises(CheckFailure) as rejected:
        assert verify_unpack_rejects(impl, Args((short, (2, 5))), DEFAULT, OPS["unpack_ternary"]) == Evidence()
    assert f"accepted {short.numel()} bytes for codes of shape (2, 5)" in rejected.value.message
    assert f"needs {packed.numel()}" in rejected.value.message

    grade = graded("tests.backends.kernels:ReadsShortBuffers", "unpack_ternary:*")
    assert set(failures(grade)) == {"unpack_ternary:PACK-6"}
    assert "it must raise" in by_key(grade)["unpack_ternary:PACK-6"].result.message
    assert "no-size-check" in by_key(grade)["unpack_ternary:PACK-6"].fingerprints


def test_pack_6_passes_an_unpacker_that_refuses() -> None:
    codes = torch.ones(2, 5, dtype=torch.int8)
    short = layout("qcheck").pack(codes).reshape(-1)[:-1].clone()

    def impl(value: Args, conventions: object) -> torch.Tensor:
        return layout("qcheck").unpack(*value)

    assert verify_unpack_rejects(impl, Args((short, (2, 5))), DEFAULT, OPS["unpack_ternary"]) == Evidence()
