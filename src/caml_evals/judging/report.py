"""Render an agreement analysis as one self-contained HTML file (plots inlined) and JSON.

The HTML has no external resources: plots are PNGs drawn with matplotlib's Agg backend and
embedded as base64, so the file can be mailed or attached to a paper's supplement as is.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..jsonsafe import nan_to_none
from ..outputs import write_text
from ..scoring.judge_settings import judge_text
from .analysis import CEILING_METRICS, VARIANT_METRICS

_ENV = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=select_autoescape(["html", "j2"]),
)
CEILING_LABEL = "humans (ceiling)"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_metric(report: dict, metric: str, with_ceiling: bool, title: str) -> str:
    """Horizontal bars per scope (overall + dimensions), one bar per variant, with CIs."""
    scopes = list(report["scopes"])
    series: list[tuple[str, list[dict]]] = []
    if with_ceiling:
        series.append(
            (CEILING_LABEL, [report["scopes"][s]["ceiling"]["metrics"][metric] for s in scopes])
        )
    for v in report["variants"]:
        series.append(
            (
                v["name"],
                [report["scopes"][s]["variants"][v["name"]]["metrics"][metric] for s in scopes],
            )
        )
    n_s, n_v = len(scopes), len(series)
    height = 0.8 / max(n_v, 1)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.28 * n_s * n_v + 1.2)))
    colors = plt.get_cmap("tab10")
    for j, (name, cells) in enumerate(series):
        y = np.arange(n_s) + (j - (n_v - 1) / 2) * height
        vals = np.array([np.nan if c["value"] is None else c["value"] for c in cells])
        lo = np.array([np.nan if c["lo"] is None else c["lo"] for c in cells])
        hi = np.array([np.nan if c["hi"] is None else c["hi"] for c in cells])
        err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
        # the same colour for a variant in every plot, with or without the ceiling bar
        color = "0.55" if name == CEILING_LABEL else colors((j - int(with_ceiling)) % 10)
        ax.barh(
            y,
            np.nan_to_num(vals),
            height=height,
            color=color,
            label=name,
            xerr=np.nan_to_num(err),
            ecolor="0.2",
            capsize=2,
        )
        for yy, vv in zip(y, vals):
            if np.isnan(vv):
                ax.text(0, yy, " undefined", va="center", fontsize=7, color="0.4")
    ax.set_yticks(np.arange(n_s))
    ax.set_yticklabels(scopes, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel(metric)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def plot_confusions(report: dict, scope: str = "overall") -> str:
    """One heatmap per variant for one scope (overall or a dimension): rows = human majority,
    columns = judge (snapped to the scale)."""
    variants = report["variants"]
    scale = report["data"]["scale"]
    labels = ["no" if s == 0 else "yes" if s == 1 else f"{s:g}" for s in scale]
    n = len(variants)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, v in zip(axes.ravel(), variants):
        C = np.array(report["scopes"][scope]["variants"][v["name"]]["confusion"])
        ax.imshow(C, cmap="Blues")
        for (i, j), c in np.ndenumerate(C):
            ax.text(
                j,
                i,
                str(c),
                ha="center",
                va="center",
                color="white" if c > C.max() / 2 else "black",
                fontsize=9,
            )
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlabel("judge", fontsize=8)
        ax.set_ylabel("human majority", fontsize=8)
        ax.set_title(v["name"], fontsize=8)
    if scope != "overall":
        fig.suptitle(scope, fontsize=10)
    fig.tight_layout()
    return _png(fig)


# Per judge variant, beside agreement (`caml_evals.judging.checks`): each a cell with its CI,
# None = not measured
JUDGE_CHECK_ROWS = (
    (
        "order_effect",
        "order effect: mean |grade, one criteria order - the reverse| (criteria_order=both)",
    ),
    (
        "repeat_agreement",
        "judge-repeat agreement: items graded alike in every repeat (judge_repeats)",
    ),
    ("length_corr_judge", "Spearman of the judge's grades with answer length"),
    ("length_corr_human", "Spearman of the human mean with answer length (same items)"),
    ("length_corr_diff", "judge - human length correlation (> 0: the judge rewards length more)"),
)


def _check(cell: dict | None) -> str:
    return "not measured" if cell is None else _fmt(cell)


def _fmt(cell: dict | None) -> str:
    if cell is None or cell.get("value") is None:
        return "undefined"
    if cell.get("lo") is None:
        return f"{cell['value']:.3f}"
    return f"{cell['value']:.3f} [{cell['lo']:.3f}, {cell['hi']:.3f}]"


def render_html(report: dict) -> str:
    plots = {
        "pairwise_kappa": plot_metric(
            report,
            "pairwise_kappa",
            True,
            "Cohen's kappa with individual human raters (grey: human vs human)",
        ),
        "agreement": plot_metric(report, "agreement", False, "Agreement with the human majority"),
        "alpha_nominal": plot_metric(
            report,
            "alpha_nominal",
            True,
            "Krippendorff's alpha (nominal): humans only vs humans + judge",
        ),
        "confusion": plot_confusions(report),
    }
    confusion_by_dimension = {d: plot_confusions(report, d) for d in report["data"]["dimensions"]}
    template = _ENV.get_template("report.html")
    return template.render(
        report=report,
        plots=plots,
        confusion_by_dimension=confusion_by_dimension,
        fmt=_fmt,
        fmt_check=_check,
        ceiling_metrics=CEILING_METRICS,
        variant_metrics=VARIANT_METRICS,
        per_dimension_metrics=(
            "kappa",
            "agreement",
            "pairwise_kappa",
            "alpha_nominal",
            "spearman",
            "bias",
        ),
        report_json=json.dumps(report, indent=1),
        judge_checks=report.get("judge_checks") or {},
        judge_check_rows=JUDGE_CHECK_ROWS,
        judge_text=judge_text,
    )


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Both files rendered first, then each written atomically (an unwritable folder is an
    OutputError, and no half-written report is left)."""
    out = Path(out_dir)
    json_path = out / "agreement.json"
    html_path = out / "agreement.html"
    report = nan_to_none(report)  # strict JSON readers (browsers, jq) reject NaN
    json_text, html_text = json.dumps(report, indent=2, allow_nan=False), render_html(report)
    write_text(json_path, json_text)
    write_text(html_path, html_text)
    return html_path, json_path
