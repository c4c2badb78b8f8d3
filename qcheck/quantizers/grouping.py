"""Which elements share one scale: a granularity turned into group indices (SPEC CONV-4).

Elements are taken in row-major order of the logical tensor, whatever its memory layout, so a
transposed or strided input gives the same groups as its contiguous copy.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from qcheck.conventions import Granularity, GranularityKind
from qcheck.errors import QuantizationInputError


@dataclasses.dataclass(frozen=True)
class GroupLayout:
    """Group index of every element (flat, row-major), the group count and the scale's shape."""

    ids: torch.Tensor
    n_groups: int
    counts: torch.Tensor
    scale_shape: tuple[int, ...]

    def expand(self, per_group: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Broadcast one value per group back to every element of a tensor of ``shape``."""
        return per_group[self.ids].reshape(shape)


def group_layout(op: str, shape: torch.Size, granularity: Granularity) -> GroupLayout:
    """The groups of a tensor of ``shape`` under ``granularity``.

    Scale shapes: per tensor ``()``; per row ``shape[:-1] + (1,)``; per group of G
    ``shape[:-1] + (ceil(K / G),)`` with K the last dimension (a short last group when G does not
    divide K).
    """
    numel = math.prod(shape)
    if granularity.kind is GranularityKind.PER_TENSOR:
        ids = torch.zeros(numel, dtype=torch.int64)
        return GroupLayout(ids, 1, torch.tensor([numel], dtype=torch.int64), ())
    if len(shape) == 0:
        raise QuantizationInputError(f"{op}: a 0-d tensor has no rows; {granularity} needs at least 1-D")
    k = shape[-1]
    rows = numel // k if k else 0
    flat = torch.arange(numel, dtype=torch.int64)
    if granularity.kind is GranularityKind.PER_ROW:
        ids = flat // k if k else flat
        counts = torch.full((rows,), k, dtype=torch.int64)
        return GroupLayout(ids, rows, counts, (*shape[:-1], 1))
    size = granularity.group_size
    assert size is not None
    per_row = -(-k // size)
    ids = (flat // k) * per_row + (flat % k) // size if k else flat
    counts = torch.full((per_row,), size, dtype=torch.int64)
    if k % size:
        counts[-1] = k % size
    return GroupLayout(ids, rows * per_row, counts.repeat(rows), (*shape[:-1], per_row))
