"""pytest plugin: ``pytest --qcheck-backend SPEC`` runs qcheck's conformance checks as test items,
``qcheck[SPEC]::<op>:<ID> <name>``, one per check of each op the backend provides; each backend is
loaded once per session (in a worker process unless ``--qcheck-no-isolation``)."""

# How items are collected: a wrapper on ``pytest_make_collect_report`` adds one collector per spec
# (``QcheckBackend``) to the *session's* collect report, next to the directories pytest found, so
# the items go through everything pytest does with items (``-k``, ``-m``, ``--deselect``,
# ``--collect-only``, ``--lf``, JUnit).  The wrapper is registered only when a backend is given:
# without ``--qcheck-backend`` this module adds its options and nothing else (no torch import).

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, TracebackStyle

    from qcheck.checks import Check, CheckResult
    from qcheck.grade import LoadedBackend, XfailList

PROFILES = ("quick", "ci", "thorough")
DEFAULT_REPORT_DIR = Path("reports") / "qcheck"
"""Where counterexamples are saved unless ``--qcheck-report-dir``: relative to pytest's rootdir."""
PLUGIN_NAME = "qcheck-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qcheck", "qcheck conformance checks of a BitNet quantization backend")
    group.addoption(
        "--qcheck-backend",
        action="append",
        default=[],
        metavar="SPEC",
        help="grade this backend (package.module:attr, an entry point in qcheck.backends, or a built-in name); "
        "repeatable",
    )
    group.addoption("--qcheck-profile", choices=PROFILES, default="ci", help="examples per check (default: ci)")
    group.addoption("--qcheck-seed", type=int, default=0, metavar="N", help="base seed of the checks (default: 0)")
    group.addoption(
        "--qcheck-only", default=None, metavar="PATTERN", help="only checks whose key, requirement ID or name match"
    )
    group.addoption(
        "--qcheck-xfail-file",
        default=None,
        metavar="FILE",
        help="expected failures, one CHECK or BACKEND::CHECK per line: those items are xfail (not strict)",
    )
    group.addoption(
        "--qcheck-timeout", type=float, default=30.0, metavar="SECONDS", help="time limit per isolated call (30)"
    )
    group.addoption(
        "--qcheck-no-isolation", action="store_true", default=False, help="load the backend in the pytest process"
    )
    group.addoption(
        "--qcheck-report-dir",
        default=None,
        metavar="DIR",
        help=f"where failing inputs are saved (default: {DEFAULT_REPORT_DIR} under the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    specs = list(dict.fromkeys(config.getoption("qcheck_backend") or []))
    if specs and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(QcheckSession(config, specs), PLUGIN_NAME)


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text).strip()


@dataclasses.dataclass(frozen=True)
class Options:
    """The ``--qcheck-*`` options of one pytest run."""

    profile: str
    seed: int
    only: str | None
    isolate: bool
    timeout: float
    report_dir: Path
    xfail_file: Path | None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Options:
        report = config.getoption("qcheck_report_dir")
        report_dir = (
            config.rootpath / DEFAULT_REPORT_DIR if report is None else config.invocation_params.dir / Path(report)
        )
        xfail = config.getoption("qcheck_xfail_file")
        xfail_file = None if xfail is None else config.invocation_params.dir / Path(xfail)
        if xfail_file is not None and not xfail_file.is_file():
            raise pytest.UsageError(f"--qcheck-xfail-file {xfail}: no such file")
        return cls(
            config.getoption("qcheck_profile"),
            int(config.getoption("qcheck_seed")),
            config.getoption("qcheck_only") or None,
            not config.getoption("qcheck_no_isolation"),
            float(config.getoption("qcheck_timeout")),
            report_dir,
            xfail_file,
        )


