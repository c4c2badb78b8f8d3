"""The layer-scale check (qcheck.layer_check) passes the reference and catches a bug that only
shows beyond 2**24 elements, which no Hypothesis-sized input can show."""

from __future__ import annotations

import pytest
import torch

from qcheck.conventions import DEFAULT
from qcheck.layer_check import PROOF_SHAPE, check_layer, float32_counter_b158, layer_result, layer_weight
from qcheck.packing import layout
from qcheck.quantizers import streaming
from qcheck.quantizers.results import Quantized

SHAPE = PROOF_SHAPE  # just over 2**24 = 16,777,216 elements, in bfloat16 (34 MB)


def test_the_reference_passes_the_layer_check() -> None:
    w = layer_weight(SHAPE, seed=1)
    verdict = check_layer(lambda t: streaming.b158_quantize(t), layout(DEFAULT.packing).pack, w)
    assert verdict.passed, verdict.message


def test_a_float32_element_counter_fails_at_layer_scale_only() -> None:
    small = layer_weight((64, 256), seed=2)
    assert check_layer(float32_counter_b158, None, small).passed  # right below 2**24 elements
    verdict = check_layer(float32_counter_b158, None, layer_weight(SHAPE, seed=1))
    assert not verdict.passed
    assert verdict.message.startswith("scale: expected"), verdict.message


def test_a_raising_or_misshaped_backend_gets_a_verdict() -> None:
    w = layer_weight((8, 300), seed=3)

    def raises(_: torch.Tensor) -> Quantized:
        raise RuntimeError("kernel launch failed")

    verdict = check_layer(raises, None, w)
    assert not verdict.passed and verdict.crashed and "RuntimeError: kernel launch failed" in verdict.message
    assert layer_result(raises, None, shape=(8, 300)).verdict == "ERROR"
    flat = check_layer(lambda t: Quantized(streaming.b158_quantize(t).codes.reshape(-1), torch.tensor(1.0)), None, w)
    assert not flat.passed and "codes: expected int8 of shape (8, 300)" in flat.message
    bad_pack = check_layer(lambda t: streaming.b158_quantize(t), lambda c: torch.zeros(1, dtype=torch.uint8), w)
    assert not bad_pack.passed and "packed:" in bad_pack.message


def test_layer_result_is_a_check_result_with_a_recipe() -> None:
    passed = layer_result(lambda t: streaming.b158_quantize(t), layout(DEFAULT.packing).pack, shape=(64, 300))
    assert (passed.key, passed.verdict, passed.counterexample) == ("b158_quantize:LAYER-1", "PASS", None)
    failed = layer_result(float32_counter_b158, None, shape=PROOF_SHAPE, seed=1)
    assert failed.verdict == "FAIL" and failed.message.startswith("scale: expected")
    assert failed.counterexample == "qcheck.layer_check.layer_weight((4096, 4097), torch.bfloat16, seed=1)"


def test_the_thorough_profile_grades_the_layer_check_and_ci_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from qcheck import layer_check
    from qcheck.grade import grade_backend

    monkeypatch.setattr(layer_check, "LAYER_SHAPE", (64, 512))  # the grading path, on a small layer
    thorough = grade_backend("reference", profile="thorough", only="LAYER", isolate=False)
    assert [(o.result.key, o.verdict) for o in thorough.outcomes] == [("b158_quantize:LAYER-1", "PASS")]
    assert grade_backend("reference", profile="ci", only="LAYER", isolate=False).outcomes == ()
