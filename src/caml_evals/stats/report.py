"""Comparison tables: rich on a terminal, plain text when piped, markdown and JSON for files.

One table layout for all three text forms so a reader sees the same columns everywhere; JSON
carries every field of every row (and the run's settings) for anything downstream.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..jsonsafe import nan_to_none as _nan_to_none
from .models import ComparisonRow

COLUMNS = [
    "contrast",
    "task",
    "key",
    "A [CI]",
    "B [CI]",
    "B - A [CI]",
    "d",
    "p",
    "p adj",
    "n (q)",
    "missing A/B",
    "test",
]


def fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_ci(mean: float, low: float, high: float) -> str:
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]"


def short_task(task: str) -> str:
    return task.split("/", 1)[-1]


def table_rows(rows: Sequence[ComparisonRow]) -> list[list[str]]:
    out = []
    for r in rows:
        out.append(
            [
                f"{r.label_b} vs {r.label_a}",
                short_task(r.task),
                r.key,
                fmt_ci(r.summary_a.mean, r.summary_a.ci_low, r.summary_a.ci_high),
                fmt_ci(r.summary_b.mean, r.summary_b.ci_low, r.summary_b.ci_high),
                f"{fmt(r.diff, 3)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
                fmt(r.effect_size, 2),
                fmt_p(r.p_value),
                fmt_p(r.p_adjusted),
                f"{r.n} ({r.n_clusters})",
                f"{r.n_missing_a}/{r.n_missing_b}",
                ("not testable" if math.isnan(r.p_value) else r.test)
                + ("" if r.paired else " (unpaired)"),
            ]
        )
    return out


def caption(rows: Sequence[ComparisonRow]) -> str:
    if not rows:
        return "No comparisons."
    r = rows[0]
    return (
        f"Means with {r.ci:.0%} {r.method} bootstrap CIs over questions (clusters); "
        f"B - A with a paired/unpaired cluster bootstrap CI; p: {r.alternative} permutation test; "
        f"p adj: {r.adjust} over {len(rows)} comparisons; d: Cohen's d_av; "
        "n (q): observations (questions); missing scores are excluded and counted."
    )


def notes(rows: Sequence[ComparisonRow]) -> list[str]:
    """Each distinct caveat once, with the rows it applies to."""
    by_note: dict[str, list[str]] = {}
    for r in rows:
        for note in r.notes:
            by_note.setdefault(note, []).append(f"{short_task(r.task)}/{r.key}")
    return [f"{note} ({', '.join(dict.fromkeys(where))})" for note, where in by_note.items()]


def render_plain(rows: Sequence[ComparisonRow]) -> str:
    body = table_rows(rows)
    widths = [
        max(len(c), *(len(row[i]) for row in body)) if body else len(c)
        for i, c in enumerate(COLUMNS)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in body]
    lines += ["", caption(rows)] + [f"note: {n}" for n in notes(rows)]
    return "\n".join(lines) + "\n"


def render_markdown(rows: Sequence[ComparisonRow], title: str = "Model comparison") -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in table_rows(rows)]
    lines += ["", caption(rows), ""]
    if notes(rows):
        lines += ["Notes:", ""] + [f"- {n}" for n in notes(rows)] + [""]
    logs = sorted(
        {(r.label_a, tuple(r.logs_a)) for r in rows} | {(r.label_b, tuple(r.logs_b)) for r in rows}
    )
    if logs:
        lines += ["Logs:", ""] + [f"- {label}: {', '.join(paths)}" for label, paths in logs] + [""]
    return "\n".join(lines)


def render_rich(rows: Sequence[ComparisonRow], file: TextIO | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Model comparison", caption=caption(rows), show_lines=False)
    for col in COLUMNS:
        table.add_column(col, no_wrap=col in ("p", "p adj", "d"))
    for r, cells in zip(rows, table_rows(rows)):
        significant = not math.isnan(r.p_adjusted) and r.p_adjusted < 1 - r.ci
        style = ("green" if r.diff > 0 else "red") if significant else None
        table.add_row(*cells, style=style)
    console = Console(file=file or sys.stdout)
    console.print(table)
    for note in notes(rows):
        console.print(f"[yellow]note:[/yellow] {note}", markup=True, highlight=False)


def print_table(rows: Sequence[ComparisonRow], stream: TextIO | None = None) -> None:
    """Rich table on a terminal, plain text when piped (so `| grep` and logs stay readable)."""
    stream = stream or sys.stdout
    if stream.isatty():
        render_rich(rows, stream)
    else:
        stream.write(render_plain(rows))


def to_json(rows: Sequence[ComparisonRow], settings: dict[str, Any]) -> str:
    payload = {"settings": settings, "rows": [r.model_dump(mode="json") for r in rows]}
    return json.dumps(_nan_to_none(payload), indent=2, ensure_ascii=False)


def write_text(path: Path, text: str) -> Path:
    """Write `text` whole or not at all (`caml_evals.outputs.write_text`: temp file + rename;
    an unwritable path is an OutputError naming it)."""
    from ..outputs import write_text as atomic_write_text

    return atomic_write_text(path, text)
