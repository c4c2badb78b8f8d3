"""The known-bad catalogue is well formed, and every variant is wrong on a hand-picked input.

Each piece of evidence pins the reference's right answer and the variant's wrong one on one
concrete tensor; the Hypothesis suite that must catch every variant lives elsewhere.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable

import pytest
import torch

from qcheck import known_bad, quantizers
from qcheck.arguments import Args
from qcheck.known_bad import CATALOGUE, KnownBad
from qcheck.known_bad_kernels import VARIANTS as KERNEL_VARIANTS
from qcheck.ops import OPS
from qcheck.packing import layout
from qcheck.quantizers import Quantized

NAMES = [entry.name for entry in CATALOGUE]


def ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.flatten().tolist()]


def call(name: str, x: torch.Tensor) -> tuple[object, object]:
    """(reference result, variant result) for the op the variant imitates."""
    entry = known_bad.by_name(name)
    reference = getattr(quantizers, entry.op)
    return reference(x.clone()), entry.fn(x.clone())


def quantized(name: str, x: torch.Tensor) -> tuple[Quantized, Quantized]:
    ref, bad = call(name, x)
    assert isinstance(ref, Quantized)
    assert isinstance(bad, Quantized)
    return ref, bad


def fake(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ref, bad = call(name, x)
    assert isinstance(ref, torch.Tensor)
    assert isinstance(bad, torch.Tensor)
    return ref, bad


# --- the catalogue is well formed ----------------------------------------------------------------


def test_catalogue_is_not_empty_and_names_are_unique() -> None:
    assert len(CATALOGUE) >= 20
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
def test_every_variant_is_described(entry: KnownBad) -> None:
    assert re.fullmatch(r"[a-z0-9_]+(-[a-z0-9_]+)*", entry.name), entry.name  # kebab-case; tq2_0 is a name
    assert entry.description.strip() and "\n" not in entry.description
    assert entry.origin.strip()
    assert callable(entry.fn)


QUANTIZER_VARIANTS = [entry for entry in CATALOGUE if OPS[entry.op].is_quantizer]


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
def test_every_op_is_a_reference_op(entry: KnownBad) -> None:
    assert entry.op in known_bad.OPS
    assert entry.op in OPS


@pytest.mark.parametrize("entry", QUANTIZER_VARIANTS, ids=[e.name for e in QUANTIZER_VARIANTS])
def test_every_variant_has_the_reference_signature(entry: KnownBad) -> None:
    reference = inspect.signature(getattr(quantizers, entry.op))
    variant = inspect.signature(entry.fn)
    assert list(variant.parameters) == list(reference.parameters)
    pairs = zip(variant.parameters.values(), reference.parameters.values(), strict=True)
    for mine, theirs in pairs:
        assert mine.kind == theirs.kind
        assert mine.default == theirs.default


def test_every_op_has_at_least_one_variant() -> None:
    for op in known_bad.OPS:
        assert known_bad.for_op(op), op


def test_for_op_partitions_the_catalogue() -> None:
    grouped = [entry for op in known_bad.OPS for entry in known_bad.for_op(op)]
    assert sorted(e.name for e in grouped) == sorted(NAMES)
    assert all(e.op == "act_quantize" for e in known_bad.for_op("act_quantize"))


def test_for_op_rejects_an_unknown_op() -> None:
    with pytest.raises(KeyError, match="b158_quantize"):
        known_bad.for_op("b2_quantize")


def test_by_name_finds_each_variant() -> None:
    for entry in CATALOGUE:
        assert known_bad.by_name(entry.name) is entry


def test_by_name_lists_the_names_when_it_fails() -> None:
    with pytest.raises(KeyError, match="sign-before-scale") as info:
        known_bad.by_name("sign-after-scale")
    assert "sign-after-scale" in str(info.value)


# --- evidence: each variant is wrong where the reference is right ------------------------------

EVIDENCE: dict[str, Callable[[], None]] = {}


def evidence(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        EVIDENCE[name] = fn
        return fn

    return register


# b1: codes = Sign(W - mean W) with Sign(0) = -1, scale = mean|W|

TIES = torch.tensor([1.0, 2.0, 3.0])  # mean 2.0 is exact: the middle weight is a tie
EQUAL_16 = torch.full((16,), 0.3)  # float32 mean != 0.3; exact: every weight is a tie


def test_the_b1_tie_inputs_are_what_they_claim() -> None:
    assert ints(quantizers.b1_quantize(TIES).codes) == [-1, -1, 1]
    assert ints(quantizers.b1_quantize(EQUAL_16).codes) == [-1] * 16
    assert EQUAL_16.mean() != torch.tensor(0.3)


@evidence("sign-before-scale")
def _() -> None:
    ref, bad = quantized("sign-before-scale", torch.tensor([0.5, -1.0, 2.0, -0.25]))
    assert ref.codes.dtype == torch.int8 and set(ints(ref.codes)) <= {-1, 1}
    assert bad.codes.dtype.is_floating_point
    assert not torch.equal(bad.codes, bad.codes.round())  # +-0.9375: not integer codes


@evidence("scale-before-sign")
def _() -> None:
    _, bad = quantized("scale-before-sign", TIES)
    assert ints(bad.codes) == [-1, 0, 1]  # reference: [-1, -1, 1]
    ref, bad = quantized("scale-before-sign", torch.tensor([1e-23, -1e-23, 3e-23]))
    assert ints(ref.codes) == [-1, -1, 1]
    assert ints(bad.codes) == [0, 0, 0]  # (w - e) * beta underflows
    # the brief's torch.full((16,), 0.3) gives +1, not 0: the float32 mean is not 0.3
    _, bad = quantized("scale-before-sign", EQUAL_16)
    assert ints(bad.codes) == [1] * 16


@evidence("torch-sign-zero")
def _() -> None:
    _, bad = quantized("torch-sign-zero", TIES)
    assert ints(bad.codes) == [-1, 0, 1]
    _, bad = quantized("torch-sign-zero", EQUAL_16)
    assert ints(bad.codes) == [0] * 16


@evidence("float32-mean-b1")
def _() -> None:
    for n in (7, 16):
        ref, bad = quantized("float32-mean-b1", torch.full((n,), 0.3))
        assert ints(ref.codes) == [-1] * n
        assert ints(bad.codes) == [1] * n


@evidence("uncentred-sign")
def _() -> None:
    _, bad = quantized("uncentred-sign", TIES)
    assert ints(bad.codes) == [1, 1, 1]  # reference: [-1, -1, 1]


@evidence("b1-centred-beta")
def _() -> None:
    ref, bad = quantized("b1-centred-beta", TIES)
    assert ints(bad.codes) == ints(ref.codes)
    assert float(ref.scale) == 2.0  # mean |W|
    assert float(bad.scale) == pytest.approx(2 / 3)  # mean |W - 2|


@evidence("kyegomez-fake-quant")
def _() -> None:
    ref, bad = fake("kyegomez-fake-quant", TIES)
    assert ref.tolist() == [-2.0, -2.0, 2.0]
    assert bad.tolist() == [-2.0, 0.0, 2.0]


# b1.58: codes = RoundClip(W / gamma, -1, 1), half to even, gamma = max(mean|W|, 1e-5)

HALVES = torch.tensor([0.5, -0.5, 1.5, -1.5])  # gamma = 1: quotients exactly +-0.5, +-1.5


def test_the_half_input_has_gamma_one() -> None:
    ref = quantizers.b158_quantize(HALVES)
    assert float(ref.scale) == 1.0
    assert ints(ref.codes) == [0, 0, 1, -1]


@evidence("round-half-up")
def _() -> None:
    _, bad = quantized("round-half-up", HALVES)
    assert ints(bad.codes) == [1, 0, 1, -1]
    w = torch.tensor([0.49999997, 1.0, 1.5])  # gamma rounds to 1.0 in float32
    ref, bad = quantized("round-half-up", w)
    assert float(ref.scale) == 1.0
    assert ints(ref.codes)[0] == 0
    assert ints(bad.codes)[0] == 1  # 0.49999997 + 0.5 == 1.0 in float32


@evidence("round-half-away")
def _() -> None:
    _, bad = quantized("round-half-away", HALVES)
    assert ints(bad.codes) == [1, -1, 1, -1]


@evidence("inverted-scale")
def _() -> None:
    ref, bad = quantized("inverted-scale", torch.tensor([0.05, -0.2, 0.35, 0.0]))
    assert ints(bad.codes) == ints(ref.codes)
    assert float(ref.scale) == pytest.approx(0.15)
    assert float(bad.scale) == pytest.approx(1 / 0.15)


@evidence("missing-eps")
def _() -> None:
    ref, bad = quantized("missing-eps", torch.zeros(4, 4))
    assert float(ref.scale) == pytest.approx(1e-5)
    assert ints(ref.codes) == [0] * 16
    assert float(bad.scale) == 0.0  # and the codes are NaN cast to int8 (undefined)


@evidence("truncation")
def _() -> None:
    w = torch.tensor([0.6, -0.6, 1.8, 0.0])  # gamma = 0.75: quotients 0.8, -0.8, 2.4, 0
    ref, bad = quantized("truncation", w)
    assert ints(ref.codes) == [1, -1, 1, 0]
    assert ints(bad.codes) == [0, 0, 1, 0]


@evidence("cast-before-clamp")
def _() -> None:
    w = torch.zeros(200)
    w[0] = 200.0  # gamma = 1: the outlier's quotient is 200
    ref, bad = quantized("cast-before-clamp", w)
    assert ints(ref.codes)[0] == 1
    assert ints(bad.codes)[0] == -1  # 200 -> int8 -56 -> clamp -1


@evidence("per-row-scale")
def _() -> None:
    w = torch.tensor([[0.1, 0.1], [1.0, 1.0]])
    ref, bad = quantized("per-row-scale", w)
    assert ref.scale.shape == ()
    assert ints(ref.codes) == [0, 0, 1, 1]
    assert bad.scale.shape == (2, 1)
    assert ints(bad.codes) == [1, 1, 1, 1]


@evidence("mutates-input")
def _() -> None:
    w = torch.tensor([0.6, -0.6, 1.8, 0.0])
    before = w.clone()
    bad = known_bad.by_name("mutates-input").fn(w)
    assert isinstance(bad, Quantized)
    assert ints(bad.codes) == ints(quantizers.b158_quantize(before).codes)
    assert not torch.equal(w, before)
    quantizers.b158_quantize(before)
    assert torch.equal(before, torch.tensor([0.6, -0.6, 1.8, 0.0]))


@evidence("fp16-sum-overflow")
def _() -> None:
    w = torch.full((2000,), 100.0, dtype=torch.float16)
    w[1::2] = -100.0
    ref, bad = quantized("fp16-sum-overflow", w)
    assert float(ref.scale) == 100.0
    assert ints(ref.codes) == [1, -1] * 1000
    assert float(bad.scale) == float("inf")
    assert ints(bad.codes) == [0] * 2000


@evidence("quantize-returns-dequantized")
def _() -> None:
    ref, bad = quantized("quantize-returns-dequantized", torch.tensor([0.05, -0.2, 0.35, 0.0]))
    assert ref.codes.dtype == torch.int8
    assert bad.codes.dtype.is_floating_point
    assert bad.codes.tolist() == pytest.approx([0.0, -0.15, 0.15, 0.0])


@evidence("ignores-strides")
def _() -> None:
    w = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).t()  # logical [[0, 0], [1, 0]]
    ref, bad = quantized("ignores-strides", w)
    assert ref.codes.tolist() == [[0, 0], [1, 0]]
    assert bad.codes.tolist() == [[0, 1], [0, 0]]  # the storage order
    _, dense = quantized("ignores-strides", w.contiguous())
    assert dense.codes.tolist() == [[0, 0], [1, 0]]


@evidence("inverted-scale-fake")
def _() -> None:
    w = torch.tensor([0.05, -0.2, 0.35, 0.0])  # gamma = 0.15
    ref, bad = fake("inverted-scale-fake", w)
    assert ref.tolist() == pytest.approx([0.0, -0.15, 0.15, 0.0])
    assert bad.tolist() == pytest.approx([0.0, -1 / 0.15, 1 / 0.15, 0.0])


@evidence("no-rounding")
def _() -> None:
    w = torch.tensor([0.05, -0.2, 0.35, 0.0])
    ref, bad = fake("no-rounding", w)
    assert ref.tolist() == pytest.approx([0.0, -0.15, 0.15, 0.0])
    assert bad.tolist() == pytest.approx([0.05, -0.15, 0.15, 0.0])  # 0.05: not ternary


@evidence("missing-eps-fake")
def _() -> None:
    ref, bad = fake("missing-eps-fake", torch.zeros(3, 5))
    assert torch.equal(ref, torch.zeros(3, 5))
    assert bool(bad.isnan().all())


@evidence("no-ste")
def _() -> None:
    w = torch.tensor([0.05, -0.2, 0.35, 0.0])
    grads = []
    for fn in (quantizers.b158_fake_quantize, known_bad.by_name("no-ste").fn):
        leaf = w.clone().requires_grad_(True)
        out = fn(leaf)
        assert out.detach().tolist() == pytest.approx([0.0, -0.15, 0.15, 0.0])
        out.backward(torch.ones(4))
        assert leaf.grad is not None
        grads.append(leaf.grad.tolist())
    assert grads[0] == [1.0] * 4  # straight-through: the identity
    assert grads[1] == [0.0] * 4


# activations: per token, s = 127 / max(absmax, 1e-5), codes = clamp(round(x s), -128, 127)


@evidence("act-round-half-away")
def _() -> None:
    x = torch.tensor([127.0, 2.5, -0.5])  # s = 1: ties at 2.5 and -0.5
    ref, bad = quantized("act-round-half-away", x)
    assert ints(ref.codes) == [127, 2, 0]
    assert ints(bad.codes) == [127, 3, -1]


@evidence("act-absmax-wrong-dim")
def _() -> None:
    x = torch.tensor([[1.0, 2.0], [4.0, 1.0]])
    ref, bad = quantized("act-absmax-wrong-dim", x)
    assert ints(ref.codes) == [64, 127, 127, 32]
    assert ints(bad.codes) == [32, 127, 127, 64]
    assert ref.scale.shape == (2, 1)


@evidence("act-clamp-127-128")
def _() -> None:
    x = torch.tensor([1.0, -1.0, 0.25])
    ref, bad = quantized("act-clamp-127-128", x)
    assert ints(ref.codes) == [127, -127, 32]
    assert ints(bad.codes) == [-128, -127, 32]  # the largest activation changes sign


@evidence("act-scale-128")
def _() -> None:
    x = torch.tensor([1.0, -1.0])
    ref, bad = quantized("act-scale-128", x)
    assert ints(ref.codes) == [127, -127]
    assert ints(bad.codes) == [127, -128]  # 128 saturates at 127: +x and -x are asymmetric
    assert float(bad.scale.flatten()[0]) == pytest.approx(1 / 128)


@evidence("act-missing-eps")
def _() -> None:
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    ref, bad = quantized("act-missing-eps", x)
    assert float(ref.scale[0, 0]) == pytest.approx(1e-5 / 127)
    assert float(bad.scale[0, 0]) == 0.0
    assert ints(bad.codes)[3:] == ints(ref.codes)[3:]  # the non-zero token is right


@evidence("act-per-tensor-no-eps")
def _() -> None:
    x = torch.tensor([[1.0, 2.0], [10.0, 20.0]])
    ref, bad = quantized("act-per-tensor-no-eps", x)
    assert ints(ref.codes)[:2] == [64, 127]
    assert ints(bad.codes)[:2] == [6, 13]
    _, zero = quantized("act-per-tensor-no-eps", torch.zeros(2, 3))
    assert float(zero.scale) == 0.0  # no eps: 127 / 0


@evidence("act-truncation")
def _() -> None:
    x = torch.tensor([127.0, 2.75, -2.75, 0.9])  # s = 1
    ref, bad = quantized("act-truncation", x)
    assert ints(ref.codes) == [127, 3, -3, 1]
    assert ints(bad.codes) == [127, 2, -2, 0]


@evidence("act-missing-eps-fake")
def _() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    ref, bad = fake("act-missing-eps-fake", x)
    assert ref.tolist() == [[0.0, 0.0], [1.0, -1.0]]
    assert bool(bad[0].isnan().all())
    assert bad[1].tolist() == pytest.approx([1.0, -1.0])


# more single-op variants and the classes of bug applied to every op


@evidence("b1-beta-without-abs")
def _() -> None:
    w = torch.tensor([1.5, -3.0, 2.0, 4.0])
    bad = known_bad.by_name("b1-beta-without-abs").fn
    assert not torch.equal(bad(-w), -bad(w))
    assert torch.equal(quantizers.b1_fake_quantize(-w), -quantizers.b1_fake_quantize(w))


@evidence("sign-by-division")
def _() -> None:
    assert bool(known_bad.by_name("sign-by-division").fn(torch.zeros(4)).isnan().all())
    assert bool(torch.isfinite(quantizers.b1_fake_quantize(torch.zeros(4))).all())


@evidence("b158-centred")
def _() -> None:
    w = torch.tensor([0.0, 3.0, 3.0, 3.0])
    assert not torch.equal(known_bad.by_name("b158-centred").fn(w), quantizers.b158_fake_quantize(w))


def _outputs(value: object) -> tuple[torch.Tensor, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,)  # type: ignore[arg-type]


def _same(a: object, b: object) -> bool:
    return all(torch.equal(x, y) for x, y in zip(_outputs(a), _outputs(b), strict=True))


def _class_evidence(name: str, op: str) -> Callable[[], None]:
    reference = getattr(quantizers, op)
    bad = known_bad.by_name(name).fn
    x = torch.tensor([[1.0, -2.0, 0.25], [3.0, 0.5, -1.0]])

    def check() -> None:
        if name.startswith("writes-back"):
            y = x.clone()
            bad(y)
            assert not torch.equal(y, x)
        elif name.startswith("memory-order"):
            view = x.t().contiguous().t()
            assert not _same(bad(view), reference(x))
        elif name.startswith("flush-tiny"):
            tiny = torch.tensor([[3e-7, -2e-7, 1e-7], [2e-7, 1e-7, -3e-7]])
            assert not _same(bad(tiny), reference(tiny))
        elif name.startswith("detached"):
            leaf = x.clone().requires_grad_(True)
            assert not bad(leaf).requires_grad and reference(leaf).requires_grad
        elif name.startswith("stale-cache"):
            bad(x)
            assert not _same(bad(-2 * x), reference(-2 * x))
        else:  # pragma: no cover - a new class needs its evidence here
            raise AssertionError(f"no evidence for {name}")

    return check


for _entry in QUANTIZER_VARIANTS:
    if _entry.name.split("-")[0] in {"writes", "memory", "flush", "detached", "stale"}:
        EVIDENCE[_entry.name] = _class_evidence(_entry.name, _entry.op)


# --- the packing and BitLinear variants ---------------------------------------------------------


def _kernel(name: str, value: object) -> tuple[object, object]:
    """(reference, variant) on ``value`` under the variant's own conventions (its layout)."""
    entry = known_bad.by_name(name)
    return OPS[entry.op].reference(value, entry.conventions), entry.fn(value, entry.conventions)


