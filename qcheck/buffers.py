"""Result buffers that are cheap to write the first time.

torch maps a large CPU buffer fresh from the OS in 4 KiB pages, and the first write to 45 MB of them
costs about 15 ms of page faults, more than the packing or quantizing that fills it; numpy asks Linux
for transparent huge pages (``madvise``), which makes that about 2 ms.  Used for the results of the
packers (:mod:`qcheck.packing`) and of the streaming quantizers (:mod:`qcheck.quantizers.streaming`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

LARGE_BYTES = 1 << 22
"""Results at least this large are allocated by numpy (see :func:`new_empty`)."""
_NUMPY_DTYPES = {torch.uint8: np.uint8, torch.int8: np.int8, torch.int32: np.int32, torch.int64: np.int64}


def new_empty(shape: Sequence[int], dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """An uninitialised contiguous tensor for a result (or a temporary as large); large CPU ones come from numpy.

    torch maps a large CPU buffer fresh from the OS in 4 KiB pages, and the first write to 45 MB
    of them costs about 15 ms of page faults, several times the unpacking itself; numpy asks Linux
    for transparent huge pages (``madvise``), which makes that about 2 ms.  Scratch buffers of one
    piece are left to torch: they are reused from the heap.  A numpy-backed tensor's storage cannot
    be resized (``resize_``).
    """
    n_bytes = torch.Size(shape).numel() * dtype.itemsize
    if torch.device(device).type != "cpu" or n_bytes == 0 or n_bytes < LARGE_BYTES or dtype not in _NUMPY_DTYPES:
        return torch.empty(tuple(shape), dtype=dtype, device=device)
    return torch.from_numpy(np.empty(tuple(shape), dtype=_NUMPY_DTYPES[dtype]))
