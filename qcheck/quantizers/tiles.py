"""A tensor's scale groups as the rows of a matrix, walked in tiles of bounded size.

The streaming quantizers (:mod:`qcheck.quantizers.streaming`) never make a temporary the size of
the input: every pass reads one tile of at most :data:`TILE_ELEMENTS` elements, so the extra
memory is a few tiles whatever the tensor (issue 6, target 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

from qcheck.conventions import Granularity, GranularityKind

TILE_ELEMENTS = 1 << 16
"""Elements per tile: 256 KiB of float32, small enough to stay in a core's L2 cache between the
passes made over it, large enough that torch's per-call overhead is a few percent."""


@dataclasses.dataclass(frozen=True)
class GroupMatrix:
    """``rows``: the input viewed as ``(n_groups, group_length)`` (row-major order of the logical
    tensor, SPEC CONV-4), and the shape the per-group scale is returned in."""

    rows: torch.Tensor
    scale_shape: tuple[int, ...]

    @property
    def n_groups(self) -> int:
        return int(self.rows.shape[0])

    @property
    def group_length(self) -> int:
        return int(self.rows.shape[1])


def group_matrix(x: torch.Tensor, granularity: Granularity) -> GroupMatrix | None:
    """``x``'s groups as matrix rows, or None where a group is not a row of a reshape (a group size
    that does not divide the last dimension, a 0-d tensor under a per-row granularity).

    A non-contiguous ``x`` is copied once, in its own dtype, to get row-major order.
    """
    shape = tuple(x.shape)
    x = x.detach().contiguous()  # a no-op for the usual contiguous input
    if granularity.kind is GranularityKind.PER_TENSOR:
        return GroupMatrix(x.reshape(1, -1), ())
    if not shape or shape[-1] == 0:
        return None
    k = shape[-1]
    if granularity.kind is GranularityKind.PER_ROW:
        return GroupMatrix(x.reshape(-1, k), (*shape[:-1], 1))
    size = granularity.group_size
    assert size is not None
    if k % size:
        return None
    return GroupMatrix(x.reshape(-1, size), (*shape[:-1], k // size))


@dataclasses.dataclass(frozen=True)
class Tile:
    """Rows ``rows`` and columns ``columns`` of a group matrix; ``last_of_row`` marks the tile that
    ends its rows (a row longer than a tile is split into several)."""

    rows: slice
    columns: slice
    last_of_row: bool


def tiles(n_rows: int, row_length: int, budget: int | None = None) -> Iterator[Tile]:
    """Tiles covering an ``n_rows x row_length`` matrix in row-major order, each of at most
    ``budget`` elements (default :data:`TILE_ELEMENTS`, read at call time so that tests can shrink
    it): whole rows when a row fits, else one row in pieces."""
    budget = TILE_ELEMENTS if budget is None else budget
    if row_length >= budget:
        for r in range(n_rows):
            for c in range(0, row_length, budget):
                yield Tile(slice(r, r + 1), slice(c, min(c + budget, row_length)), c + budget >= row_length)
        return
    per_tile = max(1, budget // max(row_length, 1))
    for r in range(0, n_rows, per_tile):
        yield Tile(slice(r, min(r + per_tile, n_rows)), slice(0, row_length), True)
