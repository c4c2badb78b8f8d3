"""One place for comparisons: bit-exact codes with boundary bookkeeping, and float outputs with
stated per-element tolerances; every mismatch message says how many, where and by how much.

Modelled on ``torch.testing.assert_close``'s messages, but integer codes are never compared with
a tolerance (SPEC CMP-1) and near-boundary differences are counted, not hidden (SPEC CMP-2).
"""

from __future__ import annotations

import dataclasses

import torch

from qcheck.decisions import Decisions


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a received tensor with the expected one."""

    ok: bool
    message: str
    failing: int = 0
    near_boundary: int = 0
    tie_mismatches: int = 0


def _index(flat_position: int, shape: torch.Size) -> tuple[int, ...]:
    index: list[int] = []
    for size in reversed(shape):
        index.append(flat_position % size)
        flat_position //= size
    return tuple(reversed(index))


def _value(t: torch.Tensor, index: tuple[int, ...]) -> float:
    return float(t[index]) if t.dim() else float(t)


def describe_element(
    what: str, index: tuple[int, ...], x: torch.Tensor, expected: torch.Tensor, received: torch.Tensor
) -> str:
    """``first at index (0, 2): input 0.5, expected 0, received 1`` (values shown exactly)."""
    return (
        f"{what} at index {index}: input {_value(x, index)!r}, "
        f"expected {_value(expected, index)!r}, received {_value(received, index)!r}"
    )


def compare_codes(received: torch.Tensor, decisions: Decisions, x: torch.Tensor, what: str = "codes") -> Comparison:
    """Codes bit-exactly; a difference inside the near-boundary window, to the code across that
    boundary, is counted in ``near_boundary`` and does not fail.  Shapes must already agree."""
    expected = decisions.codes
    different = received.to(torch.int64) != expected.to(torch.int64)
    excused = different & decisions.near & (received.to(torch.int64) == decisions.alternative.to(torch.int64))
    failing = different & ~excused
    n_fail, n_near = int(failing.sum()), int(excused.sum())
    n_ties = int((failing & decisions.ties).sum())
    near_note = (
        f"; {n_near} element(s) differ only inside the near-boundary window (counted, not failed)" if n_near else ""
    )
    if n_fail == 0:
        return Comparison(True, f"{what} match bit-exactly{near_note}", 0, n_near, 0)
    total = expected.numel()
    position = int(torch.nonzero(failing.reshape(-1))[0])
    index = _index(position, expected.shape)
    where = " (on an exact rounding tie)" if bool(decisions.ties[index]) else ""
    message = (
        f"{what} differ at {n_fail} of {total} element(s) ({100.0 * n_fail / total:.1f}%); "
        + describe_element("first", index, x, expected, received)
        + where
        + (f"; {n_ties} of the differences are on exact ties" if n_ties else "")
        + near_note
    )
    return Comparison(False, message, n_fail, n_near, n_ties)


def compare_close(
    received: torch.Tensor,
    expected: torch.Tensor,
    tolerance: torch.Tensor,
    x: torch.Tensor,
    what: str,
    *,
    alternative: torch.Tensor | None = None,
    near: torch.Tensor | None = None,
) -> Comparison:
    """``|received - expected| <= tolerance`` elementwise (all float64, one shape).

    With ``alternative`` and ``near``, an element inside the near-boundary window may instead
    match ``alternative`` within the same tolerance; it is then counted, not failed.
    """
    received64 = received.to(torch.float64)
    expected64 = expected.to(torch.float64)
    error = (received64 - expected64).abs()
    close = error <= tolerance
    close |= received64 == expected64  # equal infinities
    excused = torch.zeros_like(close)
    if alternative is not None and near is not None:
        excused = ~close & near & ((received64 - alternative.to(torch.float64)).abs() <= tolerance)
    failing = ~close & ~excused
    n_fail, n_near = int(failing.sum()), int(excused.sum())
    near_note = (
        f"; {n_near} element(s) differ only inside the near-boundary window (counted, not failed)" if n_near else ""
    )
    if n_fail == 0:
        return Comparison(True, f"{what} match within tolerance{near_note}", 0, n_near, 0)
    total = expected.numel()
    excess = torch.where(failing, error - tolerance, torch.full_like(error, -1.0))
    excess = torch.where(torch.isnan(excess), torch.full_like(error, float("inf")), excess)
    position = int(torch.argmax(excess.reshape(-1)))
    index = _index(position, expected.shape)
    message = (
        f"{what} differ at {n_fail} of {total} element(s) ({100.0 * n_fail / total:.1f}%); "
        + describe_element("worst", index, x, expected, received)
        + f", allowed difference {_value(tolerance, index):.3g}"
        + near_note
    )
    return Comparison(False, message, n_fail, n_near, 0)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality of two tensors of one dtype and shape (NaN payloads and -0.0 included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return bool(torch.equal(a.contiguous().view(view), b.contiguous().view(view)))
    return bool(torch.equal(a, b))
