"""Nox sessions for qcheck: ``tests`` (default), ``verify``, ``lint``, ``golden`` and ``thirdparty``.

Every install goes through constraints/cpu.txt, which pins the CPU build of torch; pip (not uv)
is used because only pip sees the local torch wheel.  Extra arguments after ``--`` reach the tool.
"""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.3"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
BACKEND = "virtualenv"
CONSTRAINTS = ("-c", "constraints/cpu.txt")


def _install(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "-e", ".[dev]")


@nox.session(python=PYTHON, venv_backend=BACKEND)
def tests(session: nox.Session) -> None:
    """Run the test suite under the deterministic qcheck-ci Hypothesis profile, one test file per
    pytest-xdist worker and as many workers as cores (a file's module fixtures run once)."""
    _install(session)
    # A later --hypothesis-profile or -n in posargs wins.  pytest's exit code 5 (no tests ran)
    # fails the session like any other non-zero code.
    session.run("pytest", "--hypothesis-profile=qcheck-ci", "-n", "auto", "--dist", "loadfile", *session.posargs)


@nox.session(python=PYTHON, venv_backend=BACKEND)
def verify(session: nox.Session) -> None:
    """Run the conformance harness; reports go to reports/."""
    _install(session)
    args = ["--profile", "ci", "--report-dir", "reports", *session.posargs]
    session.run("python", "-m", "qcheck.golden", "--check")  # reference/ golden vectors match the references
    session.run("python", "-m", "qcheck.verify", *args)


@nox.session(python=PYTHON, venv_backend=BACKEND)
def golden(session: nox.Session) -> None:
    """Regenerate the golden vectors in reference/ (review and commit the diff)."""
    _install(session)
    session.run("python", "-m", "qcheck.golden", *session.posargs)


@nox.session(python=PYTHON, venv_backend=BACKEND)
def thirdparty(session: nox.Session) -> None:
    """Grade third-party BitNet code (transformers, gguf-py); writes reports/thirdparty.md and .json."""
    session.install(*CONSTRAINTS, "-e", ".[thirdparty]")
    session.run("python", "-m", "qcheck.thirdparty", "--report-dir", "reports", *session.posargs)


@nox.session(python=PYTHON, venv_backend=BACKEND)
def bench(session: nox.Session) -> None:
    """Performance benchmarks of issue 6 (pytest-benchmark, benchmarks/); writes reports/bench/.  Not part
    of the default sessions or of the test run.  ``QCHECK_BENCH_SCALE=small nox -s bench`` is a smoke run
    on small tensors (reports in reports/bench/small/); the default is the issue's sizes."""
    session.install(*CONSTRAINTS, "-e", ".[dev,bench]")
    session.run(
        "pytest",
        "benchmarks",
        "--benchmark-only",
        "--benchmark-columns=min,median,max,rounds",
        "--benchmark-sort=name",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


@nox.session(python=PYTHON, venv_backend=BACKEND)
def lint(session: nox.Session) -> None:
    """ruff check (no formatting check) and mypy --strict on the qcheck package."""
    _install(session)
    session.run("ruff", "check", ".")
    session.run("mypy", *session.posargs)
