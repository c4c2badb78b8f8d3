"""A backend that segfaults on b158_quantize for more than 3 elements, hangs on act_quantize for an
element above 2.0, hangs in the backward of act_fake_quantize, raises a two-line error on
b1_fake_quantize, and gets b1_quantize right."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import torch

from qcheck import quantizers

name = "crashy"


def b158_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if w.numel() > 3:
        os.kill(os.getpid(), signal.SIGSEGV)
    return quantizers.b158_quantize(w)


def act_quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if bool((x.detach().to(torch.float64) > 2.0).any()):
        time.sleep(10**6)
    return quantizers.act_quantize(x)


def b1_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return quantizers.b1_quantize(w)


def b1_fake_quantize(w: torch.Tensor) -> torch.Tensor:
    raise ValueError("unsupported input\n  (second line of the message)")


class _HangingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return quantizers.act_fake_quantize(x.detach())

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        time.sleep(10**6)
        return grads[0]


def act_fake_quantize(x: torch.Tensor) -> torch.Tensor:
    out = _HangingBackward.apply(x)
    assert isinstance(out, torch.Tensor)
    return out


crashy_backend = sys.modules[__name__]
"""The spec ``tests.backends.crashy:crashy_backend`` names this module."""


class DiesOnLoad:
    """A backend whose constructor kills its process."""

    name = "dies-on-load"

    def __init__(self) -> None:
        os.kill(os.getpid(), signal.SIGABRT)

    def b1_quantize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return quantizers.b1_quantize(w)


class ExitsOnLoad:
    """A backend whose constructor raises SystemExit (not caught by the in-process loader)."""

    name = "exits-on-load"

    def __init__(self) -> None:
        raise SystemExit("no GPU here")

    def b1_quantize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return quantizers.b1_quantize(w)