def _one_hot(shape: tuple[int, ...], position: int) -> torch.Tensor:
    codes = torch.zeros(shape, dtype=torch.int8)
    codes.view(-1)[position] = 1
    return codes


@evidence("tq2_0-consecutive-writer")
def _() -> None:
    ref, bad = _kernel("tq2_0-consecutive-writer", _one_hot((256,), 1))
    assert int(ref[0]) == 0b01 << 0 | 0b01 << 2 | 0b01 << 4 | 0b01 << 6  # element 1 lives in byte 1
    assert not torch.equal(ref, bad)


@evidence("i2_s-64-16-writer")
def _() -> None:
    ref, bad = _kernel("i2_s-64-16-writer", _one_hot((128,), 16))
    assert not torch.equal(ref, bad)


@evidence("pads-minus-one")
def _() -> None:
    ref, bad = _kernel("pads-minus-one", torch.zeros(5, dtype=torch.int8))
    assert isinstance(ref, torch.Tensor) and isinstance(bad, torch.Tensor)
    assert int(ref[1]) == 0b01010101 and int(bad[1]) == 0b00000001  # padding fields read -1 in the variant


@evidence("tail-dropped")
def _() -> None:
    ref, bad = _kernel("tail-dropped", torch.ones(2, 5, dtype=torch.int8))
    assert isinstance(ref, torch.Tensor) and isinstance(bad, torch.Tensor)
    assert ref.shape == (2, 2) and bad.shape == (2, 1)


