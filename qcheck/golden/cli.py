"""``qcheck golden [--check] [--dir DIR]``: regenerate the reference set, or verify it.

Exit status: 0 clean (or written), 1 drift found, 2 usage error (no such directory to check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_ROOT = Path("reference")
"""Relative to the working directory: run from the repository root (as nox does)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``qcheck golden``, shared with ``python -m qcheck.golden``."""
    parser.add_argument("--check", action="store_true", help="verify the set instead of writing it; exit 1 on drift")
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_ROOT, metavar="DIR", help="the reference set's root (default: reference)"
    )


def run(check: bool, root: Path) -> int:
    """Regenerate the set under ``root``, or (``check``) report every drift and return 1."""
    from qcheck.golden.store import build_reference_set, check_reference_set, write_reference_set

    reference = build_reference_set()
    files = len(reference.files)
    if not check:
        write_reference_set(root, reference)
        print(f"qcheck golden: wrote {len(reference.entries)} cases ({files} files) to {root}")
        return 0
    if not root.is_dir():
        print(f"qcheck golden: {root}: no such directory (run from the repository root or pass --dir)", file=sys.stderr)
        return 2
    problems = check_reference_set(root, reference)
    for problem in problems:
        print(problem)
    if problems:
        print(f"qcheck golden: {len(problems)} problem(s) in {root}; regenerate with `qcheck golden` if intended")
        return 1
    print(f"qcheck golden: {root}: {len(reference.entries)} cases, {files} files match the reference")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qcheck.golden", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args.check, args.dir)
