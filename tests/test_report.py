"""Grading reports (markdown, JSON, JUnit XML) and saved counterexamples: written from real
grading runs, parsed back, and replayed; stored inputs round-trip bit for bit, layout included.
"""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import torch

from qcheck import known_bad
from qcheck.checks.base import Verdict
from qcheck.checks.runner import CheckResult, describe_input
from qcheck.conventions import DEFAULT
from qcheck.counterexample import (
    SCHEMA,
    load_counterexample,
    replay,
    save_counterexample,
    saver,
    snippet,
    tensor_code,
)
from qcheck.grade import BackendGrade, grade_backend
from qcheck.report import GradeRun, json_report, junit_xml, markdown, write_reports

BAD = "known-bad:round-half-up"
CONVENTIONS = DEFAULT.describe()


@dataclasses.dataclass(frozen=True)
class Graded:
    run: GradeRun
    bad: BackendGrade
    reference: BackendGrade
    missing: BackendGrade
    directory: Path


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    directory = tmp_path_factory.mktemp("reports")
    save = saver(directory, BAD)  # accepts (name, result) and (name, result, conventions)
    bad = grade_backend(BAD, isolate=False, profile="quick", only="B158-2", save=save)
    reference = grade_backend("reference", isolate=False, profile="quick", only="B158-2")
    missing = grade_backend("nosuch:thing", isolate=False)
    run = GradeRun([bad, reference, missing], "quick", 0, "2025-01-01T00:00:00+00:00", 1.25)
    return Graded(run, bad, reference, missing, directory)


def _bits(t: torch.Tensor) -> list[int]:
    size = t.element_size()
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size]
    return [v & ((1 << (8 * size)) - 1) for v in t.contiguous().reshape(-1).view(view).tolist()]


def _storage_bits(t: torch.Tensor) -> list[int]:
    """The storage a view reaches, as raw bits (gaps included)."""
    if t.numel() == 0:
        return []
    reach = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True)) + 1
    return _bits(torch.as_strided(t, (reach,), (1,), 0))


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype
    assert a.shape == b.shape
    assert a.stride() == b.stride()
    assert a.storage_offset() == b.storage_offset()
    assert _bits(a) == _bits(b)
    assert _storage_bits(a) == _storage_bits(b)


def _result(key: str, witness: Any, verdict: Verdict = "FAIL") -> CheckResult:
    op, requirement = key.split(":")
    return CheckResult(
        key, requirement, "hand-made", op, verdict, "made by hand", describe_input(witness), 0, 1, 0.0, witness
    )


def _awkward_values() -> torch.Tensor:
    """-0.0, a float32 subnormal, the smallest subnormal, infinities, a NaN with a payload."""
    nan_payload = torch.tensor([0x7FC00123], dtype=torch.int32).view(torch.float32)[0]
    values = [1.0, -0.0, 1e-40, 1.401298464324817e-45, float("inf"), float("-inf"), 0.1, -3.0]
    t = torch.tensor(values, dtype=torch.float32)
    t[6] = nan_payload
    return t.reshape(2, 4)


def _strided(t: torch.Tensor) -> torch.Tensor:
    """Every other element of a buffer whose gaps hold NaN junk (as the strategies draw)."""
    big = torch.full((*t.shape[:-1], 2 * t.shape[-1]), math.nan, dtype=t.dtype)
    big[..., ::2] = t
    return big[..., ::2]


def _offset(t: torch.Tensor) -> torch.Tensor:
    storage = torch.full((t.numel() + 1,), -7.5, dtype=t.dtype)
    storage[1:] = t.reshape(-1)
    return storage[1:].view(t.shape)


# ---------------------------------------------------------------- the three reports


