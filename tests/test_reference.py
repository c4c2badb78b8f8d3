"""The torch reference follows the SPEC on the cases the papers and FIELD-NOTES name explicitly,
and its input policy (IN-1..IN-5) gives clear errors."""

from __future__ import annotations

import pytest
import torch

from qcheck.conventions import B158_PAPER, DEFAULT, GGML_TQ, Conventions, Rounding, SignOfZero, Statistic, per_group
from qcheck.errors import QuantizationInputError
from qcheck.quantizers import (
    act_fake_quantize,
    act_quantize,
    act_quantize_zero_point,
    b1_fake_quantize,
    b1_quantize,
    b158_fake_quantize,
    b158_quantize,
)

ALL_OPS = [b1_quantize, b1_fake_quantize, b158_quantize, b158_fake_quantize, act_quantize, act_fake_quantize]


@pytest.mark.parametrize("n", [3, 7, 16, 45, 100])
def test_b1_codes_are_minus_one_when_every_weight_is_on_the_mean(n: int) -> None:
    # float32 mean of n copies of 0.3 is not 0.3 for n = 7, 16: the reference decides exactly
    codes, beta = b1_quantize(torch.full((n,), 0.3))
    assert codes.dtype == torch.int8
    assert codes.tolist() == [-1] * n
    assert float(beta) == pytest.approx(0.3, rel=1e-7)
    plus = b1_quantize(torch.full((n,), 0.3), DEFAULT.replace(sign_of_zero=SignOfZero.PLUS_ONE)).codes
    assert plus.tolist() == [1] * n


def test_b1_codes_are_strictly_plus_minus_one_for_tiny_weights() -> None:
    # sign((w - mean) * scale) underflows to 0 here; Sign(w - mean) does not
    w = torch.tensor([1e-23, -1e-23, 3e-23], dtype=torch.float32)
    codes, _ = b1_quantize(w)
    assert codes.tolist() == [-1, -1, 1]  # mean = 1e-23: the first weight is exactly on it


def test_b1_scale_is_mean_abs_of_uncentred_weights_without_eps() -> None:
    codes, beta = b1_quantize(torch.tensor([[1.0, 3.0], [-2.0, 2.0]]))
    assert float(beta) == 2.0
    assert codes.tolist() == [[-1, 1], [-1, 1]]
    assert float(b1_quantize(torch.zeros(4)).scale) == 0.0


def test_b158_ties_round_half_to_even_by_default_and_per_convention() -> None:
    w = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, 1.0])  # mean |w| = 1.0
    assert b158_quantize(w).codes.tolist() == [1, -1, 0, 0, 1, 1]
    away = b158_quantize(w, DEFAULT.replace(rounding=Rounding.HALF_AWAY)).codes
    assert away.tolist() == [1, -1, 1, -1, 1, 1]
    up = b158_quantize(w, DEFAULT.replace(rounding=Rounding.HALF_UP)).codes
    assert up.tolist() == [1, -1, 1, 0, 1, 1]


def test_b158_scale_is_clamped_absmean_and_paper_adds_eps() -> None:
    w = torch.tensor([1.0, -3.0])
    assert float(b158_quantize(w).scale) == 2.0
    assert float(b158_quantize(torch.zeros(3)).scale) == float(torch.tensor(1e-5))
    assert float(b158_quantize(w, B158_PAPER).scale) == float(torch.tensor(2.0 + 1e-5))


def test_b158_ggml_convention_is_absmax_per_block_half_away_and_zero_blocks_stay_zero() -> None:
    w = torch.cat([torch.zeros(256), torch.full((256,), 2.0), torch.tensor([1.0, -4.0]).repeat(128)])
    codes, d = b158_quantize(w.reshape(3, 256), GGML_TQ)
    assert d.shape == (3, 1)
    assert d.flatten().tolist() == [0.0, 2.0, 4.0]
    assert codes[0].abs().sum() == 0
    assert codes[1].tolist() == [1] * 256
    assert codes[2, :2].tolist() == [0, -1]  # 1/4 = 0.25 rounds to 0
    assert b158_quantize(torch.tensor([2.0, -1.0]), GGML_TQ).codes.tolist() == [1, -1]  # -0.5 -> -1 away


def test_per_group_scale_shape_and_short_last_group() -> None:
    w = torch.arange(1.0, 11.0).reshape(2, 5)
    _, gamma = b158_quantize(w, DEFAULT.replace(weight_granularity=per_group(2)))
    assert gamma.shape == (2, 3)
    assert gamma[0].tolist() == [1.5, 3.5, 5.0]


def test_activation_codes_use_127_over_absmax_and_ties_to_even() -> None:
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -127.0]])
    codes, scale = act_quantize(x)
    assert codes.tolist() == [[127, 0, 2, 2, 0, -127]]
    assert scale.shape == (1, 1) and float(scale) == 1.0
    away = act_quantize(x, DEFAULT.replace(rounding=Rounding.HALF_AWAY)).codes
    assert away.tolist() == [[127, 1, 2, 3, -1, -127]]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_activation_codes_stay_in_minus_q_to_q_minus_one(bits: int) -> None:
    x = torch.linspace(-3, 3, 37).reshape(1, 37)
    codes, _ = act_quantize(x, DEFAULT.replace(activation_bits=bits))
    q = 2 ** (bits - 1)
    assert int(codes.min()) >= -q and int(codes.max()) <= q - 1
    assert int(codes.max()) == q - 1


