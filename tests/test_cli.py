"""`qcheck` as a user runs it: exit statuses, one line per check, fingerprints, load errors,
xfail files, list and explain."""

from __future__ import annotations

import json
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import torch

from qcheck.cli import main

QUICK = ["--profile", "quick", "--no-isolation"]


def test_reference_passes_and_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["grade", "--backend", "reference", "--only", "B158-2", "--report-dir", str(tmp_path), *QUICK])
    out = capsys.readouterr().out
    assert status == 0
    assert "B158-2" in out and "PASS" in out
    assert (tmp_path / "grade.md").is_file() and (tmp_path / "grade.json").is_file()


def test_sign_before_scale_fails_with_fingerprint_example_and_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "junit.xml"
    status = main(
        [
            "grade",
            "--backend",
            "known-bad:sign-before-scale",
            "--only",
            "B1-1",
            "--report-dir",
            str(tmp_path),
            "--junit",
            str(junit),
            *QUICK,
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "sign-before-scale" in out and "qcheck replay" in out
    report = (tmp_path / "grade.md").read_text()
    assert "torch.tensor(" in report and "sign-before-scale" in report
    assert "<failure" in junit.read_text()
    saved = list((tmp_path / "counterexamples").rglob("*.json"))
    assert len(saved) == 1
    assert main(["replay", str(saved[0])]) == 1
    assert main(["replay", str(saved[0]), "--backend", "reference"]) == 0


def test_unloadable_backend_gives_one_line_and_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["grade", "--backend", "nosuch:thing", "--report-dir", str(tmp_path), *QUICK])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("qcheck:")]
    assert len(lines) == 1 and "nosuch" in lines[0] and "Traceback" not in err


def test_xfail_file_turns_a_listed_failure_into_xfail_and_reports_unmatched_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xfails = tmp_path / "xfail.txt"
    xfails.write_text("# known\nb158_quantize:B158-2\nB999-9  # matches nothing\n")
    status = main(
        [
            "grade",
            "--backend",
            "known-bad:round-half-up",
            "--only",
            "B158-2",
            "--xfail-file",
            str(xfails),
            "--report-dir",
            str(tmp_path),
            *QUICK,
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    assert "XFAIL" in captured.out
    assert "B999-9" in captured.err


def test_list_and_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "known-bad:round-half-up" in out and "b158_quantize:B158-2" in out
    assert main(["explain", "B158-2"]) == 0
    assert "codes-match-reference" in capsys.readouterr().out
    assert main(["explain", "NOPE-1"]) == 2


def test_a_backend_that_segfaults_and_hangs_is_graded_to_completion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # tests/backends/crashy.py: b158_quantize segfaults, act_quantize sleeps forever, b1 is right
    status = main(
        [
            "grade",
            "--backend",
            "tests.backends.crashy:crashy_backend",
            "--only",
            "codes-match-reference",
            "--profile",
            "quick",
            "--timeout",
            "2",
            "--report-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    verdicts = {line.split()[0]: line for line in out.splitlines() if "codes-match-reference" in line}
    assert "PASS" in verdicts["b1_quantize"]
    assert "ERROR" in verdicts["b158_quantize"] and "ERROR" in verdicts["act_quantize"]
    report = (tmp_path / "grade.md").read_text()
    assert "SIGSEGV" in report and "timed out" in report
    saved = sorted(p.name for p in (tmp_path / "counterexamples").rglob("*.json"))
    assert saved == ["act_quantize__ACT-2.json", "b158_quantize__B158-2.json"]


def _without_timings(value: object, tmp: str) -> object:
    if isinstance(value, dict):
        return {k: _without_timings(v, tmp) for k, v in value.items() if k not in ("seconds", "started_at")}
    if isinstance(value, list):
        return [_without_timings(v, tmp) for v in value]
    return value.replace(tmp, "<dir>") if isinstance(value, str) else value


def test_several_backends_give_the_same_report_with_one_job_or_two(tmp_path: Path) -> None:
    backends = ["known-bad:stale-cache-b158", "reference", "known-bad:round-half-up"]
    reports = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        argv = ["grade", "--only", "B158", "--jobs", jobs, "--report-dir", str(out), *QUICK]
        assert main([*argv[:1], *(a for b in backends for a in ("--backend", b)), *argv[1:]]) == 1
        reports.append(_without_timings(json.loads((out / "grade.json").read_text()), str(out)))
    assert reports[0] == reports[1]
    assert [b["spec"] for b in reports[0]["backends"]] == backends  # type: ignore[index]


def test_verify_report_does_not_depend_on_jobs(tmp_path: Path) -> None:
    from qcheck.verify import main as verify

    reports = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        status = verify(["--profile", "quick", "--only", "stale-cache-b", "--jobs", jobs, "--report-dir", str(out)])
        assert status == 0
        reports.append(_without_timings(json.loads((out / "verify.json").read_text()), str(out)))
    assert reports[0] == reports[1]


def _parallel_sum(conn: Connection) -> None:
    conn.send(float(torch.ones(4_000_000).sum()))  # large enough for an OpenMP parallel region


def test_a_grading_process_can_run_parallel_torch_code() -> None:
    # A fork of a process whose OpenMP pool has started hangs in its first parallel region: the
    # forkserver that grading processes are forked from must never start one
    from qcheck.grade import _context

    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_parallel_sum, args=(sender,))  # type: ignore[attr-defined]
    process.start()
    sender.close()
    try:
        assert receiver.poll(120), "the forked process hung"
        assert receiver.recv() == 4_000_000.0
    finally:
        process.kill()
        process.join()