def test_markdown_names_verdicts_fingerprints_snippet_and_replay(graded: Graded) -> None:
    text = markdown(graded.run)
    assert text.startswith("# qcheck grade: FAIL")
    outcome = graded.bad.outcomes[0]
    assert outcome.verdict == "FAIL" and outcome.counterexample_file and outcome.replay_command
    assert "round-half-up" in outcome.fingerprints
    assert f"behaves like known-bad `round-half-up`: {known_bad.by_name('round-half-up').description}" in text
    assert "**FAIL**" in text and "| PASS" in text and "LOAD ERROR" in text
    assert "```python" in text and "x = torch.tensor(" in text and "b158_quantize(x" in text
    assert outcome.counterexample_file in text
    assert f"`{outcome.replay_command}`" in text
    assert outcome.replay_command == f"qcheck replay {outcome.counterexample_file} --backend {BAD}"
    assert "`b158_quantize:B158-2`" in text and "codes-match-reference" in text
    assert "No module named 'nosuch'" in text


def test_markdown_reads_the_snippet_from_the_file_without_a_witness(graded: Graded) -> None:
    outcome = graded.bad.outcomes[0]
    bare = dataclasses.replace(outcome, result=dataclasses.replace(outcome.result, witness=None))
    run = dataclasses.replace(graded.run, backends=[dataclasses.replace(graded.bad, outcomes=(bare,))])
    assert "x = torch.tensor(" in markdown(run)


def test_json_report_is_versioned_and_holds_no_witness(graded: Graded) -> None:
    report = json.loads(json_report(graded.run))
    assert report["schema"] == "qcheck-grade/1"
    assert report["passed"] is False and report["profile"] == "quick" and report["seed"] == 0
    assert set(report["versions"]) == {"qcheck", "torch", "numpy", "hypothesis", "python"}
    assert report["versions"]["torch"] and report["versions"]["python"]
    bad, reference, missing = report["backends"]
    assert bad["verdict"] == "FAIL" and reference["verdict"] == "PASS" and missing["verdict"] == "LOAD ERROR"
    (check,) = bad["checks"]
    assert check["check"] == "b158_quantize:B158-2" and check["verdict"] == "FAIL"
    assert "round-half-up" in check["fingerprints"] and check["hints"] == []
    assert check["counterexample_file"] == graded.bad.outcomes[0].counterexample_file
    assert check["seconds"] > 0
    assert "No module named 'nosuch'" in missing["load_error"]
    assert "values_hex" not in json_report(graded.run)


def test_junit_has_one_failure_for_the_bad_backend_and_none_for_the_reference(graded: Graded) -> None:
    root = ET.fromstring(junit_xml(graded.run))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    bad, reference, missing = suites[f"qcheck.{BAD}"], suites["qcheck.reference"], suites["qcheck.nosuch:thing"]
    (case,) = bad.iter("testcase")
    assert case.get("classname") == f"qcheck.{BAD}"
    assert case.get("name") == "b158_quantize:B158-2 codes-match-reference"
    assert float(case.get("time") or "nan") >= 0
    (failure,) = case.iter("failure")
    assert "round-half-up" in (failure.text or "") and "qcheck replay" in (failure.text or "")
    assert bad.get("failures") == "1"
    assert not list(reference.iter("failure")) and not list(reference.iter("error"))
    assert reference.get("tests") == "1"
    (error,) = missing.iter("error")
    assert "nosuch" in (error.get("message") or "")
    assert root.get("failures") == "1" and root.get("errors") == "1"


def test_expected_failures_are_skipped_and_pass(graded: Graded) -> None:
    listed = dataclasses.replace(
        graded.bad, outcomes=tuple(dataclasses.replace(o, expected_to_fail=True) for o in graded.bad.outcomes)
    )
    run = dataclasses.replace(graded.run, backends=[listed, graded.reference])
    assert run.passed
    root = ET.fromstring(junit_xml(run))
    assert not list(root.iter("failure")) and len(list(root.iter("skipped"))) == 1
    assert "XFAIL" in markdown(run) and json.loads(json_report(run))["backends"][0]["checks"][0]["verdict"] == "XFAIL"


def test_write_reports_writes_all_three(graded: Graded, tmp_path: Path) -> None:
    junit = tmp_path / "junit" / "qcheck.xml"
    paths = write_reports(graded.run, tmp_path / "out", junit)
    assert paths == [tmp_path / "out" / "grade.md", tmp_path / "out" / "grade.json", junit]
    assert all(p.is_file() for p in paths)
    assert json.loads(paths[1].read_text(encoding="utf-8"))["schema"] == "qcheck-grade/1"
    ET.parse(junit)
    assert write_reports(graded.run, tmp_path / "plain", None) == [
        tmp_path / "plain" / "grade.md",
        tmp_path / "plain" / "grade.json",
    ]
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------- counterexample files


