"""The known-bad catalogue: buggy quantizers seen in the wild, each imitating one reference op.

Each variant has the one bug it is named for and is otherwise written like the code it copies
(mostly float32 FAQ-style torch); the checks must catch every one.  Fixtures, never kernels.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from qcheck.backend import CONTRACT_OPS, QUANTIZER_OPS
from qcheck.conventions import DEFAULT, Conventions
from qcheck.known_bad_kernels import VARIANTS as KERNEL_VARIANTS
from qcheck.quantizers.results import Quantized
from qcheck.quantizers.ste import straight_through

# Every variant imitates code written for the papers' defaults (qcheck.conventions.DEFAULT):
# each takes ``conventions`` only so that its signature matches the reference op, and ignores it.

OPS: tuple[str, ...] = CONTRACT_OPS
"""The reference ops (in :mod:`qcheck.quantizers`) that variants here imitate."""


@dataclasses.dataclass(frozen=True)
class KnownBad:
    """One buggy implementation of a reference op, with where the bug was seen."""

    name: str
    """Kebab-case and unique, e.g. ``sign-before-scale``."""
    op: str
    """The reference op it imitates (one of :data:`OPS`), called with the same arguments."""
    description: str
    """One line, in a kernel author's words: what the code does and what goes wrong."""
    origin: str
    """Where it was seen (repository and issue, PR or path), or ``class of bug: ...``."""
    fn: Callable[..., Any]
    symptom: str | None = None
    """For a behavioural bug (mutation, caching, layout, gradient) whose outputs are otherwise
    right: the one requirement it shows in (``GEN-1``); fingerprints name it only there."""
    conventions: Conventions = DEFAULT
    """What the code it imitates declares: the defaults, or a packing layout (``tq2_0``)."""


_F = TypeVar("_F", bound=Callable[..., Any])
_REGISTRY: list[KnownBad] = []


def _known_bad(
    name: str,
    op: str,
    description: str,
    origin: str,
    symptom: str | None = None,
    conventions: Conventions = DEFAULT,
) -> Callable[[_F], _F]:
    """Register the decorated function as a variant of ``op``; the function is returned as is."""
    if op not in OPS:
        raise ValueError(f"known-bad {name!r}: unknown op {op!r}; expected one of {', '.join(OPS)}")
    if any(entry.name == name for entry in _REGISTRY):
        raise ValueError(f"known-bad {name!r} is registered twice")

    def register(fn: _F) -> _F:
        _REGISTRY.append(KnownBad(name, op, description, origin, fn, symptom, conventions))
        return fn

    return register


# --- helpers shared by the variants (the parts they get right) -----------------------------------


def _upcast(w: torch.Tensor) -> torch.Tensor:
    """HF-style fp32 upcast (float64 input stays float64, so precision is not a second bug)."""
    dtype = torch.float64 if w.dtype == torch.float64 else torch.float32
    return w.detach().to(dtype)


def _absmean_gamma(w: torch.Tensor) -> torch.Tensor:
    """The FAQ's b1.58 gamma: ``w.abs().mean().clamp(min=1e-5)`` (on the upcast weights)."""
    return w.abs().mean().clamp(min=1e-5)


def _roundf(x: torch.Tensor) -> torch.Tensor:
    """C ``roundf``: nearest integer, ties away from zero (exactly, with no ``+ 0.5`` trap)."""
    truncated = torch.trunc(x)
    tie = (x - truncated).abs() == 0.5
    return torch.where(tie, truncated + torch.sign(x), torch.round(x))


def _wrap_to_int8(q: torch.Tensor) -> torch.Tensor:
    """What a C kernel's ``(int8_t)`` store does to an out-of-range integer: wrap modulo 256.

    Float -> int8 of an out-of-range value is undefined in C and in torch; going through int32
    makes the wrap deterministic (x86 gives the same result directly: 128 -> -128, 200 -> -56).
    """
    return q.to(torch.int32).to(torch.int8)


# --- b1 weights: codes = Sign(W - mean W) in {-1, +1}, Sign(0) = -1, scale beta = mean|W| -------


