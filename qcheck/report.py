"""The reports of a grading run: markdown for a pull-request comment or CI step summary, versioned
JSON for tools, and JUnit XML for CI test views; each file is written atomically.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tabulate import tabulate

from qcheck import __version__, known_bad
from qcheck.grade import BackendGrade, Outcome
from qcheck.verify import write_atomically

SCHEMA = "qcheck-grade/1"
SNIPPET_CHARS = 4000
"""Longer snippets are cut in the markdown (a step summary is limited); the file has them whole."""
VERDICTS = ("PASS", "FAIL", "ERROR", "XFAIL", "NOT APPLICABLE")


@dataclasses.dataclass(frozen=True)
class GradeRun:
    """One ``qcheck grade`` invocation: every backend graded, and how."""

    backends: list[BackendGrade]
    profile: str
    seed: int
    started_at: str
    """ISO 8601, UTC."""
    seconds: float

    @property
    def passed(self) -> bool:
        """At least one backend was graded and every backend passed."""
        return bool(self.backends) and all(b.passed for b in self.backends)


# ---------------------------------------------------------------- shared pieces


def backend_verdict(grade: BackendGrade) -> str:
    if grade.load_error is not None:
        return "LOAD ERROR"
    return "PASS" if grade.passed else "FAIL"


def counts(grade: BackendGrade) -> dict[str, int]:
    """How many checks ended in each verdict (FAIL and ERROR exclude expected failures)."""
    tally = dict.fromkeys(VERDICTS, 0)
    for outcome in grade.outcomes:
        tally[outcome.verdict] = tally.get(outcome.verdict, 0) + 1
    return tally


def near_boundary(grade: BackendGrade) -> int:
    return sum(o.result.near_boundary for o in grade.outcomes)


def fingerprint_lines(names: tuple[str, ...]) -> list[str]:
    """``behaves like known-bad `name`: description`` for each fingerprint."""
    lines = []
    for name in names:
        try:
            description = known_bad.by_name(name).description
        except KeyError:
            description = "(not in this version's catalogue)"
        lines.append(f"behaves like known-bad `{name}`: {description}")
    return lines


def _no_provided_ops(grade: BackendGrade) -> bool:
    return grade.load_error is None and not grade.provided


def _no_ops_message(grade: BackendGrade) -> str:
    return f"{grade.name} provides none of the graded ops"


def snippet_for(grade: BackendGrade, outcome: Outcome) -> str | None:
    """The counterexample snippet: built from the witness, else read from the saved file."""
    from qcheck.counterexample import snippet

    result = outcome.result
    if result.witness is not None:
        try:
            return snippet(grade.spec, result.op, result.witness, outcome.counterexample_file)
        except (ValueError, IndexError, KeyError, TypeError):
            pass
    if outcome.counterexample_file:
        try:
            stored = json.loads(Path(outcome.counterexample_file).read_text(encoding="utf-8"))
            if isinstance(stored.get("snippet"), str):
                return str(stored["snippet"])
        except (OSError, ValueError):
            pass
    return result.counterexample


def versions() -> dict[str, str | None]:
    """Versions of qcheck, the libraries it grades with, and Python."""
    found: dict[str, str | None] = {}
    for package in ("qcheck", "torch", "numpy", "hypothesis"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = __version__ if package == "qcheck" else None
    found["python"] = platform.python_version()
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _quote(text: str) -> list[str]:
    return ["> " + line if line else ">" for line in text.splitlines() or [""]]


def _fence(code: str) -> list[str]:
    fence = "```"
    while fence in code:
        fence += "`"
    return [fence + "python", code.rstrip("\n"), fence]


# ---------------------------------------------------------------- markdown


def markdown(run: GradeRun) -> str:
    """The run as GitHub-flavoured markdown, for a pull-request comment or a CI step summary."""
    lines = [
        f"# qcheck grade: {'PASS' if run.passed else 'FAIL'}",
        "",
        f"qcheck {__version__}, profile `{run.profile}`, seed {run.seed}, started {run.started_at}, "
        f"{len(run.backends)} backend(s), {run.seconds:.1f} s.",
        "",
    ]
    rows = []
    for grade in run.backends:
        tally = counts(grade)
        rows.append(
            [
                _cell(f"`{grade.name}`" + (f" (`{grade.spec}`)" if grade.spec != grade.name else "")),
                f"**{backend_verdict(grade)}**" if not grade.passed else "PASS",
                tally["PASS"],
                tally["FAIL"],
                tally["ERROR"],
                tally["XFAIL"],
                _cell(", ".join(grade.not_provided) or "-"),
                _cell(", ".join(f"`{n}`" for n in grade.fingerprints) or "-"),
            ]
        )
    headers = ["backend", "verdict", "passed", "failed", "errors", "xfail", "not provided", "behaves like"]
    lines += [tabulate(rows, headers, tablefmt="github"), ""]
    for grade in run.backends:
        lines += _backend_markdown(grade)
    return "\n".join(lines).rstrip("\n") + "\n"


def _backend_markdown(grade: BackendGrade) -> list[str]:
    lines = [f"## `{grade.name}`: {backend_verdict(grade)}", ""]
    if grade.load_error is not None:
        return [*lines, f"Spec `{grade.spec}` could not be loaded:", "", *_quote(grade.load_error), ""]
    lines += [f"Spec `{grade.spec}`, conventions `{grade.conventions}`, {grade.seconds:.1f} s.", ""]
    if grade.not_provided:
        lines += [f"Not provided: {', '.join(grade.not_provided)}.", ""]
    if _no_provided_ops(grade):
        lines += [f"**{_no_ops_message(grade)}.**", ""]
    if grade.outcomes:
        rows = [
            [
                f"`{o.result.key}`",
                _cell(o.result.name),
                f"**{o.verdict}**" if o.failed else o.verdict,
                f"{o.result.seconds:.2f}",
            ]
            for o in grade.outcomes
        ]
        lines += [tabulate(rows, ["check", "title", "verdict", "seconds"], tablefmt="github"), ""]
    near = near_boundary(grade)
    if near:
        lines += [
            f"{near} element(s) differed from the reference only inside the near-boundary window "
            "(counted, not failed; SPEC CMP-2).",
            "",
        ]
    for outcome in grade.outcomes:
        if outcome.verdict in ("FAIL", "ERROR", "XFAIL"):
            lines += _failure_markdown(grade, outcome)
    if grade.unmatched_xfails:
        lines += [
            "Expected-failure entries that matched no failing check:",
            "",
            *(f"- `{entry}`" for entry in grade.unmatched_xfails),
            "",
        ]
    return lines


def _failure_markdown(grade: BackendGrade, outcome: Outcome) -> list[str]:
    result = outcome.result
    expected = " (expected: listed in the xfail file)" if outcome.verdict == "XFAIL" else ""
    lines = [f"### `{result.key}` {result.name}: {outcome.verdict}{expected}", "", *_quote(result.message), ""]
    notes = [*fingerprint_lines(outcome.fingerprints), *(f"hint: {h}" for h in outcome.hints)]
    if notes:
        lines += [*(f"- {n}" for n in notes), ""]
    code = snippet_for(grade, outcome)
    if code:
        if len(code) > SNIPPET_CHARS:
            code = code[:SNIPPET_CHARS].rsplit("\n", 1)[0] + "\n# ... cut here; the counterexample file has it whole\n"
        lines += ["Counterexample:", "", *_fence(code), ""]
    if outcome.counterexample_file:
        lines += [f"- counterexample file: `{outcome.counterexample_file}`"]
    if outcome.replay_command:
        lines += [f"- replay: `{outcome.replay_command}`"]
    if outcome.counterexample_file or outcome.replay_command:
        lines.append("")
    return lines


# ---------------------------------------------------------------- JSON


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    result = outcome.result
    return {
        "check": result.key,
        "requirement": result.requirement,
        "name": result.name,
        "op": result.op,
        "verdict": outcome.verdict,
        "check_verdict": result.verdict,
        "expected_to_fail": outcome.expected_to_fail,
        "message": result.message,
        "counterexample": result.counterexample,
        "counterexample_file": outcome.counterexample_file,
        "replay_command": outcome.replay_command,
        "fingerprints": list(outcome.fingerprints),
        "hints": list(outcome.hints),
        "near_boundary": result.near_boundary,
        "examples": result.examples,
        "seconds": result.seconds,
    }


def json_report(run: GradeRun) -> str:
    """The run as versioned JSON (schema ``qcheck-grade/1``); inputs appear only as text."""
    payload = {
        "schema": SCHEMA,
        "passed": run.passed,
        "profile": run.profile,
        "seed": run.seed,
        "started_at": run.started_at,
        "seconds": run.seconds,
        "versions": versions(),
        "backends": [
            {
                "spec": grade.spec,
                "name": grade.name,
                "verdict": backend_verdict(grade),
                "passed": grade.passed,
                "load_error": grade.load_error,
                "conventions": grade.conventions,
                "provided": list(grade.provided),
                "not_provided": list(grade.not_provided),
                "counts": counts(grade),
                "fingerprints": list(grade.fingerprints),
                "near_boundary": near_boundary(grade),
                "unmatched_xfails": list(grade.unmatched_xfails),
                "seconds": grade.seconds,
                "checks": [_outcome_json(o) for o in grade.outcomes],
            }
            for grade in run.backends
        ],
    }
    return json.dumps(payload, indent=1, allow_nan=False) + "\n"


# ---------------------------------------------------------------- JUnit XML

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (ElementTree would write them anyway)."""
    return _NOT_XML.sub("\ufffd", text)


