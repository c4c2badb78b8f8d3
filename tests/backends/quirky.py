"""A backend with quirks the isolation layer must carry across the process boundary: it mutates its
input, returns an alias, has a straight-through gradient, a detached output, an unpicklable result,
and reports the layout it received."""

from __future__ import annotations

import threading
from typing import Any

import torch

from qcheck import quantizers


class Quirky:
    name = "quirky"

    def b1_quantize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Correct codes and scale, but doubles the input in place."""
        result = quantizers.b1_quantize(w.clone())
        w.mul_(2)
        return result.codes, result.scale

    def act_fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Returns a view of its input."""
        return x.view(x.shape)

    def b158_fake_quantize(self, w: torch.Tensor) -> torch.Tensor:
        """The reference: a straight-through gradient."""
        return quantizers.b158_fake_quantize(w)

    def b1_fake_quantize(self, w: torch.Tensor) -> torch.Tensor:
        """The reference values, detached: no gradient flows."""
        return quantizers.b1_fake_quantize(w.detach())

    def b158_quantize(self, w: torch.Tensor) -> Any:
        return threading.Lock()

    def act_quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Not a quantizer: (strides, storage offset) of the tensor it was given."""
        return torch.tensor(x.stride()), torch.tensor([x.storage_offset(), x.untyped_storage().nbytes()])