@evidence("accepts-partial-block")
def _() -> None:
    codes = torch.ones(100, dtype=torch.int8)
    with pytest.raises(ValueError):
        layout("tq2_0").pack(codes)
    assert known_bad.by_name("accepts-partial-block").fn(codes).numel() == 66


@evidence("pack-writes-back")
def _() -> None:
    codes = torch.tensor([-1, 0, 1, 1], dtype=torch.int8)
    before = codes.clone()
    known_bad.by_name("pack-writes-back").fn(codes)
    assert not torch.equal(codes, before)


@evidence("tq2_0-consecutive-reader")
def _() -> None:
    codes = _one_hot((256,), 1)
    ref, bad = _kernel("tq2_0-consecutive-reader", Args((layout("tq2_0").pack(codes), (256,))))
    assert torch.equal(ref, codes) and not torch.equal(bad, codes)  # type: ignore[arg-type]


@evidence("row-padding-ignored")
def _() -> None:
    codes = torch.tensor([[1, 1, 1, 1, 1], [-1, -1, -1, -1, -1]], dtype=torch.int8)
    ref, bad = _kernel("row-padding-ignored", Args((layout("qcheck").pack(codes), (2, 5))))
    assert torch.equal(ref, codes) and not torch.equal(bad, codes)  # type: ignore[arg-type]