def test_saved_counterexample_is_strict_json_with_metadata(graded: Graded) -> None:
    path = graded.bad.outcomes[0].counterexample_file
    assert path is not None
    assert Path(path) == graded.directory / "counterexamples" / "known-bad_round-half-up" / "b158_quantize__B158-2.json"

    def no_constants(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name}")

    stored = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=no_constants)
    assert stored["schema"] == SCHEMA
    assert stored["check"] == "b158_quantize:B158-2" and stored["op"] == "b158_quantize"
    assert stored["requirement"] == "B158-2" and stored["verdict"] == "FAIL" and stored["message"]
    assert stored["backend_spec"] == BAD and stored["qcheck_version"]
    assert stored["conventions"] == graded.bad.conventions == CONVENTIONS
    assert stored["input"]["kind"] == "tensor"
    assert stored["replay"] == graded.bad.outcomes[0].replay_command
    metadata, witness = load_counterexample(path)
    assert metadata["check"] == "b158_quantize:B158-2"
    assert_same(witness, graded.bad.outcomes[0].result.witness)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _awkward_values(),
        lambda: _strided(_awkward_values()),
        lambda: _awkward_values().transpose(0, 1).contiguous().transpose(0, 1),
        lambda: _offset(_awkward_values()),
        lambda: _awkward_values().to(torch.bfloat16),
        lambda: _strided(_awkward_values().to(torch.float16)),
        lambda: _awkward_values().to(torch.float64)[:, 1:3],
        lambda: torch.tensor(-0.0),
        lambda: torch.zeros((0, 3)),
        lambda: torch.tensor([2.5]).expand(3, 4),
    ],
    ids=["dense", "strided", "transposed", "offset", "bf16", "fp16-strided", "f64-slice", "0-dim", "empty", "expand"],
)
def test_tensors_round_trip_bit_exactly(tmp_path: Path, make: Any) -> None:
    x = make()
    path, _ = save_counterexample(
        tmp_path, "reference", "reference", _result("b158_quantize:B158-2", x), conventions_text=CONVENTIONS
    )
    metadata, loaded = load_counterexample(path)
    assert_same(loaded, x)
    stored = metadata["input"]["tensor"]
    assert stored["shape"] == list(x.shape) and stored["stride"] == list(x.stride())
    assert stored["storage_offset"] == x.storage_offset()
    assert stored["values_hex"] == [float.hex(v) for v in x.to(torch.float64).reshape(-1).tolist()]
    assert (metadata["layout_note"] is None) == (x.is_contiguous() and x.storage_offset() == 0)


def test_the_snippet_rebuilds_the_same_tensor() -> None:
    for x in (_strided(_awkward_values()), _awkward_values().to(torch.bfloat16), torch.tensor(-0.0)):
        namespace: dict[str, Any] = {"torch": torch}
        exec("\n".join(tensor_code("x", x)), namespace)
        rebuilt = namespace["x"]
        assert rebuilt.dtype == x.dtype and rebuilt.shape == x.shape and rebuilt.stride() == x.stride()
        assert rebuilt.storage_offset() == x.storage_offset()
        nan = torch.isnan(x)
        assert _bits(rebuilt[~nan]) == _bits(x[~nan])  # NaN payloads live in the file, not the literal
        assert bool(torch.isnan(rebuilt[nan]).all())


def test_the_snippet_runs(capsys: pytest.CaptureFixture[str]) -> None:
    x = torch.tensor([[0.1, 1e-40, -0.0, 0.5], [2.5, -1.0, 3.0, 0.49999997]])
    for witness in (_strided(x), (x, x * 2), (x, 2)):
        code = snippet("reference", "b158_quantize", witness)
        namespace: dict[str, Any] = {}
        exec(compile(code, "<snippet>", "exec"), namespace)
        assert_same(namespace["x"], witness if isinstance(witness, torch.Tensor) else witness[0])
    assert "expected:" in capsys.readouterr().out


