"""Third-party BitNet code graded through the contract (qcheck/thirdparty/): every check of every
op each adapter provides ends in the verdict recorded here, so a change in transformers' or
gguf-py's behaviour (or in an adapter) fails naming the check, the expected and the actual verdict.

transformers and gguf are in the ``dev`` extra that CI installs: their imports are never skipped.
"""

from __future__ import annotations

import pytest

from qcheck.checks import runner
from qcheck.grade import BackendGrade, grade_backend
from qcheck.thirdparty import ADAPTERS
from qcheck.thirdparty.gguf_py import GgufTq1_0, GgufTq2_0
from qcheck.thirdparty.hf_transformers import HfTransformers

P, F, E, NA = "PASS", "FAIL", "ERROR", "NOT APPLICABLE"
UNSTABLE = (P, F)
"""A verdict that depends on the torch.compile state of the source's functions, not on qcheck."""

_GGUF_PACKING = {
    "pack_ternary:PACK-1": P,
    "pack_ternary:PACK-2": P,
    "pack_ternary:PACK-3": P,
    "pack_ternary:PACK-4": P,
    "pack_ternary:GEN-1": P,
    "pack_ternary:GEN-2": P,
    "pack_ternary:GEN-3": P,
    "unpack_ternary:PACK-5": P,
    "unpack_ternary:PACK-6": P,
    "unpack_ternary:GEN-1": P,
    "unpack_ternary:GEN-2": P,
    # dequantize_blocks views the fp16 d bytes with ndarray.view(np.float16): numpy refuses that on a
    # non-contiguous byte array ("the last axis must be contiguous")
    "unpack_ternary:GEN-3": E,
}
# Declared row_multiple=256 (SPEC IN-6): every drawn weight is zero-padded to whole 256-blocks. Every
# FAIL comes from the block scale d being stored as fp16 (ggml_half), which the contract cannot
# declare yet: rounded (0.3 -> 0.300048828125; intended by the format), overflowing to inf for a block
# absmax >= 65520 (dequantize then gives inf and 0 * inf = NaN), underflowing to 0 below fp16's
# subnormals (codes stay +-1); and from id = 1 / d overflowing in float32 for d < 2**-128 (codes 0).
_GGUF_QUANTIZERS = {
    "b158_quantize:B158-1": F,  # d = inf for [3.4e38, 0, ...]
    "b158_quantize:B158-2": F,  # [1.4e-45, 0, ...]: 1/d = inf, code 0 (exact: 1)
    "b158_quantize:B158-3": F,  # fp16 d: 0.3 -> 0.300048828125
    "b158_quantize:B158-5": F,  # d(65536) = inf but d(32768) = 32768
    "b158_quantize:B158-6": P,
    "b158_quantize:B158-7": F,  # [2**-127, 0, ...]: code 1, d = 0, requantized code 0
    "b158_quantize:B158-8": P,
    "b158_quantize:IN-5": P,
    "b158_quantize:GEN-1": P,
    "b158_quantize:GEN-2": P,
    "b158_quantize:GEN-3": P,
    "b158_fake_quantize:B158-4": F,  # fp16 d
    "b158_fake_quantize:B158-5": F,  # 16 * 2**12 = 65536: d = inf
    "b158_fake_quantize:B158-6": F,  # d = inf: 0 * inf = NaN
    "b158_fake_quantize:B158-9": F,
    "b158_fake_quantize:B158-10": F,
    "b158_fake_quantize:IN-5": P,
    "b158_fake_quantize:GEN-1": P,
    "b158_fake_quantize:GEN-2": F,  # fp16 d (compared with the reference)
    "b158_fake_quantize:GEN-3": P,
    "b158_fake_quantize:STE-1": NA,  # numpy: declared not differentiable
}

