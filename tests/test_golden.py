"""The golden vectors in reference/: deterministic, equal to the checked-in set, drift is caught
and named, identical arrays stored once, small on disk (as `du` counts it), and a C consumer built
with the system compiler passes on them while a deliberately broken C kernel (roundf, ties away
from zero) fails on the tie cases."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from qcheck.backend import QUANTIZER_OPS
from qcheck.golden.cli import main as golden_main
from qcheck.golden.store import MANIFEST, ReferenceSet, build_reference_set, write_reference_set

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference"
C_DIR = REFERENCE / "c"
C_SOURCES = ("golden_check.c", "act_quantize.c", "npy.c")
QUANTIZER_WEIGHT_OPS = ("b1_quantize", "b1_fake_quantize", "b158_quantize", "b158_fake_quantize")


@pytest.fixture(scope="module")
def fresh() -> ReferenceSet:
    return build_reference_set()


def _tree(root: Path) -> dict[str, bytes]:
    """Every generated file under ``root`` (manifest and cases/), by relative path."""
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "cases").rglob("*") if p.is_file()}
    files[MANIFEST] = (root / MANIFEST).read_bytes()
    return files


def _copy_reference(tmp_path: Path) -> Path:
    target = tmp_path / "reference"
    shutil.copytree(REFERENCE, target, ignore=shutil.ignore_patterns("c"))
    return target


def test_regenerating_twice_gives_byte_identical_files_equal_to_the_checked_in_set(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_reference_set(first, build_reference_set())
    write_reference_set(second, build_reference_set())
    one, two = _tree(first), _tree(second)
    assert one == two
    checked_in = _tree(REFERENCE)
    assert sorted(one) == sorted(checked_in), "file sets differ: run `qcheck golden` and commit reference/"
    assert [path for path in one if one[path] != checked_in[path]] == []


def test_the_checked_in_set_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert golden_main(["--check", "--dir", str(REFERENCE)]) == 0
    assert "match the reference" in capsys.readouterr().out


def test_manifest_has_one_case_per_line_with_every_op_and_family(fresh: ReferenceSet) -> None:
    lines = fresh.files[MANIFEST].decode().splitlines()
    case_lines = [line for line in lines if line.lstrip().startswith('{"id": ')]
    assert len(case_lines) == len(fresh.entries) == json.loads(fresh.files[MANIFEST])["case_count"]
    for line in case_lines:
        entry = json.loads(line.strip().rstrip(","))
        assert entry["conventions"]["rounding"] == "half-even"
        for array in entry["inputs"] + entry["outputs"]:
            assert list(array) == ["name", "file", "dtype", "logical_dtype", "shape", "sha256"]
            assert array["file"] == f"cases/{array['sha256'][:16]}.npy"  # content-addressed
    ops = {entry["op"] for entry in fresh.entries.values()}
    assert ops == {*QUANTIZER_OPS, "pack_ternary", "bitlinear"}  # unpack_ternary reads the pack cases
    families = {entry["family"] for entry in fresh.entries.values() if entry["op"] == "b158_quantize"}
    assert {"ties", "all-equal", "all-zero", "zero-rows", "subnormal", "extreme", "outliers"} <= families
    assert "b158_quantize/ties/float32/3x4" in fresh.entries


def _file(fresh: ReferenceSet, case_id: str, group: str, name: str) -> str:
    return str(next(a["file"] for a in fresh.entries[case_id][group] if a["name"] == name))


def test_identical_arrays_are_stored_once_and_shared_by_the_cases_holding_them(fresh: ReferenceSet) -> None:
    listed = {a["file"] for e in fresh.entries.values() for a in e["inputs"] + e["outputs"]}
    arrays = sum(len(e["inputs"]) + len(e["outputs"]) for e in fresh.entries.values())
    assert set(fresh.files) == listed | {MANIFEST}
    assert len(set(fresh.files.values())) == len(fresh.files)  # no two files with the same bytes
    assert len(listed) < arrays / 2
    # one weight input per family, dtype and shape for b1 and b1.58, quantize and fake
    weight_inputs = {_file(fresh, f"{op}/general/float32/3x5", "inputs", "x") for op in QUANTIZER_WEIGHT_OPS}
    assert len(weight_inputs) == 1
    assert _file(fresh, "act_quantize/general/float32/3x5", "inputs", "x") in weight_inputs
    # except ties, whose values are the op family's own ties
    ties = {_file(fresh, f"{op}/ties/float32/3x4", "inputs", "x") for op in QUANTIZER_WEIGHT_OPS}
    assert len(ties) == 2
    # every layout packs the same random codes of a shape
    codes = {_file(fresh, f"pack_ternary/{layout}/random/int8/256", "inputs", "codes") for layout in ("qcheck", "i2_s")}
    assert len(codes) == 1


def test_regenerating_removes_files_not_in_the_manifest(tmp_path: Path, fresh: ReferenceSet) -> None:
    root = tmp_path / "reference"
    stale = root / "cases/act_quantize/ties.float32.3x4.x.npy"  # the former per-case naming
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    write_reference_set(root, fresh)
    assert not stale.exists() and not stale.parent.exists()
    assert _tree(root) == fresh.files


def test_bfloat16_is_stored_as_raw_bits(fresh: ReferenceSet) -> None:
    x = fresh.entries["act_quantize/ties/bfloat16/3x4"]["inputs"][0]
    assert (x["dtype"], x["logical_dtype"]) == ("<u2", "bfloat16")


def test_a_flipped_byte_in_a_vector_fails_check_naming_the_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh: ReferenceSet
) -> None:
    root = _copy_reference(tmp_path)
    entry = fresh.entries["b158_quantize/ties/float32/3x4"]["outputs"][0]
    path = root / entry["file"]
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x02  # the last code: -1/0/1 becomes another value
    path.write_bytes(bytes(raw))
    assert golden_main(["--check", "--dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "reference drift: b158_quantize/ties/float32/3x4 output codes.npy: sha256 in manifest" in out
    assert "b158_quantize/ties/float32/3x4 output codes.npy differs from the reference at index (2, 3)" in out


def test_an_edited_manifest_sha256_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy_reference(tmp_path)
    manifest = root / MANIFEST
    text = manifest.read_text()
    line = next(x for x in text.splitlines() if '"id": "act_quantize/ties/float32/3x4"' in x)
    old = json.loads(line.strip().rstrip(","))["inputs"][0]["sha256"]
    manifest.write_text(text.replace(line, line.replace(old, "0" * 64), 1))  # only this case's entry
    assert golden_main(["--check", "--dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"act_quantize/ties/float32/3x4 input x.npy: sha256 in manifest {'0' * 64}, file has {old}" in out


def test_missing_and_unlisted_files_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy_reference(tmp_path)
    (root / _file(build_reference_set(), "act_quantize/ties/float32/3x4", "outputs", "scale")).unlink()
    (root / "cases/stray.npy").write_bytes(b"junk")
    (root / "cases/act_quantize").mkdir()
    (root / "cases/act_quantize/ties.float32.3x4.x.npy").write_bytes(b"old naming")
    assert golden_main(["--check", "--dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "act_quantize/ties/float32/3x4 output scale.npy: listed in manifest.json but missing" in out
    assert "cases/stray.npy: present but not in the reference set" in out
    assert "cases/act_quantize/ties.float32.3x4.x.npy: present but not in the reference set" in out


def test_reference_directory_is_under_5_mb_on_disk_as_du_counts_it() -> None:
    entries = [REFERENCE, *REFERENCE.rglob("*")]
    apparent = sum(p.lstat().st_size for p in entries if p.is_file())
    on_disk = sum(p.lstat().st_blocks * 512 for p in entries)  # `du`: allocated blocks, directories included
    assert 0 < apparent < 5 * 1024 * 1024, f"reference/ holds {apparent} bytes"
    assert 0 < on_disk < 5 * 1024 * 1024, f"reference/ takes {on_disk} bytes on disk (du -sh reference)"


def _compile(tmp_path: Path, name: str, *flags: str) -> Path:
    cc = shutil.which("cc")
    assert cc is not None, "no C compiler `cc` on PATH: the golden C consumer cannot be proven"
    binary = tmp_path / name
    command = [cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", *flags, "-o", str(binary)]
    result = subprocess.run(
        [*command, *(str(C_DIR / s) for s in C_SOURCES), "-lm"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return binary


def test_c_consumer_passes_every_float32_act_quantize_case(tmp_path: Path, fresh: ReferenceSet) -> None:
    binary = _compile(tmp_path, "golden_check")
    result = subprocess.run([str(binary), str(REFERENCE)], capture_output=True, text=True, check=False)
    expected = sorted(i for i in fresh.entries if i.startswith("act_quantize/") and "/float32/" in i)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(expected)}/{len(expected)} cases passed" in result.stdout
    assert [line.split(": ")[0] for line in result.stdout.splitlines() if line.endswith(": OK")] == expected


def test_c_consumer_built_with_roundf_fails_on_the_tie_cases(tmp_path: Path) -> None:
    binary = _compile(tmp_path, "golden_check_broken", "-DQCHECK_BROKEN_ROUNDING")
    result = subprocess.run([str(binary), str(REFERENCE)], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout
    failed = [line for line in result.stdout.splitlines() if ": FAIL (" in line]
    assert any(line.startswith("act_quantize/ties/float32/") for line in failed), result.stdout
    assert "first mismatch at codes[" in failed[0]
