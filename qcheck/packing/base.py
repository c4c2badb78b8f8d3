"""The :class:`Layout` contract shared by every reference packer: validation is written once here.

A concrete layout supplies only its shape rule and its vectorised pack/unpack on contiguous input;
it never sees non-int8 codes or a byte buffer of the wrong size.  It checks that the codes are
ternary itself, with :meth:`Layout._require_ternary`, piece by piece as it packs them (a piece is
then read from memory once, not once to check and once to pack); the error is the same either way.

Also here: the few tools the layouts use to be fast on eager torch (issue 6: a 4096 x 11008 layer
packs in milliseconds).  Every elementwise torch op is one pass over memory, so the layouts work on
byte and word views with few in-place ops, big tensors are processed :func:`in pieces <pieces>`
whose temporaries stay in the CPU cache, and large results come from :func:`new_empty`.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple, ParamSpec, TypeVar

import torch

from qcheck.buffers import new_empty as new_empty
from qcheck.packing.errors import PackingInputError, UnsupportedShape

# The layouts view groups of bytes as little-endian int32/int64 words; so does every CPU torch runs on.
assert sys.byteorder == "little", "qcheck.packing's word-level code assumes a little-endian CPU"

#: Big tensors are processed in pieces of about this many bytes (tuned on a 1 MiB-L2 CPU).
CHUNK_BYTES = 1 << 21


def _as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints (torch.Size, lists and tuples are accepted)."""
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError as exc:
        raise PackingInputError(f"shape must be a sequence of ints, got {shape!r}") from exc
    if any(d < 0 for d in dims):
        raise PackingInputError(f"shape {dims} has a negative dimension")
    return dims


_P = ParamSpec("_P")
_R = TypeVar("_R")


