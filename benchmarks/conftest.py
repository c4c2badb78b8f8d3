"""Session set-up of the benchmarks: records the machine and its load during the run, and at the end
writes ``results.json``, ``results.md`` and ``throughput.png`` under ``reports/bench/``."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import _report
from benchmarks._support import RUN, bench_threads, current_scale, output_dir


class LoadSampler:
    """Samples the 1-minute load average every ``period`` seconds on a daemon thread."""

    def __init__(self, period: float = 5.0) -> None:
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-load-sampler", daemon=True)
        self.started = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self.started, os.getloadavg()[0]))
            self._stop.wait(self.period)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=2 * self.period)
        loads = [load for _, load in self.samples] or [os.getloadavg()[0]]
        return {
            "period_s": self.period,
            "samples": len(loads),
            "min": min(loads),
            "mean": sum(loads) / len(loads),
            "max": max(loads),
        }


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except OSError:
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def _busy_processes() -> list[str]:
    """Other processes using a CPU when the run starts or ends (pid, %CPU, command), for the report."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except OSError:
        return []
    busy = []
    for line in out.splitlines()[:8]:
        fields = line.split(None, 2)
        if len(fields) == 3 and int(fields[0]) != os.getpid() and float(fields[1]) >= 20.0:
            busy.append(f"{fields[0]} {fields[1]}% {fields[2][:100]}")
    return busy


_SAMPLER: LoadSampler | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Default ``--benchmark-json`` to the report folder (before pytest-benchmark reads it)."""
    global _SAMPLER
    scale = current_scale()
    out = output_dir(scale)
    out.mkdir(parents=True, exist_ok=True)
    if getattr(config.option, "benchmark_json", "absent") is None:
        config.option.benchmark_json = out / "pytest-benchmark.json"
    threads = bench_threads()
    if threads:
        torch.set_num_threads(threads)
    RUN.details["environment"] = {
        "scale": scale.name,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "uptime_at_start": _uptime(),
        "busy_processes_at_start": _busy_processes(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_threads_note": "in-process timings and memory probes (QCHECK_BENCH_THREADS); the qcheck grade "
        "and time-to-detect subprocesses use torch's default",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    _SAMPLER = LoadSampler()
    _SAMPLER.start()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not RUN.targets:
        return
    terminalreporter.section("qcheck benchmark targets (issue 6)")
    for target in RUN.targets:
        terminalreporter.write_line(f"{target.verdict:<12} {target.text()}")
    for path in RUN.details.get("written", []):
        terminalreporter.write_line(f"wrote {path}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the reports (before the terminal summary, which lists them)."""
    environment = RUN.details.setdefault("environment", {})
    environment["uptime_at_end"] = _uptime()
    environment["busy_processes_at_end"] = _busy_processes()
    if _SAMPLER is not None:
        environment["load_1min_during_run"] = _SAMPLER.stop()
    if not RUN.timings and not RUN.targets:
        return
    out: Path = output_dir(current_scale())
    RUN.details["written"] = [str(p) for p in _report.write_all(RUN, out)]
