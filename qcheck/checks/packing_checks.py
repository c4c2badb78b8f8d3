"""Checks of ``pack_ternary`` and ``unpack_ternary`` in the backend's declared layout (SPEC PACK-*).

Codes compare bit-exactly and packed bytes byte-exactly; there is no tolerance anywhere here.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from qcheck import kernel_strategies
from qcheck.arguments import Args
from qcheck.checks import calls
from qcheck.checks.base import BackendRaised, Check, CheckFailure, Evidence, Implementation
from qcheck.checks.helpers import call, same_layout_copy
from qcheck.conventions import Conventions
from qcheck.ops import OPS, Op
from qcheck.packing import Layout, PackingInputError, layout


def declared_layout(conventions: Conventions) -> Layout:
    return layout(conventions.packing)


# ---------------------------------------------------------------- inputs


def codes_for(conventions: Conventions) -> SearchStrategy[torch.Tensor]:
    return kernel_strategies.ternary_codes(kernel_strategies.supported_shapes(declared_layout(conventions).supports))


def unsupported_codes(conventions: Conventions) -> SearchStrategy[torch.Tensor]:
    shapes = kernel_strategies.unsupported_shapes(declared_layout(conventions).supports)
    return st.sampled_from(shapes).map(lambda shape: torch.ones(shape, dtype=torch.int8))


def packed_for(conventions: Conventions) -> SearchStrategy[Args]:
    """``Args(reference bytes, shape)`` of codes the layout can store."""
    ref = declared_layout(conventions)
    return codes_for(conventions).map(lambda codes: Args((ref.pack(codes), tuple(codes.shape))))


def wrong_sized_packed(conventions: Conventions) -> SearchStrategy[Args]:
    """Reference bytes one byte short or one byte long for the shape they claim."""
    ref = declared_layout(conventions)

    def damage(codes: torch.Tensor, longer: bool) -> Args:
        flat = ref.pack(codes).reshape(-1)
        bytes_ = torch.cat([flat, torch.tensor([0x55], dtype=torch.uint8)]) if longer else flat[:-1].clone()
        return Args((bytes_, tuple(codes.shape)))

    return st.builds(damage, codes_for(conventions), st.booleans())


def _pairs(inputs: Any) -> Any:
    def strategy(conventions: Conventions) -> SearchStrategy[tuple[Any, Any]]:
        @st.composite
        def pair(draw: Any) -> tuple[Any, Any]:
            first = draw(inputs(conventions))
            codes_shape = tuple(first[1]) if isinstance(first, Args) else tuple(first.shape)
            second_codes = draw(kernel_strategies.ternary_codes([codes_shape]))
            if isinstance(first, Args):
                return first, Args((declared_layout(conventions).pack(second_codes), codes_shape))
            return first, second_codes

        return pair()

    return strategy


# ---------------------------------------------------------------- reading outputs


def _packed_output(impl: Implementation, codes: torch.Tensor, conventions: Conventions, op: Op) -> torch.Tensor:
    out = call(impl, same_layout_copy(codes), conventions, op)
    if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8:
        kind = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckFailure(f"pack_ternary must return a uint8 tensor, got {kind}")
    return out.detach()


def _first_difference(received: torch.Tensor, expected: torch.Tensor) -> int:
    return int(torch.nonzero(received.reshape(-1) != expected.reshape(-1))[0, 0])


def _where(position: int, shape: tuple[int, ...]) -> str:
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(position), shape)) if shape else ()
    tail = ""
    if shape and shape[-1] % 4 and index[-1] >= shape[-1] - shape[-1] % 4:
        tail = " (in the row's tail past the last multiple of 4)"
    return f"index {index}{tail}"


# ---------------------------------------------------------------- pack_ternary


def verify_pack_round_trip(impl: Implementation, codes: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    """PACK-1: the declared layout's reference reader gets the codes back from the backend's bytes."""
    ref = declared_layout(conventions)
    out = _packed_output(impl, codes, conventions, op)
    try:
        back = ref.unpack(out, tuple(codes.shape))
    except PackingInputError as exc:
        raise CheckFailure(f"the {ref.name} reader cannot read pack_ternary's output: {exc}") from None
    if not torch.equal(back, codes.contiguous()):
        wrong = back != codes
        position = _first_difference(back, codes)
        raise CheckFailure(
            f"the {ref.name} reader gets other codes back from pack_ternary's bytes: {int(wrong.sum())} of "
            f"{codes.numel()} differ; first at {_where(position, tuple(codes.shape))}: packed "
            f"{int(codes.reshape(-1)[position])}, read back {int(back.reshape(-1)[position])}"
        )
    return Evidence()


def verify_pack_rejects(impl: Implementation, codes: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    """PACK-2: a shape the layout cannot store is refused with an exception, not packed."""
    ref = declared_layout(conventions)
    try:
        out = call(impl, same_layout_copy(codes), conventions, op)
    except BackendRaised:
        return Evidence()
    described = f"a {out.dtype} tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else repr(out)
    raise CheckFailure(
        f"pack_ternary accepted codes of shape {tuple(codes.shape)}, which the {ref.name} layout cannot store "
        f"({ref.supports(codes.shape)}), and returned {described}; it must raise"
    )


def verify_packed_size(impl: Implementation, codes: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    """PACK-3: the packed size is the layout's: its shape, or the same bytes flat."""
    ref = declared_layout(conventions)
    out = _packed_output(impl, codes, conventions, op)
    want = ref.packed_shape(codes.shape)
    n_want = int(torch.Size(want).numel())
    if out.numel() != n_want or (out.dim() != 1 and tuple(out.shape) != want):
        bits = 8.0 * out.numel() / max(codes.numel(), 1)
        raise CheckFailure(
            f"pack_ternary returned {out.numel()} bytes shaped {tuple(out.shape)} for {codes.numel()} codes of "
            f"shape {tuple(codes.shape)} ({bits:.4g} bits per weight); the {ref.name} layout stores them in "
            f"{n_want} bytes shaped {want} (or flat)"
        )
    return Evidence()


