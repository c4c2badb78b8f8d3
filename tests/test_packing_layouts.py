"""qcheck.packing: every layout round-trips, rejects what it cannot store, and matches its source bit for bit.

Ground truth: transformers (``integrations/bitnet.py``) and gguf-py (``gguf/quants.py``) are imported at
module top on purpose: a missing package is an error here, never a skip (CI installs the ``dev`` extra).
I2_S has no installable source; it is checked against bytes written out from the documented formula.
The packers work on whole words and cache-sized pieces for speed; every layout is also checked against
its definition written out element by element (``pack_by_definition`` / ``unpack_by_definition``), with
pieces made tiny so that their edges are crossed.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Callable, Iterator
from unittest import mock

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers.integrations.bitnet import pack_weights, unpack_weights

from qcheck import buffers
from qcheck.errors import QcheckError
from qcheck.packing import (
    LAYOUTS,
    Layout,
    UnsupportedShape,
    dequantize_tq1_0,
    dequantize_tq2_0,
    i2_s_scale,
    layout,
    quantize_tq1_0,
    quantize_tq2_0,
)
from qcheck.packing import base as packing_base

# transformers wraps unpack_weights in torch.compile, which recompiles for every new shape (seconds each);
# the Hypothesis tests call the same Python source uncompiled, and one fixed test calls the compiled one.
unpack_weights_eager: Callable[[torch.Tensor, torch.dtype], torch.Tensor] = getattr(
    unpack_weights, "__wrapped__", unpack_weights
)

FEW = settings(max_examples=30, deadline=None)
SOME = settings(max_examples=60, deadline=None)

# -- strategies ---------------------------------------------------------------------------------------------


def dims(lo: int, hi: int, max_lead: int = 2) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(lo, hi), min_size=0, max_size=max_lead).map(tuple)


SHAPES: dict[str, st.SearchStrategy[tuple[int, ...]]] = {
    "qcheck": st.tuples(dims(0, 4), st.integers(1, 13)).map(lambda t: (*t[0], t[1])),
    "hf-bitnet": st.tuples(st.integers(1, 13), dims(0, 4)).map(lambda t: (t[0], *t[1])),
    "tq2_0": st.tuples(dims(1, 3), st.integers(1, 3)).map(lambda t: (*t[0], 256 * t[1])),
    "tq1_0": st.tuples(dims(1, 3), st.integers(1, 3)).map(lambda t: (*t[0], 256 * t[1])),
    "i2_s": st.tuples(dims(1, 3), st.integers(1, 3)).map(lambda t: (*t[0], 128 * t[1])),
}

MODES = ("uniform", "zeros", "minus", "plus", "sparse")


def make_codes(shape: tuple[int, ...], seed: int, mode: str) -> torch.Tensor:
    """Ternary int8 codes of ``shape``: uniform, all 0, all -1, all +1, or mostly 0."""
    gen = torch.Generator().manual_seed(seed)
    if mode == "zeros":
        return torch.zeros(shape, dtype=torch.int8)
    if mode in ("minus", "plus"):
        return torch.full(shape, -1 if mode == "minus" else 1, dtype=torch.int8)
    codes = torch.randint(-1, 2, shape, generator=gen, dtype=torch.int8)
    if mode == "sparse":
        codes[torch.rand(shape, generator=gen) < 0.9] = 0
    return codes


@st.composite
def layout_and_codes(draw: st.DrawFn, names: tuple[str, ...] = tuple(LAYOUTS)) -> tuple[Layout, torch.Tensor]:
    name = draw(st.sampled_from(names))
    shape = draw(SHAPES[name])
    return LAYOUTS[name], make_codes(shape, draw(st.integers(0, 2**31)), draw(st.sampled_from(MODES)))


# -- the registry --------------------------------------------------------------------------------------------


def test_registry_names_and_nominal_bits_per_weight() -> None:
    assert list(LAYOUTS) == ["qcheck", "hf-bitnet", "tq2_0", "tq1_0", "i2_s"]
    bpw = {name: lay.bits_per_weight for name, lay in LAYOUTS.items()}
    assert bpw == {"qcheck": 2.0, "hf-bitnet": 2.0, "tq2_0": 2.0625, "tq1_0": 1.6875, "i2_s": 2.0}
    for name, lay in LAYOUTS.items():
        assert layout(name) is lay and lay.name == name and lay.summary and lay.source


def test_unknown_layout_names_the_known_ones_without_keyerror() -> None:
    with pytest.raises(QcheckError, match="tq2_0") as info:
        layout("tq3_0")
    assert isinstance(info.value, ValueError) and not isinstance(info.value, KeyError)


# -- round trips, strides, no mutation -----------------------------------------------------------------------


@SOME
@given(layout_and_codes())
def test_pack_then_unpack_is_the_identity_and_leaves_the_input_alone(case: tuple[Layout, torch.Tensor]) -> None:
    lay, codes = case
    before = codes.clone()
    packed = lay.pack(codes)
    assert torch.equal(codes, before)
    assert packed.dtype == torch.uint8 and packed.is_contiguous()
    assert tuple(packed.shape) == lay.packed_shape(codes.shape)
    out = lay.unpack(packed, codes.shape)
    assert out.dtype == torch.int8 and out.is_contiguous() and torch.equal(out, codes)
    if codes.numel():
        assert out.data_ptr() != packed.data_ptr()
    # unpack accepts the same bytes flat, and does not alter them
    flat = packed.reshape(-1).clone()
    assert torch.equal(lay.unpack(flat, codes.shape), codes) and torch.equal(flat, packed.reshape(-1))


@SOME
@given(layout_and_codes(), st.sampled_from(("transpose", "step", "expand")))
def test_non_contiguous_codes_pack_to_the_same_bytes(case: tuple[Layout, torch.Tensor], how: str) -> None:
    lay, codes = case
    assume(codes.numel() > 0)
    shape = tuple(codes.shape)
    if how == "transpose":  # the same values in column-major storage (a transposed view)
        view = codes.movedim(-1, 0).contiguous().movedim(0, -1)
    elif how == "step":  # every other element of a larger tensor
        big = torch.zeros((*shape[:-1], 2 * shape[-1]), dtype=torch.int8)
        big[..., ::2] = codes
        view = big[..., ::2]
    else:  # zero strides: one row broadcast over the leading dims
        view = codes.reshape(-1, shape[-1])[:1].expand(codes.numel() // shape[-1], -1).reshape(shape)
        codes = view.contiguous()
    if how != "expand":
        assert torch.equal(view, codes)
    before = view.clone()
    assert torch.equal(lay.pack(view), lay.pack(codes))
    assert torch.equal(view, before)


# -- rejections ----------------------------------------------------------------------------------------------

UNSUPPORTED: dict[str, list[tuple[int, ...]]] = {
    "qcheck": [(), (3, 0), (0,)],
    "hf-bitnet": [(), (0,), (0, 4)],
    "tq2_0": [(), (255,), (4, 128), (4, 0), (0, 256), (2, 257)],
    "tq1_0": [(), (255,), (4, 128), (4, 0), (0, 256), (2, 257)],
    "i2_s": [(), (64,), (4, 96), (3, 130), (0, 128)],
}


@pytest.mark.parametrize(("name", "shape"), [(n, s) for n, shapes in UNSUPPORTED.items() for s in shapes])
def test_every_layout_rejects_shapes_it_cannot_store(name: str, shape: tuple[int, ...]) -> None:
    lay = LAYOUTS[name]
    reason = lay.supports(shape)
    assert reason is not None and "\n" not in reason
    with pytest.raises(UnsupportedShape) as info:
        lay.packed_shape(shape)
    assert name in str(info.value) and str(shape) in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, QcheckError) and isinstance(info.value, ValueError)
    with pytest.raises(UnsupportedShape):
        lay.pack(torch.zeros(shape, dtype=torch.int8))
    with pytest.raises(UnsupportedShape):
        lay.unpack(torch.zeros(64, dtype=torch.uint8), shape)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_pack_rejects_non_int8_and_non_ternary_codes(name: str) -> None:
    lay = LAYOUTS[name]
    shape = (4, 256)
    for bad in (torch.zeros(shape, dtype=torch.int32), torch.zeros(shape), torch.zeros(shape, dtype=torch.uint8)):
        with pytest.raises(ValueError, match="int8") as info:
            lay.pack(bad)
        assert not isinstance(info.value, UnsupportedShape)
    for value in (2, -2, 127, -128):
        codes = torch.zeros(shape, dtype=torch.int8)
        codes[1, 7] = value
        with pytest.raises(ValueError, match=r"\(1, 7\)"):
            lay.pack(codes)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_unpack_rejects_wrong_dtype_and_wrong_size(name: str) -> None:
    lay = LAYOUTS[name]
    shape = (4, 256)
    packed = lay.pack(torch.zeros(shape, dtype=torch.int8))
    with pytest.raises(ValueError, match="uint8"):
        lay.unpack(packed.to(torch.int8), shape)
    for wrong in (packed.reshape(-1)[:-1], torch.cat([packed.reshape(-1), packed.reshape(-1)[:1]])):
        with pytest.raises(ValueError, match="bytes") as info:
            lay.unpack(wrong, shape)
        assert not isinstance(info.value, UnsupportedShape)


@FEW
@given(layout_and_codes(("qcheck", "hf-bitnet", "tq2_0", "i2_s")), st.data())
def test_unpack_rejects_the_2bit_field_11(case: tuple[Layout, torch.Tensor], data: st.DataObject) -> None:
    lay, codes = case
    assume(codes.numel() > 0)
    flat = lay.pack(codes).reshape(-1).clone()
    if lay.name == "tq2_0":  # qs bytes only, not the fp16 d
        candidates = [b * 66 + j for b in range(flat.numel() // 66) for j in range(64)]
    elif lay.name == "i2_s":
        candidates = list(range(codes.numel() // 4))
    else:
        candidates = list(range(flat.numel()))
    byte = data.draw(st.sampled_from(candidates))
    shift = 2 * data.draw(st.integers(0, 3))
    flat[byte] |= 0b11 << shift
    with pytest.raises(ValueError, match="0b11"):
        lay.unpack(flat, codes.shape)


def test_padding_must_be_what_the_writer_writes() -> None:
    qc, hf = LAYOUTS["qcheck"], LAYOUTS["hf-bitnet"]
    packed = qc.pack(torch.tensor([[1, -1, 0, 1, 0]], dtype=torch.int8))  # 3 padding fields of 01
    bad = packed.clone()
    bad[0, 1] = 0b01_01_00_01  # field of element 5 set to 00: would decode to -1
    with pytest.raises(ValueError, match="padding"):
        qc.unpack(bad, (1, 5))
    packed = hf.pack(torch.ones(5, 2, dtype=torch.int8))  # row_dim 2: slots 5..7 are padding (00)
    bad = packed.clone()
    bad[1, 0] |= 0b01 << 4  # slot 2*2+1 = row 5
    with pytest.raises(ValueError, match="padding"):
        hf.unpack(bad, (5, 2))


# -- hand-computed examples ----------------------------------------------------------------------------------


def test_qcheck_layout_example_low_bits_first_and_pad_01() -> None:
    codes = torch.tensor([[-1, 0, 1, 1, 0], [1, 1, 1, 1, -1]], dtype=torch.int8)
    # byte = f0 | f1 << 2 | f2 << 4 | f3 << 6 with f = code + 1; padding fields are 01.
    expected = torch.tensor([[0b10_10_01_00, 0b01_01_01_01], [0b10_10_10_10, 0b01_01_01_00]], dtype=torch.uint8)
    assert torch.equal(LAYOUTS["qcheck"].pack(codes), expected)


def i2_s_bytes_by_formula(codes: list[int]) -> bytes:
    """bitnet.cpp quantize_i2_s on ternary input, written out element by element (independent of qcheck)."""
    n = len(codes)
    body = bytearray(n // 4)
    for i in range(n // 128):
        for j in range(128):
            q8 = codes[i * 128 + j] + 1  # |w| < 1e-6 -> 1; w > 0 -> 2; w < 0 -> 0
            body[i * 32 + j % 32] |= q8 << (6 - 2 * (j // 32))
    scale = max(abs(c) for c in codes)  # max |w|, as float32, at byte n / 4
    return bytes(body) + struct.pack("<f", float(scale)) + bytes(28)


def test_i2_s_one_block_against_the_documented_formula() -> None:
    codes = [-1] * 128
    codes[0], codes[32], codes[64], codes[96] = 1, 0, -1, 1  # byte 0 = 10 01 00 10
    codes[31], codes[63], codes[95], codes[127] = 0, 0, 0, 0  # byte 31 = 01 01 01 01
    packed = LAYOUTS["i2_s"].pack(torch.tensor(codes, dtype=torch.int8))
    assert packed.numel() == 32 + 32
    assert int(packed[0]) == 0b10_01_00_10 and int(packed[31]) == 0x55 and int(packed[1]) == 0
    assert bytes(packed.tolist()[32:36]) == b"\x00\x00\x80\x3f"  # 1.0f little-endian
    assert bytes(packed.tolist()) == i2_s_bytes_by_formula(codes)
    zeros = LAYOUTS["i2_s"].pack(torch.zeros(128, dtype=torch.int8))
    assert bytes(zeros.tolist()) == b"\x55" * 32 + bytes(32)  # all 01, scale 0.0
    assert i2_s_scale(packed, (128,)) == 1.0 and i2_s_scale(zeros, (128,)) == 0.0


@FEW
@given(SHAPES["i2_s"], st.integers(0, 2**31), st.sampled_from(MODES))
def test_i2_s_matches_the_formula_on_many_blocks(shape: tuple[int, ...], seed: int, mode: str) -> None:
    codes = make_codes(shape, seed, mode)
    assert bytes(LAYOUTS["i2_s"].pack(codes).tolist()) == i2_s_bytes_by_formula(codes.reshape(-1).tolist())


# -- every layout against its definition, element by element ------------------------------------------------


def tq1_0_byte(trits: list[int]) -> int:
    """ggml TQ1_0: base-3 digits, the first most significant, stored as ceil(v * 256 / 243)."""
    v = 0
    for t in trits:
        v = 3 * v + t
    return (v * 256 + 242) // 243


def tq1_0_trit(byte: int, n: int) -> int:
    """ggml dequantize_row_tq1_0: trit n of a byte is ((uint8)(byte * 3**n) * 3) >> 8."""
    return ((byte * 3**n) & 0xFF) * 3 >> 8


TQ1_0_QS_BYTES = {tq1_0_byte([v // 3 ** (4 - n) % 3 for n in range(5)]) for v in range(243)}
TQ1_0_QH_BYTES = {tq1_0_byte([*(v // 3 ** (3 - n) % 3 for n in range(4)), 0]) for v in range(81)}


def pack_by_definition(name: str, codes: torch.Tensor) -> list[int]:
    """The bytes of ``LAYOUTS[name].pack(codes)``, written out from each layout's definition (module docstrings)."""
    shape, c = tuple(codes.shape), codes.reshape(-1).tolist()
    if name == "qcheck":  # element 4j + i of a row in bits 2i of byte j, field code + 1, padding 01
        n = shape[-1]
        rows = [c[r * n : (r + 1) * n] + [0] * (-n % 4) for r in range(len(c) // n)]
        return [sum((row[4 * j + i] + 1) << (2 * i) for i in range(4)) for row in rows for j in range(len(row) // 4)]
    if name == "hf-bitnet":  # row i * row_dim + r in bits 2i of packed row r; missing rows leave 00
        rows, per_row = shape[0], len(c) // shape[0]
        row_dim = -(-rows // 4)
        return [
            sum((c[(i * row_dim + r) * per_row + k] + 1) << (2 * i) for i in range(4) if i * row_dim + r < rows)
            for r in range(row_dim)
            for k in range(per_row)
        ]
    if name == "i2_s":
        return list(i2_s_bytes_by_formula(c))
    out: list[int] = []
    for b in range(len(c) // 256):  # ggml blocks: the codes' bytes, then d = 1.0 or 0.0 as fp16
        q = [code + 1 for code in c[256 * b : 256 * (b + 1)]]
        if name == "tq2_0":  # element g*128 + 32l + m in bits 2l of qs[g*32 + m]
            out += [
                sum(q[g * 128 + 32 * lane + m] << (2 * lane) for lane in range(4)) for g in range(2) for m in range(32)
            ]
        else:  # qs[m] = elements m + 32n; qs[32 + m] = 160 + m + 16n; qh[j] = 240 + j + 4n, then a trit 0
            out += [tq1_0_byte([q[m + 32 * n] for n in range(5)]) for m in range(32)]
            out += [tq1_0_byte([q[160 + m + 16 * n] for n in range(5)]) for m in range(16)]
            out += [tq1_0_byte([*(q[240 + j + 4 * n] for n in range(4)), 0]) for j in range(4)]
        out += [0x00, 0x3C] if any(t != 1 for t in q) else [0x00, 0x00]
    return out


def unpack_by_definition(name: str, data: list[int], shape: tuple[int, ...]) -> list[int] | None:
    """The codes ``LAYOUTS[name].unpack`` returns for bytes ``data``, or None where it must refuse them."""
    numel = math.prod(shape)
    codes = [0] * numel
    if name == "qcheck":
        n = shape[-1]
        n_bytes = -(-n // 4)
        for r in range(numel // n):
            fields = [(data[r * n_bytes + j] >> (2 * i)) & 3 for j in range(n_bytes) for i in range(4)]
            if 3 in fields or any(f != 1 for f in fields[n:]):
                return None
            codes[r * n : (r + 1) * n] = [f - 1 for f in fields[:n]]
        return codes
    if name == "hf-bitnet":
        rows, per_row = shape[0], numel // shape[0]
        row_dim = -(-rows // 4)
        for slot in range(4 * row_dim):
            for k in range(per_row):
                field = (data[(slot % row_dim) * per_row + k] >> (2 * (slot // row_dim))) & 3
                if field == 3 or (slot >= rows and field != 0):
                    return None
                if slot < rows:
                    codes[slot * per_row + k] = field - 1
        return codes
    if name == "i2_s":
        for e in range(numel):
            field = (data[e // 128 * 32 + e % 32] >> (6 - 2 * (e % 128 // 32))) & 3
            if field == 3:
                return None
            codes[e] = field - 1
        return codes
    for b in range(numel // 256):
        block = data[b * (66 if name == "tq2_0" else 54) :]
        if name == "tq2_0":
            for e in range(256):
                field = (block[e // 128 * 32 + e % 32] >> (2 * (e % 128 // 32))) & 3
                if field == 3:
                    return None
                codes[256 * b + e] = field - 1
            continue
        qs, qh = block[:48], block[48:52]
        if any(x not in TQ1_0_QS_BYTES for x in qs) or any(x not in TQ1_0_QH_BYTES for x in qh):
            return None
        for n in range(5):
            for m in range(32):
                codes[256 * b + m + 32 * n] = tq1_0_trit(qs[m], n) - 1
            for m in range(16):
                codes[256 * b + 160 + m + 16 * n] = tq1_0_trit(qs[32 + m], n) - 1
        for n in range(4):
            for j in range(4):
                codes[256 * b + 240 + j + 4 * n] = tq1_0_trit(qh[j], n) - 1
    return codes


#: Cut big tensors into pieces of this many bytes (so tiny ones cross piece edges) and allocate every
#: result the way large ones are.
PIECES = st.sampled_from([1, 37, 256, 1000, 4096, packing_base.CHUNK_BYTES])


@contextlib.contextmanager
def small_pieces(chunk_bytes: int) -> Iterator[None]:
    with mock.patch.multiple(packing_base, CHUNK_BYTES=chunk_bytes), mock.patch.object(buffers, "LARGE_BYTES", 1):
        yield


@SOME
@given(layout_and_codes(), PIECES)
def test_pack_and_unpack_are_their_definitions(case: tuple[Layout, torch.Tensor], chunk_bytes: int) -> None:
    lay, codes = case
    with small_pieces(chunk_bytes):
        packed = lay.pack(codes)
        assert packed.reshape(-1).tolist() == pack_by_definition(lay.name, codes)
        assert torch.equal(lay.unpack(packed, codes.shape), codes)


@SOME
@given(
    layout_and_codes(), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=3), PIECES
)
def test_unpack_of_any_bytes_is_its_definition(
    case: tuple[Layout, torch.Tensor], changes: list[tuple[float, int]], chunk_bytes: int
) -> None:
    """Bytes a packer wrote, with a few overwritten by anything: the same codes, or refused, as defined."""
    lay, codes = case
    shape = tuple(codes.shape)
    data = pack_by_definition(lay.name, codes)
    for where, value in changes:
        if data:
            data[int(where * len(data))] = value
    expected = unpack_by_definition(lay.name, data, shape)
    with small_pieces(chunk_bytes):
        if expected is None:
            with pytest.raises(ValueError, match=lay.name):
                lay.unpack(torch.tensor(data, dtype=torch.uint8), shape)
        else:
            assert lay.unpack(torch.tensor(data, dtype=torch.uint8), shape).reshape(-1).tolist() == expected


@SOME
@given(layout_and_codes(), st.data(), PIECES)
def test_pack_refuses_a_code_outside_minus_one_to_one_anywhere(
    case: tuple[Layout, torch.Tensor], data: st.DataObject, chunk_bytes: int
) -> None:
    """The packers check the codes piece by piece as they pack them; the error still counts all bad codes."""
    lay, codes = case
    assume(codes.numel() > 0)
    flat = codes.clone().reshape(-1)
    spots = data.draw(st.lists(st.integers(0, flat.numel() - 1), min_size=1, max_size=3, unique=True))
    for spot in spots:
        flat[spot] = data.draw(st.sampled_from([2, -2, 3, 127, -128]))
    first = tuple(int(i) for i in np.unravel_index(min(spots), codes.shape))
    expected = f"{len(spots)} of {flat.numel()} are not, first {int(flat[min(spots)])} at index {first}"
    threads = torch.get_num_threads()
    with small_pieces(chunk_bytes), pytest.raises(ValueError) as info:
        lay.pack(flat.reshape(codes.shape))
    assert expected in str(info.value) and lay.name in str(info.value)
    assert torch.get_num_threads() == threads  # the piece loops run single-threaded, then restore it


# -- hf-bitnet vs transformers -------------------------------------------------------------------------------


@SOME
@given(SHAPES["hf-bitnet"], st.integers(0, 2**31), st.sampled_from(MODES))
def test_hf_bitnet_is_bit_exact_with_transformers(shape: tuple[int, ...], seed: int, mode: str) -> None:
    codes = make_codes(shape, seed, mode)
    ours = LAYOUTS["hf-bitnet"].pack(codes)
    theirs = pack_weights(codes.clone())  # pack_weights mutates its argument
    assert torch.equal(ours, theirs)
    unpacked = unpack_weights_eager(theirs, torch.int8)
    rows = shape[0]
    assert torch.equal(unpacked[:rows], LAYOUTS["hf-bitnet"].unpack(theirs, shape))
    assert bool((unpacked[rows:] == -1).all())  # padded rows read -1 in transformers


def test_transformers_pack_weights_mutates_and_its_unpack_reads_padding_as_minus_one() -> None:
    """Documented facts about the source (FIELD-NOTES), which qcheck's hf-bitnet does not reproduce."""
    codes = torch.tensor([[1, 0], [-1, 1], [0, 0], [1, -1], [0, 1]], dtype=torch.int8)
    arg = codes.clone()
    packed = pack_weights(arg)
    assert torch.equal(arg, codes + 1)
    unpacked = unpack_weights(packed, dtype=torch.int8)  # the torch.compile'd function itself
    assert unpacked.shape == (8, 2) and torch.equal(unpacked[:5], codes) and bool((unpacked[5:] == -1).all())
    before = codes.clone()
    assert torch.equal(LAYOUTS["hf-bitnet"].pack(codes), packed) and torch.equal(codes, before)


# -- TQ2_0 / TQ1_0 vs gguf-py --------------------------------------------------------------------------------

GGML = {
    "tq2_0": (GGMLQuantizationType.TQ2_0, quantize_tq2_0, dequantize_tq2_0),
    "tq1_0": (GGMLQuantizationType.TQ1_0, quantize_tq1_0, dequantize_tq1_0),
}


@SOME
@given(st.sampled_from(("tq2_0", "tq1_0")), st.data())
def test_ggml_pack_of_codes_is_gguf_quantize_of_the_codes(name: str, data: st.DataObject) -> None:
    shape = data.draw(SHAPES[name])
    codes = make_codes(shape, data.draw(st.integers(0, 2**31)), data.draw(st.sampled_from(MODES)))
    qtype = GGML[name][0]
    theirs = gguf_quantize(codes.float().numpy(), qtype)
    ours = LAYOUTS[name].pack(codes)
    assert ours.shape == theirs.shape and np.array_equal(ours.numpy(), theirs)
    assert torch.equal(LAYOUTS[name].unpack(torch.from_numpy(theirs), shape), codes)


SPECIALS = st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.5, 0.49999997, 0.50000006, 1e-30, 3e-8, 1.0, -1.0])


@st.composite
def float_blocks(draw: st.DrawFn) -> torch.Tensor:
    """float32 rows of whole 256-blocks: gaussian at some scale, with all-zero blocks, exact ties at d/2,
    values either side of a tie, and arbitrary float32 values dropped in."""
    rows, n_blocks = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    scale = draw(st.sampled_from([1.0, 1e-3, 7.0, 300.0, 1e-20]))
    x = torch.randn(rows, n_blocks * 256, generator=gen) * scale
    blocks = x.view(-1, 256)
    for b in range(blocks.shape[0]):
        kind = draw(st.sampled_from(("plain", "zero", "ties", "specials")))
        if kind == "zero":
            blocks[b] = 0.0
        elif kind == "ties":
            d = draw(st.floats(0.0009765625, 1024.0, width=32))
            blocks[b, 0] = -d if draw(st.booleans()) else d
            for pos in draw(st.lists(st.integers(1, 255), min_size=1, max_size=8)):
                sign = -1.0 if draw(st.booleans()) else 1.0
                blocks[b, pos] = sign * d * draw(SPECIALS)
        elif kind == "specials":
            for pos in draw(st.lists(st.integers(0, 255), min_size=1, max_size=8)):
                blocks[b, pos] = draw(st.floats(-65504.0, 65504.0, width=32) | SPECIALS)
    return x


def same_float_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype == np.float32 and a.tobytes() == b.tobytes()


@SOME
@given(st.sampled_from(("tq2_0", "tq1_0")), float_blocks())
def test_ggml_float_quantizers_are_bit_exact_with_gguf(name: str, x: torch.Tensor) -> None:
    qtype, quantize, dequantize = GGML[name]
    before = x.clone()
    theirs = gguf_quantize(x.numpy(), qtype)
    ours = quantize(x)
    assert torch.equal(x, before)
    assert ours.dtype == torch.uint8 and ours.shape == theirs.shape and np.array_equal(ours.numpy(), theirs)
    assert same_float_bits(dequantize(ours, tuple(x.shape)).numpy(), gguf_dequantize(theirs, qtype))


def test_ggml_ties_round_half_away_from_zero_and_zero_blocks_store_d_0() -> None:
    x = torch.zeros(2, 256)
    x[0, :4] = torch.tensor([2.0, 1.0, -1.0, 0.99999994])  # d = 2: +-1 -> +-0.5 -> +-1 (away from zero)
    for name, (qtype, quantize, dequantize) in GGML.items():
        packed = quantize(x)
        assert np.array_equal(packed.numpy(), gguf_quantize(x.numpy(), qtype))
        y = dequantize(packed, (2, 256))
        assert y[0, :4].tolist() == [2.0, 2.0, -2.0, 0.0], name
        assert bool((y[1] == 0).all()) and bytes(packed[1, -2:].tolist()) == b"\x00\x00"  # d = 0 in fp16


@pytest.mark.parametrize("name", ["tq2_0", "tq1_0"])
def test_ggml_float_quantizers_refuse_what_ggml_leaves_undefined(name: str) -> None:
    quantize = GGML[name][1]
    for bad in (torch.full((256,), float("nan")), torch.full((256,), float("inf"))):
        with pytest.raises(ValueError, match="non-finite"):
            quantize(bad)
    tiny = torch.zeros(256)
    tiny[3] = 1e-39  # 1/d overflows float32
    with pytest.raises(ValueError, match="overflows"):
        quantize(tiny)
    with pytest.raises(ValueError, match="256"):
        quantize(torch.zeros(4, 100))


def test_tq1_0_unpack_rejects_bytes_ggml_never_writes() -> None:
    qs_ok = {(v * 256 + 242) // 243 for v in range(243)}  # ceil(v * 256 / 243), 5 trits
    qh_ok = {(3 * v * 256 + 242) // 243 for v in range(81)}  # 4 trits then a 0 trit
    assert len(qs_ok) == 243 and len(qh_ok) == 81
    lay = LAYOUTS["tq1_0"]
    good = lay.pack(make_codes((2, 256), 1, "uniform")).reshape(-1)
    for offset, allowed in ((0, qs_ok), (40, qs_ok), (49, qh_ok)):
        for value in sorted(set(range(256)) - allowed)[:5]:
            bad = good.clone()
            bad[54 + offset] = value
            with pytest.raises(ValueError, match="ggml"):
                lay.unpack(bad, (2, 256))
