"""``python -m qcheck.verify``: the gate.  Grades every built-in backend with the same grader a
kernel author uses: the references (``reference``, ``reference-numpy``, the reference packers of
every layout ``reference-<layout>``) and ``torch-compile`` must pass every check; every known-bad
variant must fail, with its own name among the fingerprints; every check must fail at least one
known-bad variant; and the layer-scale check (LAYER-1, graded in the thorough profile) must pass
the reference and fail a float32 element counter on a layer just over 2**24 elements.  Writes
``verify.md``, ``verify.json`` and the grader's own reports under the report folder; exit 0 only
if all hold.  Each backend is graded in a fresh process, ``--jobs`` at a time (default: one per
CPU); the reports do not depend on ``--jobs``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from qcheck import __version__, builtin_backends
from qcheck.checks import CHECKS, CheckResult
from qcheck.grade import BackendGrade, GradeTask, Outcome, default_jobs, grade_in_workers

MUST_PASS = ("reference", "reference-numpy", "torch-compile", *builtin_backends.LAYOUT_REFERENCES)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One built-in backend's grade and whether it is what the gate expects."""

    grade: BackendGrade

    @property
    def expected_to_pass(self) -> bool:
        return self.grade.spec in MUST_PASS

    @property
    def variant(self) -> str:
        return self.grade.spec.removeprefix("known-bad:")

    @property
    def caught(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.grade.outcomes if o.failed)

    @property
    def as_expected(self) -> bool:
        if self.expected_to_pass:
            return self.grade.passed
        return bool(self.caught) and self.variant in self.grade.fingerprints


def unproven_checks(verdicts: Sequence[Verdict]) -> list[str]:
    """Check keys that no known-bad variant fails."""
    caught = {o.result.key for v in verdicts if not v.expected_to_pass for o in v.caught}
    return [c.key for c in CHECKS if c.key not in caught]


@dataclasses.dataclass(frozen=True)
class LayerProof:
    """LAYER-1 (graded in the thorough profile only) shown here on a layer just over 2**24 elements:
    the reference must pass it and a float32 element counter, exact on every smaller input, fail."""

    reference: CheckResult
    counter: CheckResult

    @property
    def ok(self) -> bool:
        return self.reference.verdict == "PASS" and self.counter.verdict == "FAIL"


def prove_layer_check(seed: int) -> LayerProof:
    from qcheck.layer_check import PROOF_SHAPE, float32_counter_b158, layer_result
    from qcheck.packing import layout
    from qcheck.quantizers import streaming

    return LayerProof(
        layer_result(streaming.b158_quantize, layout("qcheck").pack, shape=PROOF_SHAPE, seed=seed),
        layer_result(float32_counter_b158, None, shape=PROOF_SHAPE, seed=seed),
    )


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(
    verdicts: Sequence[Verdict],
    unproven: Sequence[str],
    profile: str,
    seed: int,
    seconds: float,
    layer: LayerProof | None = None,
) -> str:
    ok = all(v.as_expected for v in verdicts) and not unproven and (layer is None or layer.ok)
    lines = [
        "# qcheck verify",
        "",
        f"**{'PASS' if ok else 'FAIL'}** — qcheck {__version__}, profile `{profile}`, seed {seed}, "
        f"{len(CHECKS)} checks, {len(verdicts)} built-in backends, {seconds:.0f} s "
        "(known-bad variants and torch-compile at --secondary-profile, quick by default).",
        "",
        "## Must pass every check",
        "",
    ]
    rows = []
    for v in verdicts:
        if v.expected_to_pass:
            g = v.grade
            near = sum(o.result.near_boundary for o in g.outcomes)
            rows.append(
                [
                    g.spec,
                    len(g.outcomes),
                    sum(o.verdict == "PASS" for o in g.outcomes),
                    len(v.caught),
                    near,
                    "yes" if v.as_expected else "**NO**",
                ]
            )
    lines.append(
        tabulate(
            rows, ["backend", "checks", "passed", "failed", "near-boundary elements", "as expected"], tablefmt="github"
        )
    )
    lines += ["", "## Known-bad variants (must fail, with their own name among the fingerprints)", ""]
    rows = []
    for v in verdicts:
        if v.expected_to_pass:
            continue
        first = v.caught[0] if v.caught else None
        rows.append(
            [
                f"`{v.variant}`",
                ", ".join(v.grade.provided),
                ", ".join(o.result.requirement for o in v.caught) or "—",
                "yes" if v.variant in v.grade.fingerprints else "**NO**",
                _short(first.result.message) if first else "**NOT CAUGHT**",
            ]
        )
    lines.append(tabulate(rows, ["variant", "op", "caught by", "own fingerprint", "first failure"], tablefmt="github"))
    lines += ["", "## Checks (each must fail at least one known-bad variant)", ""]
    rows = []
    for check in CHECKS:
        catchers = [
            v.variant for v in verdicts if not v.expected_to_pass and any(o.result.key == check.key for o in v.caught)
        ]
        rows.append([check.op, check.title, len(catchers), ", ".join(f"`{c}`" for c in catchers) or "**NONE**"])
    lines.append(tabulate(rows, ["op", "check", "variants caught", "which"], tablefmt="github"))
    if layer is not None:
        lines += ["", "## Layer scale (LAYER-1, graded in the thorough profile; here on 4096×4097 bfloat16)", ""]
        rows = [
            ["reference (streaming)", "PASS", layer.reference.verdict, _short(layer.reference.message)],
            ["float32-element-counter", "FAIL", layer.counter.verdict, _short(layer.counter.message)],
        ]
        lines.append(tabulate(rows, ["backend", "must", "verdict", "message"], tablefmt="github"))
    unexpected = [(v.grade.spec, o) for v in verdicts if v.expected_to_pass for o in v.caught]
    if unexpected:
        lines += ["", "## Failures of backends that must pass", ""]
        for spec, o in unexpected:
            lines += [
                f"- `{spec}` `{o.result.key}` {o.verdict}: {o.result.message}",
                f"  - input: `{o.result.counterexample}`",
            ]
    return "\n".join(lines) + "\n"


