"""Time to detect each known-bad variant (run by test_bench_4_grading.py in a fresh process).

``python benchmarks/detect.py --profile quick [--per-op N]`` grades each ``known-bad:<name>``
backend as ``python -m qcheck.verify`` does (``qcheck.grade.grade_backend``, in process, seed 0) and
stops at its first failing check.  Prints one JSON object.

Time to detect = from the start of ``grade_backend`` to the end of the first failing check: the
checks that passed before it, plus that check's own run (its ``seconds``).  The diagnosis that
follows a failure (fingerprinting against the catalogue) is not detection and is reported
separately as ``seconds_with_diagnosis``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from qcheck import known_bad
from qcheck.grade import Outcome, grade_backend


class _Detected(Exception):
    """Raised from the progress callback to stop grading at the first failing check."""


def time_to_detect(name: str, profile: str, seed: int) -> dict[str, Any]:
    variant = known_bad.by_name(name)
    started = time.perf_counter()
    previous_end = started
    checks_run = 0
    found: dict[str, Any] = {}

    def progress(outcome: Outcome) -> None:
        nonlocal previous_end, checks_run
        checks_run += 1
        now = time.perf_counter()
        if outcome.failed:
            found.update(
                {
                    "first_failure": outcome.result.key,
                    "verdict": outcome.verdict,
                    "seconds_to_detect": previous_end - started + outcome.result.seconds,
                    "seconds_with_diagnosis": now - started,
                }
            )
            raise _Detected
        previous_end = now

    try:
        grade = grade_backend(f"known-bad:{name}", profile=profile, seed=seed, isolate=False, progress=progress)
    except _Detected:
        grade = None
    total = time.perf_counter() - started
    return {
        "variant": name,
        "op": variant.op,
        "detected": bool(found),
        "first_failure": found.get("first_failure"),
        "seconds_to_detect": found.get("seconds_to_detect"),
        "seconds_with_diagnosis": found.get("seconds_with_diagnosis"),
        "checks_run": checks_run,
        "seconds_total": total,
        "load_error": grade.load_error if grade is not None else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick", choices=["quick", "ci", "thorough"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-op", type=int, default=None, help="only the first N variants of each op")
    args = parser.parse_args(argv)
    names: list[str] = []
    taken: dict[str, int] = {}
    for variant in known_bad.CATALOGUE:
        if args.per_op is not None and taken.get(variant.op, 0) >= args.per_op:
            continue
        taken[variant.op] = taken.get(variant.op, 0) + 1
        names.append(variant.name)
    started = time.perf_counter()
    results = []
    for name in names:
        result = time_to_detect(name, args.profile, args.seed)
        print(
            f"{name:<32} {'detected' if result['detected'] else 'NOT DETECTED':<13} "
            f"{result['seconds_to_detect'] or result['seconds_total']:6.2f} s  {result['first_failure'] or ''}",
            file=sys.stderr,
            flush=True,
        )
        results.append(result)
    payload = {
        "profile": args.profile,
        "seed": args.seed,
        "catalogue_size": len(known_bad.CATALOGUE),
        "seconds": time.perf_counter() - started,
        "variants": results,
    }
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
