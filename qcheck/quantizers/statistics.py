"""Scale statistics per group, with eps applied as declared (SPEC CONV-2, CONV-3, SCALE-1..3).

Statistics are computed exactly (max) or from exact sums (mean), in float64, then rounded once
to the scale dtype; eps is applied in the scale dtype, as the FAQ's float32 code does.
"""

from __future__ import annotations

import torch

from qcheck.conventions import Conventions, EpsMode, Statistic
from qcheck.quantizers.exact import exact_group_means
from qcheck.quantizers.grouping import GroupLayout


def group_absmax(values: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """``max |v|`` per group (float64, exact); an empty group's absmax is 0."""
    out = torch.zeros(layout.n_groups, dtype=torch.float64)
    return out.scatter_reduce_(0, layout.ids, values.abs(), reduce="amax", include_self=True)


def group_min(values: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """``min v`` per group (float64, exact)."""
    out = torch.full((layout.n_groups,), float("inf"), dtype=torch.float64)
    return out.scatter_reduce_(0, layout.ids, values, reduce="amin", include_self=True)


def group_absmean(values: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """``mean |v|`` per group: the exact mean rounded to the nearest float64."""
    return exact_group_means(values.abs(), layout.ids, layout.counts).nearest


def weight_statistic(values: torch.Tensor, layout: GroupLayout, statistic: Statistic) -> torch.Tensor:
    """The declared weight statistic per group, float64."""
    if statistic is Statistic.ABSMAX:
        return group_absmax(values, layout)
    return group_absmean(values, layout)


def to_dtype_value(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``values`` rounded to ``dtype`` (nearest even), returned as float64 holding those values."""
    return values.to(dtype).to(torch.float64)


def apply_eps(statistic: torch.Tensor, conventions: Conventions, scale_dtype: torch.dtype) -> torch.Tensor:
    """The divisor a quantizer uses, as float64 values representable in ``scale_dtype``.

    CLAMP: ``max(fl(stat), fl(eps))`` (FAQ ``.clamp(min=1e-5)``); ADD: ``fl(fl(stat) + fl(eps))``
    (b1.58 paper eq. 1); NONE: ``fl(stat)``, which may be 0.  ``fl`` rounds to ``scale_dtype``.
    """
    stat = to_dtype_value(statistic, scale_dtype)
    eps = float(torch.tensor(conventions.eps, dtype=scale_dtype))
    if conventions.eps_mode is EpsMode.CLAMP:
        return stat.clamp(min=eps)
    if conventions.eps_mode is EpsMode.ADD:
        return to_dtype_value(stat + eps, scale_dtype)
    return stat
