"""``python -m qcheck.verify``: the harness grades itself.

Every built-in implementation runs through every check of the ops it provides.  The harness
meets its own standard when both references pass everything, every known-bad variant fails at
least one check, and every check fails at least one known-bad variant.  Writes
``verify.md`` and ``verify.json`` under the report folder; exit status 0 only if all three hold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from qcheck import __version__
from qcheck.checks import CHECKS, CheckResult, run_check
from qcheck.conventions import DEFAULT
from qcheck.implementations import Implementation, builtin


@dataclasses.dataclass(frozen=True)
class Graded:
    implementation: Implementation
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.verdict in ("FAIL", "ERROR"))

    @property
    def as_expected(self) -> bool:
        return bool(self.failed) if self.implementation.expected == "fail" else not self.failed


def grade(implementation: Implementation, *, profile: str, seed: int, log: bool = True) -> Graded:
    results = []
    for check in CHECKS:
        if check.op not in implementation.ops:
            continue
        if check.requirement in implementation.not_applicable:
            result = CheckResult(
                check.key,
                check.requirement,
                check.name,
                check.op,
                "NOT APPLICABLE",
                implementation.not_applicable[check.requirement],
                None,
                0,
                0,
                0.0,
            )
        else:
            result = run_check(check, implementation.ops[check.op], DEFAULT, profile=profile, base_seed=seed)
        if log:
            print(
                f"  {implementation.name:<34} {check.op:<20} {check.title:<40} {result.verdict:<6} "
                f"{result.seconds:5.1f}s",
                flush=True,
            )
        results.append(result)
    return Graded(implementation, tuple(results))


def unproven_checks(graded: Sequence[Graded]) -> list[str]:
    """Check keys that no known-bad variant fails."""
    caught = {r.key for g in graded if g.implementation.expected == "fail" for r in g.failed}
    return [c.key for c in CHECKS if c.key not in caught]


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(graded: Sequence[Graded], unproven: Sequence[str], profile: str, seed: int, seconds: float) -> str:
    ok = all(g.as_expected for g in graded) and not unproven
    lines = [
        "# qcheck verify",
        "",
        f"**{'PASS' if ok else 'FAIL'}** — qcheck {__version__}, profile `{profile}`, seed {seed}, "
        f"{len(CHECKS)} checks, {len(graded)} implementations, {seconds:.0f} s.",
        "",
        "## References (must pass every check)",
        "",
    ]
    rows = []
    for g in graded:
        if g.implementation.expected != "pass":
            continue
        near = sum(r.near_boundary for r in g.results)
        rows.append(
            [
                g.implementation.name,
                len(g.results),
                len(g.results) - len(g.failed),
                len(g.failed),
                near,
                "yes" if g.as_expected else "**NO**",
            ]
        )
    lines.append(
        tabulate(
            rows,
            ["implementation", "checks", "passed", "failed", "near-boundary elements", "as expected"],
            tablefmt="github",
        )
    )
    lines += ["", "## Known-bad variants (each must fail at least one check)", ""]
    rows = []
    for g in graded:
        if g.implementation.expected != "fail":
            continue
        op = next(iter(g.implementation.ops))
        caught = ", ".join(r.requirement for r in g.failed) or "—"
        first = g.failed[0] if g.failed else None
        rows.append(
            [
                f"`{g.implementation.name.removeprefix('known-bad:')}`",
                op,
                caught,
                _short(first.message) if first else "**NOT CAUGHT**",
            ]
        )
    lines.append(tabulate(rows, ["variant", "op", "caught by", "first failure"], tablefmt="github"))
    lines += ["", "## Checks (each must fail at least one known-bad variant)", ""]
    rows = []
    for check in CHECKS:
        catchers = [
            g.implementation.name.removeprefix("known-bad:")
            for g in graded
            if g.implementation.expected == "fail" and any(r.key == check.key for r in g.failed)
        ]
        rows.append([check.op, check.title, len(catchers), ", ".join(f"`{c}`" for c in catchers) or "**NONE**"])
    lines.append(tabulate(rows, ["op", "check", "variants caught", "which"], tablefmt="github"))
    unexpected = [r for g in graded if g.implementation.expected == "pass" for r in g.failed]
    if unexpected:
        lines += ["", "## Reference failures", ""]
        for r in unexpected:
            lines += [f"- `{r.key}` {r.verdict}: {r.message}", f"  - input: `{r.counterexample}`"]
    return "\n".join(lines) + "\n"


def render_json(graded: Sequence[Graded], unproven: Sequence[str], profile: str, seed: int) -> str:
    payload = {
        "schema": "qcheck-verify/1",
        "qcheck": __version__,
        "profile": profile,
        "seed": seed,
        "ok": all(g.as_expected for g in graded) and not unproven,
        "unproven_checks": list(unproven),
        "implementations": [
            {
                "name": g.implementation.name,
                "expected": g.implementation.expected,
                "as_expected": g.as_expected,
                "results": [dataclasses.asdict(r) for r in g.results],
            }
            for g in graded
        ],
    }
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as handle:
        handle.write(text)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcheck.verify", description=__doc__)
    parser.add_argument("--profile", default="ci", choices=["quick", "ci", "thorough"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-dir", type=Path, default=Path("reports"))
    parser.add_argument("--only", default=None, help="grade only implementations whose name contains this")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    implementations = [i for i in builtin() if args.only is None or args.only in i.name]
    graded = []
    for implementation in implementations:
        print(f"{implementation.name} (expected to {implementation.expected})", flush=True)
        graded.append(grade(implementation, profile=args.profile, seed=args.seed))
    unproven = unproven_checks(graded) if args.only is None else []
    seconds = time.perf_counter() - started
    markdown = render_markdown(graded, unproven, args.profile, args.seed, seconds)
    write_atomically(args.report_dir / "verify.md", markdown)
    write_atomically(args.report_dir / "verify.json", render_json(graded, unproven, args.profile, args.seed))
    print()
    print(markdown)
    ok = all(g.as_expected for g in graded) and not unproven
    print(f"verify: {'PASS' if ok else 'FAIL'} ({args.report_dir / 'verify.md'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
