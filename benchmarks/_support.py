"""What the benchmarks share: the scale, the results of this run, timing and target verdicts.

Every ratio is taken between two measurements of the same session (issue 6: "measured as ratios
in the same run"), so a loaded or slow machine moves both sides; absolute seconds are kept too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest

ROOT = Path(__file__).resolve().parent.parent

Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Scale:
    """The sizes one run uses: ``full`` (the issue's) or ``small`` (a smoke run)."""

    name: str
    weight_shape: Shape
    """The weight the quantizer targets are measured on (4096×11008 float32)."""
    act_shape: Shape
    """The activation (tokens × hidden) of the activation target (4096×4096 float32)."""
    sweep_shapes: tuple[Shape, ...]
    """Sizes of the throughput plot, smallest first; includes both target shapes."""
    pack_shape: Shape
    """The int8 codes the packing targets are measured on (4096×11008)."""
    big_bf16_shape: Shape | None
    """The 70B-class MLP weight (8192×28672 bf16) whose quantize + pack peak RSS is measured."""
    grade_profiles: tuple[str, ...]
    variants_per_op: int | None
    """How many known-bad variants of each op the time-to-detect run grades (None: all)."""
    budget_seconds: float
    """Rounds are chosen so that one benchmark takes about this long (within min/max rounds)."""
    min_rounds: int
    max_rounds: int


FULL = Scale(
    name="full",
    weight_shape=(4096, 11008),
    act_shape=(4096, 4096),
    sweep_shapes=((24, 4096), (256, 4096), (1024, 4096), (4096, 4096), (4096, 11008)),
    pack_shape=(4096, 11008),
    big_bf16_shape=(8192, 28672),
    grade_profiles=("quick", "ci"),
    variants_per_op=None,
    budget_seconds=3.0,
    min_rounds=3,
    max_rounds=200,
)
SMALL = Scale(
    name="small",
    weight_shape=(256, 2048),
    act_shape=(256, 1024),
    sweep_shapes=((24, 4096), (256, 1024), (256, 2048)),
    pack_shape=(256, 2048),
    big_bf16_shape=None,
    grade_profiles=("quick",),
    variants_per_op=1,
    budget_seconds=0.5,
    min_rounds=3,
    max_rounds=50,
)


def current_scale() -> Scale:
    name = os.environ.get("QCHECK_BENCH_SCALE", "full").strip().lower()
    scales = {s.name: s for s in (FULL, SMALL)}
    if name not in scales:
        raise pytest.UsageError(f"QCHECK_BENCH_SCALE={name!r}: choose one of {', '.join(scales)}")
    return scales[name]


def output_dir(scale: Scale) -> Path:
    """``reports/bench`` for the full run, ``reports/bench/<scale>`` otherwise; QCHECK_BENCH_DIR overrides."""
    override = os.environ.get("QCHECK_BENCH_DIR")
    if override:
        return Path(override)
    base = ROOT / "reports" / "bench"
    return base if scale.name == "full" else base / scale.name


def bench_threads() -> int:
    """torch threads for the in-process timings and the memory probes: ``QCHECK_BENCH_THREADS``, default 1.

    One thread by default: on a 2-core machine shared with other jobs, a 2-thread parallel region
    waits for a time slice on the busy core (milliseconds per call, even for a 400 KB copy), which
    swamps small sizes.  Both sides of every ratio run with the same count; 0 keeps torch's default."""
    value = os.environ.get("QCHECK_BENCH_THREADS", "1").strip()
    try:
        threads = int(value)
    except ValueError:
        raise pytest.UsageError(
            f"QCHECK_BENCH_THREADS={value!r}: give a number of threads (0: torch's default)"
        ) from None
    return max(threads, 0)


# --- what this run measured ------------------------------------------------------------------------


@dataclasses.dataclass
class Timing:
    """One timed operation: ``median_s`` per call over ``rounds`` rounds (after one warm-up call)."""

    key: str
    impl: str
    shape: Shape
    input_bytes: int
    median_s: float
    min_s: float
    rounds: int
    iterations: int

    @property
    def gb_per_s(self) -> float:
        """Input bytes per second, in GB/s (1e9 bytes)."""
        return self.input_bytes / self.median_s / 1e9


@dataclasses.dataclass
class Target:
    """One issue target: what was measured against which limit, and the verdict.  A target without
    a limit is reported only (the issue asks for the number, e.g. the median time to detect)."""

    section: str
    name: str
    measured: float | None
    limit: float | None
    comparison: Literal["<=", ">="]
    unit: str
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None or self.limit is None:
            return None
        return self.measured <= self.limit if self.comparison == "<=" else self.measured >= self.limit

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return "REPORTED" if self.measured is not None else "NOT MEASURED"
        return {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[self.met]

    def text(self) -> str:
        value = "—" if self.measured is None else f"{self.measured:.3g}{self.unit}"
        bound = "no limit" if self.limit is None else f"target {self.comparison} {self.limit:g}{self.unit}"
        return f"{self.section} {self.name}: measured {value} ({bound})"


@dataclasses.dataclass
class Run:
    """Everything this session measured; written out by conftest at the end of the session."""

    timings: dict[str, Timing] = dataclasses.field(default_factory=dict)
    targets: list[Target] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


RUN = Run()


def timing_key(impl: str, shape: Shape, dtype: str = "float32") -> str:
    return f"{impl}@{'x'.join(map(str, shape))}:{dtype}"


def emit(config: pytest.Config, line: str) -> None:
    """Print ``line`` on the terminal as the benchmark runs, past pytest's output capture."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line)
        else:  # pragma: no cover - without a terminal (-p no:terminal)
            print(line, flush=True)


def judge(config: pytest.Config, target: Target) -> Target:
    """Record ``target`` and print it with its verdict."""
    RUN.targets.append(target)
    note = f"  [{target.note}]" if target.note else ""
    emit(config, f"TARGET {target.text()} -> {target.verdict}{note}")
    return target


def measure(
    benchmark: Any,
    config: pytest.Config,
    scale: Scale,
    *,
    impl: str,
    shape: Shape,
    input_bytes: int,
    fn: Callable[..., Any],
    setup: Callable[[], tuple[Any, ...]] | None = None,
    dtype: str = "float32",
) -> Timing:
    """Time ``fn`` with pytest-benchmark and record it.

    One untimed call first (warm-up: page faults of fresh buffers, lazy imports, torch.compile)
    also calibrates the rounds: about ``scale.budget_seconds`` in all, within the scale's round
    limits.  Calls faster than 1 ms are repeated within a round (iterations) unless ``setup`` is
    given (``setup()`` returns fresh arguments for each call, outside the timed region)."""
    args = setup() if setup else ()
    started = time.perf_counter()
    fn(*args)
    first = max(time.perf_counter() - started, 1e-9)
    rounds = max(scale.min_rounds, min(scale.max_rounds, int(scale.budget_seconds / first)))
    if setup is not None:
        iterations = 1
        benchmark.pedantic(fn, setup=lambda: (setup(), {}), rounds=rounds, iterations=1)
    else:
        iterations = max(1, min(1000, int(1e-3 / first)))
        rounds = max(scale.min_rounds, min(rounds, int(scale.budget_seconds / (first * iterations)) or 1))
        benchmark.pedantic(fn, rounds=rounds, iterations=iterations)
    stats = getattr(benchmark, "stats", None)
    inner = getattr(stats, "stats", None)
    median = float(inner.median) if inner is not None else first
    minimum = float(inner.min) if inner is not None else first
    key = timing_key(impl, shape, dtype)
    timing = Timing(key, impl, shape, input_bytes, median, minimum, rounds, iterations)
    RUN.timings[key] = timing
    benchmark.extra_info.update(
        {"impl": impl, "shape": list(shape), "input_bytes": input_bytes, "gb_per_s_of_input": timing.gb_per_s}
    )
    emit(
        config,
        f"  {impl:<24} {'x'.join(map(str, shape)):>12} {dtype:<8} median {median * 1e3:10.3f} ms "
        f"({timing.gb_per_s:7.3f} GB/s of input, {rounds} rounds × {iterations})",
    )
    return timing
