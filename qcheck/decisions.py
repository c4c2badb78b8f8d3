"""Where each reference code was decided: exactly on a rounding tie, or within a stated window of
a decision boundary (SPEC CMP-2, CMP-3).

A kernel that computes ``x * (1/s)`` instead of ``x / s``, or sums in another order, may land on
the other side of a boundary for elements inside the window; such differences are counted and
reported, never hidden.  A difference *on* a tie is a convention difference and is not excused.
"""

from __future__ import annotations

import dataclasses

import torch

from qcheck.conventions import Conventions
from qcheck.ops import Op
from qcheck.quantizers.activations import code_range, exact_quotient
from qcheck.quantizers.exact import compare_to_mean, exact_group_means
from qcheck.quantizers.grouping import group_layout
from qcheck.quantizers.statistics import apply_eps, group_absmax, group_absmean
from qcheck.quantizers.validation import scale_dtype_for

NEAR_BOUNDARY_EPS = 8
"""The window around a boundary, in machine epsilons of the scale dtype (float32: 9.5e-7 relative)."""


@dataclasses.dataclass(frozen=True)
class Decisions:
    """Reference codes of one input, with where each was decided."""

    codes: torch.Tensor  # int8, the input's shape
    scale: torch.Tensor  # the reference scale, its own shape
    scale_per_element: torch.Tensor  # float64, the input's shape
    ties: torch.Tensor  # bool: exactly on a rounding tie
    near: torch.Tensor  # bool: inside the window of a boundary but not on it
    alternative: torch.Tensor  # int8: the code across the nearest boundary


def window(dtype: torch.dtype) -> float:
    """The relative width of the near-boundary window for input of ``dtype``."""
    return NEAR_BOUNDARY_EPS * torch.finfo(scale_dtype_for(dtype)).eps


def analyse(op: Op, x: torch.Tensor, conventions: Conventions) -> Decisions:
    """Reference codes and decision boundaries of ``op``'s family for input ``x``."""
    quantize = {"b1": _b1, "b158": _b158, "act": _act}[op.family]
    return quantize(x, conventions)


def _per_element(scale: torch.Tensor, x: torch.Tensor, layout_ids: torch.Tensor) -> torch.Tensor:
    return scale.reshape(-1).to(torch.float64)[layout_ids].reshape(x.shape)


def _b158(w: torch.Tensor, conventions: Conventions) -> Decisions:
    from qcheck.quantizers import b158_quantize

    codes, scale = b158_quantize(w, conventions)
    layout = group_layout("analyse", w.shape, conventions.weight_granularity)
    gamma = _per_element(scale, w, layout.ids)
    flat = w.detach().to(torch.float64)
    twice = 2.0 * flat.abs()
    ties = (twice == gamma) & (gamma > 0)
    near = ((twice - gamma).abs() <= window(w.dtype) * gamma) & ~ties & (gamma > 0)
    alternative = torch.where(codes == 0, torch.where(flat > 0, 1, -1), 0).to(torch.int8)
    return Decisions(codes, scale, gamma, ties, near, alternative)


def _b1(w: torch.Tensor, conventions: Conventions) -> Decisions:
    from qcheck.quantizers import b1_quantize

    codes, scale = b1_quantize(w, conventions)
    layout = group_layout("analyse", w.shape, conventions.weight_granularity)
    flat = w.detach().reshape(-1).to(torch.float64)
    means = exact_group_means(flat, layout.ids, layout.counts)
    side = compare_to_mean(flat, means, layout.ids).reshape(w.shape)
    ties = side == 0
    absmean = group_absmean(flat, layout)[layout.ids]
    counts = layout.counts.to(torch.float64)[layout.ids]
    slack = window(w.dtype) * (2.0 + torch.log2(counts)) * absmean
    distance = (flat - means.nearest[layout.ids]).abs()
    near = (distance <= slack).reshape(w.shape) & ~ties
    return Decisions(codes, scale, _per_element(scale, w, layout.ids), ties, near, (-codes).to(torch.int8))


def _act(x: torch.Tensor, conventions: Conventions) -> Decisions:
    from qcheck.quantizers import act_quantize

    codes, scale = act_quantize(x, conventions)
    layout = group_layout("analyse", x.shape, conventions.activation_granularity)
    low, high = code_range(conventions.activation_bits)
    flat = x.detach().reshape(-1).to(torch.float64)
    divisor = apply_eps(group_absmax(flat, layout), conventions, scale_dtype_for(x.dtype))[layout.ids]
    safe = torch.where(divisor > 0, divisor, 1.0)
    q = torch.where(divisor > 0, exact_quotient(flat, high, safe), 0.0).reshape(x.shape)
    floor = torch.floor(q)
    half = floor + 0.5
    ties = (q == half) & (q.abs() <= high + 0.5)
    near = ((q - half).abs() <= window(x.dtype) * q.abs()) & ~ties & (q.abs() <= high + 0.5)
    alternative = torch.where(codes.to(torch.float64) == floor, floor + 1, floor).clamp(low, high)
    per_element = _per_element(scale, x, layout.ids)
    return Decisions(codes, scale, per_element, ties, near, alternative.to(torch.int8))


def describe_window(dtype: torch.dtype) -> str:
    """The window as text for messages: ``8 eps of float32 (9.5e-07 relative)``."""
    sd = scale_dtype_for(dtype)
    return f"{NEAR_BOUNDARY_EPS} eps of {str(sd).removeprefix('torch.')} ({window(dtype):.2g} relative)"


__all__ = ["NEAR_BOUNDARY_EPS", "Decisions", "analyse", "describe_window", "window"]
