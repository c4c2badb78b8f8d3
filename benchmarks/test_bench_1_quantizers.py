"""Target 1 (issue 6): the reference quantizers against the copy limit and the FAQ formula.

For every size of the throughput sweep, in this order on the same tensor: ``dst.copy_(src)`` into a
preallocated buffer (the copy limit), the FAQ-style eager formulas (the peers), then
``b158_quantize``, ``b1_quantize`` and ``act_quantize`` as qcheck grades with them: the streaming
versions (:mod:`qcheck.quantizers.streaming`), bit-identical to the readable references
(tests/test_streaming.py), which take seconds at these sizes (Fractions and exact sums).  At the
issue's shapes (weight 4096×11008, activation 4096×4096, float32) each is judged: time / copy <= 3.

Peers: for the weight quantizers the FAQ's ``weight_quant`` without the final division,
``(w * (1 / w.abs().mean().clamp(min=1e-5))).round().clamp(-1, 1)``; for ``act_quantize`` the FAQ's
``activation_quant`` likewise, ``(x * (127 / x.abs().amax(-1, keepdim=True).clamp(min=1e-5)))
.round().clamp(-128, 127)``.  Neither is bit-exact with the references (that is what qcheck checks);
they are the eager torch a BitNet user would otherwise run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from benchmarks._support import RUN, Scale, Shape, Target, current_scale, judge, measure, timing_key
from qcheck.quantizers.streaming import act_quantize, b1_quantize, b158_quantize

COPY_LIMIT = 3.0
ISSUE_PEER_OVER_COPY = 12.0  # the issue: "the FAQ-style eager formula ... takes about 12× that copy here"


def faq_weight(w: torch.Tensor) -> torch.Tensor:
    return (w * (1 / w.abs().mean().clamp(min=1e-5))).round().clamp(-1, 1)


def faq_act(x: torch.Tensor) -> torch.Tensor:
    return (x * (127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5))).round().clamp(-128, 127)


REFERENCES: dict[str, Callable[[torch.Tensor], Any]] = {
    "b158_quantize": b158_quantize,
    "b1_quantize": b1_quantize,
    "act_quantize": act_quantize,
}
PEER_OF = {"b158_quantize": "faq-weight", "b1_quantize": "faq-weight", "act_quantize": "faq-act"}
IMPLS = ("copy", "faq-weight", "faq-act", *REFERENCES)


def target_shape(impl: str, scale: Scale) -> Shape:
    return scale.act_shape if impl == "act_quantize" else scale.weight_shape


def operation(impl: str, x: torch.Tensor) -> Callable[[], Any]:
    """``impl`` applied to ``x`` as a call without arguments (the copy into a buffer allocated here)."""
    if impl == "copy":
        dst = torch.empty_like(x)
        return functools.partial(dst.copy_, x)
    if impl == "faq-weight":
        return functools.partial(faq_weight, x)
    if impl == "faq-act":
        return functools.partial(faq_act, x)
    return functools.partial(REFERENCES[impl], x)


SCALE = current_scale()
CASES = [
    pytest.param(shape, impl, id=f"{'x'.join(map(str, shape))}-{impl}")
    for shape in SCALE.sweep_shapes
    for impl in IMPLS
]


class _Inputs:
    """One float32 tensor at a time (seeded by its shape), so the sweep never holds two large ones."""

    def __init__(self) -> None:
        self.shape: Shape | None = None
        self.tensor: torch.Tensor | None = None

    def get(self, shape: Shape) -> torch.Tensor:
        if self.shape != shape or self.tensor is None:
            self.tensor = None
            generator = torch.Generator().manual_seed(sum(shape))
            self.tensor = torch.randn(shape, generator=generator, dtype=torch.float32)
            self.shape = shape
        return self.tensor


@pytest.fixture(scope="module")
def inputs() -> Iterator[_Inputs]:
    held = _Inputs()
    yield held
    held.tensor = None


@pytest.mark.parametrize(("shape", "impl"), CASES)
def test_quantizer_throughput(
    benchmark: Any, request: pytest.FixtureRequest, inputs: _Inputs, shape: Shape, impl: str
) -> None:
    config = request.config
    benchmark.group = f"quantizers {'x'.join(map(str, shape))}"
    x = inputs.get(shape)
    fn = operation(impl, x)
    with torch.no_grad():
        timing = measure(benchmark, config, SCALE, impl=impl, shape=shape, input_bytes=x.nbytes, fn=fn)
    on_target = impl in REFERENCES and shape == target_shape(impl, SCALE)
    peer_target = {"faq-weight": SCALE.weight_shape, "faq-act": SCALE.act_shape}.get(impl)
    if shape == peer_target:
        copy = RUN.timings.get(timing_key("copy", shape))
        ratio = timing.median_s / copy.median_s if copy else None
        benchmark.extra_info["over_copy"] = ratio
        size = "x".join(map(str, shape))
        note = f"the issue quotes about {ISSUE_PEER_OVER_COPY:g}× for the FAQ formula"
        judge(config, Target("1 quantizers", f"{impl} (FAQ peer) {size} fp32 / copy", ratio, None, "<=", "×", note))
    if not on_target:
        return
    copy = RUN.timings.get(timing_key("copy", shape))
    peer = RUN.timings.get(timing_key(PEER_OF[impl], shape))
    over_copy = timing.median_s / copy.median_s if copy else None
    over_peer = timing.median_s / peer.median_s if peer else None
    benchmark.extra_info.update({"over_copy": over_copy, "over_peer": over_peer})
    size = "x".join(map(str, shape))
    note = (
        f"{timing.median_s * 1e3:,.4g} ms vs copy {copy.median_s * 1e3:.3g} ms"
        if copy
        else "copy not measured (deselected?)"
    )
    if peer and over_peer is not None:
        note += f"; {over_peer:.1f}× the FAQ peer {PEER_OF[impl]} ({peer.median_s * 1e3:.3g} ms)"
    judge(config, Target("1 quantizers", f"{impl} {size} fp32 / copy", over_copy, COPY_LIMIT, "<=", "×", note))
