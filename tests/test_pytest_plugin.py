"""The pytest plugin: ``pytest --qcheck-backend SPEC`` collects one item per check, with stable
names, failure reports that carry fingerprints and a replay command, xfail files, load errors as
one failing item, and nothing at all without ``--qcheck-backend``."""

from __future__ import annotations

import json
import multiprocessing
import os
from typing import Any

import pytest

# Imported here, before any inline run: pytester removes modules first imported during a run, and
# torch cannot be imported twice in one process.
import qcheck.builtin_backends
import qcheck.counterexample
import qcheck.grade
import qcheck.isolation
import qcheck.pytest_plugin

pytest_plugins = ["pytester"]

B158_2 = "b158_quantize:B158-2 codes-match-reference"
FAST = ("--qcheck-profile", "quick", "--qcheck-only", "B158-2", "--qcheck-no-isolation")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inline pytest run; the plugin comes from its pytest11 entry point (or ``-p`` when
    plugin autoloading is disabled)."""
    extra = ["-p", "qcheck.pytest_plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
    return pytester.runpytest(*args, "-p", "no:cacheprovider", *extra)


def test_reference_passes(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--qcheck-backend", "reference", *FAST, "-v")
    result.assert_outcomes(passed=1, skipped=0)
    result.stdout.fnmatch_lines([f"qcheck[[]reference[]]::{B158_2} PASSED*"])
    assert result.ret == pytest.ExitCode.OK


def test_item_names_are_stable_nodeids(pytester: pytest.Pytester) -> None:
    result = run(
        pytester, "--qcheck-backend", "reference", "--qcheck-only", "B158-*", "--qcheck-no-isolation", "--co", "-q"
    )
    ids = [line for line in result.stdout.lines if line.startswith("qcheck[")]
    assert f"qcheck[reference]::{B158_2}" in ids
    assert "qcheck[reference]::b158_fake_quantize:B158-4 fake-matches-reference" in ids
    assert all(line.split("::")[1].split(":")[1].startswith("B158-") for line in ids)
    again = run(
        pytester, "--qcheck-backend", "reference", "--qcheck-only", "B158-*", "--qcheck-no-isolation", "--co", "-q"
    )
    assert [line for line in again.stdout.lines if line.startswith("qcheck[")] == ids


def test_keyword_selection(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--qcheck-backend",
        "reference",
        "--qcheck-profile",
        "quick",
        "--qcheck-only",
        "B158-*",
        "--qcheck-no-isolation",
        "-k",
        "B158-2",
        "-v",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"qcheck[[]reference[]]::{B158_2} PASSED*", "*deselected*"])


def test_failure_shows_fingerprint_and_replay(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--qcheck-backend", "known-bad:round-half-up", *FAST)
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    assert "qcheck FAIL: b158_quantize:B158-2" in text
    assert "counterexample: torch.tensor(" in text
    assert "behaves like (known-bad variants): round-half-up" in text
    saved = pytester.path / "reports" / "qcheck" / "counterexamples" / "known-bad_round-half-up"
    path = saved / "b158_quantize__B158-2.json"
    assert path.is_file()
    assert json.loads(path.read_text())["check"] == "b158_quantize:B158-2"
    assert f"replay: qcheck replay {path} --backend known-bad:round-half-up" in text
    assert "INTERNALERROR" not in text


def test_error_verdict_fails_the_item(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        raising_backend="""
        class Backend:
            name = "raising"

            def b158_quantize(self, w):
                raise ValueError("no kernel for this shape")
        """
    )
    pytester.syspathinsert()
    result = run(pytester, "--qcheck-backend", "raising_backend:Backend", *FAST, "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"qcheck[[]raising_backend:Backend[]]::{B158_2} FAILED*", "qcheck ERROR: b158_quantize:B158-2*of raising*"]
    )
    assert "no kernel for this shape" in result.stdout.str()


def test_load_error_is_one_failing_item(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--qcheck-backend", "nosuch:thing", *FAST, "-v")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "qcheck[[]nosuch:thing[]]::load FAILED*",
            "qcheck: backend 'nosuch:thing': cannot import 'nosuch': ModuleNotFoundError: No module named 'nosuch'",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_xfail_file(pytester: pytest.Pytester) -> None:
    xfails = pytester.makefile(".txt", xfails="# known\nb158_quantize:B158-2\n")
    result = run(
        pytester,
        "--qcheck-backend",
        "known-bad:round-half-up",
        "--qcheck-backend",
        "reference",
        "--qcheck-xfail-file",
        str(xfails),
        *FAST,
    )
    result.assert_outcomes(xfailed=1, xpassed=1)  # the known-bad fails as expected; reference passes: XPASS
    assert result.ret == pytest.ExitCode.OK


def test_xfail_file_for_one_backend(pytester: pytest.Pytester) -> None:
    xfails = pytester.makefile(".txt", xfails="reference::B158-2\n")
    result = run(pytester, "--qcheck-backend", "reference", "--qcheck-xfail-file", str(xfails), *FAST)
    result.assert_outcomes(xpassed=1)
    missing = run(pytester, "--qcheck-backend", "reference", "--qcheck-xfail-file", "nope.txt", *FAST)
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--qcheck-xfail-file nope.txt: no such file*"])


def test_ops_not_provided_are_skipped_items(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--qcheck-backend",
        "known-bad:round-half-up",
        "--qcheck-only",
        "IN-5",
        "--qcheck-profile",
        "quick",
        "--qcheck-no-isolation",
        "-v",
        "-rs",
    )
    result.assert_outcomes(passed=1, skipped=5)
    result.stdout.fnmatch_lines(
        [
            "qcheck[[]known-bad:round-half-up[]]::b1_quantize not provided SKIPPED*",
            "*known-bad:round-half-up does not provide act_fake_quantize*",
        ]
    )


def test_not_differentiable_skips_ste(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "--qcheck-backend",
        "reference-numpy",
        "--qcheck-only",
        "STE-1",
        "--qcheck-profile",
        "quick",
        "--qcheck-no-isolation",
        "-rs",
    )
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*the backend declares differentiable = False*"])


def test_isolated_backend_is_loaded_once_and_closed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    isolated = qcheck.isolation.IsolatedBackend
    real_enter, real_close = isolated.__enter__, isolated.close

    def enter(self: Any) -> Any:
        events.append("open")
        return real_enter(self)

    def close(self: Any) -> None:
        events.append("close")
        real_close(self)

    monkeypatch.setattr(isolated, "__enter__", enter)
    monkeypatch.setattr(isolated, "close", close)
    before = set(multiprocessing.active_children())
    result = run(pytester, "--qcheck-backend", "reference", "--qcheck-profile", "quick", "--qcheck-only", "B158-[12]")
    result.assert_outcomes(passed=2)
    assert events[0] == "open" and events.count("open") == 1 and "close" in events
    assert set(multiprocessing.active_children()) <= before  # the worker is gone


def test_inactive_without_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    assert "qcheck[" not in result.stdout.str()
    collected = run(pytester, "--co", "-q")
    assert not [line for line in collected.stdout.lines if "qcheck[" in line]
    helptext = run(pytester, "--help")
    helptext.stdout.fnmatch_lines(["qcheck conformance checks*", "*--qcheck-backend=SPEC*"])


def test_inactive_plugin_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_imports="""
        import sys

        def test_imports():
            assert "qcheck.pytest_plugin" in sys.modules
            assert "qcheck.grade" not in sys.modules
            assert "torch" not in sys.modules
        """
    )
    extra = ["-p", "qcheck.pytest_plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *extra)
    result.assert_outcomes(passed=1)
