"""Which judge graded each arm of a comparison, and whether the arms were judged alike.

A difference between two checkpoints judged by different grader models, or with different
grader settings (temperature, criteria order, repeats), is partly a difference of the instrument.
`caml-evals compare` therefore prints, writes to comparison.md and records in comparison.json the
judge of every arm and task (`caml_evals.scoring.judge_settings.logged_judge`: the log's grader
models and `judge_settings`), and a note for every task whose arms were judged differently.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..logs import read_log_header
from ..scoring.judge_settings import judge_text
from .frame import _uri_to_path


def _judge_of(log: str) -> dict[str, Any] | None:
    from ..scoring.judge_settings import logged_judge

    if log.startswith("<"):  # an EvalLog held in memory only: no file to read the header of
        return None
    return logged_judge(read_log_header(_uri_to_path(log)))


def judge_report(arms: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """`arms`: label -> score frame. Per arm and task, each log's judge (None: no judge) and its
    one-line text; `mismatches`: the tasks whose arms were judged differently."""
    judges: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for label, frame in arms.items():
        per_task: dict[str, list[dict[str, Any]]] = {}
        pairs = frame[["task", "log"]].drop_duplicates()
        for task, log in zip(pairs["task"], pairs["log"]):
            judge = _judge_of(str(log))
            per_task.setdefault(str(task), []).append(
                {"log": str(log), "judge": judge, "text": judge_text(judge)}
            )
        judges[label] = per_task
    mismatches = []
    tasks = dict.fromkeys(t for per_task in judges.values() for t in per_task)
    for task in tasks:
        texts = {
            label: sorted({entry["text"] for entry in per_task[task]})
            for label, per_task in judges.items()
            if task in per_task
        }
        if len({tuple(t) for t in texts.values()}) > 1:
            mismatches.append({"task": task, "judges": texts})
    return {"arms": judges, "mismatches": mismatches}


def render_judges(report: dict[str, Any]) -> str:
    """Plain text: each arm's judge per task, then a warning per task judged differently."""
    lines = ["judge per arm (grader models and settings, from each log):"]
    for label, per_task in report["arms"].items():
        for task, entries in per_task.items():
            for text in dict.fromkeys(e["text"] for e in entries):
                lines.append(f"  {label}  {task}: {text}")
    for m in report["mismatches"]:
        which = "; ".join(f"{label}: {' | '.join(t)}" for label, t in m["judges"].items())
        lines.append(
            f"warning: {m['task']}: the arms were judged differently ({which}); part of their "
            "difference may be the judge's"
        )
    return "\n".join(lines)
