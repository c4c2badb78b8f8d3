"""Compiling ``bitnet_kernels.c`` into a shared library with the system C compiler, once per source.

The library goes to a cache directory under a name that hashes the source, the flags and the
compiler, so an edited kernel is rebuilt on the next load. Not a packaging tool: no extension
module, no setuptools build step; ``python -m qcheck_native_example.build`` builds ahead of time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("bitnet_kernels.c")
CACHE_ENV = "QCHECK_NATIVE_EXAMPLE_CACHE"
"""Where built libraries go (default: ``$XDG_CACHE_HOME/qcheck-native-example`` or ``~/.cache/...``)."""

BASE_FLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra", "-ffp-contract=off", "-shared", "-fPIC")
"""``-ffp-contract=off``: the float epilogue is separate multiplies and an add, never a fused FMA."""

VARIANTS: dict[str, tuple[str, ...]] = {
    "int32": (),
    "int16": ("-DQCHECK_EXAMPLE_INT16_ACCUMULATOR",),  # deliberately broken: BL-2 must catch it
}


class BuildError(RuntimeError):
    """The C compiler is missing or rejected the kernel."""


def cache_dir() -> Path:
    """The directory built libraries are cached in."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qcheck-native-example"


def find_compiler(compiler: str | None = None) -> str:
    """An absolute path to the C compiler: ``compiler``, else ``$CC``, else ``cc`` on ``PATH``."""
    name = compiler or os.environ.get("CC") or "cc"
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"no C compiler {name!r} on PATH: install one (e.g. gcc or clang) or set CC")
    return found


def command(compiler: str, variant: str, output: Path) -> list[str]:
    """The compiler command line that builds ``variant`` into ``output``."""
    return [compiler, *BASE_FLAGS, *VARIANTS[variant], str(SOURCE), "-o", str(output), "-lm"]


def library_path(variant: str, compiler: str, directory: Path) -> Path:
    """The cached library's path: the hash covers the source, the command and the compiler."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update("\0".join(command(compiler, variant, Path("out"))).encode())
    return directory / f"libbitnet_kernels-{variant}-{digest.hexdigest()[:16]}.so"


def build(variant: str = "int32", *, compiler: str | None = None, directory: Path | None = None) -> Path:
    """The shared library of ``variant``, compiled now unless it is already in the cache."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    cc = find_compiler(compiler)
    target_dir = directory or cache_dir()
    target = library_path(variant, cc, target_dir)
    if target.exists():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename: grading workers may build concurrently.
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=target_dir)
    os.close(handle)
    try:
        result = subprocess.run(command(cc, variant, Path(temporary)), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(f"{' '.join(command(cc, variant, target))} failed:\n{result.stderr}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m qcheck_native_example.build [--variant int32|int16] [--cc CC] [--dir DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append")
    parser.add_argument("--cc", help="the C compiler (default: $CC, else cc)")
    parser.add_argument("--dir", type=Path, help=f"output directory (default: ${CACHE_ENV} or the user cache)")
    args = parser.parse_args(argv)
    try:
        for variant in args.variant or sorted(VARIANTS):
            print(build(variant, compiler=args.cc, directory=args.dir))
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