class QcheckSession:
    """The plugin object registered for a run with ``--qcheck-backend``: adds the collectors and
    keeps the loaded backends open until the session ends."""

    def __init__(self, config: pytest.Config, specs: list[str]) -> None:
        self.config = config
        self.specs = specs
        self.options = Options.from_config(config)
        self._stack = contextlib.ExitStack()
        self._xfails: XfailList | None = None
        self.used_xfails: set[str] = set()
        self.listed_xfails: dict[str, set[str]] = {}

    @property
    def xfails(self) -> XfailList:
        if self._xfails is None:
            from qcheck.grade import XfailList

            path = self.options.xfail_file
            self._xfails = XfailList.read(path) if path is not None else XfailList()
        return self._xfails

    def open(self, spec: str) -> LoadedBackend:
        """Load ``spec`` for the rest of the session; raises what loading raised."""
        from qcheck.grade import open_backend

        opened = open_backend(spec, isolate=self.options.isolate, timeout=self.options.timeout)
        return self._stack.enter_context(opened)

    def close(self) -> None:
        self._stack.close()

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if isinstance(collector, pytest.Session) and report.passed:
            report.result.extend(QcheckBackend.for_spec(collector, spec, self) for spec in self.specs)
        return report

    def pytest_sessionfinish(self) -> None:
        self.close()

    def pytest_unconfigure(self) -> None:
        self.close()

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for name, entries in self.listed_xfails.items():
            for entry in sorted(entries - self.used_xfails):
                terminalreporter.write_line(f"qcheck: xfail entry {entry!r} matched no collected check of {name}")


