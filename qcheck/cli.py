"""The ``qcheck`` command: ``grade`` backends, ``list`` backends and checks, ``explain`` a check,
``replay`` a saved counterexample.  Exit status: 0 all passed, 1 a backend failed, 2 usage or
load errors."""

from __future__ import annotations

import argparse
import datetime
import functools
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from qcheck import __version__

if TYPE_CHECKING:
    from qcheck.checks import CheckResult
    from qcheck.grade import BackendGrade, Outcome

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qcheck", description="Correctness harness for BitNet b1/b1.58 kernels.")
    parser.add_argument("--version", action="version", version=f"qcheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    grade = commands.add_parser("grade", help="grade one or more backends")
    grade.add_argument(
        "--backend",
        action="append",
        required=True,
        metavar="SPEC",
        help="package.module:attr, an entry point in qcheck.backends, or a built-in name",
    )
    grade.add_argument("--profile", choices=["quick", "ci", "thorough"], default="ci")
    grade.add_argument("--seed", type=int, default=0)
    grade.add_argument("--report-dir", type=Path, default=Path("reports"))
    grade.add_argument("--junit", type=Path, default=None, metavar="FILE")
    grade.add_argument("--only", default=None, metavar="PATTERN", help="checks whose key, ID or name match")
    grade.add_argument("--xfail-file", type=Path, default=None, metavar="FILE")
    grade.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="time limit per call")
    grade.add_argument("--no-isolation", action="store_true", help="run the backend in this process")
    grade.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="with several --backend: how many are graded at once, each in its own process (default: the CPU "
        "count); the reports do not depend on it",
    )

    commands.add_parser("list", help="backends, their ops, and the checks")
    explain = commands.add_parser("explain", help="what a check proves and its SPEC requirement")
    explain.add_argument("check", metavar="CHECK_ID")
    replay = commands.add_parser("replay", help="re-run a saved counterexample")
    replay.add_argument("file", type=Path)
    replay.add_argument("--backend", default=None, metavar="SPEC")
    # golden: the reference/ vectors for kernels in other languages (qcheck/golden/)
    from qcheck.golden.cli import add_arguments as add_golden_arguments

    golden = commands.add_parser("golden", help="regenerate reference/ golden vectors, or --check them")
    add_golden_arguments(golden)
    return parser


def _show(outcome: Outcome) -> None:
    r = outcome.result
    extra = f"  behaves like: {', '.join(outcome.fingerprints)}" if outcome.fingerprints else ""
    print(
        f"  {r.op:<20} {r.requirement:<8} {r.name:<28} ... {outcome.verdict:<6} {r.seconds:5.1f}s{extra}",
        flush=True,
    )


def _save(report_dir: Path, spec: str, name: str, result: CheckResult, conventions: str) -> tuple[str, str]:
    from qcheck.counterexample import save_counterexample

    return save_counterexample(report_dir, spec, name, result, conventions_text=conventions)


