"""Target 3 (issue 6): every reference packer and unpacker in ``qcheck.packing.LAYOUTS`` on 4096×11008
int8 codes, against HF transformers' ``pack_weights`` / ``unpack_weights`` (at least 5× faster) and
the copy limit (within 10× of ``dst.copy_(codes)`` into a preallocated int8 buffer).

``pack_weights`` adds 1 to its argument in place, so each timed call gets a fresh clone made outside
the timed region.  ``unpack_weights`` is decorated with ``torch.compile`` in transformers; the
warm-up call compiles it, and the compiled kernel is what is timed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from benchmarks._support import RUN, Target, current_scale, judge, measure, timing_key
from qcheck.packing import LAYOUTS

HF_SPEEDUP = 5.0
COPY_LIMIT = 10.0
SCALE = current_scale()
SHAPE = SCALE.pack_shape


@pytest.fixture(scope="module")
def codes() -> Iterator[torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    yield torch.randint(-1, 2, SHAPE, generator=generator, dtype=torch.int8)


def _hf() -> Any:
    try:
        from transformers.integrations import bitnet
    except ImportError:  # transformers is in the bench extra; say so instead of failing obscurely
        pytest.skip("transformers is not installed (pip install -e .[bench])")
    return bitnet


def test_copy_limit(benchmark: Any, request: pytest.FixtureRequest, codes: torch.Tensor) -> None:
    benchmark.group = "packing"
    dst = torch.empty_like(codes)
    measure(
        benchmark,
        request.config,
        SCALE,
        impl="copy",
        shape=SHAPE,
        input_bytes=codes.nbytes,
        fn=functools.partial(dst.copy_, codes),
        dtype="int8",
    )


def test_hf_pack_weights(benchmark: Any, request: pytest.FixtureRequest, codes: torch.Tensor) -> None:
    benchmark.group = "packing"
    bitnet = _hf()
    measure(
        benchmark,
        request.config,
        SCALE,
        impl="hf pack_weights",
        shape=SHAPE,
        input_bytes=codes.nbytes,
        fn=bitnet.pack_weights,
        setup=lambda: (codes.clone(),),
        dtype="int8",
    )


def test_hf_unpack_weights(benchmark: Any, request: pytest.FixtureRequest, codes: torch.Tensor) -> None:
    benchmark.group = "packing"
    bitnet = _hf()
    packed = bitnet.pack_weights(codes.clone())
    assert torch.equal(bitnet.unpack_weights(packed, torch.int8)[: SHAPE[0]], codes)
    measure(
        benchmark,
        request.config,
        SCALE,
        impl="hf unpack_weights",
        shape=SHAPE,
        input_bytes=codes.nbytes,
        fn=functools.partial(bitnet.unpack_weights, packed, torch.int8),
        dtype="int8",
    )


def _judge(config: pytest.Config, name: str, which: str, seconds: float) -> None:
    copy = RUN.timings.get(timing_key("copy", SHAPE, "int8"))
    hf = RUN.timings.get(timing_key(f"hf {which}_weights", SHAPE, "int8"))
    size = "x".join(map(str, SHAPE))
    speedup = hf.median_s / seconds if hf else None
    judge(
        config,
        Target(
            "3 packing",
            f"{name} {which} {size}: HF {which}_weights time / this",
            speedup,
            HF_SPEEDUP,
            ">=",
            "×",
            f"{seconds * 1e3:.3g} ms vs HF {hf.median_s * 1e3:.3g} ms" if hf else "HF not measured",
        ),
    )
    judge(
        config,
        Target(
            "3 packing",
            f"{name} {which} {size}: time / copy",
            seconds / copy.median_s if copy else None,
            COPY_LIMIT,
            "<=",
            "×",
            f"copy of the int8 codes {copy.median_s * 1e3:.3g} ms" if copy else "copy not measured",
        ),
    )


@pytest.mark.parametrize("which", ["pack", "unpack"])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout(benchmark: Any, request: pytest.FixtureRequest, codes: torch.Tensor, name: str, which: str) -> None:
    benchmark.group = "packing"
    layout = LAYOUTS[name]
    reason = layout.supports(SHAPE)
    if reason is not None:
        pytest.skip(f"{name} cannot store {SHAPE}: {reason}")
    if which == "pack":
        fn = functools.partial(layout.pack, codes)
    else:
        packed = layout.pack(codes)
        assert torch.equal(layout.unpack(packed, SHAPE), codes)
        fn = functools.partial(layout.unpack, packed, SHAPE)
    timing = measure(
        benchmark,
        request.config,
        SCALE,
        impl=f"{name} {which}",
        shape=SHAPE,
        input_bytes=codes.nbytes,
        fn=fn,
        dtype="int8",
    )
    _judge(request.config, name, which, timing.median_s)
