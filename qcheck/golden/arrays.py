"""Arrays of the golden cases as language-neutral ``.npy`` bytes (format 1.0, little-endian, no
pickle); bfloat16, which numpy lacks, travels as its raw bits in ``<u2``.

Encoding only: what the arrays hold is decided in :mod:`qcheck.golden.cases`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import torch

_NUMPY_DTYPES: dict[torch.dtype, str] = {
    torch.float16: "<f2",
    torch.float32: "<f4",
    torch.float64: "<f8",
    torch.int8: "|i1",
    torch.uint8: "|u1",
    torch.int32: "<i4",
    torch.int64: "<i8",
}


@dataclasses.dataclass(frozen=True)
class Array:
    """One named array of a case: ``data`` as stored and the dtype it stands for."""

    name: str
    data: np.ndarray
    logical_dtype: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.npy"

    def npy_bytes(self) -> bytes:
        """The ``.npy`` file: format version 1.0, C order, no pickle."""
        return npy_bytes(self.data)


def from_tensor(name: str, tensor: torch.Tensor) -> Array:
    """``tensor`` (detached, row-major) as an :class:`Array`; bfloat16 as raw ``<u2`` bits."""
    t = tensor.detach().contiguous().cpu()
    logical = str(t.dtype).removeprefix("torch.")
    if t.dtype == torch.bfloat16:
        data = t.view(torch.int16).numpy().view(np.uint16).astype("<u2")
    else:
        data = t.numpy().astype(_NUMPY_DTYPES[t.dtype])
    return Array(name, np.ascontiguousarray(data), logical)


def npy_bytes(data: np.ndarray) -> bytes:
    """``data`` serialized as a version 1.0 ``.npy`` file (what ``np.save`` writes), in memory."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(data), version=(1, 0), allow_pickle=False)
    return buffer.getvalue()


def load_npy(raw: bytes) -> np.ndarray:
    """The array in ``.npy`` bytes (pickled object arrays are refused)."""
    return np.asarray(np.load(io.BytesIO(raw), allow_pickle=False))


def sha256(raw: bytes) -> str:
    """Hex sha256 of ``raw``."""
    return hashlib.sha256(raw).hexdigest()


def first_difference(expected: np.ndarray, found: np.ndarray) -> str:
    """Where two arrays first differ, bit for bit (``-0.0`` and ``0.0`` differ), as text."""
    if expected.dtype != found.dtype:
        return f"dtype {found.dtype.str}, the reference gives {expected.dtype.str}"
    if expected.shape != found.shape:
        return f"shape {found.shape}, the reference gives {expected.shape}"
    unsigned = np.dtype(f"<u{expected.dtype.itemsize}")
    a = np.ascontiguousarray(expected).view(unsigned)
    b = np.ascontiguousarray(found).view(unsigned)
    differing = np.argwhere(a != b) if a.ndim else (np.zeros((1, 0), dtype=np.int64) if a != b else None)
    if differing is None or len(differing) == 0:
        return "the same values in a different encoding (header or padding)"
    index = tuple(int(i) for i in differing[0])
    count = int(np.count_nonzero(a != b))
    have, want = found[index].item(), expected[index].item()
    return f"index {index}: file has {have!r}, the reference gives {want!r} ({count} element(s) differ)"