@evidence("tail-block-skipped")
def _() -> None:
    codes = torch.ones(1, 512, dtype=torch.int8)
    ref, bad = _kernel("tail-block-skipped", Args((layout("tq2_0").pack(codes), (1, 512))))
    assert torch.equal(ref, codes) and not torch.equal(bad, codes)  # type: ignore[arg-type]


@evidence("no-size-check")
def _() -> None:
    short = layout("qcheck").pack(torch.ones(2, 8, dtype=torch.int8)).reshape(-1)[:-1]
    with pytest.raises(ValueError):
        layout("qcheck").unpack(short, (2, 8))
    assert known_bad.by_name("no-size-check").fn(Args((short, (2, 8)))).shape == (2, 8)


@evidence("unpack-writes-back")
def _() -> None:
    packed = layout("qcheck").pack(torch.ones(2, 8, dtype=torch.int8))
    before = packed.clone()
    known_bad.by_name("unpack-writes-back").fn(Args((packed, (2, 8))))
    assert not torch.equal(packed, before)


def _bitlinear_args(k: int = 8, bias: bool = True) -> Args:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, k, generator=generator)
    w = torch.randint(-1, 2, (4, k), generator=generator, dtype=torch.int8)
    return Args((x, w, torch.tensor(0.25), torch.randn(4, generator=generator) if bias else None))