def single_threaded(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` with one torch thread (restored after): for the loops over :func:`pieces`.

    Their ops each work on one cache-sized piece, too little to share out well, and they are many:
    where another job keeps a core busy, every multi-threaded op would wait for a time slice there.
    """

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        threads = torch.get_num_threads()
        if threads == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return run


def pieces(n: int, item_bytes: int) -> list[slice]:
    """``range(n)`` cut into consecutive slices of about :data:`CHUNK_BYTES` (``item_bytes`` per item, >= 1 item)."""
    step = max(1, CHUNK_BYTES // max(1, item_bytes))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


@single_threaded
def lookup(table: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out[i] = table[index[i]]`` for a 1-d ``table``, 1-d uint8/uint16 ``index`` and contiguous 1-d ``out``.

    ``index_select`` wants an int32/int64 index; it is widened one cache-sized piece at a time.
    """
    parts = pieces(index.numel(), 4)
    wide = torch.empty(parts[0].stop if parts else 0, dtype=torch.int32, device=index.device)
    for part in parts:
        chunk = wide[: part.stop - part.start]
        chunk.copy_(index[part])
        torch.index_select(table, 0, chunk, out=out[part])
    return out


class Lanes(NamedTuple):
    """One set of lanes that :func:`pack_lanes` packs in every group of codes, and where their bytes go."""

    out: torch.Tensor  # contiguous uint8 (n_groups, width)
    offset: int  # the first lane starts this many codes into the group
    width: int  # codes per lane: byte m gets code m of every lane
    n_lanes: int


@single_threaded
def pack_lanes(
    x: torch.Tensor,
    lane_sets: Sequence[Lanes],
    *,
    period: int,
    base: int,
    first_high: bool,
    check: Callable[[torch.Tensor], object] | None = None,
) -> None:
    """Pack lanes of codes into bytes, one digit in base ``base`` per lane: ``byte = sum_l w_l * (c_l + 1)``.

    ``x`` is flat uint8 code bytes cut into groups of ``period``.  For each :class:`Lanes`, byte ``m``
    of group ``g`` gets code ``c_l`` = element ``m`` of lane ``l`` with weight ``w_l = base**l``
    (``first_high`` False: the first lane is the lowest digit) or ``base**(n_lanes - 1 - l)`` (True).
    The sum is mod 256, which is exact while it stays below 256.

    Ops on the short lanes themselves would cost more per run than per byte, so the sums are formed
    over a whole cache-sized piece of groups at once from shifted slices (long contiguous loops; sums
    at other positions are computed and not used) -- pairs of lanes, then pairs of pairs -- and the
    wanted runs are then picked out.  Lanes that cover less than half of each group are first copied
    out of it, so that less is summed in vain.  Every set of lanes is done while the piece is in cache,
    and so is ``check``, called on each piece of ``x`` before it is used.
    """
    n_groups = x.numel() // period
    for lanes in lane_sets:
        assert lanes.n_lanes >= 2 and lanes.offset + lanes.n_lanes * lanes.width <= period and lanes.out.is_contiguous()
    parts = pieces(n_groups, period)
    piece_bytes = (parts[0].stop if parts else 0) * period
    buffers = torch.empty((2, piece_bytes), dtype=torch.uint8, device=x.device)
    region = torch.empty(piece_bytes, dtype=torch.uint8, device=x.device)
    for part in parts:
        groups = x[part.start * period : part.stop * period].view(-1, period)
        if check is not None:
            check(groups)
        for out, offset, width, n_lanes in lane_sets:
            src, start, span = groups, offset, n_lanes * width
            if 2 * span <= period:  # the lanes are a small part of each group: sum over a copy of them only
                src, start = region[: groups.shape[0] * span].view(-1, span).copy_(groups[:, offset : offset + span]), 0
            sums = _lane_sums(src.reshape(-1)[start:], width, n_lanes, base, first_high, buffers)
            out[part] = sums[: src.numel()].view(src.shape)[:, :width]
    for lanes in lane_sets:
        lanes.out.add_(sum(base**i for i in range(lanes.n_lanes)))  # the "+ 1" of every code


def _lane_sums(
    y: torch.Tensor, width: int, n_lanes: int, base: int, first_high: bool, buffers: torch.Tensor
) -> torch.Tensor:
    """A row of ``buffers`` whose element ``k`` is the digit sum of ``y[k + l*width]``, l < n_lanes (mod 256).

    The sum of the lanes so far grows by doubling (adding itself shifted by as many lanes) or by one
    lane of ``y``, following the bits of ``n_lanes``; each step writes the other row of ``buffers``.
    """
    p, done = y, 1
    steps = [step for bit in bin(n_lanes)[3:] for step in (("double", "one") if bit == "1" else ("double",))]
    for i, step in enumerate(steps):
        shifted = (p if step == "double" else y)[done * width :]
        n, added = shifted.numel(), done if step == "double" else 1
        q = buffers[i % 2, :n]
        if first_high:  # the lanes so far are the high digits
            torch.add(shifted, p[:n], alpha=base**added, out=q)
        else:
            torch.add(p[:n], shifted, alpha=base**done, out=q)
        p, done = q, done + added
    return buffers[(len(steps) - 1) % 2]


@single_threaded
def unpack_lanes(packed: torch.Tensor, out: torch.Tensor, *, width: int, shifts: Sequence[int]) -> torch.Tensor:
    """The inverse of :func:`pack_lanes` for 2-bit fields: lane ``l`` of a group gets field ``l`` of its bytes, - 1.

    ``packed`` is uint8 ``(rows, row_bytes)`` (any strides), each row groups of ``width`` bytes;
    ``out`` is contiguous int8 ``(rows, row_bytes * len(shifts))``, each row groups of
    ``len(shifts)`` lanes of ``width``: code ``m`` of lane ``l`` is bits ``shifts[l] .. shifts[l] + 1``
    of byte ``m``, less 1 (a field ``11`` decodes to +2).  ``width`` (and so ``row_bytes``) is a
    multiple of 8.  Each lane is decoded in a contiguous scratch and copied into place as 8-byte words.
    """
    rows, row_bytes = packed.shape
    parts = pieces(rows, row_bytes * len(shifts))
    scratch = torch.empty((2, (parts[0].stop if parts else 0), row_bytes), dtype=torch.uint8, device=packed.device)
    lanes = out.view(torch.int64).view(rows, row_bytes // width, len(shifts), width // 8)
    for part in parts:
        q, f = scratch[:, : part.stop - part.start]
        q.copy_(packed[part])
        for i, shift in enumerate(shifts):
            # shifted as 8-byte words: the bits that cross into a byte land above its 2 kept bits
            torch.bitwise_right_shift(q.view(torch.int64), shift, out=f.view(torch.int64))
            f.view(torch.int64).bitwise_and_(0x0303030303030303)
            f.sub_(1)  # code = field - 1 (in uint8, 0 - 1 = 0xff = -1)
            lanes[part, :, i] = f.view(torch.int64).view(f.shape[0], -1, width // 8)
    return out


def any_above(t: torch.Tensor, limit: int) -> bool:
    """Whether some element of ``t`` is greater than ``limit`` (one ``max``; False when ``t`` is empty)."""
    return t.numel() > 0 and int(t.max()) > limit


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
        if not codes.is_contiguous():
            codes = new_empty(shape, torch.int8, codes.device).copy_(codes)
        out = self._pack(codes, shape)
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
        """Pack contiguous int8 ``codes``; must not write to ``codes``.

        Must refuse codes outside {-1, 0, +1}: every byte it packs goes through :meth:`_require_ternary`
        first, the whole tensor at once or (cheaper: the piece is then in cache) piece by piece.
        """
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

    def _require_ternary(self, codes: torch.Tensor, piece: torch.Tensor | None = None) -> bool:
        """Raise PackingInputError if ``piece`` (a view of some of ``codes``' bytes; default all of them)
        holds a code outside {-1, 0, +1}; the error counts and locates the bad codes in all of ``codes``.

        One read-only pass (min and max together); returns whether the piece has a nonzero code.
        """
        checked = (codes if piece is None else piece).view(torch.int8)
        if checked.numel() == 0:
            return False
        lowest, highest = (int(v) for v in torch.aminmax(checked))
        if lowest >= -1 and highest <= 1:
            return lowest != 0 or highest != 0
        bad = (codes < -1) | (codes > 1)
        where = first_index(bad)
        raise PackingInputError(
            f"{self.name}: codes must be in {{-1, 0, +1}}; {int(bad.sum())} of {codes.numel()} are not, "
            f"first {int(codes[where])} at index {where}"
        )

    def _reject(self, mask: torch.Tensor, what: str, values: torch.Tensor | None = None) -> None:
        """Raise PackingInputError naming ``what`` if any element of ``mask`` is True."""
        if bool(mask.any()):
            where = first_index(mask)
            value = "" if values is None else f" (value {int(values[where])})"
            raise PackingInputError(
                f"{self.name}: {int(mask.sum())} {what}; first at position {where}{value} of {tuple(mask.shape)}"
            )
