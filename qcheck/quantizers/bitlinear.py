"""The BitLinear product: ternary or binary weight codes times int8 activation codes, exactly.

b1 paper (arXiv 2310.11453) eq. 11: ``y = W~ x~ * beta * gamma / Q_b``; b1.58 (arXiv 2402.17764)
and its FAQ: ``y = (x_q @ w_q^T) / (x_scale_q * w_scale_q)`` with the scales as *multipliers*
(``Qp/absmax`` and ``1/mean|W|``), which is the same product written with dequantization scales.
In the contract's terms (SPEC BL-1):

    y[..., n] = (sum_k x_codes[..., k] * w_codes[n, k]) * x_scale[...] * w_scale[n] (+ bias[n])

where ``x_codes, x_scale = act_quantize(x)`` under the declared conventions and ``w_scale`` is a
dequantization scale (``mean|W|`` as :func:`qcheck.quantizers.b158_quantize` returns it, never
its reciprocal).  With per-group weight scales the integer sum runs per group and each group's sum
is scaled by its own scale.

The integer accumulation is exact (int64: ``|sum| <= 128 * K``).  The float part is evaluated in
float64 (two or three roundings, negligible next to the comparison tolerance of SPEC BL-1) and
rounded to ``x.dtype``.
"""

from __future__ import annotations

import torch

from qcheck.conventions import DEFAULT, Conventions, GranularityKind
from qcheck.errors import QuantizationInputError
from qcheck.quantizers.activations import act_quantize
from qcheck.quantizers.validation import check_float_tensor

OP = "bitlinear"


def weight_scale_shape(out_features: int, in_features: int, conventions: Conventions) -> tuple[int, ...]:
    """The ``w_scale`` shape the contract passes: ``()`` per tensor, ``(N, 1)`` per row, ``(N, G)``
    per group of the declared weight granularity (what the weight quantizers return for ``(N, K)``)."""
    granularity = conventions.weight_granularity
    if granularity.kind is GranularityKind.PER_TENSOR:
        return ()
    if granularity.kind is GranularityKind.PER_ROW:
        return (out_features, 1)
    assert granularity.group_size is not None
    return (out_features, -(-in_features // granularity.group_size))


def _check_weights(w_codes: object, in_features: int) -> torch.Tensor:
    if not isinstance(w_codes, torch.Tensor) or w_codes.dtype != torch.int8:
        kind = w_codes.dtype if isinstance(w_codes, torch.Tensor) else type(w_codes).__name__
        raise QuantizationInputError(f"{OP}: w_codes must be an int8 tensor, got {kind}")
    if w_codes.dim() != 2 or w_codes.shape[1] != in_features:
        raise QuantizationInputError(
            f"{OP}: w_codes must be shaped (out_features, {in_features}) for x's last dimension {in_features}, "
            f"got {tuple(w_codes.shape)}"
        )
    if bool(((w_codes < -1) | (w_codes > 1)).any()):  # not abs(): abs(-128) is -128 in int8
        raise QuantizationInputError(f"{OP}: w_codes must hold only -1, 0 and +1")
    return w_codes


def _check_scale(w_scale: object, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(w_scale, torch.Tensor) or not w_scale.is_floating_point():
        raise QuantizationInputError(f"{OP}: w_scale must be a floating-point tensor")
    if shape == () and w_scale.numel() != 1:
        raise QuantizationInputError(f"{OP}: a per-tensor w_scale has one element, got shape {tuple(w_scale.shape)}")
    if shape != () and tuple(w_scale.shape) != shape:
        raise QuantizationInputError(f"{OP}: w_scale must be shaped {shape}, got {tuple(w_scale.shape)}")
    if not bool(torch.isfinite(w_scale).all()) or bool((w_scale < 0).any()):
        raise QuantizationInputError(f"{OP}: w_scale must be finite and >= 0")
    return w_scale


def _check_bias(bias: object, out_features: int) -> torch.Tensor | None:
    if bias is None:
        return None
    if not isinstance(bias, torch.Tensor) or not bias.is_floating_point() or tuple(bias.shape) != (out_features,):
        raise QuantizationInputError(f"{OP}: bias must be None or a float tensor shaped ({out_features},)")
    if not bool(torch.isfinite(bias).all()):
        raise QuantizationInputError(f"{OP}: bias contains NaN or Inf")
    return bias


def group_sums(x_codes: torch.Tensor, w_codes: torch.Tensor, group_size: int | None = None) -> torch.Tensor:
    """``sum_k x[..., k] * w[n, k]`` per group of ``group_size`` consecutive k (the last group
    shorter, SPEC CONV-4), exactly (int64): shaped ``(..., N, G)``; None: one group, the whole
    dot product."""
    k = x_codes.shape[-1]
    size = k if group_size is None else group_size
    groups = max(-(-k // size), 1)
    pad = size * groups - k
    x64 = torch.nn.functional.pad(x_codes.to(torch.int64), (0, pad)).reshape(*x_codes.shape[:-1], groups, size)
    w64 = torch.nn.functional.pad(w_codes.to(torch.int64), (0, pad)).reshape(w_codes.shape[0], groups, size)
    return torch.einsum("...gk,ngk->...ng", x64, w64)


def bitlinear_terms(
    x: torch.Tensor,
    w_codes: torch.Tensor,
    w_scale: torch.Tensor,
    conventions: Conventions = DEFAULT,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_codes, group sums (..., N, G) int64, per-group factor x_scale * w_scale (..., N, G) f64)``
    after validating the arguments: the exact parts of :func:`bitlinear`, also used by the checks
    to state their tolerance."""
    check_float_tensor(OP, x, what="activation", min_ndim=1, allow_empty=False)
    in_features = x.shape[-1]
    _check_weights(w_codes, in_features)
    shape = weight_scale_shape(w_codes.shape[0], in_features, conventions)
    _check_scale(w_scale, shape)
    x_codes, x_scale = act_quantize(x, conventions)
    groups = shape[1] if len(shape) == 2 else 1
    sums = group_sums(x_codes, w_codes, conventions.weight_granularity.group_size)
    per_group = w_scale.detach().to(torch.float64).reshape(-1, groups)  # (1, 1), (N, 1) or (N, G)
    factor = x_scale.to(torch.float64).unsqueeze(-1) * per_group  # (..., 1, 1) * (N|1, G)
    return x_codes, sums, factor.expand(sums.shape)


def bitlinear(
    x: torch.Tensor,
    w_codes: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    conventions: Conventions = DEFAULT,
) -> torch.Tensor:
    """``(act_codes(x) . w_codes^T) * x_scale * w_scale (+ bias)`` in ``x.dtype`` (SPEC BL-1).

    ``x``: float ``(..., K)``; ``w_codes``: int8 ``(N, K)`` in {-1, 0, +1}; ``w_scale``: the weight
    dequantization scale (``mean|W|``), shaped per :func:`weight_scale_shape`; ``bias``: ``(N,)``.
    Raises :class:`~qcheck.errors.QuantizationInputError` on anything else.
    """
    checked_bias = _check_bias(bias, w_codes.shape[0] if isinstance(w_codes, torch.Tensor) and w_codes.dim() else 0)
    _, sums, factor = bitlinear_terms(x, w_codes, w_scale, conventions)
    y = (sums.to(torch.float64) * factor).sum(dim=-1)
    if checked_bias is not None:
        y = y + checked_bias.detach().to(torch.float64)
    return y.to(x.dtype)
