"""Peak resident memory of one operation, measured in a fresh process (run by test_bench_2_memory.py).

``python benchmarks/memprobe.py IMPL ROWS COLS DTYPE [CAP_GIB]`` prints one JSON object.  With
``CAP_GIB`` the process's data segment is limited (``RLIMIT_DATA``, which counts allocated memory,
resident or not) so that an operation larger than expected fails with an allocation error instead of
pushing a shared machine out of memory; the JSON then has ``"failed"`` and no peak.

Method: import torch and qcheck, run the operation once on a small tensor and once on a 2048×2049
one (lazy imports, code paths, the fused kernels' compilation), make the seeded input, then reset
the kernel's peak-RSS mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) and read ``VmHWM``
from ``/proc/self/status`` after the call.
``peak extra = VmHWM after - VmHWM at reset - bytes of the outputs`` (the outputs stay alive while
the peak is read).  If the mark cannot be reset, ``ru_maxrss`` is used and the baseline is the peak so
far (imports and making the input), which can hide a smaller operation's peak: the JSON says which.

Limits: RSS counts pages, not allocations: memory allocated but never touched does not count,
freed memory the allocator keeps does not count again when reused, and everything in the process
counts (Python objects, thread stacks, torch's own buffers); the resolution is a page (4 KiB).  torch
has no allocator statistics for CPU tensors (``torch.cuda.max_memory_allocated`` is CUDA only).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from qcheck.layer_check import check_layer
from qcheck.packing import QCHECK
from qcheck.quantizers.streaming import act_quantize, b1_quantize, b158_quantize

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset the peak-RSS mark to the current RSS; False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    hwm, rss = _status_kib("VmHWM"), _status_kib("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 64  # the mark really was reset


def peak_bytes(method: str) -> int:
    if method == "VmHWM":
        value = _status_kib("VmHWM")
        assert value is not None
        return value * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _faq_weight(w: torch.Tensor) -> torch.Tensor:
    return (w * (1 / w.abs().mean().clamp(min=1e-5))).round().clamp(-1, 1)


def _copy(w: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(w).copy_(w)


def _b158_and_pack(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    quantized = b158_quantize(w)
    return QCHECK.pack(quantized.codes), quantized.scale


def _b158_pack_and_check(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize and pack (the reference backend's ops), then check both against the reference
    with the layer-scale check (qcheck.layer_check), as ``qcheck grade --profile thorough`` does."""
    packed, scale = _b158_and_pack(w)
    verdict = check_layer(b158_quantize, QCHECK.pack, w)
    if not verdict.passed:
        raise SystemExit(f"layer check failed: {verdict.message}")
    return packed, scale


IMPLS: dict[str, Callable[[torch.Tensor], Any]] = {
    "copy": _copy,
    "faq-weight": _faq_weight,
    "b158_quantize": b158_quantize,
    "b1_quantize": b1_quantize,
    "act_quantize": act_quantize,
    "b158_quantize+pack": _b158_and_pack,
    "b158_quantize+pack+check": _b158_pack_and_check,
}


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for item in value for t in _tensors(item)]
    return []


def main(argv: list[str]) -> int:
    impl, rows, cols, dtype_name = argv[0], int(argv[1]), int(argv[2]), argv[3]
    cap = int(float(argv[4]) * 2**30) if len(argv) > 4 else None
    dtype = getattr(torch, dtype_name)
    fn = IMPLS[impl]
    threads = int(os.environ.get("QCHECK_BENCH_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    result: dict[str, Any] = {"impl": impl, "shape": [rows, cols], "dtype": dtype_name, "cap_bytes": cap}
    with torch.no_grad():
        # warm-up: lazy imports, first-call paths, and the fused kernels' compilation (inputs of at
        # least fused_kernels.MIN_ELEMENTS elements), which is not the operation's own memory
        fn(torch.randn(64, 256).to(dtype))
        fn(torch.randn(2048, 2049).to(dtype))
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
        generator = torch.Generator().manual_seed(rows + cols)
        x = torch.randn(rows, cols, generator=generator).to(dtype)
        gc.collect()
        method = "VmHWM" if reset_peak() else "ru_maxrss"
        baseline = peak_bytes(method)
        result.update(
            {"input_bytes": x.numel() * x.element_size(), "method": method, "torch_threads": torch.get_num_threads()}
        )
        started = time.perf_counter()
        try:
            out = fn(x)
        except (RuntimeError, MemoryError) as exc:  # torch reports a failed allocation as RuntimeError
            result.update({"failed": str(exc).splitlines()[0][:300], "seconds": time.perf_counter() - started})
            print(json.dumps(result))
            return 0
        seconds = time.perf_counter() - started
        peak = peak_bytes(method)
    outputs = _tensors(out)
    output_bytes = sum(t.numel() * t.element_size() for t in outputs)
    extra = peak - baseline - output_bytes
    result.update(
        {
            "output_bytes": output_bytes,
            "baseline_rss_bytes": baseline,
            "peak_rss_bytes": peak,
            "peak_extra_bytes": extra,
            "peak_extra_fraction": extra / (x.numel() * x.element_size()),
            "seconds": seconds,
        }
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
