"""Tensor-only versions of the default-convention quantizers, written the way a kernel is: float64
accumulation, exact threshold comparisons, no Python loop and no Fractions, so that
``torch.compile`` can generate a kernel from them (the ``torch-compile`` backend).

They are graded against the exact references like any backend; they are not the definition.
"""

from __future__ import annotations

import torch

EPS = 1e-5


def _scale_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _mean(values: torch.Tensor) -> torch.Tensor:
    """The float64 mean, with a power-of-two prescale where a float64 sum could overflow."""
    big = values.abs().amax() > 2.0**1000 if values.numel() else torch.tensor(False)
    shift = torch.where(big, 2.0**-24, 1.0)
    return (values * shift).mean() / shift


def b1_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Sign(W - mean W)`` with Sign(0) = -1 (comparison in float64), beta = mean|W|."""
    w64 = w.to(torch.float64)
    alpha = _mean(w64)
    alpha = alpha + _mean(w64 - alpha)  # one correction step: all-equal W lands exactly on W
    codes = torch.where(w64 > alpha, 1, -1).to(torch.int8)
    return codes, _mean(w64.abs()).to(_scale_dtype(w))


def b1_fake_quantize(w: torch.Tensor) -> torch.Tensor:
    codes, beta = b1_quantize(w.detach())
    value = (codes.to(torch.float64) * beta.to(torch.float64)).to(w.dtype)
    return value + (w - w.detach())  # exactly value forward, identity gradient


def b158_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``RoundClip(W / gamma, -1, 1)`` half to even, gamma = max(mean|W|, eps) in the scale dtype."""
    w64 = w.to(torch.float64)
    dtype = _scale_dtype(w)
    gamma = _mean(w64.abs()).to(dtype).clamp(min=torch.tensor(EPS, dtype=dtype)).to(torch.float64)
    out = (2.0 * w64.abs()) > gamma  # |w / gamma| > 1/2, exactly; a tie rounds to 0 (even)
    codes = torch.where(out, torch.where(w64 > 0, 1, -1), 0).to(torch.int8)
    return codes, gamma.to(dtype)


def b158_fake_quantize(w: torch.Tensor) -> torch.Tensor:
    codes, gamma = b158_quantize(w.detach())
    value = (codes.to(torch.float64) * gamma.to(torch.float64)).to(w.dtype)
    return value + (w - w.detach())  # exactly value forward, identity gradient


def _act(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x64 = x.to(torch.float64)
    dtype = _scale_dtype(x)
    absmax = x64.abs().amax(dim=-1, keepdim=True)
    a = absmax.to(dtype).clamp(min=torch.tensor(EPS, dtype=dtype)).to(torch.float64)
    shift = torch.where((x64.abs() > 2.0**1000) | (a > 2.0**1000), 2.0**-8, 1.0)
    codes = torch.round((x64 * shift * 127.0) / (a * shift)).clamp(-128, 127)
    return codes, a, shift


def act_quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token: ``round(x * 127 / max(absmax, eps))`` half to even, scale ``a / 127``."""
    codes, a, _ = _act(x)
    return codes.to(torch.int8), (a / 127.0).to(_scale_dtype(x))


def act_fake_quantize(x: torch.Tensor) -> torch.Tensor:
    """``code * a / 127``, never above ``a`` (``code * fl(a / 127)`` can overflow at the max)."""
    codes, a, shift = _act(x.detach())
    value = codes * (a * shift) / 127.0 / shift
    value = (torch.sign(value) * torch.minimum(value.abs(), a)).to(x.dtype)
    return value + (x - x.detach())  # exactly value forward, identity gradient