EXPECTED: dict[str, dict[str, str | tuple[str, ...]]] = {
    "hf-transformers": {
        # WeightQuant: 1/mean is subnormal for mean|W| > 2**126, so w * s / s overflows to inf; a float32
        # mean of weights near 3.4e38 overflows (s = 0, 0/0 = NaN); float64 weights are computed in float32
        "b158_fake_quantize:B158-4": F,
        "b158_fake_quantize:B158-5": P,
        "b158_fake_quantize:B158-6": F,
        "b158_fake_quantize:B158-9": P,
        "b158_fake_quantize:B158-10": P,
        "b158_fake_quantize:IN-5": P,
        "b158_fake_quantize:GEN-1": P,
        "b158_fake_quantize:GEN-2": F,
        "b158_fake_quantize:GEN-3": P,
        "b158_fake_quantize:STE-1": P,
        # BitLinear.activation_quant: the multiplier 127/a in the input dtype (bfloat16: 8 bits, codes
        # off by one; float16: inf below a = 127/65504, zeros become -128 and the scale 0)
        "act_quantize:ACT-1": P,
        "act_quantize:ACT-2": F,
        "act_quantize:ACT-3": F,
        "act_quantize:ACT-5": P,
        "act_quantize:ACT-6": F,  # float16 zeros: codes(0) = codes(-0) = -128 (met at quick since issue 6)
        "act_quantize:ACT-7": F,
        "act_quantize:ACT-8": P,
        "act_quantize:IN-5": F,
        "act_quantize:GEN-1": P,
        "act_quantize:GEN-2": F,
        "act_quantize:GEN-3": P,
        # ActQuant: x * s / s overflows to inf near float32's maximum; float64 computed in float32
        "act_fake_quantize:ACT-4": F,
        "act_fake_quantize:ACT-5": P,
        "act_fake_quantize:ACT-6": F,  # float64 +-1.797e308 gives NaN for both signs (was *ci* only)
        "act_fake_quantize:ACT-9": P,
        "act_fake_quantize:ACT-10": F,
        "act_fake_quantize:IN-5": F,
        "act_fake_quantize:GEN-1": P,
        "act_fake_quantize:GEN-2": F,
        "act_fake_quantize:GEN-3": P,
        "act_fake_quantize:STE-1": P,
        # pack_weights: `quantized_weights += 1` modifies the caller's codes
        "pack_ternary:PACK-1": P,
        "pack_ternary:PACK-2": P,
        "pack_ternary:PACK-3": P,
        "pack_ternary:PACK-4": P,
        "pack_ternary:GEN-1": F,
        "pack_ternary:GEN-2": P,
        "pack_ternary:GEN-3": P,
        "unpack_ternary:PACK-5": P,
        "unpack_ternary:PACK-6": P,
        "unpack_ternary:GEN-1": P,
        "unpack_ternary:GEN-2": P,
        "unpack_ternary:GEN-3": P,
        # Declared out_features_multiple=4 (SPEC IN-6). BitLinear.forward quantizes x with
        # activation_quant, so its multiplier findings reach the output: bfloat16 codes off by one
        # (BL-5); float16 tokens with absmax < 127/65504 lose their matmul term (y / inf = 0), only
        # the bias remains (BL-4)
        # bfloat16 outputs off (the multiplier is rounded to bfloat16) -- whether the quick profile's
        # 40 examples meet one depends on the torch.compile state of transformers' functions: both
        # verdicts were seen for the same seed, in fresh worker processes (README says so).  BL-3 and
        # GEN-2 (whose first arguments must match the reference) meet this bfloat16 finding or not
        # by the examples drawn: with the strategies of issue 6 (long lists repeat a drawn palette)
        # BL-3's 40 examples pass and GEN-2 fails (a bfloat16 x, K = 2: 38.75 where the exact result
        # rounds to 38.25), the other way round before; a bfloat16 finding, so pinned as either
        "bitlinear:BL-1": UNSTABLE,
        "bitlinear:BL-2": P,
        "bitlinear:BL-3": UNSTABLE,
        "bitlinear:BL-4": F,
        "bitlinear:BL-5": F,
        "bitlinear:GEN-1": P,
        "bitlinear:GEN-2": UNSTABLE,
        "bitlinear:GEN-3": P,
    },
    "gguf-tq2_0": {**_GGUF_QUANTIZERS, **_GGUF_PACKING},
    "gguf-tq1_0": {**_GGUF_QUANTIZERS, **_GGUF_PACKING},
}

PROVIDED = {
    "hf-transformers": (
        "b158_fake_quantize",
        "act_quantize",
        "act_fake_quantize",
        "pack_ternary",
        "unpack_ternary",
        "bitlinear",
    ),
    "gguf-tq2_0": ("b158_quantize", "b158_fake_quantize", "pack_ternary", "unpack_ternary"),
    "gguf-tq1_0": ("b158_quantize", "b158_fake_quantize", "pack_ternary", "unpack_ternary"),
}


@pytest.fixture
def quick_shrinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink a failure for 100 calls, not 400: only how small the example gets depends on it, never
    a verdict (qcheck.checks.runner.SHRINK_CALLS), and this test asserts verdicts only."""
    monkeypatch.setattr(runner, "SHRINK_CALLS", 100)


def _grade(name: str) -> BackendGrade:
    # isolated: transformers' BitNet functions are torch.compile'd, and what they compute (bfloat16
    # BitLinear outputs differ) depends on the compile state of the process that calls them; a
    # fresh worker per grade makes the verdicts independent of whatever ran before in this process
    grade = grade_backend(ADAPTERS[name], profile="quick", isolate=True, timeout=120.0)
    assert grade.load_error is None, grade.load_error
    return grade


def _allowed(expected: object) -> tuple[object, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


@pytest.mark.usefixtures("quick_shrinking")
@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_check_of_a_third_party_adapter_ends_in_its_recorded_verdict(name: str) -> None:
    grade = _grade(name)
    assert grade.provided == PROVIDED[name]
    actual = {o.result.key: o.verdict for o in grade.outcomes}
    messages = {o.result.key: o.result.message for o in grade.outcomes}
    expected = EXPECTED[name]
    wrong = [
        f"{name} {key}: expected {expected.get(key, '(not in the table)')}, got {actual.get(key, '(not run)')}"
        + (f" - {messages[key]}" if key in messages else "")
        for key in sorted(set(actual) | set(expected))
        if actual.get(key) not in _allowed(expected.get(key))
    ]
    assert not wrong, "\n".join(wrong)


def test_the_adapters_declare_the_conventions_of_their_sources() -> None:
    assert HfTransformers.conventions.packing == "hf-bitnet"
    assert HfTransformers.conventions.describe().startswith("rounding=half-even eps=clamp(1e-05)")
    assert HfTransformers.differentiable
    for backend, packing in ((GgufTq2_0, "tq2_0"), (GgufTq1_0, "tq1_0")):
        assert backend.conventions.packing == packing
        assert backend.conventions.weight_granularity.group_size == 256
        assert backend.conventions.row_multiple == 256  # ggml rows of whole blocks (SPEC IN-6)
        assert backend.conventions.out_features_multiple == 1
        assert not backend.differentiable


def test_the_adapters_declare_the_input_domain_of_their_sources() -> None:
    # BitLinear holds an (out_features // 4, in_features) uint8 buffer: 4 output rows a byte, K free
    assert HfTransformers.conventions.out_features_multiple == 4
    assert HfTransformers.conventions.row_multiple == 1