@evidence("int16-accumulator")
def _() -> None:
    args = Args((torch.full((1, 300), 2.0), torch.ones(2, 300, dtype=torch.int8), torch.tensor(1.0), None))
    ref, bad = _kernel("int16-accumulator", args)
    assert float(ref[0, 0]) == 600.0 and float(bad[0, 0]) < 0  # type: ignore[index]  # 127 * 300 wraps


@evidence("float16-accumulator")
def _() -> None:
    args = Args((torch.full((1, 2049), 2.0), torch.ones(1, 2049, dtype=torch.int8), torch.tensor(1.0), None))
    ref, bad = _kernel("float16-accumulator", args)
    assert not torch.equal(ref, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["dropped-bias", "inverted-weight-scale", "per-tensor-activation-scale", "sequence-first"]
)
def test_bitlinear_variant_differs(name: str) -> None:
    ref, bad = _kernel(name, _bitlinear_args())
    assert isinstance(ref, torch.Tensor) and isinstance(bad, torch.Tensor)
    assert not torch.allclose(ref, bad, rtol=1e-3)


for _name in ("dropped-bias", "inverted-weight-scale", "per-tensor-activation-scale", "sequence-first"):
    EVIDENCE[_name] = functools.partial(test_bitlinear_variant_differs, _name)