def verify_bytes_match(impl: Implementation, codes: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    """PACK-4: the bytes equal the declared layout's reference byte for byte."""
    ref = declared_layout(conventions)
    out = _packed_output(impl, codes, conventions, op)
    expected = ref.pack(codes)
    if out.numel() != expected.numel():
        raise CheckFailure(
            f"pack_ternary returned {out.numel()} bytes; the {ref.name} layout has {expected.numel()} for shape "
            f"{tuple(codes.shape)}"
        )
    if not torch.equal(out.reshape(-1), expected.reshape(-1)):
        wrong = out.reshape(-1) != expected.reshape(-1)
        position = _first_difference(out, expected)
        raise CheckFailure(
            f"packed bytes differ from the {ref.name} layout at {int(wrong.sum())} of {expected.numel()} byte(s); "
            f"first at byte {position}: expected 0x{int(expected.reshape(-1)[position]):02x}, "
            f"got 0x{int(out.reshape(-1)[position]):02x} (codes of shape {tuple(codes.shape)})"
        )
    return Evidence()


def verify_pack_output(impl: Implementation, codes: torch.Tensor, conventions: Conventions, op: Op) -> Evidence:
    verify_pack_round_trip(impl, codes, conventions, op)
    return verify_bytes_match(impl, codes, conventions, op)


def code_views(codes: torch.Tensor) -> list[tuple[str, Any]]:
    views: list[tuple[str, Any]] = [("an every-other-element view", calls.strided_copy(codes, 0x7F))]
    if codes.dim() >= 2:
        views.append(("codes with transposed storage", calls.transposed_storage(codes)))
    return views


# ---------------------------------------------------------------- unpack_ternary


def _unpacked_output(impl: Implementation, value: Args, conventions: Conventions, op: Op) -> torch.Tensor:
    out = call(impl, same_layout_copy(value), conventions, op)
    if not isinstance(out, torch.Tensor) or out.dtype != torch.int8:
        kind = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckFailure(f"unpack_ternary must return an int8 tensor, got {kind}")
    shape = tuple(value[1])
    if tuple(out.shape) != shape:
        raise CheckFailure(
            f"unpack_ternary returned shape {tuple(out.shape)} for shape {shape}"
            + (" (padding rows or columns left in?)" if out.numel() > torch.Size(shape).numel() else "")
        )
    return out.detach()


def verify_unpack_round_trip(impl: Implementation, value: Args, conventions: Conventions, op: Op) -> Evidence:
    """PACK-5: the backend reads the reference bytes back into exactly the packed codes; no
    padding or neighbouring row leaks into them."""
    ref = declared_layout(conventions)
    packed, shape = value
    expected = ref.unpack(packed, shape)
    out = _unpacked_output(impl, value, conventions, op)
    if not torch.equal(out.contiguous(), expected):
        wrong = out != expected
        position = _first_difference(out, expected)
        raise CheckFailure(
            f"unpack_ternary reads other codes than the {ref.name} layout holds: {int(wrong.sum())} of "
            f"{expected.numel()} differ; first at {_where(position, tuple(shape))}: expected "
            f"{int(expected.reshape(-1)[position])}, got {int(out.reshape(-1)[position])}"
        )
    return Evidence()


def verify_unpack_rejects(impl: Implementation, value: Args, conventions: Conventions, op: Op) -> Evidence:
    """PACK-6: a byte buffer of the wrong size for the shape is refused, never read past its end."""
    ref = declared_layout(conventions)
    packed, shape = value
    try:
        out = call(impl, same_layout_copy(value), conventions, op)
    except BackendRaised:
        return Evidence()
    described = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else repr(out)
    raise CheckFailure(
        f"unpack_ternary accepted {packed.numel()} bytes for codes of shape {tuple(shape)} (the {ref.name} layout "
        f"needs {torch.Size(ref.packed_shape(shape)).numel()}) and returned {described}; it must raise"
    )


def packed_views(value: Args) -> list[tuple[str, Any]]:
    packed, shape = value
    views: list[tuple[str, Any]] = [
        ("packed bytes as an every-other-byte view", Args((calls.strided_copy(packed, 0xAA), shape)))
    ]
    if packed.dim() >= 2:
        views.append(("packed bytes with transposed storage", Args((calls.transposed_storage(packed), shape))))
    return views


# ---------------------------------------------------------------- the table


def _check(requirement: str, name: str, op: str, proves: str, inputs: Any, verify: Any) -> Check:
    return Check(requirement, name, op, proves, inputs, verify)


def _build() -> tuple[Check, ...]:
    pack, unpack = "pack_ternary", "unpack_ternary"
    return (
        _check(
            "PACK-1",
            "round-trip",
            pack,
            "the layout's reference reader gets the exact codes back",
            codes_for,
            verify_pack_round_trip,
        ),
        _check(
            "PACK-2",
            "rejects-unsupported-shape",
            pack,
            "codes of a shape the layout cannot store are refused with an exception",
            unsupported_codes,
            verify_pack_rejects,
        ),
        _check(
            "PACK-3",
            "packed-size",
            pack,
            "the packed size is the layout's (bits per weight and shape)",
            codes_for,
            verify_packed_size,
        ),
        _check(
            "PACK-4",
            "bytes-match-layout",
            pack,
            "the bytes equal the declared layout's reference byte for byte",
            codes_for,
            verify_bytes_match,
        ),
        _check(
            "GEN-1",
            "input-not-mutated",
            pack,
            "the codes are bit-identical after the call",
            codes_for,
            calls.verify_inputs_not_mutated,
        ),
        _check(
            "GEN-2",
            "repeatable-and-fresh",
            pack,
            "the same codes give the same bytes; other codes of the same shape are not served from a cache",
            _pairs(codes_for),
            functools.partial(calls.verify_repeatable_and_fresh, match=verify_pack_output),
        ),
        _check(
            "GEN-3",
            "layout-independent",
            pack,
            "transposed and strided codes give the contiguous codes' bytes",
            codes_for,
            functools.partial(calls.verify_layout_independent, views=code_views),
        ),
        _check(
            "PACK-5",
            "unpack-round-trip",
            unpack,
            "the reference bytes unpack to exactly the codes, shape included; padding never leaks",
            packed_for,
            verify_unpack_round_trip,
        ),
        _check(
            "PACK-6",
            "rejects-wrong-size",
            unpack,
            "a byte buffer one byte short or long for the shape is refused with an exception",
            wrong_sized_packed,
            verify_unpack_rejects,
        ),
        _check(
            "GEN-1",
            "input-not-mutated",
            unpack,
            "the packed bytes are bit-identical after the call",
            packed_for,
            calls.verify_inputs_not_mutated,
        ),
        _check(
            "GEN-2",
            "repeatable-and-fresh",
            unpack,
            "the same bytes give the same codes; other bytes of the same size are not served from a cache",
            _pairs(packed_for),
            functools.partial(calls.verify_repeatable_and_fresh, match=verify_unpack_round_trip),
        ),
        _check(
            "GEN-3",
            "layout-independent",
            unpack,
            "strided and transposed byte views give the same codes",
            packed_for,
            functools.partial(calls.verify_layout_independent, views=packed_views),
        ),
    )


CHECKS: tuple[Check, ...] = _build()
assert all(check.op in OPS for check in CHECKS)
