"""The reference set on disk: ``manifest.json`` plus the ``.npy`` files of the cases, one file per
distinct array (content-addressed under ``cases/``, shared by every case that holds the same
bytes), written deterministically, and checked byte for byte against a fresh computation.

``manifest.json`` holds one case per line so that a C program can scan it line by line.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qcheck.golden.arrays import Array, first_difference, load_npy, sha256
from qcheck.golden.cases import Case, all_cases, conventions_json

FORMAT = "qcheck-golden"
VERSION = 1
MANIFEST = "manifest.json"
CASES_DIR = "cases"
"""Generated files live in ``manifest.json`` and under ``cases/``; the rest of ``reference/``
(README.md, c/) is written by hand and never touched."""


@dataclasses.dataclass(frozen=True)
class ReferenceSet:
    """The files of a reference set, as bytes, keyed by path relative to the set's root."""

    files: dict[str, bytes]
    entries: dict[str, dict[str, Any]]
    """Manifest entry of every case, by id."""


HASH_PREFIX = 16
"""Hex digits of the sha256 in a file name: 64 bits, and a collision is refused when building."""


def array_file(raw: bytes) -> str:
    """``cases/<first 16 hex digits of the sha256 of the .npy bytes>.npy``: content-addressed, so
    an array that several cases hold (an input shared by an op and its fake form, by b1 and b1.58,
    equal codes or scales) is one file, named the same on every regeneration."""
    return f"{CASES_DIR}/{sha256(raw)[:HASH_PREFIX]}.npy"


def _file_entry(array: Array, raw: bytes) -> dict[str, Any]:
    return {
        "name": array.name,
        "file": array_file(raw),
        "dtype": array.data.dtype.str,
        "logical_dtype": array.logical_dtype,
        "shape": list(array.data.shape),
        "sha256": sha256(raw),
    }


def build_reference_set(cases: Iterable[Case] | None = None) -> ReferenceSet:
    """Every file of the reference set, computed in memory (default: :func:`all_cases`)."""
    files: dict[str, bytes] = {}
    entries: dict[str, dict[str, Any]] = {}
    for case in all_cases() if cases is None else cases:
        groups: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
        for group, arrays in (("inputs", case.inputs), ("outputs", case.outputs)):
            for array in arrays:
                raw = array.npy_bytes()
                entry = _file_entry(array, raw)
                if files.setdefault(entry["file"], raw) != raw:
                    raise AssertionError(f"qcheck.golden: two arrays share the file name {entry['file']}")
                groups[group].append(entry)
        entries[case.id] = {
            "id": case.id,
            "op": case.op,
            "family": case.family,
            "params": dict(case.params),
            "conventions": conventions_json(case.conventions),
            **groups,
        }
    files[MANIFEST] = manifest_bytes(entries.values())
    return ReferenceSet(files, entries)


def manifest_bytes(entries: Iterable[dict[str, Any]]) -> bytes:
    """``{"format": ..., "cases": [`` then one case per line, sorted by id, then ``]}``."""
    lines = [json.dumps(e, ensure_ascii=True, allow_nan=False) for e in sorted(entries, key=lambda e: str(e["id"]))]
    head = f'{{"format": "{FORMAT}", "version": {VERSION}, "case_count": {len(lines)}, "cases": [\n'
    return (head + ",\n".join(f"  {line}" for line in lines) + "\n]}\n").encode()


def _generated_files(root: Path) -> set[str]:
    """Paths (relative, ``/``-separated) of the generated files present under ``root``."""
    found = {p.relative_to(root).as_posix() for p in (root / CASES_DIR).rglob("*") if p.is_file()}
    return found | ({MANIFEST} if (root / MANIFEST).is_file() else set())


