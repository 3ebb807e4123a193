"""Forest plot of comparisons: one line per task x key, the difference and its CI against 0.

Headless by construction (Agg backend): the CLI runs on CI machines and servers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .models import ComparisonRow
from .report import fmt_p, short_task


def forest_plot(
    rows: Sequence[ComparisonRow], path: str | Path, *, alpha: float | None = None
) -> Path:
    """Write a PNG: a panel per contrast (B vs A), significant rows (adjusted p) in colour."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contrasts: dict[str, list[ComparisonRow]] = {}
    for r in rows:
        contrasts.setdefault(f"{r.label_b} vs {r.label_a}", []).append(r)
    n_max = max((len(v) for v in contrasts.values()), default=1)
    fig, axes = plt.subplots(
        len(contrasts) or 1,
        1,
        figsize=(9, 1.2 + 0.32 * n_max * max(len(contrasts), 1)),
        squeeze=False,
    )
    for ax, (title, items) in zip(axes[:, 0], contrasts.items() or [("no comparisons", [])]):
        level = alpha if alpha is not None else (1 - items[0].ci if items else 0.05)
        for i, r in enumerate(items):
            y = len(items) - 1 - i
            significant = not math.isnan(r.p_adjusted) and r.p_adjusted < level
            colour = ("tab:green" if r.diff > 0 else "tab:red") if significant else "tab:gray"
            if not (math.isnan(r.ci_low) or math.isnan(r.ci_high)):
                ax.plot([r.ci_low, r.ci_high], [y, y], color=colour, linewidth=2)
            if not math.isnan(r.diff):
                ax.plot([r.diff], [y], "o", color=colour)
            ax.annotate(
                f"p adj {fmt_p(r.p_adjusted)}",
                xy=(1.01, y),
                xycoords=("axes fraction", "data"),
                va="center",
                fontsize=8,
            )
        ax.axvline(0, color="black", linewidth=0.8, linestyle="--")
        ax.set_yticks(range(len(items)))
        ax.set_yticklabels([f"{short_task(r.task)} · {r.key}" for r in reversed(items)], fontsize=8)
        ax.set_ylim(-0.7, max(len(items), 1) - 0.3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("difference B - A (with CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
