"""Target 4 (issue 6): grading time.

``qcheck grade --backend reference --profile quick|ci`` as a subprocess, wall time against 15 s and
60 s (with its default isolation: the backend runs in a worker process; reports go to a temporary
folder).  Then every known-bad variant graded at ``quick`` in a fresh process
(``benchmarks/detect.py``): each must be detected, and the median time to detect is reported.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks._support import ROOT, RUN, Target, current_scale, emit, judge

WALL_LIMITS = {"quick": 15.0, "ci": 60.0}
DETECT = Path(__file__).with_name("detect.py")
SCALE = current_scale()


def _qcheck_command() -> list[str]:
    script = Path(sys.executable).with_name("qcheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "qcheck.cli"]


def run_grade(profile: str) -> dict[str, Any]:
    report_dir = Path(tempfile.mkdtemp(prefix="qcheck-bench-grade-"))
    command = [*_qcheck_command(), "grade", "--backend", "reference", "--profile", profile]
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [*command, "--report-dir", str(report_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        wall = time.perf_counter() - started
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)
    return {"command": " ".join(command), "exit_code": done.returncode, "wall_s": wall, "tail": done.stdout[-1500:]}


@pytest.mark.parametrize("profile", SCALE.grade_profiles)
def test_grade_reference_wall(benchmark: Any, request: pytest.FixtureRequest, profile: str) -> None:
    benchmark.group = "grading (subprocess wall time)"
    result = benchmark.pedantic(run_grade, args=(profile,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    RUN.details.setdefault("grading", {}).setdefault("grade_reference", {})[profile] = result
    emit(request.config, f"  {result['command']}: exit {result['exit_code']}, {result['wall_s']:.1f} s wall")
    note = "exit 0 (reference passes)" if result["exit_code"] == 0 else f"exit {result['exit_code']}: see results.json"
    judge(
        request.config,
        Target(
            "4 grading",
            f"qcheck grade --backend reference --profile {profile}: wall",
            result["wall_s"],
            WALL_LIMITS[profile],
            "<=",
            " s",
            note,
        ),
    )
    assert result["exit_code"] == 0, result["tail"]


def run_detect(per_op: int | None) -> dict[str, Any]:
    command = [sys.executable, str(DETECT), "--profile", "quick"]
    if per_op is not None:
        command += ["--per-op", str(per_op)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    payload: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return payload


def test_known_bad_time_to_detect(benchmark: Any, request: pytest.FixtureRequest) -> None:
    benchmark.group = "grading (subprocess wall time)"
    payload = benchmark.pedantic(run_detect, args=(SCALE.variants_per_op,), rounds=1, iterations=1)
    variants = payload["variants"]
    detected = [v for v in variants if v["detected"]]
    times = [v["seconds_to_detect"] for v in detected]
    median = statistics.median(times) if times else None
    grading = RUN.details.setdefault("grading", {})
    grading["method"] = (
        "Each variant graded like `python -m qcheck.verify` grades it (grade_backend in process, seed 0, `quick`), "
        "stopped at its first failing check; time to detect = from the start of grading to the end of that check "
        "(diagnosis by fingerprinting excluded)."
    )
    grading["variants"] = variants
    grading["detect_run_seconds"] = payload["seconds"]
    benchmark.extra_info.update(
        {"median_s": median, "detected": len(detected), "graded": len(variants), "variants": variants}
    )
    graded = len(variants)
    subset = "" if graded == payload["catalogue_size"] else f" (smoke run: {graded} of {payload['catalogue_size']})"
    undetected = ", ".join(v["variant"] for v in variants if not v["detected"]) or "none"
    emit(
        request.config,
        f"  {len(detected)}/{graded} known-bad variants detected at quick; median time to detect "
        f"{median if median is None else round(median, 2)} s, max {round(max(times), 2) if times else None} s",
    )
    judge(
        request.config,
        Target(
            "4 grading",
            f"known-bad variants detected within quick{subset}",
            len(detected) / graded if graded else None,
            1.0,
            ">=",
            "",
            f"{len(detected)}/{graded}; undetected: {undetected}",
        ),
    )
    if median is not None:
        judge(
            request.config,
            Target(
                "4 grading",
                "median time to detect a known-bad variant (quick)",
                median,
                None,
                "<=",
                " s",
                f"max {max(times):.2f} s ({max(detected, key=lambda v: v['seconds_to_detect'])['variant']}); "
                f"all {graded} graded in {payload['seconds']:.0f} s",
            ),
        )