def write_reference_set(root: Path, reference: ReferenceSet | None = None) -> ReferenceSet:
    """Write the set under ``root``: every file whose bytes changed, and remove generated files
    (under ``cases/``) that are no longer part of it, with directories left empty."""
    reference = reference if reference is not None else build_reference_set()
    root.mkdir(parents=True, exist_ok=True)
    for stale in sorted(_generated_files(root) - set(reference.files)):
        (root / stale).unlink()
    for relative, raw in sorted(reference.files.items()):
        path = root / relative
        if path.is_file() and path.read_bytes() == raw:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    cases_root = root / CASES_DIR
    for directory in sorted((p for p in cases_root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(directory.iterdir()):
            directory.rmdir()
    return reference


def _file_label(case_id: str, entry: dict[str, Any], group: str) -> str:
    kind = "input" if group == "inputs" else "output"
    return f"{case_id} {kind} {entry['name']}.npy"


def _read_manifest(path: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The case entries of a manifest on disk, by id, and the problems reading it."""
    if not path.is_file():
        return {}, [f"reference drift: {MANIFEST} is missing"]
    try:
        document = json.loads(path.read_bytes())
        cases = {str(c["id"]): c for c in document["cases"]}
    except (ValueError, KeyError, TypeError) as error:
        return {}, [f"reference drift: {MANIFEST} is not a valid manifest ({error})"]
    return cases, []


def _check_hashes(root: Path, on_disk: dict[str, dict[str, Any]]) -> list[str]:
    """Every file the on-disk manifest lists exists and has the sha256 the manifest says."""
    problems: list[str] = []
    for case_id, case in sorted(on_disk.items()):
        for group in ("inputs", "outputs"):
            for entry in case.get(group, []):
                path = root / str(entry["file"])
                label = _file_label(case_id, entry, group)
                if not path.is_file():
                    problems.append(f"reference drift: {label}: listed in {MANIFEST} but missing")
                    continue
                actual = sha256(path.read_bytes())
                if actual != entry.get("sha256"):
                    problems.append(
                        f"reference drift: {label}: sha256 in manifest {entry.get('sha256')}, file has {actual}"
                    )
    return problems


def _check_contents(root: Path, expected: ReferenceSet) -> list[str]:
    """Every expected file is present with the bytes the reference gives."""
    problems: list[str] = []
    for case_id, case in sorted(expected.entries.items()):
        for group in ("inputs", "outputs"):
            for entry in case[group]:
                path = root / entry["file"]
                label = _file_label(case_id, entry, group)
                want = expected.files[entry["file"]]
                if not path.is_file():
                    problems.append(f"reference drift: {label}: missing (regenerate with `qcheck golden`)")
                    continue
                have = path.read_bytes()
                if have == want:
                    continue
                try:
                    where = first_difference(load_npy(want), load_npy(have))
                except (ValueError, OSError, EOFError) as error:
                    where = f"not a readable .npy file ({error})"
                problems.append(f"reference drift: {label} differs from the reference at {where}")
    return problems


def _check_manifest(root: Path, expected: ReferenceSet, on_disk: dict[str, dict[str, Any]]) -> list[str]:
    problems = [
        f"reference drift: {case_id}: in {MANIFEST} but not a case of the reference set"
        for case_id in sorted(set(on_disk) - set(expected.entries))
    ]
    problems += [
        f"reference drift: {case_id}: a case of the reference set missing from {MANIFEST}"
        for case_id in sorted(set(expected.entries) - set(on_disk))
    ]
    problems += [
        f"reference drift: {case_id}: its {MANIFEST} entry differs from the regenerated one"
        for case_id in sorted(set(expected.entries) & set(on_disk))
        if on_disk[case_id] != expected.entries[case_id]
    ]
    path = root / MANIFEST
    if not problems and path.is_file() and path.read_bytes() != expected.files[MANIFEST]:
        problems.append(f"reference drift: {MANIFEST} is formatted differently from the regenerated one")
    return problems


def check_reference_set(root: Path, expected: ReferenceSet | None = None) -> list[str]:
    """Every problem of the set under ``root``: files whose sha256 is not the manifest's, files
    that differ from a fresh computation (with the first differing index), missing files, files
    under ``cases/`` not in the manifest, and manifest entries that differ.  Empty when clean."""
    expected = expected if expected is not None else build_reference_set()
    on_disk, problems = _read_manifest(root / MANIFEST)
    problems += _check_hashes(root, on_disk)
    problems += _check_contents(root, expected)
    problems += _check_manifest(root, expected, on_disk)
    extra = sorted(_generated_files(root) - set(expected.files))
    problems += [f"reference drift: {path}: present but not in the reference set" for path in extra]
    return problems