class QcheckBackend(pytest.Collector):
    """``qcheck[SPEC]``: the checks of one backend; loading it is collecting it."""

    def __init__(self, *, spec: str, run: QcheckSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.run = run

    @classmethod
    def for_spec(cls, session: pytest.Session, spec: str, run: QcheckSession) -> QcheckBackend:
        name = f"qcheck[{spec}]"
        # An explicit nodeid: the default would be "::qcheck[...]" (the session's nodeid is "").
        return cls.from_parent(session, name=name, nodeid=name, spec=spec, run=run)

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        try:
            backend = self.run.open(self.spec)
        except Exception as exc:  # BackendLoadError, or anything a broken worker raised
            from qcheck.backend import BackendLoadError

            message = str(exc) if isinstance(exc, BackendLoadError) else f"{type(exc).__name__}: {exc}"
            return [LoadErrorItem.from_parent(self, name="load", message=_one_line(message))]
        return list(self._items(backend))

    def _items(self, backend: LoadedBackend) -> Iterator[pytest.Item]:
        from qcheck.backend import CONTRACT_OPS
        from qcheck.grade import XfailList, selected_checks

        run = self.run
        only = run.options.only
        if backend.name != self.spec:
            self.extra_keyword_matches.add(backend.name)
        owners = {backend.name, self.spec}
        run.listed_xfails.setdefault(backend.name, set()).update(
            XfailList.text(owner, pattern) for owner, pattern in run.xfails.entries if owner in (None, *owners)
        )
        for check in selected_checks(backend.provided, only):
            item = QcheckItem.from_parent(self, name=f"{check.key} {check.name}", check=check, backend=backend)
            listed = tuple(dict.fromkeys(hit for owner in sorted(owners) for hit in run.xfails.matches(owner, check)))
            if listed:
                run.used_xfails.update(listed)
                where = run.options.xfail_file.name if run.options.xfail_file else "the xfail file"
                item.add_marker(pytest.mark.xfail(reason=f"listed in {where}: {', '.join(listed)}", strict=False))
            yield item
        wanted = {check.op for check in selected_checks(CONTRACT_OPS, only)}
        for op in CONTRACT_OPS:
            if op not in backend.provided and op in wanted:
                yield NotProvidedItem.from_parent(self, name=f"{op} not provided", op=op, backend_name=backend.name)


class QcheckLoadError(Exception):
    """The backend did not load; the message is one line."""


class LoadErrorItem(pytest.Item):
    """``qcheck[SPEC]::load``: fails with the one-line load error."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        raise QcheckLoadError(self.message)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, QcheckLoadError):
            return f"qcheck: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.nodeid


class NotProvidedItem(pytest.Item):
    """``qcheck[SPEC]::<op> not provided``: skipped, so the report shows what was not graded."""

    def __init__(self, *, op: str, backend_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.op = op
        self.backend_name = backend_name

    def runtest(self) -> None:
        pytest.skip(f"{self.backend_name} does not provide {self.op}")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.nodeid


@dataclasses.dataclass(frozen=True)
class Failure:
    """What a failing check showed, for :meth:`QcheckItem.repr_failure`."""

    result: CheckResult
    backend: str
    conventions: str
    fingerprints: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    counterexample_file: str | None = None
    replay_command: str | None = None
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        r = self.result
        lines = [f"qcheck {r.verdict}: {r.key} {r.name} of {self.backend} (conventions: {self.conventions})"]
        lines.append(f"  {r.message}")
        if r.counterexample is not None:
            lines.append(f"  counterexample: {r.counterexample}")
        if self.fingerprints:
            lines.append(f"  behaves like (known-bad variants): {', '.join(self.fingerprints)}")
        lines += [f"  hint: {hint}" for hint in self.hints]
        if self.counterexample_file:
            lines.append(f"  saved: {self.counterexample_file}")
        if self.replay_command:
            lines.append(f"  replay: {self.replay_command}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


class QcheckFailed(Exception):
    """A check's verdict was FAIL or ERROR."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.text())
        self.failure = failure


class QcheckItem(pytest.Item):
    """One check of one op of one backend, run by :func:`qcheck.checks.run_check`."""

    def __init__(self, *, check: Check, backend: LoadedBackend, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.backend = backend

    @property
    def qcheck_session(self) -> QcheckSession:
        parent = self.parent
        assert isinstance(parent, QcheckBackend)
        return parent.run

    def runtest(self) -> None:
        from qcheck.checks import run_check
        from qcheck.grade import FAILING

        check, backend, options = self.check, self.backend, self.qcheck_session.options
        if check.requirement == "STE-1" and not backend.differentiable:
            pytest.skip("the backend declares differentiable = False")
        impl = backend.implementation(check.op)
        result = run_check(check, impl, backend.conventions, profile=options.profile, base_seed=options.seed)
        self.user_properties += [
            ("qcheck_verdict", result.verdict),
            ("qcheck_examples", result.examples),
            ("qcheck_near_boundary", result.near_boundary),
        ]
        if result.verdict == "NOT APPLICABLE":
            pytest.skip(result.message)
        if result.verdict in FAILING:
            raise QcheckFailed(self._diagnose(result))

    def _diagnose(self, result: CheckResult) -> Failure:
        """Fingerprints, hints and the saved counterexample of a failure; a step that breaks is a
        note in the report, never a lost verdict."""
        from qcheck.counterexample import save_counterexample
        from qcheck.grade import fingerprint, hints

        backend, options = self.backend, self.qcheck_session.options
        conventions = backend.conventions.describe()
        failure = Failure(result, backend.name, conventions)
        notes: list[str] = []
        impl = backend.implementation(self.check.op)
        try:
            failure = dataclasses.replace(
                failure,
                fingerprints=fingerprint(self.check, result.witness, impl, backend.conventions),
                hints=hints(self.check.op, [result.witness], impl, backend.conventions),
            )
        except Exception as exc:
            notes.append(f"fingerprinting failed: {type(exc).__name__}: {exc}")
        try:
            path, command = save_counterexample(
                options.report_dir, backend.spec, backend.name, result, conventions_text=conventions
            )
            failure = dataclasses.replace(failure, counterexample_file=path, replay_command=command)
        except Exception as exc:
            notes.append(f"the counterexample could not be saved: {type(exc).__name__}: {exc}")
        if failure.fingerprints:
            self.user_properties.append(("qcheck_behaves_like", ", ".join(failure.fingerprints)))
        return dataclasses.replace(failure, notes=tuple(notes))

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, QcheckFailed):
            return excinfo.value.failure.text()
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.check.key} {self.check.name} of {self.backend.name}"