@_known_bad(
    "sign-before-scale",
    "b1_quantize",
    "(w - w.mean()).sign() * w.abs().mean() returned as the codes: float +-beta, not int8 +-1",
    "seed write-up (current_weight_quant); kyegomez/BitNet issue #52, bitnet/bit_linear_new.py weight_quant",
)
def sign_before_scale(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    scale = w.abs().mean()
    e = w.mean()
    u = (w - e).sign() * scale  # sign first, then scale: these are dequantized weights
    return Quantized(u, scale)


@_known_bad(
    "scale-before-sign",
    "b1_quantize",
    "sign((w - w.mean()) * w.abs().mean()): 0 on ties (torch.sign(0) = 0) and 0 for |w| < ~1e-23, "
    "where the product underflows",
    "seed write-up (correct_weight_quant, the proposed fix); kyegomez/BitNet PR #59 (unmerged)",
)
def scale_before_sign(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    scale = w.abs().mean()
    e = w.mean()
    u = torch.sign((w - e) * scale)
    return Quantized(u.to(torch.int8), scale)


@_known_bad(
    "torch-sign-zero",
    "b1_quantize",
    "torch.sign(w - alpha) as the codes, alpha in float64: Sign(0) comes out 0, the paper says -1",
    "class of bug: any torch.sign/np.sign implementation of b1 (FIELD-NOTES, b1 paper eq. 2)",
)
def torch_sign_zero(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    wd = w.detach().to(torch.float64)
    alpha = wd.mean()  # float64: exact for the ties that matter, so sign(0) is the one bug
    codes = torch.sign(wd - alpha).to(torch.int8)
    beta = _upcast(w).abs().mean()
    return Quantized(codes, beta)


@_known_bad(
    "float32-mean-b1",
    "b1_quantize",
    "where(w - w.mean() > 0, 1, -1) with a float32 mean: torch.full((16,), 0.3) gives all +1, exact math gives all -1",
    "FIELD-NOTES 'numerical traps' (the float mean of equal values is not always that value)",
)
def float32_mean_b1(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w32 = w.detach().float()
    codes = torch.where(w32 - w32.mean() > 0, 1, -1).to(torch.int8)
    beta = _upcast(w).abs().mean()
    return Quantized(codes, beta)


@_known_bad(
    "uncentred-sign",
    "b1_quantize",
    "Sign(W) with alpha = mean(W) never subtracted: codes split at 0 instead of at the mean",
    "kyegomez/BitNet bitnet/bitlinear.py (early BitLinear: torch.sign(weight), no centring)",
)
def uncentred_sign(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    codes = torch.where(w > 0, 1, -1).to(torch.int8)  # Sign(0) = -1 kept right: one bug only
    return Quantized(codes, w.abs().mean())


@_known_bad(
    "b1-centred-beta",
    "b1_quantize",
    "beta = (w - w.mean()).abs().mean(): the scale taken on the centred W, the paper uses mean|W|",
    "class of bug: b1 paper eq. 4 takes beta on the uncentred W (FIELD-NOTES, b1 paper)",
)
def b1_centred_beta(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    wd = w.detach().to(torch.float64)
    centred = wd - wd.mean()
    codes = torch.where(centred > 0, 1, -1).to(torch.int8)
    beta = centred.abs().mean().to(_upcast(w).dtype)
    return Quantized(codes, beta)


@_known_bad(
    "kyegomez-fake-quant",
    "b1_fake_quantize",
    "(w - w.mean()).sign() * w.abs().mean(): a weight exactly at the mean gets 0, not -beta",
    "kyegomez/BitNet bitnet/bitlinear.py and bitnet/bit_linear_new.py weight_quant",
)
def kyegomez_fake_quant(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x = _upcast(w)
    u = (x - x.mean()).sign() * x.abs().mean()
    return straight_through(w, u.to(w.dtype))


# --- b1.58 weights: codes = RoundClip(W / gamma, -1, 1) (half even), gamma = max(mean|W|, eps) ---


@_known_bad(
    "round-half-up",
    "b158_quantize",
    "floor(w * s + 0.5): rounds 0.5 up to 1 (half-even gives 0) and maps 0.49999997 to 1",
    "class of bug: floor(x + 0.5) rounding (FIELD-NOTES bugs and numerical traps)",
)
def round_half_up(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    gamma = _absmean_gamma(w)
    s = 1 / gamma
    codes = torch.floor(w * s + 0.5).clamp(-1, 1).to(torch.int8)
    return Quantized(codes, gamma)


@_known_bad(
    "round-half-away",
    "b158_quantize",
    "roundf(w * s): ties away from zero, so |w| = gamma/2 gets +-1 where half-even gives 0",
    "class of bug: C roundf/lroundf where half-even is specified (FIELD-NOTES; ggml nearest_int)",
)
def round_half_away(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    gamma = _absmean_gamma(w)
    codes = _roundf(w * (1 / gamma)).clamp(-1, 1).to(torch.int8)
    return Quantized(codes, gamma)


@_known_bad(
    "inverted-scale",
    "b158_quantize",
    "returns s = 1/gamma (the FAQ's `scale` variable) where the dequantization scale gamma is meant",
    "microsoft/BitNet PR #616; mlx-lm ('old BitNet versions use inverted scales'); HF BitLinear weight_scale",
)
def inverted_scale(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    s = 1 / _absmean_gamma(w)
    codes = (w * s).round().clamp(-1, 1).to(torch.int8)
    return Quantized(codes, s)


@_known_bad(
    "missing-eps",
    "b158_quantize",
    "gamma = w.abs().mean() with no clamp: an all-zero W divides 0 by 0 (NaN codes, scale 0)",
    "class of bug: microsoft/BitNet PR #123 (the same division by zero, in the activation kernels)",
)
def missing_eps(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    gamma = w.abs().mean()
    codes = (w / gamma).round().clamp(-1, 1).to(torch.int8)  # NaN -> int8 is undefined
    return Quantized(codes, gamma)


@_known_bad(
    "truncation",
    "b158_quantize",
    "(w * s).to(torch.int8) with no round: truncates toward zero, so 0.8 gamma becomes 0, not 1",
    "astramind-ai/BitMat bitmat/utils/bitmat.py terniarize ((weights * scale).to(torch.int8))",
)
def truncation(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    gamma = _absmean_gamma(w)
    codes = (w * (1 / gamma)).clamp(-1, 1).to(torch.int8)  # clamped first: truncation only
    return Quantized(codes, gamma)


@_known_bad(
    "cast-before-clamp",
    "b158_quantize",
    "round(w * s) stored to int8 before the clamp: an outlier beyond 127 gamma wraps (200 -> -56) "
    "and clamps to the wrong sign",
    "astramind-ai/BitMat bitmat/utils/bitmat.py terniarize (clamp((w * scale).to(int8), -1, 1))",
)
def cast_before_clamp(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    gamma = _absmean_gamma(w)
    codes = _wrap_to_int8((w * (1 / gamma)).round()).clamp(-1, 1)
    return Quantized(codes, gamma)


@_known_bad(
    "per-row-scale",
    "b158_quantize",
    "gamma = w.abs().mean(dim=-1, keepdim=True): one scale per output row where the b1.58 spec has one per tensor",
    "class of bug: per-row absmean where per-tensor is specified (b1.58 paper eq. 1-3, FAQ)",
)
def per_row_scale(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    gamma = w.abs().mean(dim=-1, keepdim=True).clamp(min=1e-5)
    codes = (w * (1 / gamma)).round().clamp(-1, 1).to(torch.int8)
    return Quantized(codes, gamma)


@_known_bad(
    "mutates-input",
    "b158_quantize",
    "w.detach().mul_(s).round_().clamp_(-1, 1): right codes, but detach() shares storage, so the "
    "caller's weights are overwritten",
    "HF transformers src/transformers/integrations/bitnet.py pack_weights (in-place += 1)",
    symptom="GEN-1",
)
def mutates_input(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    gamma = _absmean_gamma(_upcast(w))
    q = w.detach()  # "detach so we can work in place" -- but it is the caller's storage
    q.mul_(1 / gamma).round_().clamp_(-1, 1)
    return Quantized(q.to(torch.int8), gamma)


@_known_bad(
    "fp16-sum-overflow",
    "b158_quantize",
    "gamma = w.abs().sum() / w.numel() in the input dtype: a float16 sum of large weights is inf "
    "(every code 0), and any float16 gamma is coarser than float32",
    "FIELD-NOTES 'numerical traps' (float16 sum of 2,000 weights of ~100 overflows; mean does not)",
)
def fp16_sum_overflow(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = w.detach()
    gamma = (x.abs().sum() / x.numel()).clamp(min=1e-5)  # in w.dtype: float16 overflows at 65504
    wide = _upcast(w)
    gamma = gamma.to(wide.dtype)  # the upcast comes one line too late
    codes = (wide / gamma).round().clamp(-1, 1).to(torch.int8)
    return Quantized(codes, gamma)


@_known_bad(
    "quantize-returns-dequantized",
    "b158_quantize",
    "returns (w * s).round().clamp(-1, 1) / s as the codes: floats in {-gamma, 0, gamma}, the fake-quant output",
    "class of bug: the FAQ's weight_quant (a fake-quant) wrapped as a quantizer (cf. kyegomez/BitNet issue #52)",
)
def quantize_returns_dequantized(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    w = _upcast(w)
    gamma = _absmean_gamma(w)
    s = 1 / gamma
    return Quantized((w * s).round().clamp(-1, 1) / s, gamma)


@_known_bad(
    "ignores-strides",
    "b158_quantize",
    "reads numel() elements from data_ptr() in memory order: a transposed or sliced W gets its "
    "codes in the wrong places",
    "class of bug: a kernel that assumes a contiguous input (llama.cpp test-backend-ops tests "
    "non-contiguous views for this reason)",
    symptom="GEN-3",
)
def ignores_strides(w: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    # what a C kernel handed w.data_ptr() and w.numel() reads; an expanded (stride-0) W is too
    # small a storage for this and raises, where the kernel would read past its end
    flat = _upcast(torch.as_strided(w.detach(), (w.numel(),), (1,)))
    gamma = _absmean_gamma(flat)
    codes = (flat * (1 / gamma)).round().clamp(-1, 1).to(torch.int8)
    return Quantized(codes.reshape(w.shape), gamma)


@_known_bad(
    "inverted-scale-fake",
    "b158_fake_quantize",
    "dequantizes codes / gamma where codes * gamma is meant: weights come out 1/gamma^2 times off",
    "microsoft/BitNet PR #616 (utils/convert-hf-to-gguf-bitnet.py divides by weight_scale)",
)
def inverted_scale_fake(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x = _upcast(w)
    gamma = _absmean_gamma(x)
    codes = (x / gamma).round().clamp(-1, 1)
    return straight_through(w, (codes / gamma).to(w.dtype))


@_known_bad(
    "no-rounding",
    "b158_fake_quantize",
    "(w * s).clamp(-1, 1) / s with no round(): weights are clipped, never made ternary",
    "early kyegomez/BitNet (FIELD-NOTES)",
)
def no_rounding(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x = _upcast(w)
    s = 1 / _absmean_gamma(x)
    return straight_through(w, ((x * s).clamp(-1, 1) / s).to(w.dtype))


@_known_bad(
    "missing-eps-fake",
    "b158_fake_quantize",
    "s = 1 / w.abs().mean() with no clamp: an all-zero W gives 0 * inf = NaN everywhere",
    "class of bug: microsoft/BitNet PR #123 (the same division by zero, in the activation kernels)",
)
def missing_eps_fake(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x = _upcast(w)
    s = 1 / x.abs().mean()
    return straight_through(w, ((x * s).round().clamp(-1, 1) / s).to(w.dtype))


@_known_bad(
    "no-ste",
    "b158_fake_quantize",
    "(w * s).round().clamp(-1, 1) * gamma without the x + (q - x).detach() trick: right forward, gradient 0",
    "class of bug: the b1.58 FAQ's straight-through estimator left out (round() has zero gradient)",
    symptom="STE-1",
)
def no_ste(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    dtype = torch.float64 if w.dtype == torch.float64 else torch.float32
    x = w.to(dtype)  # not detached: autograd differentiates round(), which gives 0
    gamma = _absmean_gamma(x)
    codes = (x * (1 / gamma)).round().clamp(-1, 1)
    return (codes * gamma).to(w.dtype)


# --- activations: per token, s = 127 / max(absmax, 1e-5), codes = clamp(round(x s), -128, 127) --


def _token_absmax(x: torch.Tensor) -> torch.Tensor:
    return x.abs().amax(dim=-1, keepdim=True)


@_known_bad(
    "act-round-half-away",
    "act_quantize",
    "roundf(x * 127 / absmax): ties away from zero where the FAQ's torch.round goes to even",
    "class of bug: C roundf/lroundf where half-even is specified (FIELD-NOTES)",
)
def act_round_half_away(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = _upcast(x)
    s = 127 / _token_absmax(x).clamp(min=1e-5)
    codes = _roundf(x * s).clamp(-128, 127).to(torch.int8)
    return Quantized(codes, 1 / s)


@_known_bad(
    "act-absmax-wrong-dim",
    "act_quantize",
    "x.abs().max(dim=0): absmax over the sequence (dim 0), not per token over the hidden dim -1",
    "joey00072/ohara issue #11 (experiments/bitnet/bitnet.py activation_quant)",
)
def act_absmax_wrong_dim(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = _upcast(x)
    s = 127 / x.abs().amax(dim=0, keepdim=True).clamp(min=1e-5)
    codes = (x * s).round().clamp(-128, 127).to(torch.int8)
    return Quantized(codes, 1 / s)


@_known_bad(
    "act-clamp-127-128",
    "act_quantize",
    "128 / absmax with clamp(-127, 128): the top code 128 wraps to -128 in int8 and the bottom "
    "code -128 is clipped to -127",
    "astramind-ai/BitMat PR #14 ('-127, 128 => -128, 127'); there the clamp sat after 127/absmax "
    "and never bit, so this is its observable form",
)
def act_clamp_127_128(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = _upcast(x)
    s = 128 / _token_absmax(x).clamp(min=1e-5)  # Q_b = 2^(b-1), as in the b1 paper
    codes = _wrap_to_int8((x * s).round().clamp(-127, 128))
    return Quantized(codes, 1 / s)


@_known_bad(
    "act-scale-128",
    "act_quantize",
    "128 / absmax (Q_b, not Q_b - 1) with clamp(-128, 127): the largest element saturates at 127",
    "class of bug: the b1 paper's Q_b = 2^(b-1) read as the scale where the FAQ uses 127",
)
def act_scale_128(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = _upcast(x)
    s = 128 / _token_absmax(x).clamp(min=1e-5)
    codes = (x * s).round().clamp(-128, 127).to(torch.int8)
    return Quantized(codes, 1 / s)


@_known_bad(
    "act-missing-eps",
    "act_quantize",
    "127 / x.abs().max(dim=-1) with no clamp: an all-zero token divides by 0 (NaN codes, scale 0)",
    "microsoft/BitNet PR #123 (Fix division-by-zero in the preset kernels)",
)
def act_missing_eps(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = _upcast(x)
    s = 127 / _token_absmax(x)
    codes = (x * s).round().clamp(-128, 127).to(torch.int8)  # NaN -> int8 is undefined
    return Quantized(codes, 1 / s)


@_known_bad(
    "act-per-tensor-no-eps",
    "act_quantize",
    "127 / torch.max(torch.abs(x)): one absmax for the whole tensor, not per token, and no eps",
    "kyegomez/BitNet bitnet/bitlinear.py absmax_quantize; FIELD-NOTES 'per-tensor absmax with no eps'",
)
def act_per_tensor_no_eps(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = _upcast(x)
    scale = 127 / torch.max(torch.abs(x))
    quant = (scale * x).round().clamp(-128, 127)
    return Quantized(quant.to(torch.int8), 1 / scale)


@_known_bad(
    "act-truncation",
    "act_quantize",
    "clamp(x * 127 / absmax, -127, 128).to(torch.int8) with no round: truncates toward zero",
    "astramind-ai/BitMat bitmat/utils/bitmat.py quantize_activations (before PR #14)",
)
def act_truncation(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Quantized:
    x = _upcast(x)
    scale = 127 / torch.max(_token_absmax(x), torch.tensor(1e-5, dtype=x.dtype))
    # the clamp never bites after 127/absmax; the missing round() is the bug
    return Quantized(torch.clamp(x * scale, -127, 128).to(torch.int8), 1 / scale)


@_known_bad(
    "act-missing-eps-fake",
    "act_fake_quantize",
    "(x * s).round().clamp(-128, 127) / s, s = 127 / absmax, no clamp: an all-zero token is NaN",
    "microsoft/BitNet PR #123 (Fix division-by-zero: NaN activations)",
)
def act_missing_eps_fake(x: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    y = _upcast(x)
    s = 127 / _token_absmax(y)
    return straight_through(x, ((y * s).round().clamp(-128, 127) / s).to(x.dtype))


# --- more single-op variants ------------------------------------------------------------------


@_known_bad(
    "b1-beta-without-abs",
    "b1_fake_quantize",
    "beta = w.mean() where mean|W| is meant (the abs forgotten): beta has the sign of the mean, so fake(-w) = fake(w)",
    "class of bug: b1 paper eq. 4 takes beta = ||W||_1 / nm; the mean and the absmean are one token apart in code",
)
def b1_beta_without_abs(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x = _upcast(w).to(torch.float64)
    codes = torch.where(x > x.mean(), 1.0, -1.0)
    return straight_through(w, (codes * x.mean()).to(w.dtype))


@_known_bad(
    "sign-by-division",
    "b1_fake_quantize",
    "Sign(W - alpha) computed as (w - alpha) / |w - alpha|: NaN wherever a weight equals the mean "
    "(an all-zero W is all NaN)",
    "class of bug: sign written as x / |x| (b1 paper eq. 2 needs Sign(0) = -1)",
)
def sign_by_division(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x = _upcast(w).to(torch.float64)
    centred = x - x.mean()
    return straight_through(w, (centred / centred.abs() * x.abs().mean()).to(w.dtype))


@_known_bad(
    "b158-centred",
    "b158_fake_quantize",
    "RoundClip((W - mean W) / gamma): b1's centring carried into b1.58, so zeros move with the mean",
    "class of bug: mixing the b1 (centred Sign) and b1.58 (uncentred RoundClip) recipes",
)
def b158_centred(w: torch.Tensor, conventions: Conventions = DEFAULT) -> torch.Tensor:
    x = _upcast(w)
    gamma = _absmean_gamma(x)
    codes = ((x - x.mean()) * (1 / gamma)).round().clamp(-1, 1)
    return straight_through(w, (codes * gamma).to(w.dtype))


# --- classes of bug, one variant per op: a correct computation wrapped in the defect ------------

_SHORT = {
    "b1_quantize": "b1",
    "b1_fake_quantize": "b1-fake",
    "b158_quantize": "b158",
    "b158_fake_quantize": "b158-fake",
    "act_quantize": "act",
    "act_fake_quantize": "act-fake",
}


def _reference(op: str) -> Callable[..., Any]:
    from qcheck import quantizers

    fn: Callable[..., Any] = getattr(quantizers, op)
    return fn


def _writes_back(op: str) -> Callable[..., Any]:
    reference = _reference(op)

    def variant(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Any:
        result = reference(x, conventions)
        dequantized = (
            result if isinstance(result, torch.Tensor) else result.codes.to(x.dtype) * result.scale.to(x.dtype)
        )
        x.data.copy_(dequantized.detach())  # "quantize the layer in place"
        return result

    return variant


def _memory_order(op: str) -> Callable[..., Any]:
    reference = _reference(op)

    def variant(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Any:
        flat = torch.as_strided(x.detach(), (x.numel(),), (1,)) if x.dim() else x.detach()
        return reference(flat.reshape(x.shape), conventions)

    return variant


def _flushes_tiny(op: str) -> Callable[..., Any]:
    reference = _reference(op)

    def variant(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Any:
        flushed = torch.where(x.detach().abs() < 1e-6, torch.zeros_like(x), x.detach())
        result = reference(flushed, conventions)
        return straight_through(x, result) if isinstance(result, torch.Tensor) else result

    return variant


def _detached(op: str) -> Callable[..., Any]:
    reference = _reference(op)

    def variant(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Any:
        return reference(x.detach(), conventions)

    return variant


def _stale_cache(op: str) -> Callable[..., Any]:
    reference = _reference(op)
    cache: dict[tuple[Any, ...], Any] = {}

    def variant(x: torch.Tensor, conventions: Conventions = DEFAULT) -> Any:
        key = (tuple(x.shape), x.dtype)
        if key not in cache:
            cache[key] = reference(x, conventions)
        return cache[key]

    return variant


_CLASSES: tuple[tuple[str, Callable[[str], Callable[..., Any]], str, str, tuple[str, ...]], ...] = (
    (
        "writes-back",
        _writes_back,
        "right result, but the dequantized values are written back into the caller's tensor",
        "class of bug: in-place quantization of a layer's weights (HF pack_weights mutates its input)",
        QUANTIZER_OPS,
    ),
    (
        "memory-order",
        _memory_order,
        "reads numel() values from data_ptr() in memory order: transposed or sliced inputs are scrambled",
        "class of bug: a kernel that assumes contiguous input (llama.cpp test-backend-ops tests views)",
        tuple(op for op in QUANTIZER_OPS if op != "b158_quantize"),
    ),
    (
        "flush-tiny",
        _flushes_tiny,
        "zeroes |x| < 1e-6 before quantizing: an absolute threshold, so the result depends on the units",
        "microsoft/BitNet utils/convert-hf-to-gguf-bitnet.py (|w| < 1e-6 -> 0), applied to any input",
        tuple(op for op in QUANTIZER_OPS if not op.startswith("b158")),  # the 1e-5 eps hides it for b1.58
    ),
    (
        "detached",
        _detached,
        "right forward values, but computed on x.detach(): no gradient reaches the latent weights",
        "class of bug: the straight-through estimator left out of a fake-quant op",
        ("b1_fake_quantize", "act_fake_quantize"),
    ),
    (
        "stale-cache",
        _stale_cache,
        "caches its result by shape and dtype: a second input of the same shape gets the first result",
        "class of bug: a kernel that caches quantized weights keyed on the shape (KernelBench-style "
        "reward hacks; qcheck grader issue)",
        QUANTIZER_OPS,
    ),
)

_SYMPTOMS = {"writes-back": "GEN-1", "memory-order": "GEN-3", "detached": "STE-1", "stale-cache": "GEN-2"}

for _class, _factory, _description, _origin, _ops in _CLASSES:
    for _op in _ops:
        _variant = functools.update_wrapper(_factory(_op), _reference(_op))  # the op's signature
        _variant.__name__ = _variant.__qualname__ = f"{_class.replace('-', '_')}_{_op}"
        _known_bad(f"{_class}-{_SHORT[_op]}", _op, _description, _origin, _SYMPTOMS.get(_class))(_variant)


for _kernel in KERNEL_VARIANTS:  # packers, unpackers and BitLinear (qcheck.known_bad_kernels)
    _known_bad(
        _kernel.name,
        _kernel.op,
        _kernel.description,
        _kernel.origin,
        _kernel.symptom,
        DEFAULT.replace(packing=_kernel.packing),
    )(_kernel.fn)

CATALOGUE: tuple[KnownBad, ...] = tuple(_REGISTRY)
"""Every known-bad variant, in definition order."""


def by_name(name: str) -> KnownBad:
    """The variant called ``name``; a :class:`KeyError` listing the known names otherwise."""
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    names = ", ".join(entry.name for entry in CATALOGUE)
    raise KeyError(f"no known-bad variant named {name!r}; known: {names}")


def for_op(op: str) -> tuple[KnownBad, ...]:
    """The variants imitating ``op`` (possibly none); a :class:`KeyError` for an unknown op."""
    if op not in OPS:
        raise KeyError(f"unknown op {op!r}; known-bad variants imitate {', '.join(OPS)}")
    return tuple(entry for entry in CATALOGUE if entry.op == op)