@evidence("bitlinear-writes-back")
def _() -> None:
    args = _bitlinear_args()
    before = args[0].clone()
    known_bad.by_name("bitlinear-writes-back").fn(args)
    assert not torch.equal(args[0], before)


def _kernel_class_evidence(name: str) -> Callable[[], None]:
    entry = known_bad.by_name(name)
    codes = torch.randint(-1, 2, (3, 8), generator=torch.Generator().manual_seed(5), dtype=torch.int8)
    inputs = {
        "pack_ternary": (codes.t().contiguous().t(), codes, -codes),
        "unpack_ternary": (
            None,
            Args((layout("qcheck").pack(codes), (3, 8))),
            Args((layout("qcheck").pack(-codes), (3, 8))),
        ),
        "bitlinear": (None, _bitlinear_args(), Args((-_bitlinear_args()[0], *_bitlinear_args()[1:]))),
    }[entry.op]

    def check() -> None:
        view, first, second = inputs
        if name.startswith("memory-order"):
            if view is None:  # a view of the first tensor argument
                value = first[0]  # type: ignore[index]
                view = Args((value.transpose(-1, -2).contiguous().transpose(-1, -2), *first[1:]))  # type: ignore[index]
                if value.dim() < 2 or value.shape[-2] == 1:
                    wide = torch.zeros(*value.shape[:-1], 2 * value.shape[-1], dtype=value.dtype)
                    wide[..., ::2] = value
                    view = Args((wide[..., ::2], *first[1:]))  # type: ignore[index]
            assert not _same(entry.fn(view), OPS[entry.op].reference(view, entry.conventions))
        else:  # stale-cache
            entry.fn(first)
            assert not _same(entry.fn(second), OPS[entry.op].reference(second, entry.conventions))

    return check


for _variant in KERNEL_VARIANTS:
    if _variant.name.startswith(("memory-order", "stale-cache")):
        EVIDENCE[_variant.name] = _kernel_class_evidence(_variant.name)


def test_every_variant_has_evidence() -> None:
    assert sorted(EVIDENCE) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_variant_is_wrong_where_the_reference_is_right(name: str) -> None:
    EVIDENCE[name]()