def test_zero_point_variant_maps_min_to_zero_and_clips_at_q() -> None:
    x = torch.tensor([[-1.0, 0.0, 1.0]])
    codes, scale, zero_point = act_quantize_zero_point(x)
    assert codes.dtype == torch.uint8
    assert float(zero_point) == -1.0 and float(scale) == 1.0 / 128
    assert codes.tolist() == [[0, 128, 128]]  # (1 - -1) * 128 / 1 = 256 clips at Q = 128


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda f: f.__name__)
def test_all_zero_inputs_never_give_nan(op) -> None:  # type: ignore[no-untyped-def]
    for shape in [(1,), (4, 3), (2, 3, 5)]:
        out = op(torch.zeros(shape))
        tensors = out if isinstance(out, tuple) else (out,)
        assert all(bool(torch.isfinite(t.float()).all()) for t in tensors)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_are_rejected_with_the_first_index(op, bad: float) -> None:  # type: ignore[no-untyped-def]
    x = torch.ones(2, 3)
    x[1, 2] = bad
    with pytest.raises(QuantizationInputError, match=r"non-finite.*\(1, 2\)"):
        op(x)


@pytest.mark.parametrize("op", ALL_OPS, ids=lambda f: f.__name__)
def test_integer_and_non_tensor_inputs_are_rejected(op) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QuantizationInputError, match="dtype"):
        op(torch.ones(2, 2, dtype=torch.int32))
    with pytest.raises(QuantizationInputError, match=r"torch\.Tensor"):
        op([1.0, 2.0])


def test_empty_and_zero_dim_policy() -> None:
    with pytest.raises(QuantizationInputError, match="no elements"):
        b158_quantize(torch.zeros(0, 4))
    codes, scale = act_quantize(torch.zeros(0, 4))
    assert codes.shape == (0, 4) and scale.shape == (0, 1)
    with pytest.raises(QuantizationInputError, match="length 0"):
        act_quantize(torch.zeros(3, 0))
    with pytest.raises(QuantizationInputError, match="at least 1"):
        act_quantize(torch.tensor(1.0))
    assert b1_quantize(torch.tensor(0.7)).codes.tolist() == -1
    assert b158_quantize(torch.tensor(-0.7)).codes.tolist() == -1
    with pytest.raises(QuantizationInputError, match="0-d"):
        b158_quantize(torch.tensor(0.7), DEFAULT.replace(weight_granularity=per_group(4)))


def test_float16_weights_with_large_values_do_not_overflow_the_mean() -> None:
    w = torch.full((2000,), 100.0, dtype=torch.float16)  # a float16 sum is inf
    codes, gamma = b158_quantize(w)
    assert gamma.dtype == torch.float32 and float(gamma) == 100.0
    assert codes.tolist() == [1] * 2000


def test_float64_weights_get_float64_scales() -> None:
    assert b158_quantize(torch.ones(3, dtype=torch.float64)).scale.dtype == torch.float64
    assert act_quantize(torch.ones(3, dtype=torch.bfloat16)).scale.dtype == torch.float32


def test_conventions_reject_impossible_values() -> None:
    with pytest.raises(ValueError, match="activation_bits"):
        Conventions(activation_bits=9)
    with pytest.raises(ValueError, match="eps"):
        Conventions(eps=0.0)
    with pytest.raises(ValueError, match="group_size"):
        per_group(0)
    assert GGML_TQ.differences() == {
        "rounding": "half-away",
        "eps_mode": "none",
        "eps": "0.0",
        "weight_statistic": "absmax",
        "weight_granularity": "per-group(256)",
        "packing": "tq2_0",
    }
    with pytest.raises(ValueError, match="packing"):
        Conventions(packing="tq3_0")
    assert Statistic.ABSMAX.value == "absmax"


def test_float64_activation_codes_are_decided_on_the_exact_ratio() -> None:
    """fl(fl(x * 127) / a) rounds 1.5/127 * 127 / 1 onto the tie 1.5 (half-even: 2); the exact
    ratio is 2.1e-17 below it, so the code is 1 and the element is not a tie (SPEC ACT-2)."""
    from fractions import Fraction

    from qcheck.decisions import analyse
    from qcheck.ops import OPS

    x = torch.tensor([1.0, 1.5 / 127], dtype=torch.float64)
    assert (x[1].item() * 127) / 1.0 == 1.5  # the float64 quotient sits on the tie
    assert Fraction(x[1].item()) * 127 < Fraction(3, 2)  # the exact one does not
    assert act_quantize(x).codes.tolist() == [127, 1]
    decisions = analyse(OPS["act_quantize"], x, DEFAULT)
    assert not bool(decisions.ties.any())
    exact_tie = torch.tensor([127.0, 0.5, 1.5, -2.5], dtype=torch.float64)  # absmax 127: ratios are x
    assert act_quantize(exact_tie).codes.tolist() == [127, 0, 2, -2]
    assert analyse(OPS["act_quantize"], exact_tie, DEFAULT).ties.tolist() == [False, True, True, True]
