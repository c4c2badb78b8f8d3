"""Input policy shared by the torch references (SPEC IN-1..IN-5): what is rejected, and how.

Rejections raise :class:`qcheck.errors.QuantizationInputError` naming the op, what was wrong
and where, so that a caller never meets a traceback from deep inside torch.
"""

from __future__ import annotations

import torch

from qcheck.errors import QuantizationInputError

FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def scale_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """Scales are float32, or float64 for float64 input (SPEC SCALE-1)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_float_tensor(op: str, x: object, *, what: str, min_ndim: int, allow_empty: bool) -> torch.Tensor:
    """Return ``x`` if the SPEC accepts it for ``op``; raise a clear error otherwise.

    ``what`` names the argument ("weight", "activation"); ``min_ndim`` is the least rank the op
    needs; ``allow_empty`` says whether a tensor with no elements is accepted.
    """
    if not isinstance(x, torch.Tensor):
        raise QuantizationInputError(f"{op}: {what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in FLOAT_DTYPES)
        raise QuantizationInputError(f"{op}: {what} dtype {x.dtype} is not supported; use one of {names}")
    if x.dim() < min_ndim:
        raise QuantizationInputError(f"{op}: {what} needs at least {min_ndim} dimension(s), got shape {tuple(x.shape)}")
    if x.numel() == 0 and not allow_empty:
        raise QuantizationInputError(f"{op}: {what} of shape {tuple(x.shape)} has no elements")
    if x.dim() >= 1 and x.shape[-1] == 0 and x.numel() == 0 and allow_empty and min_ndim >= 1:
        # rows exist but are empty: there is no statistic to compute for them
        rows = x.shape[:-1].numel()
        if rows > 0:
            raise QuantizationInputError(
                f"{op}: {what} of shape {tuple(x.shape)} has rows of length 0; "
                "the last dimension must have at least one element"
            )
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        count = int(bad.sum())
        first = tuple(int(i) for i in torch.nonzero(bad)[0]) if x.dim() else ()
        value = float(x[first]) if x.dim() else float(x)
        raise QuantizationInputError(
            f"{op}: {what} contains {count} non-finite value(s) (NaN or Inf); "
            f"first at index {first}: {value}. Quantizing them has no defined result"
        )
    return x
