"""Everything Inspect should find through the `inspect_ai` entry point: providers and tasks.

`inspect list tasks` only scans `.py` files under the current directory, so it never shows
installed tasks; `registered_tasks()` (behind `caml-evals tasks`) lists what the entry point
really registers, loading it the way `inspect eval caml_evals/<task>` does.
"""

# ruff: noqa: F401
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .models.providers import caml, scripted
from .tasks import *  # every @task, listed in caml_evals/tasks/__init__.py

ENTRY_POINT_GROUP = "inspect_ai"
PACKAGE = "caml_evals"


def registered_tasks() -> list[dict[str, Any]]:
    """Tasks in Inspect's registry under `caml_evals/`, after loading our entry point.

    Each: name (as `inspect eval` takes it), params, summary (first docstring line). Raises
    a UserError (one line, exit 2 from the CLI) when the package is not installed with its entry point (then `inspect eval
    caml_evals/...` cannot find the tasks either).
    """
    from inspect_ai._util.registry import registry_find, registry_info

    from .errors import UserError

    points = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == PACKAGE]
    if not points:
        raise UserError(
            f"no '{ENTRY_POINT_GROUP}' entry point named {PACKAGE!r}: install the package "
            "(pip install -e .) so Inspect can find its tasks"
        )
    for ep in points:
        ep.load()
    tasks = registry_find(lambda info: info.type == "task" and info.name.startswith(f"{PACKAGE}/"))
    rows = []
    for obj in tasks:
        info = registry_info(obj)
        doc = (getattr(obj, "__doc__", None) or "").strip()
        rows.append(
            {
                "name": info.name,
                "params": list(info.metadata.get("params", [])),
                "summary": doc.splitlines()[0] if doc else "",
            }
        )
    return sorted(rows, key=lambda r: r["name"])