def _details(outcome: Outcome) -> str:
    result = outcome.result
    lines = [result.message]
    lines += fingerprint_lines(outcome.fingerprints)
    lines += [f"hint: {h}" for h in outcome.hints]
    if result.counterexample:
        lines.append(f"input: {result.counterexample}")
    if outcome.counterexample_file:
        lines.append(f"counterexample file: {outcome.counterexample_file}")
    if outcome.replay_command:
        lines.append(f"replay: {outcome.replay_command}")
    return "\n".join(lines)


def _testcase(suite: ET.Element, classname: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=_xml(classname), name=_xml(name), time=f"{seconds:.3f}")


def junit_xml(run: GradeRun) -> str:
    """The run as JUnit XML: a ``<testsuite>`` per backend, a ``<testcase>`` per check."""
    root = ET.Element("testsuites", name="qcheck", time=f"{run.seconds:.3f}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for grade in run.backends:
        classname = f"qcheck.{grade.name}"
        suite = ET.SubElement(root, "testsuite", name=_xml(classname), timestamp=run.started_at)
        tally = dict.fromkeys(totals, 0)
        properties = ET.SubElement(suite, "properties")
        for label, text in (("spec", grade.spec), ("conventions", grade.conventions), ("profile", run.profile)):
            ET.SubElement(properties, "property", name=label, value=_xml(text))
        ET.SubElement(properties, "property", name="seed", value=str(run.seed))
        if grade.load_error is not None or _no_provided_ops(grade):
            message = grade.load_error if grade.load_error is not None else _no_ops_message(grade)
            case = _testcase(suite, classname, "load backend", grade.seconds)
            error = ET.SubElement(case, "error", message=_xml(message), type="LOAD ERROR")
            error.text = _xml(message)
            tally["tests"] += 1
            tally["errors"] += 1
        for outcome in grade.outcomes:
            result = outcome.result
            case = _testcase(suite, classname, f"{result.key} {result.name}", result.seconds)
            tally["tests"] += 1
            first_line = (result.message.splitlines() or [""])[0]
            if outcome.verdict == "FAIL":
                failure = ET.SubElement(case, "failure", message=_xml(first_line), type="FAIL")
                failure.text = _xml(_details(outcome))
                tally["failures"] += 1
            elif outcome.verdict == "ERROR":
                error = ET.SubElement(case, "error", message=_xml(first_line), type="ERROR")
                error.text = _xml(_details(outcome))
                tally["errors"] += 1
            elif outcome.verdict == "XFAIL":
                reason = f"expected failure (xfail list): {first_line}"
                ET.SubElement(case, "skipped", message=_xml(reason)).text = _xml(_details(outcome))
                tally["skipped"] += 1
            elif outcome.verdict != "PASS":
                ET.SubElement(case, "skipped", message=_xml(f"{outcome.verdict}: {first_line}"))
                tally["skipped"] += 1
        for key, value in tally.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{grade.seconds:.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------- files


def write_reports(run: GradeRun, directory: Path, junit: Path | None = None) -> list[Path]:
    """Write ``grade.md`` and ``grade.json`` under ``directory`` (and JUnit XML to ``junit``)."""
    paths = [directory / "grade.md", directory / "grade.json"]
    write_atomically(paths[0], markdown(run))
    write_atomically(paths[1], json_report(run))
    if junit is not None:
        write_atomically(junit, junit_xml(run))
        paths.append(junit)
    return paths
