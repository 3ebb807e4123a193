"""A static leaderboard: models x benchmarks with CIs, from directories of Inspect logs.

The page is one self-contained HTML file (inline CSS, JS and SVG charts; nothing fetched), so
it can be mailed, attached to a CI run or served from any static host. Each cell links to the
log it came from (copied next to the page by default, so the folder travels as a whole).

When a model has several logs for one benchmark, the one rule of `caml_evals.logs` picks one
(the newest successful log, else the newest) and the others are listed with their status, never
silently merged: merging runs with different settings hides changes. A log that cannot be read
fails the build with one line naming it (a board that quietly leaves out a run misleads); move
it away or fix it. Each column's headline comes from the task's card (`stats.headline`).
The page and its JSON are written whole or not at all (`caml_evals.outputs`).

Logs of a task run with a depth probe (`-T prefill=...`, `pushback=...`, `cot=true`,
`steer=...`) are not cells (a probed run is not the benchmark's score): they are the "Depth
probes" table, each beside the plain run of the same model and task, with its differences
paired by sample id (`caml_evals.probes.report.probe_results`, the one implementation the
suite and summary use too).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from ..logs import LogChoice, choose_entries, find_logs, log_entry, read_log_header
from ..outputs import atomic_path, ensure_dir, writable_dir, write_text
from ..probes.record import PLAIN
from ..probes.report import PROBE_COLUMNS, ProbeResult, probe_results, probe_table
from ..scoring.judge_settings import judge_text, logged_judge
from .frame import (
    MISSING_RATE_KEY,
    OVERALL_KEY,
    LogRef,
    ScoreFrameError,
    score_frame,
)
from .headline import headline_key
from .logcompare import is_bookkeeping, summarize_frame
from .models import Summary
from .report import _nan_to_none, fmt, short_task

TEMPLATES = Path(__file__).parent / "templates"


class Cell(BaseModel):
    """One model on one benchmark."""

    model: str
    task: str
    headline: str = Field(default=OVERALL_KEY, description="The score key `overall` summarises")
    overall: Summary = Field(description="The headline key's summary (named for compatibility)")
    dimensions: dict[str, Summary] = Field(
        default_factory=dict, description="Every other score key (bookkeeping left out)"
    )
    log: str = Field(description="The log the numbers come from")
    log_href: str = ""
    other_logs: list[str] = Field(default_factory=list, description="Older/failed logs not used")
    other_log_status: list[str] = Field(
        default_factory=list, description="The status of each of `other_logs`"
    )
    status: str = "success"
    judge: str = Field(
        default="-",
        description="The judge of the log (grader models and settings, scoring.judge_settings): "
        "two cells graded by different judges differ by the instrument as much as by the model",
    )
    epochs: int = 1


class Leaderboard(BaseModel):
    title: str
    generated: str
    models: list[str]
    tasks: list[str]
    headlines: dict[str, str] = Field(
        default_factory=dict, description="task -> its headline score key (the column's label)"
    )
    cells: list[Cell]
    probes: list[ProbeResult] = Field(
        default_factory=list, description="Probed runs beside the plain run of model and task"
    )
    settings: dict[str, object]

    def cell(self, model: str, task: str) -> Cell | None:
        return next((c for c in self.cells if c.model == model and c.task == task), None)


def _choose_logs(paths: Sequence[LogRef]) -> list[LogChoice]:
    """One log per (model, task) by the rule of `caml_evals.logs`; an unreadable log is a
    LogReadError naming it."""
    return choose_entries(log_entry(p) for p in paths)


def build_leaderboard(
    log_dirs: Sequence[LogRef],
    *,
    scorer: str | None = None,
    ci: float = 0.95,
    n_resamples: int = 2_000,
    seed: int | None = 0,
    method: str = "percentile",
    title: str = "caml-evals leaderboard",
) -> Leaderboard:
    """Summaries (headline + every other key) of every model x benchmark under `log_dirs`.

    The headline of a benchmark is one key for all its models: the first of its card's headline
    metrics with any value in any model's log (`headline.headline_key_for`; a task without a
    card: the generic `choose_headline`); the column shows its name. A missing path or an
    unreadable log is a LogReadError naming it.
    """
    paths = find_logs(log_dirs)
    if not paths:
        where = ", ".join(str(p) for p in log_dirs)
        raise ScoreFrameError(f"{where}: no eval logs (.eval or .json) found")
    choices = _choose_logs(paths)
    chosen = {(c.model, c.log.task): c for c in choices if c.probe == PLAIN}
    frames = {key: score_frame([Path(c.log.path)], scorer) for key, c in chosen.items()}
    headlines: dict[str, str] = {}
    for task in sorted({t for _, t in chosen}):
        # one headline per benchmark column (the card's), from every model's rows of it
        rows = pd.concat([f for (_, t), f in frames.items() if t == task])
        headline = headline_key(rows, task)
        if headline is not None:
            headlines[task] = headline
    cells: list[Cell] = []
    for (model, task), choice in sorted(chosen.items()):
        path, status = choice.log.path, choice.log.status
        others = [o.path for o in choice.others]
        frame = frames[(model, task)]
        headline = headlines.get(task)
        if headline is None:
            continue
        keys = [k for k in dict.fromkeys(frame["key"]) if k != MISSING_RATE_KEY]
        keys = [headline] + [k for k in keys if k != headline]
        by_key = summarize_frame(
            frame, keys, ci=ci, n_resamples=n_resamples, seed=seed, method=method
        )
        top = by_key.pop(headline)
        dims = {k: v for k, v in by_key.items() if not is_bookkeeping(k)}
        cells.append(
            Cell(
                model=model,
                task=task,
                headline=headline,
                overall=top,
                dimensions=dims,
                log=str(path),
                other_logs=others,
                other_log_status=[o.status for o in choice.others],
                status=status,
                epochs=int(frame["epoch"].max()),
                judge=judge_text(logged_judge(read_log_header(path))),
            )
        )
    models = sorted({c.model for c in cells})
    tasks = sorted({c.task for c in cells})
    return Leaderboard(
        title=title,
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        models=models,
        tasks=tasks,
        headlines={t: headlines[t] for t in tasks},
        cells=cells,
        probes=probe_results(choices),
        settings={
            "ci": ci,
            "n_resamples": n_resamples,
            "seed": seed,
            "method": method,
            "scorer": scorer,
            "cluster": "question_id (else sample id)",
        },
    )


# ------------------------------------------------------------------ rendering


def dimension_svg(dims: dict[str, Summary], *, width: int = 560, bar_height: int = 18) -> str:
    """Horizontal bars (mean) with CI whiskers, one per dimension, as inline SVG."""
    items = list(dims.items())  # dimensions with no grade at all stay visible, marked missing
    if not items:
        return '<p class="note">No dimension scores.</p>'
    label_w, right_pad, top = 220, 60, 6
    plot_w = width - label_w - right_pad
    values = [v for _, s in items for v in (s.mean, s.ci_low, s.ci_high) if not math.isnan(v)]
    lo, hi = min([0.0, *values]), max([1.0, *values])

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    height = top * 2 + bar_height * len(items) + 16
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="dimchart" width="{width}" height="{height}" '
            f'role="img" aria-label="per-dimension scores">'
        )
    ]
    for i, (name, s) in enumerate(items):
        y = top + i * bar_height
        label = html.escape(name if len(name) <= 32 else name[:31] + "…")
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" font-size="11">'
            f"<title>{html.escape(name)}</title>{label}</text>"
        )
        if math.isnan(s.mean):
            parts.append(
                f'<text x="{label_w + 4}" y="{y + bar_height * 0.7:.1f}" font-size="11" fill="#a15c00">'
                f"no grade ({s.n_missing} missing)</text>"
            )
            continue
        parts.append(
            f'<rect x="{x(min(0.0, s.mean)):.1f}" y="{y + 3}" width="{abs(x(s.mean) - x(0.0)):.1f}" '
            f'height="{bar_height - 6}" fill="#6b9bd1"><title>{html.escape(name)}: {fmt(s.mean)} '
            f"[{fmt(s.ci_low)}, {fmt(s.ci_high)}], n={s.n}, questions={s.n_clusters}, missing={s.n_missing}"
            "</title></rect>"
        )
        if not (math.isnan(s.ci_low) or math.isnan(s.ci_high)):
            cy = y + bar_height / 2
            parts.append(
                f'<line x1="{x(s.ci_low):.1f}" y1="{cy}" x2="{x(s.ci_high):.1f}" y2="{cy}" stroke="#222" stroke-width="1.5"/>'
            )
        parts.append(
            f'<text x="{width - right_pad + 4}" y="{y + bar_height * 0.7:.1f}" font-size="11">{fmt(s.mean, 2)}</text>'
        )
    axis_y = top + bar_height * len(items) + 2
    parts.append(
        f'<line x1="{x(lo):.1f}" y1="{axis_y}" x2="{x(hi):.1f}" y2="{axis_y}" stroke="#888"/>'
    )
    for tick in np.linspace(lo, hi, 5):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 12}" font-size="9" text-anchor="middle">{tick:.2f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(board: Leaderboard) -> str:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["fmt"] = fmt
    env.filters["short"] = short_task
    env.filters["sortvalue"] = lambda v: "" if v is None or math.isnan(v) else repr(float(v))
    charts = {(c.model, c.task): dimension_svg(c.dimensions) for c in board.cells if c.dimensions}
    return env.get_template("leaderboard.html.j2").render(
        board=board,
        charts=charts,
        probe_columns=PROBE_COLUMNS,
        probe_rows=probe_table(board.probes),
    )


def write_site(board: Leaderboard, out_dir: str | Path, *, copy_logs: bool = True) -> Path:
    """index.html + leaderboard.json (+ logs/ copies) under `out_dir`; returns the page path.

    An unwritable `out_dir` is an OutputError naming it, raised before anything is written;
    each file appears whole or not at all (temp file, then rename).
    """
    out = writable_dir(out_dir)
    cells = []
    used_names: set[str] = set()
    copies: list[tuple[Path, Path]] = []
    for cell in board.cells:
        src = Path(cell.log)
        if copy_logs:
            name = src.name
            while name in used_names:
                name = f"{len(used_names)}-{src.name}"
            used_names.add(name)
            copies.append((src, out / "logs" / name))
            href = f"logs/{name}"
        else:
            href = Path(os.path.relpath(src.resolve(), out.resolve())).as_posix()
        cells.append(cell.model_copy(update={"log_href": href}))
    board = board.model_copy(update={"cells": cells})
    page_text = render_html(board)
    data = json.dumps(_nan_to_none(board.model_dump(mode="json")), indent=2, ensure_ascii=False)
    for src, dst in copies:
        ensure_dir(dst.parent)
        with atomic_path(dst) as tmp:
            shutil.copy2(src, tmp)
    write_text(out / "leaderboard.json", data)
    return write_text(out / "index.html", page_text)
