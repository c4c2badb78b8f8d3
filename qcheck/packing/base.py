"""The :class:`Layout` contract shared by every reference packer: validation is written once here.

A concrete layout supplies only its shape rule and its vectorised pack/unpack on validated,
contiguous input; it never sees non-int8, non-ternary codes or a byte buffer of the wrong size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from qcheck.packing.errors import PackingInputError, UnsupportedShape


def _as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints (torch.Size, lists and tuples are accepted)."""
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError as exc:
        raise PackingInputError(f"shape must be a sequence of ints, got {shape!r}") from exc
    if any(d < 0 for d in dims):
        raise PackingInputError(f"shape {dims} has a negative dimension")
    return dims


def first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """The row-major index of the first True element of ``mask`` (which must have one)."""
    flat = int(torch.nonzero(mask.reshape(-1))[0, 0])
    index: list[int] = []
    for size in reversed(mask.shape):
        flat, i = divmod(flat, size)
        index.append(i)
    return tuple(reversed(index))


@dataclasses.dataclass(frozen=True)
class Layout:
    """A storage layout for ternary codes in {-1, 0, +1} (int8), with a reference pack and unpack.

    ``pack`` returns a new contiguous uint8 tensor and never mutates its input; ``unpack`` returns a
    new contiguous int8 tensor of exactly the requested shape.  Any byte tensor with the right number
    of bytes is accepted by ``unpack`` (read in row-major order), so raw file bytes can be passed flat.
    """

    name: str
    summary: str
    source: str
    bits_per_weight: float

    # -- the contract ---------------------------------------------------------------------------
    def supports(self, shape: Sequence[int]) -> str | None:
        """None if this layout can store codes of ``shape``, else the one-line reason it cannot."""
        dims = _as_shape(shape)
        if not dims:
            return "a 0-d tensor has no last dimension to pack along"
        return self._shape_rule(dims)

    def packed_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of :meth:`pack`'s uint8 output for codes of ``shape``; raises UnsupportedShape."""
        return self._packed_shape(self._require_supported(shape))

    def pack(self, codes: torch.Tensor) -> torch.Tensor:
        """Pack int8 codes in {-1, 0, +1} (any strides) into a new contiguous uint8 tensor."""
        if not isinstance(codes, torch.Tensor):
            raise PackingInputError(f"{self.name}: codes must be a torch.Tensor, got {type(codes).__name__}")
        if codes.dtype != torch.int8:
            raise PackingInputError(f"{self.name}: codes must be int8, got {codes.dtype}")
        shape = self._require_supported(codes.shape)
        bad = (codes < -1) | (codes > 1)
        if bool(bad.any()):
            where = first_index(bad)
            raise PackingInputError(
                f"{self.name}: codes must be in {{-1, 0, +1}}; {int(bad.sum())} of {codes.numel()} are not, "
                f"first {int(codes[where])} at index {where}"
            )
        out = self._pack(codes.contiguous(), shape)
        assert out.dtype == torch.uint8 and tuple(out.shape) == self._packed_shape(shape)
        return out.contiguous()

    def unpack(self, packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Unpack uint8 bytes into a new contiguous int8 tensor of exactly ``shape``."""
        dims = self._require_supported(shape)
        if not isinstance(packed, torch.Tensor):
            raise PackingInputError(f"{self.name}: packed must be a torch.Tensor, got {type(packed).__name__}")
        if packed.dtype != torch.uint8:
            raise PackingInputError(f"{self.name}: packed bytes must be uint8, got {packed.dtype}")
        want = self._packed_shape(dims)
        n_bytes = 1
        for d in want:
            n_bytes *= d
        if packed.numel() != n_bytes:
            raise PackingInputError(
                f"{self.name}: codes of shape {dims} take {n_bytes} bytes (packed shape {want}), "
                f"got {packed.numel()} (shape {tuple(packed.shape)})"
            )
        out = self._unpack(packed.contiguous().reshape(want), dims)
        assert out.dtype == torch.int8 and tuple(out.shape) == dims
        return out.contiguous()

    # -- what a concrete layout supplies ---------------------------------------------------------
    def _shape_rule(self, shape: tuple[int, ...]) -> str | None:
        """None if ``shape`` (at least 1-d, dims >= 0) can be stored, else the reason."""
        raise NotImplementedError

    def _packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def _pack(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Pack validated, contiguous ternary int8 ``codes``; must not write to ``codes``."""
        raise NotImplementedError

    def _unpack(self, packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Unpack contiguous uint8 ``packed`` of shape ``_packed_shape(shape)``; reject invalid fields."""
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------
    def _require_supported(self, shape: Sequence[int]) -> tuple[int, ...]:
        dims = _as_shape(shape)
        reason = self.supports(dims)
        if reason is not None:
            raise UnsupportedShape(self.name, dims, reason)
        return dims

    def _reject(self, mask: torch.Tensor, what: str, values: torch.Tensor | None = None) -> None:
        """Raise PackingInputError naming ``what`` if any element of ``mask`` is True."""
        if bool(mask.any()):
            where = first_index(mask)
            value = "" if values is None else f" (value {int(values[where])})"
            raise PackingInputError(
                f"{self.name}: {int(mask.sum())} {what}; first at position {where}{value} of {tuple(mask.shape)}"
            )