def render_json(
    verdicts: Sequence[Verdict], unproven: Sequence[str], profile: str, seed: int, layer: LayerProof | None = None
) -> str:
    payload = {
        "schema": "qcheck-verify/2",
        "qcheck": __version__,
        "profile": profile,
        "seed": seed,
        "ok": all(v.as_expected for v in verdicts) and not unproven and (layer is None or layer.ok),
        "unproven_checks": list(unproven),
        "layer_proof": None
        if layer is None
        else {"reference": layer.reference.summary(), "float32-element-counter": layer.counter.summary()},
        "backends": [
            {
                "spec": v.grade.spec,
                "expected": "pass" if v.expected_to_pass else "fail",
                "as_expected": v.as_expected,
                "fingerprints": list(v.grade.fingerprints),
                "results": [
                    {**o.result.summary(), "verdict": o.verdict, "fingerprints": list(o.fingerprints)}
                    for o in v.grade.outcomes
                ],
            }
            for v in verdicts
        ],
    }
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as handle:
        handle.write(text)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def show_progress(outcome: Outcome) -> None:
    r = outcome.result
    print(f"  {r.op:<20} {r.requirement:<8} {r.name:<28} ... {outcome.verdict:<6} {r.seconds:5.1f}s", flush=True)


def grade_builtins(
    specs: Sequence[str],
    *,
    profile: str,
    seed: int,
    secondary_profile: str | None = None,
    log: bool = True,
    jobs: int = 1,
) -> list[Verdict]:
    """Grade built-in backends, each in a fresh worker process, ``jobs`` at a time; the verdicts
    do not depend on ``jobs`` (see :func:`qcheck.grade.grade_in_workers`).  The backends run in
    that worker's own process (they are qcheck's own code; isolation is exercised by its own
    tests).  Known-bad variants and ``torch-compile`` use ``secondary_profile`` (default: the same
    profile): each variant must be caught there, and inductor's compile time stays bounded."""
    tasks = []
    for spec in specs:
        secondary = spec.startswith("known-bad:") or spec == "torch-compile"
        chosen = secondary_profile if secondary_profile and secondary else profile
        options = {"profile": chosen, "seed": seed, "isolate": False, "progress": show_progress if log else None}
        tasks.append(GradeTask(spec, options))
    verdicts = []
    for grade, printed in grade_in_workers(tasks, jobs):
        if log:
            print(grade.spec, flush=True)
            print(printed, end="", flush=True)
        verdicts.append(Verdict(grade))
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcheck.verify", description=__doc__)
    parser.add_argument("--profile", default="ci", choices=["quick", "ci", "thorough"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-dir", type=Path, default=Path("reports"))
    parser.add_argument("--only", default=None, help="grade only built-in backends whose name contains this")
    parser.add_argument(
        "--secondary-profile",
        default="quick",
        choices=["quick", "ci", "thorough"],
        help="profile for the known-bad variants (each must be caught within it)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=default_jobs(),
        metavar="N",
        help="backends graded at once, each in its own process (default: the CPU count); the report does not "
        "depend on it",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    started = time.perf_counter()
    specs = [s for s in builtin_backends.names() if args.only is None or args.only in s]
    verdicts = grade_builtins(
        specs, profile=args.profile, seed=args.seed, secondary_profile=args.secondary_profile, jobs=args.jobs
    )
    unproven = unproven_checks(verdicts) if args.only is None else []
    layer = prove_layer_check(args.seed) if args.only is None else None
    seconds = time.perf_counter() - started
    markdown = render_markdown(verdicts, unproven, args.profile, args.seed, seconds, layer)
    write_atomically(args.report_dir / "verify.md", markdown)
    write_atomically(args.report_dir / "verify.json", render_json(verdicts, unproven, args.profile, args.seed, layer))
    try:
        from qcheck.report import GradeRun, write_reports

        started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        write_reports(
            GradeRun([v.grade for v in verdicts], args.profile, args.seed, started_at, seconds),
            args.report_dir,
            args.report_dir / "verify-junit.xml",
        )
    except ImportError:  # pragma: no cover - report module arrives with the grader
        pass
    print()
    print(markdown)
    ok = all(v.as_expected for v in verdicts) and not unproven and (layer is None or layer.ok)
    print(f"verify: {'PASS' if ok else 'FAIL'} ({args.report_dir / 'verify.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
