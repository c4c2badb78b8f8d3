"""The benchmark reports: ``results.json``, ``results.md`` (every target with its verdict) and
``throughput.png`` (GB/s of input against tensor size)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._support import Run, Target, Timing

PLOT_ORDER = ("copy", "faq-weight", "faq-act", "b158_quantize", "b1_quantize", "act_quantize")
PLOT_STYLE = {
    "copy": {"color": "black", "linestyle": "--", "marker": "o", "label": "copy limit: dst.copy_(src)"},
    "faq-weight": {"color": "tab:gray", "linestyle": ":", "marker": "s", "label": "FAQ weight_quant (eager peer)"},
    "faq-act": {"color": "tab:olive", "linestyle": ":", "marker": "D", "label": "FAQ activation_quant (eager peer)"},
    "b158_quantize": {"color": "tab:blue", "linestyle": "-", "marker": "^", "label": "qcheck b158_quantize"},
    "b1_quantize": {"color": "tab:orange", "linestyle": "-", "marker": "v", "label": "qcheck b1_quantize"},
    "act_quantize": {"color": "tab:green", "linestyle": "-", "marker": "P", "label": "qcheck act_quantize"},
}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(data)
        temporary = Path(handle.name)
    temporary.chmod(0o644)  # NamedTemporaryFile creates 0600
    os.replace(temporary, path)


def _target_row(target: Target) -> dict[str, Any]:
    return {
        "section": target.section,
        "target": target.name,
        "measured": target.measured,
        "comparison": target.comparison,
        "limit": target.limit,
        "unit": target.unit,
        "verdict": target.verdict,
        "note": target.note,
    }


def to_json(run: Run) -> str:
    payload = {
        "schema": "qcheck-bench/1",
        "environment": run.details.get("environment", {}),
        "targets": [_target_row(t) for t in run.targets],
        "timings": [{**dataclasses.asdict(t), "gb_per_s": t.gb_per_s} for t in run.timings.values()],
        "memory": run.details.get("memory", []),
        "memory_method": run.details.get("memory_method", ""),
        "grading": run.details.get("grading", {}),
        "notes": run.notes,
    }
    return json.dumps(payload, indent=1, default=str) + "\n"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "×":
        return f"{value:.3g}×" if value < 100 else f"{value:,.0f}×"
    if unit == "":
        return f"{value:.3g}"
    return f"{value:.3g} {unit.strip()}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _memory_row(m: dict[str, Any]) -> list[str]:
    head = [m["impl"], "×".join(map(str, m["shape"])), m["dtype"]]
    if "failed" in m:
        cap = f" under the {m['cap_bytes'] / 2**30:g} GiB data limit" if m.get("cap_bytes") else ""
        failed = f"failed{cap} after {m.get('seconds', 0):.0f} s: {m['failed'][:80]}"
        return [*head, f"{m.get('input_bytes', 0) / 2**20:,.0f}", "—", "—", "—", failed, "—", m.get("method", "?")]
    return [
        *head,
        f"{m['input_bytes'] / 2**20:,.0f}",
        f"{m['output_bytes'] / 2**20:,.1f}",
        f"{m['peak_extra_bytes'] / 2**20:,.0f}",
        f"{m['peak_extra_fraction']:.2f}",
        f"{m['peak_rss_bytes'] / 2**30:.2f}",
        f"{m['seconds']:.1f}",
        m["method"],
    ]


def _peer_lines(run: Run) -> list[str]:
    """Each reference beside the copy and its FAQ peer at every size measured (from the timings)."""
    by_key = {(t.impl, t.shape): t for t in run.timings.values() if t.key.endswith(":float32")}
    rows = []
    for (impl, shape), timing in sorted(by_key.items(), key=lambda item: (math.prod(item[0][1]), item[0][0])):
        peer_name = {"b158_quantize": "faq-weight", "b1_quantize": "faq-weight", "act_quantize": "faq-act"}.get(impl)
        if peer_name is None:
            continue
        copy, peer = by_key.get(("copy", shape)), by_key.get((peer_name, shape))
        rows.append(
            [
                impl,
                "×".join(map(str, shape)),
                _fmt(timing.median_s / copy.median_s, "×") if copy else "—",
                _fmt(peer.median_s / copy.median_s, "×") if copy and peer else "—",
                _fmt(timing.median_s / peer.median_s, "×") if peer else "—",
            ]
        )
    if not rows:
        return []
    header = ["reference", "shape", "reference / copy", "FAQ peer / copy", "reference / FAQ peer"]
    return ["", "## Every size: references against the copy and the FAQ peer", "", *_table(header, rows)]


def to_markdown(run: Run) -> str:
    env = run.details.get("environment", {})
    load = env.get("load_1min_during_run", {})
    lines = [
        "# qcheck benchmarks (issue 6)",
        "",
        f"Scale `{env.get('scale', '?')}`, started {env.get('started', '?')}; torch {env.get('torch', '?')}, "
        f"torch threads: {env.get('torch_threads', '?')} ({env.get('torch_threads_note', '')}), "
        f"{env.get('cpu_count', '?')} CPUs; "
        f"Python {env.get('python', '?')}.",
        "",
        f"Machine load: at start `{env.get('uptime_at_start', '?')}`; at end `{env.get('uptime_at_end', '?')}`; "
        + (
            f"1-minute load average during the run min {load['min']:.2f} / mean {load['mean']:.2f} / "
            f"max {load['max']:.2f} ({load['samples']} samples)."
            if load
            else "no load samples."
        ),
    ]
    busy = env.get("busy_processes_at_start", []) + env.get("busy_processes_at_end", [])
    if busy:
        lines += ["", "Other busy processes (pid, %CPU, command) at start/end: " + "; ".join(f"`{b}`" for b in busy)]
    lines += [
        "",
        "Ratios are between measurements of the same session (medians over rounds, after one warm-up call), "
        "so load slows both sides; absolute times are in `results.json` and `pytest-benchmark.json`.",
        "",
        "## Targets",
        "",
    ]
    rows = [
        [
            t.section,
            t.name,
            "— (reported)" if t.limit is None else f"{t.comparison} {_fmt(t.limit, t.unit)}",
            _fmt(t.measured, t.unit),
            f"**{t.verdict}**" if t.met is False else t.verdict,
            t.note,
        ]
        for t in run.targets
    ]
    lines += _table(["#", "target", "limit", "measured", "verdict", "note"], rows)
    lines += _peer_lines(run)
    lines += ["", "## Timings", ""]
    timing_rows = [
        [
            t.impl,
            "×".join(map(str, t.shape)),
            f"{t.input_bytes / 1e6:,.1f}",
            f"{t.median_s * 1e3:,.3f}",
            f"{t.min_s * 1e3:,.3f}",
            f"{t.gb_per_s:.3f}",
            f"{t.rounds}×{t.iterations}",
        ]
        for t in run.timings.values()
    ]
    lines += _table(["operation", "shape", "input MB", "median ms", "min ms", "GB/s of input", "rounds"], timing_rows)
    memory = run.details.get("memory", [])
    if memory:
        lines += ["", "## Peak memory", "", run.details.get("memory_method", ""), ""]
        mem_rows = [_memory_row(m) for m in memory]
        lines += _table(
            [
                "operation",
                "shape",
                "dtype",
                "input MiB",
                "outputs MiB",
                "peak extra MiB",
                "extra / input",
                "process peak RSS GiB",
                "s",
                "method",
            ],
            mem_rows,
        )
    grading = run.details.get("grading", {})
    variants = grading.get("variants", [])
    if variants:
        lines += ["", "## Time to detect each known-bad variant (`quick` profile)", "", grading.get("method", ""), ""]
        var_rows = [
            [
                f"`{v['variant']}`",
                v["op"],
                "yes" if v["detected"] else "**NO**",
                v.get("first_failure") or "—",
                f"{v['seconds_to_detect']:.2f}" if v["seconds_to_detect"] is not None else "—",
                str(v["checks_run"]),
            ]
            for v in variants
        ]
        lines += _table(["variant", "op", "detected", "first failing check", "s to detect", "checks run"], var_rows)
    if run.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in run.notes]
    return "\n".join(lines) + "\n"


def plot(run: Run, path: Path) -> Path | None:
    """GB/s of input against elements for the references, the FAQ peers and the copy limit."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        run.notes.append("matplotlib is not installed (the `bench` extra has it): no throughput plot")
        return None
    series: dict[str, list[Timing]] = {}
    for timing in run.timings.values():
        if timing.impl in PLOT_STYLE and timing.key.endswith(":float32"):
            series.setdefault(timing.impl, []).append(timing)
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for impl in PLOT_ORDER:
        points = sorted(series.get(impl, []), key=lambda t: math.prod(t.shape))
        if not points:
            continue
        axes.plot(
            [math.prod(t.shape) for t in points],
            [t.gb_per_s for t in points],
            linewidth=1.8,
            markersize=6,
            **PLOT_STYLE[impl],
        )
    copies = sorted(series.get("copy", []), key=lambda t: math.prod(t.shape))
    if copies:
        axes.plot(
            [math.prod(t.shape) for t in copies],
            [t.gb_per_s / 3 for t in copies],
            color="tab:red",
            linestyle="-.",
            linewidth=1.2,
            label="target: within 3× of the copy",
        )
    env = run.details.get("environment", {})
    load = env.get("load_1min_during_run", {})
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("tensor size (float32 elements)")
    axes.set_ylabel("throughput (GB/s of float32 input)")
    load_text = f", 1-min load {load['min']:.1f}–{load['max']:.1f}" if load else ""
    axes.set_title(
        f"qcheck reference quantizers vs the copy limit and the FAQ formulas\n"
        f"torch {env.get('torch', '?')}, torch threads: {env.get('torch_threads', '?')}, on "
        f"{env.get('cpu_count', '?')} CPUs{load_text}",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_all(run: Run, out: Path) -> list[Path]:
    """results.json always, even if the markdown or the plot fails (the failure becomes a note)."""
    written = []
    try:
        png = plot(run, out / "throughput.png")
    except Exception as exc:  # a rendering bug must not lose the measurements
        run.notes.append(f"throughput.png could not be drawn: {exc!r}")
        png = None
    try:
        markdown: str | None = to_markdown(run)
    except Exception as exc:
        run.notes.append(f"results.md could not be written: {exc!r}")
        markdown = None
    _write(out / "results.json", to_json(run).encode("utf-8"))
    written.append(out / "results.json")
    if markdown is not None:
        _write(out / "results.md", markdown.encode("utf-8"))
        written.append(out / "results.md")
    if png is not None:
        written.append(png)
    return written


def from_json(path: Path) -> Run:
    """A :class:`Run` back from ``results.json`` (to re-render the report without measuring again)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    run = Run()
    for row in payload.get("timings", []):
        fields = {f.name for f in dataclasses.fields(Timing)}
        values = {k: v for k, v in row.items() if k in fields}
        values["shape"] = tuple(values["shape"])
        timing = Timing(**values)
        run.timings[timing.key] = timing
    for row in payload.get("targets", []):
        run.targets.append(
            Target(
                row["section"],
                row["target"],
                row["measured"],
                row["limit"],
                row["comparison"],
                row["unit"],
                row.get("note", ""),
            )
        )
    run.notes = list(payload.get("notes", []))
    run.details = {
        "environment": payload.get("environment", {}),
        "memory": payload.get("memory", []),
        "grading": payload.get("grading", {}),
    }
    if "memory_method" in payload:
        run.details["memory_method"] = payload["memory_method"]
    return run


def main(argv: list[str]) -> int:
    """``python -m benchmarks._report DIR``: re-render DIR/results.md and DIR/throughput.png from
    DIR/results.json."""
    out = Path(argv[0]) if argv else Path("reports/bench")
    for path in write_all(from_json(out / "results.json"), out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
