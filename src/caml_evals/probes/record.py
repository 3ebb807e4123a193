"""Which probe a log ran: the task metadata `probe`, its short label, and its baseline.

A probed run keeps the task name, dataset and sample ids of the plain run (`with_probe`), so
the log finder cannot tell the two apart by task and model. The label tells them apart: the
one log rule of `caml_evals.logs` chooses one log per (task, model, probe label), and the
suite, summary and leaderboard put a probe's numbers beside the plain run's.

The *baseline* of a probed run is the run its scores are differences from:

- prefill and steering change the answer of the same conversation, so they are compared with
  the run that has every other probe setting but not them (`-T prefill=x` with the plain run,
  `-T cot=true -T prefill=x` with the `-T cot=true` run, `-T steer=... ` with the unsteered run);
- pushback and the reasoning split are measured inside their own log (first turn vs final
  answer, reasoning vs answer) and need no other run.

This module imports only the standard library: `caml_evals.logs` uses it for every log header.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROBE_METADATA_KEY = "probe"  # Task (eval) metadata: {"prefill": ..., "pushback": ..., "cot": ...}
ACROSS_RUN_KEYS = ("prefill", "prefill_text", "prefill_log", "steer", "steer_alpha")
PLAIN = ""  # the label of a run without a probe


def record_of(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The probe record in an eval's metadata ({} for a plain run)."""
    return dict((metadata or {}).get(PROBE_METADATA_KEY) or {})


def probe_label(record: Mapping[str, Any]) -> str:
    """A short, stable name of the probe settings ('' for none), e.g.
    `cot, prefill=dismissive_irrelevant` or `steer=out/direction.pt@4`."""
    parts = []
    if record.get("cot"):
        parts.append("cot")
    if record.get("prefill"):
        prefill = f"prefill={record['prefill']}"
        if record.get("prefill_log"):
            prefill += f"({Path(str(record['prefill_log'])).name})"
        parts.append(prefill)
    if record.get("pushback"):
        parts.append(f"pushback={record['pushback']}")
    if record.get("steer"):
        parts.append(f"steer={record['steer']}@{float(record.get('steer_alpha') or 0):g}")
    return ", ".join(parts)


def baseline_record(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record of the run a probed run is compared with (module docstring); None when the
    probe is measured inside its own log (no prefill, no steering)."""
    if not any(record.get(k) for k in ("prefill", "steer")):
        return None
    return {k: v for k, v in record.items() if k not in ACROSS_RUN_KEYS}
