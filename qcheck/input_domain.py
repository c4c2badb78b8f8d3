"""Fitting drawn inputs to the shapes a backend declares it accepts (SPEC IN-6).

Block formats only hold rows of whole blocks (ggml TQ1_0/TQ2_0: 256 elements), and some layers
only hold a multiple of rows (HF ``BitLinear`` packs 4 output rows per byte).  A backend declares
``row_multiple`` and ``out_features_multiple`` in its conventions; every drawn input is then
zero-padded up to those multiples before the check sees it, so the check and the reference both
work on the padded tensor, and the backend is never fed a shape it cannot hold.  Zero padding
keeps a row's absmax (so absmax statistics, activations and ggml blocks are unchanged) but moves
an absmean (an absmean tie may not survive it).  The packing ops are left alone: their layout
already says which shapes they take (PACK-2).
"""

from __future__ import annotations

from typing import Any

import torch

from qcheck.arguments import Args
from qcheck.conventions import Conventions


def _pad_to(t: torch.Tensor, dim: int, multiple: int) -> torch.Tensor:
    dim = dim % t.dim()
    size = t.shape[dim]
    extra = -size % multiple if size else multiple
    if multiple <= 1 or extra == 0:
        return t
    padding = torch.zeros((*t.shape[:dim], extra, *t.shape[dim + 1 :]), dtype=t.dtype)
    return torch.cat([t.detach(), padding], dim=dim)


def _fit_tensor(t: torch.Tensor, conventions: Conventions) -> torch.Tensor:
    if t.dim() == 0:
        return _pad_to(t.reshape(1), 0, conventions.row_multiple) if conventions.row_multiple > 1 else t
    return _pad_to(t, -1, conventions.row_multiple)


def _fit_bitlinear(args: Args, conventions: Conventions) -> Args:
    x, w_codes, w_scale, bias = args
    x = _pad_to(x, -1, conventions.row_multiple)
    w_codes = _pad_to(_pad_to(w_codes, 1, conventions.row_multiple), 0, conventions.out_features_multiple)
    rows = w_codes.shape[0]
    if w_scale.dim() == 2:  # per row (N, 1) or per group (N, G): new rows get the last row's scales
        extra = rows - w_scale.shape[0]
        if extra:
            w_scale = torch.cat([w_scale, w_scale[-1:].expand(extra, -1)], dim=0)
        groups = conventions.weight_granularity.group_size
        if groups is not None and w_scale.shape[1] * groups < w_codes.shape[1]:
            more = -(-w_codes.shape[1] // groups) - w_scale.shape[1]
            w_scale = torch.cat([w_scale, w_scale[:, -1:].expand(-1, more)], dim=1)
    if bias is not None:
        bias = _pad_to(bias, 0, conventions.out_features_multiple)
    return Args((x, w_codes, w_scale, bias))


def fit(value: Any, op: str, conventions: Conventions) -> Any:
    """``value`` (a tensor, an :class:`Args`, or a tuple of them with ints) padded with zeros to the
    declared multiples; unchanged when nothing is declared or ``op`` is a packing op."""
    if (conventions.row_multiple <= 1 and conventions.out_features_multiple <= 1) or op in (
        "pack_ternary",
        "unpack_ternary",
    ):
        return value
    if isinstance(value, Args):
        return _fit_bitlinear(value, conventions) if op == "bitlinear" else value
    if isinstance(value, torch.Tensor):
        return _fit_tensor(value, conventions)
    if isinstance(value, tuple):
        return tuple(fit(v, op, conventions) for v in value)
    return value