def _grade(args: argparse.Namespace) -> int:
    from qcheck.grade import GradeTask, XfailList, default_jobs, grade_backend, grade_in_workers
    from qcheck.report import GradeRun, write_reports

    xfails = XfailList()
    if args.xfail_file is not None:
        if not args.xfail_file.is_file():
            print(f"qcheck: --xfail-file {args.xfail_file}: no such file", file=sys.stderr)
            return EXIT_USAGE
        xfails = XfailList.read(args.xfail_file)
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        print("qcheck: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    tasks = [
        GradeTask(
            spec,
            {
                "profile": args.profile,
                "seed": args.seed,
                "only": args.only,
                "xfails": xfails,
                "isolate": not args.no_isolation,
                "timeout": args.timeout,
                "save": functools.partial(_save, args.report_dir, spec),
                "progress": _show,
            },
        )
        for spec in args.backend
    ]
    if len(tasks) == 1:  # this process is as fresh as a worker would be
        print(tasks[0].spec, flush=True)
        results: Iterable[tuple[BackendGrade, str]] = [(grade_backend(tasks[0].spec, **tasks[0].options), "")]
    else:  # several: each in a fresh process, --jobs at a time, reported in the order given
        results = grade_in_workers(tasks, jobs)
    grades: list[BackendGrade] = []
    load_failed = False
    for graded, printed in results:
        if len(tasks) > 1:
            print(graded.spec, flush=True)
            print(printed, end="", flush=True)
        if graded.load_error:
            print(f"qcheck: {graded.load_error}", file=sys.stderr)
            load_failed = True
        for entry in graded.unmatched_xfails:
            print(f"qcheck: xfail entry {entry!r} matched no check of {graded.name}", file=sys.stderr)
        grades.append(graded)
    run = GradeRun(grades, args.profile, args.seed, started_at, time.perf_counter() - started)
    paths = write_reports(run, args.report_dir, args.junit)
    print()
    rows = []
    for g in grades:
        failed = sum(o.failed for o in g.outcomes)
        verdict = "LOAD ERROR" if g.load_error else ("PASS" if g.passed else "FAIL")
        rows.append(
            [
                g.name,
                verdict,
                sum(o.verdict == "PASS" for o in g.outcomes),
                failed,
                ", ".join(g.not_provided) or "-",
                ", ".join(g.fingerprints) or "-",
            ]
        )
    print(tabulate(rows, ["backend", "verdict", "passed", "failed", "not provided", "behaves like"], tablefmt="simple"))
    print(f"\nreports: {', '.join(str(p) for p in paths)}")
    for g in grades:
        for outcome in g.outcomes:
            if outcome.failed and outcome.replay_command:
                print(f"replay {outcome.result.key} of {g.name}: {outcome.replay_command}")
    if load_failed:
        return EXIT_USAGE
    return EXIT_PASS if run.passed else EXIT_FAIL


def _list() -> int:
    import importlib.metadata

    from qcheck import builtin_backends
    from qcheck.backend import ENTRY_POINT_GROUP
    from qcheck.checks import CHECKS
    from qcheck.known_bad import by_name

    def ops_of(name: str) -> str:
        if name.startswith("known-bad:"):
            return by_name(name.removeprefix("known-bad:")).op
        if name in builtin_backends.LAYOUT_REFERENCES:
            return f"pack_ternary, unpack_ternary ({name.removeprefix('reference-')} layout)"
        if name == "reference":
            return "every op (qcheck layout)"
        return "the six quantizer ops"

    rows = [[name, "built-in", ops_of(name)] for name in builtin_backends.names()]
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    rows += [[ep.name, f"entry point {ep.value}", ""] for ep in entry_points]
    print(tabulate(rows, ["backend", "source", "ops"], tablefmt="simple"))
    print()
    print(tabulate([[c.key, c.name, c.proves] for c in CHECKS], ["check", "name", "proves"], tablefmt="simple"))
    return EXIT_PASS


def _explain(check_id: str) -> int:
    from qcheck.checks import CHECKS

    matches = [c for c in CHECKS if check_id in (c.key, c.requirement)]
    if not matches:
        print(f"qcheck: no check {check_id!r}; `qcheck list` shows them", file=sys.stderr)
        return EXIT_USAGE
    for check in matches:
        print(f"{check.key}  {check.name}\n  proves: {check.proves}\n  SPEC: {check.requirement} (SPEC.md)")
    return EXIT_PASS


def _replay(path: Path, backend: str | None) -> int:
    from qcheck.counterexample import replay

    if not path.is_file():
        print(f"qcheck: {path}: no such file", file=sys.stderr)
        return EXIT_USAGE
    outcome = replay(path, backend)
    print(f"{outcome.verdict}: {outcome.message}")
    return EXIT_PASS if outcome.verdict == "PASS" else EXIT_FAIL


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "grade":
        return _grade(args)
    if args.command == "list":
        return _list()
    if args.command == "explain":
        return _explain(args.check)
    if args.command == "golden":
        from qcheck.golden.cli import run as run_golden

        return run_golden(args.check, args.dir)
    return _replay(args.file, args.backend)


if __name__ == "__main__":
    sys.exit(main())