def test_pairs_and_powers_round_trip(tmp_path: Path) -> None:
    x, y = _strided(_awkward_values()), _offset(_awkward_values() * 2)
    path, _ = save_counterexample(
        tmp_path, BAD, BAD, _result("b158_quantize:GEN-2", (x, y)), conventions_text=CONVENTIONS
    )
    metadata, (a, b) = load_counterexample(path)
    assert metadata["input"]["kind"] == "pair"
    assert_same(a, x)
    assert_same(b, y)
    assert "x = " in metadata["snippet"] and "y = " in metadata["snippet"]

    path, _ = save_counterexample(
        tmp_path, BAD, BAD, _result("b158_quantize:B158-5", (_awkward_values(), -3)), conventions_text=CONVENTIONS
    )
    metadata, (t, power) = load_counterexample(path)
    assert metadata["input"]["kind"] == "with_power" and metadata["input"]["power"] == -3
    assert isinstance(power, int) and power == -3
    assert_same(t, _awkward_values())


# ---------------------------------------------------------------- replay


def test_replay_reproduces_the_failure_and_passes_the_reference(graded: Graded) -> None:
    path = graded.bad.outcomes[0].counterexample_file
    assert path is not None
    failing = replay(path)
    assert failing.verdict == "FAIL" and failing.message == graded.bad.outcomes[0].result.message
    assert failing.backend == BAD and failing.check == "b158_quantize:B158-2"
    passing = replay(Path(path), "reference")
    assert passing.verdict == "PASS" and passing.backend == "reference"
    assert replay(path, "nosuch:thing").verdict == "ERROR"
    assert replay(path, "known-bad:sign-before-scale").verdict == "NOT PROVIDED"


def test_replay_of_pairs_and_powers_on_the_reference(tmp_path: Path) -> None:
    x = torch.tensor([[0.5, -1.25, 2.0, 0.1], [0.0, 3.0, -0.75, 1.5]])
    y = torch.tensor([[0.2, 1.25, -2.0, 0.4], [1.0, -3.0, 0.75, 0.5]])
    pair, _ = save_counterexample(
        tmp_path,
        "reference",
        "reference",
        _result("b158_quantize:GEN-2", (_strided(x), y)),
        conventions_text=CONVENTIONS,
    )
    power, _ = save_counterexample(
        tmp_path, "reference", "reference", _result("b158_quantize:B158-5", (x, 3)), conventions_text=CONVENTIONS
    )
    assert replay(pair).verdict == "PASS"
    assert replay(power).verdict == "PASS"
    assert replay(power, "known-bad:round-half-up").verdict in ("PASS", "FAIL")  # runs, whatever it finds


def test_replay_keeps_the_layout_a_kernel_that_ignores_strides_fails_on(tmp_path: Path) -> None:
    x = torch.tensor([[0.5, -1.25, 2.0, 0.1], [0.0, 3.0, -0.75, 1.5]])
    spec = "known-bad:ignores-strides"
    strided, _ = save_counterexample(
        tmp_path / "strided", spec, spec, _result("b158_quantize:B158-2", _strided(x)), conventions_text=CONVENTIONS
    )
    dense, _ = save_counterexample(
        tmp_path / "dense", spec, spec, _result("b158_quantize:B158-2", x), conventions_text=CONVENTIONS
    )
    assert replay(strided).verdict == "FAIL"  # it reads the NaN gaps of the stored storage
    assert replay(dense).verdict == "PASS"
    assert replay(strided, "reference").verdict == "PASS"


def test_a_large_input_is_loaded_from_the_file_in_the_snippet(tmp_path: Path) -> None:
    x = torch.linspace(-2.0, 2.0, 40 * 40).reshape(40, 40).t()
    path, _ = save_counterexample(
        tmp_path, "reference", "reference", _result("b158_quantize:B158-2", x), conventions_text=CONVENTIONS
    )
    metadata, _ = load_counterexample(path)
    assert "load_counterexample(" in metadata["snippet"] and "torch.tensor([" not in metadata["snippet"]
    namespace: dict[str, Any] = {}
    exec(compile(metadata["snippet"], "<snippet>", "exec"), namespace)
    assert_same(namespace["x"], x)
