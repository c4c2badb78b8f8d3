"""What a quantizer returns: integer codes and the dequantization scale (value ~ code * scale)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Quantized(NamedTuple):
    """``codes`` (int8, the input's shape) and ``scale`` (value ~ codes * scale, broadcastable
    per granularity: ``()`` per tensor, ``(..., 1)`` per row or token, ``(..., n_groups)`` per group)."""

    codes: torch.Tensor
    scale: torch.Tensor


class ZeroPointQuantized(NamedTuple):
    """Unsigned ``codes`` (uint8), ``scale`` and ``zero_point``: value ~ codes * scale + zero_point."""

    codes: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
