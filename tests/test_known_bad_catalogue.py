"""The known-bad catalogue is well formed, and every variant is wrong on a hand-picked input.

Each piece of evidence pins the reference's right answer and the variant's wrong one on one
concrete tensor; the Hypothesis suite that must catch every variant lives elsewhere.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import pytest
import torch

from qcheck import known_bad, quantizers
from qcheck.known_bad import CATALOGUE, KnownBad
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
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", entry.name), entry.name
    assert entry.description.strip() and "\n" not in entry.description
    assert entry.origin.strip()
    assert callable(entry.fn)


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
def test_every_op_is_a_reference_op(entry: KnownBad) -> None:
    assert entry.op in known_bad.OPS
    assert callable(getattr(quantizers, entry.op, None)), entry.op


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
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


for _entry in known_bad.CATALOGUE:
    if _entry.name.split("-")[0] in {"writes", "memory", "flush", "detached", "stale"}:
        EVIDENCE[_entry.name] = _class_evidence(_entry.name, _entry.op)


def test_every_variant_has_evidence() -> None:
    assert sorted(EVIDENCE) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_variant_is_wrong_where_the_reference_is_right(name: str) -> None:
    EVIDENCE[name]()
