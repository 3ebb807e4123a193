"""The experiment's results table, rebuilt from the eval logs: score per arm and stage with a
cluster-bootstrap CI, and each arm against the reference arms with a paired permutation
(sign-flip) p-value, Holm-adjusted within each table (one family per `eval.tasks` entry).

Pairs are matched as `caml-evals compare` matches them (`caml_evals.stats.compare_key`: sample
id + variable set + epoch, epochs averaged when the arms ran different epochs): every checkpoint
answers the same questions, so the paired test removes question difficulty from the comparison.
A sample one side lacks (or whose grade is missing) is not a zero: it is excluded and counted.
The p-values are Holm-adjusted within each table; `caml-evals compare` adjusts over all rows it
prints, so its adjusted p-values differ when it is given more than one table's worth.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel

from caml_evals.jsonsafe import nan_to_none

from .config import EvalTask, ExperimentConfig, ResultsSettings
from .experiment import ARM_STAGE, Plan, inspect_model_name, successful_log
from .runcard import now
from .seeds import pooled_summary, stack_seeds


class Cell(BaseModel):
    heading: str  # the eval entry (task, or task · score key, or its label): one table each
    task: str
    key: str
    arm: str
    column: str
    model: str
    log: str | None
    summary: dict[str, Any] | None  # caml_evals.stats.Summary, as JSON
    note: str | None = None  # why there is no summary (no log yet, key absent)
    seed: int = 0  # the training seed of this checkpoint (one cell per seed: per-seed rows)
    # the evaluated model's answers: count, truncated share, mean tokens and words
    # (caml_evals.stats.length; None when the log has no answer records)
    length: dict[str, Any] | None = None


class PooledCell(BaseModel):
    """One arm/stage over all its seeds: two-level bootstrap CI and between-seed SD."""

    heading: str
    arm: str
    column: str
    seeds: list[int]
    summary: dict[str, Any]  # caml_train.seeds.PooledSummary, as JSON
    length: dict[str, Any] | None = None  # answers of every seed together


class ArmComparison(BaseModel):
    heading: str
    task: str
    key: str
    column: str
    arm: str
    reference: str
    comparison: dict[str, Any]  # caml_evals.stats.Comparison: diff = arm - reference
    p_adjusted: float | None
    adjust: str = "holm"
    # between_arms: arm vs a reference arm at one stage; within_arm: the arm after "+SFT N" vs
    # the same arm after its own stage (reference == arm), i.e. what SFT did to it.
    kind: Literal["between_arms", "within_arm"] = "between_arms"
    # `caml-evals compare`'s length-controlled difference (caml_evals.stats.length): the raw
    # per-question difference and its intercept at equal answer length, with CIs
    length_controlled: dict[str, Any] | None = None


class Results(BaseModel):
    name: str
    config_hash: str
    created_at: str
    arms: list[str]
    columns: list[str]
    ci: float
    n_resamples: int
    cells: list[Cell]
    seeds: list[int] = [0]
    pooled: list[PooledCell] = []  # with several seeds: the table's cells
    # pairs are (seed, sample): each seed's checkpoint answers every question
    pairing: str = "by (seed, sample id + variable set + epoch) when both arms ran the same epochs"
    comparisons: list[ArmComparison]
    # planned by the config but not made, with the reason; they stay in the Holm family (as p=1)
    not_compared: list[dict[str, Any]] = []
    exposure: list[dict[str, Any]] = []  # per trained stage: steps and tokens (its run card)
    # corpus-size sweeps: score vs documents per arm and stage (scaling.json / scaling.png)
    scaling: list[dict[str, Any]] = []
    # sft.eval_every: score vs SFT samples per arm and SFT stage (decay.json / decay.png)
    decay: list[dict[str, Any]] = []
    curve_notes: list[str] = []  # decay points planned but not made, with the reason
    # eval.probes: per checkpoint (arm, column, seed) the probe's values (caml_train.probes)
    probes: list[dict[str, Any]] = []
    persona_direction: dict[str, Any] = {}  # where the persona direction came from, its quality
    missing: list[dict[str, Any]]  # per task/arm/column: missing values and their reasons
    failures: list[str] = []


_STAGE_TITLES = {"sft": "SFT"}


def column_title(column: str) -> str:
    """`arm` -> after arm stage; `sft-2500` -> +SFT 2500; `sft-2500@500` -> +SFT 2500, at 500
    samples; any `<stage>-<n>+<stage>-<m>` chain -> one `+STAGE n` per link."""
    if column == ARM_STAGE:
        return "after arm stage"
    chain, _, at = column.partition("@")
    links = []
    for link in chain.split("+"):
        stage, _, n = link.rpartition("-")
        links.append(f"+{_STAGE_TITLES.get(stage, stage)} {n}" if stage else f"+{link}")
    return " ".join(links) + (f", at {at} samples" if at else "")


def _compare(
    entry: EvalTask,
    reference_rows: pd.DataFrame,
    arm_rows: pd.DataFrame,
    column: str,
    arm: str,
    reference: str,
    rs: ResultsSettings,
    kind: Literal["between_arms", "within_arm"],
) -> ArmComparison:
    """arm's rows against the reference rows on the entry's key, with the pairing of
    `caml-evals compare` (sample id + variable set + epoch, epochs averaged when they differ):
    diff = arm - reference. Within an arm the reference is its own stage (`arm/arm`)."""
    from caml_evals.stats import compare_key

    ref_label = reference if kind == "between_arms" else f"{arm}/{ARM_STAGE}"
    arm_label = arm if kind == "between_arms" else f"{arm}/{column}"
    c = compare_key(
        reference_rows,
        arm_rows,
        entry.score_key,
        task=entry.task,
        label_a=ref_label,
        label_b=arm_label,
        ci=rs.ci,
        n_resamples=rs.n_resamples,
        seed=rs.seed,
    )
    return ArmComparison(
        heading=entry.heading(),
        task=entry.task,
        key=entry.score_key,
        column=column,
        arm=arm,
        reference=reference,
        comparison=c.model_dump(),
        p_adjusted=None,
        kind=kind,
    )


def _why_not(
    frames: dict[tuple[str, str, str], dict[int, pd.DataFrame]],
    heading: str,
    sides: list[tuple[str, str]],
) -> str | None:
    absent = [f"{arm}/{column}" for arm, column in sides if (heading, arm, column) not in frames]
    if absent:
        return "no scores for " + " and ".join(absent) + " (no successful eval log, or no key)"
    return None


def _skip(heading: str, column: str, arm: str, ref: str, kind: str, why: str) -> dict[str, Any]:
    return {
        "heading": heading,
        "column": column,
        "arm": arm,
        "reference": ref,
        "kind": kind,
        "reason": why,
    }


def curve_points(
    pooled: list[PooledCell], coords: list[tuple[str, str, str, str, float]], x: str
) -> list[dict[str, Any]]:
    """Curve points from pooled cells: `coords` places a table cell (arm row, column) on a
    curve (line, panel) at x; one point per table heading, with the pooled mean and its CI.
    The one builder of the scaling and the decay curves."""
    where: dict[tuple[str, str], list[tuple[str, str, float]]] = {}
    for arm, column, line, panel, at in coords:
        where.setdefault((arm, column), []).append((line, panel, at))
    out = []
    for c in pooled:
        for line, panel, at in where.get((c.arm, c.column), []):
            s = c.summary
            out.append(
                {
                    "heading": c.heading,
                    "arm": line,
                    "column": panel,
                    "cell": c.column,
                    x: at,
                    "mean": s["mean"],
                    "ci_low": s["ci_low"],
                    "ci_high": s["ci_high"],
                    "n_seeds": s["n_seeds"],
                }
            )
    return sorted(out, key=lambda r: (r["heading"], r["column"], r["arm"], r[x]))


def curve_plot(
    points: list[dict[str, Any]], path: Path, x: str, xlabel: str, log_x: bool = False
) -> Path:
    """Score vs x per line (one panel per table and panel column), CI bands; headless."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(p["heading"], p["column"]) for p in points})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (heading, column) in zip(axes[0], panels):
        for arm in sorted({p["arm"] for p in points}):
            pts = [
                p for p in points if (p["heading"], p["column"], p["arm"]) == (heading, column, arm)
            ]
            pts = [p for p in pts if p["mean"] is not None]
            if not pts:
                continue
            xs = [p[x] for p in pts]
            (line,) = ax.plot(xs, [p["mean"] for p in pts], marker="o", label=arm)
            low = [p["ci_low"] if p["ci_low"] is not None else p["mean"] for p in pts]
            high = [p["ci_high"] if p["ci_high"] is not None else p["mean"] for p in pts]
            ax.fill_between(xs, low, high, alpha=0.15, color=line.get_color())
        if log_x:  # ticks at the measured sizes, written as plain numbers
            from matplotlib.ticker import NullFormatter, ScalarFormatter

            ax.set_xscale("log")
            ticks = sorted(
                {p[x] for p in points if (p["heading"], p["column"]) == (heading, column)}
            )
            ax.set_xticks(ticks)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_title(f"{heading} · {column_title(column)}", fontsize=9)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("score")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def scaling_points(plan: Plan, pooled: list[PooledCell]) -> list[dict[str, Any]]:
    """One point per (table, swept arm, stage, corpus size): the pooled mean and its CI."""
    coords = {
        (st.arm, st.column, st.config_arm, st.column, st.corpus_size)
        for st in plan.stages
        if st.corpus_size is not None and st.point is None
    }
    return curve_points(pooled, sorted(coords), "n_documents")


def scaling_plot(points: list[dict[str, Any]], path: Path) -> Path:
    """Score vs documents per arm (one panel per table and stage), CI bands."""
    return curve_plot(points, path, "n_documents", "documents trained on", log_x=True)


def _sft_samples(st: Any) -> float:
    """SFT samples the stage trained on: its rows x epochs (planned size before it finished)."""
    from .runcard import read_run_card
    from .train import MERGED

    card = read_run_card(st.directory / MERGED)
    n = card.n_rows if card is not None else st.train_config.n_samples
    return float(n * st.train_config.hparams.num_train_epochs)


def decay_coords(plan: Plan) -> tuple[list[tuple[str, str, str, str, float]], list[str]]:
    """Where each cell sits on the decay curves (line: arm row, panel: SFT stage, x: SFT
    samples, 0 for the arm's own stage), averaged over seeds, and the points not made."""
    from .decay import read_point

    xs: dict[tuple[str, str, str], dict[int, float]] = {}  # (row, cell, panel) -> seed -> x
    notes: list[str] = []
    for pt in plan.stages:
        parent = pt.parent
        if pt.point is None or parent is None or pt.directory is None:
            continue
        info = read_point(pt.directory)
        if info is not None and "reason" in info:
            notes.append(f"{pt.label} (checkpoint {pt.point}): not reached: {info['reason']}")
            continue
        at = info["samples"] if info is not None else float(pt.samples or 0)
        xs.setdefault((pt.arm, pt.column, parent.column), {})[pt.seed] = at
        xs.setdefault((pt.arm, parent.column, parent.column), {})[pt.seed] = _sft_samples(parent)
        xs.setdefault((pt.arm, ARM_STAGE, parent.column), {})[pt.seed] = 0.0
    coords = [
        (arm, column, arm, panel, sum(v.values()) / len(v))
        for (arm, column, panel), v in xs.items()
    ]
    # a pref stage after a curve's SFT stage: its own line (`<arm> +pref`), at the SFT samples of
    # its parent, so the curve shows what preference tuning does to the value left by SFT
    curves = {panel for _, _, panel in xs}
    pref_x: dict[tuple[str, str, str], dict[int, float]] = {}
    for st in plan.stages:
        parent = st.parent
        tc = st.train_config
        if tc is None or tc.stage != "pref" or parent is None or parent.column not in curves:
            continue
        pref_x.setdefault((st.arm, st.column, parent.column), {})[st.seed] = _sft_samples(parent)
    coords += [
        (arm, column, f"{arm} {column.removeprefix(panel + '+')}", panel, sum(v.values()) / len(v))
        for (arm, column, panel), v in pref_x.items()
    ]
    return coords, notes


def stage_exposure(plan: Plan) -> list[dict[str, Any]]:
    """Steps and tokens of every trained stage, from its run card (what each arm saw)."""
    from .runcard import read_run_card
    from .train import MERGED

    out = []
    for st in plan.stages:
        if st.directory is None or st.state() == "not reached":
            continue
        card = read_run_card(st.directory / MERGED)
        out.append(
            {
                "arm": st.arm,
                "column": st.column,
                "seed": st.seed,
                "done": card is not None,
                "steps": card.global_step if card else None,
                "tokens_trained": card.tokens_trained if card else None,
                "target_tokens_trained": card.target_tokens_trained if card else None,
                "value_tokens_trained": card.value_tokens_trained if card else None,
                "train_loss": card.train_loss if card else None,
            }
        )
    return out


def build_results(
    config: ExperimentConfig, plan: Plan, failures: list[str] | None = None
) -> Results:
    from caml_evals.stats import adjust_pvalues, score_frame, summarize
    from caml_evals.stats.length import answer_frame, length_summary

    rs = config.results
    cells: list[Cell] = []
    # (heading, arm, column) -> seed -> the key's rows
    frames: dict[tuple[str, str, str], dict[int, pd.DataFrame]] = {}
    # (heading, arm, column) -> seed -> the evaluated model's answer records (length, cut)
    answers: dict[tuple[str, str, str], dict[int, pd.DataFrame]] = {}
    missing: list[dict[str, Any]] = []
    read: dict[tuple[Path, str | None], pd.DataFrame] = {}  # score frames by (log, scorer)
    read_answers: dict[tuple[Path, str | None], pd.DataFrame] = {}
    for ep in plan.evals:
        st, t = ep.stage, ep.task
        log_path = successful_log(ep.log_dir)
        base = {
            "heading": t.heading(),
            "task": t.task,
            "key": t.score_key,
            "arm": st.arm,
            "column": st.column,
            "model": inspect_model_name(
                st.model_spec, config.eval.provider if config.eval else "local"
            ),
            "log": str(log_path) if log_path else None,
            "seed": st.seed,
        }
        if log_path is None:
            cells.append(Cell(**base, summary=None, note="no successful eval log"))
            continue
        if (log_path, t.scorer) not in read:  # entries differing only in score_key share a log
            read[(log_path, t.scorer)] = score_frame([log_path], scorer=t.scorer)
        frame = read[(log_path, t.scorer)]
        sub = (
            frame[frame["key"] == t.score_key]
            .sort_values(["sample_id", "epoch"])
            .reset_index(drop=True)
        )
        if sub.empty:
            keys = sorted(frame["key"].unique())
            cells.append(
                Cell(
                    **base, summary=None, note=f"score key {t.score_key!r} not in log (has {keys})"
                )
            )
            continue
        frames.setdefault((t.heading(), st.arm, st.column), {})[st.seed] = sub
        if (log_path, t.scorer) not in read_answers:
            read_answers[(log_path, t.scorer)] = answer_frame([log_path], scorer=t.scorer)
        said = read_answers[(log_path, t.scorer)]
        answers.setdefault((t.heading(), st.arm, st.column), {})[st.seed] = said
        s = summarize(
            sub["value"].to_numpy(),
            sub["question_id"].to_numpy(),
            ci=rs.ci,
            n_resamples=rs.n_resamples,
            seed=rs.seed,
        )
        cells.append(
            Cell(
                **base,
                summary=nan_to_none(s.model_dump()),
                length=_length(said, length_summary),
            )
        )
        gone = sub[sub["value"].isna()]
        if len(gone):
            missing.append(
                {
                    "heading": t.heading(),
                    "task": t.task,
                    "arm": st.arm,
                    "column": st.column,
                    "seed": st.seed,
                    "n_missing": len(gone),
                    "reasons": {
                        str(k): int(v)
                        for k, v in gone["missing"].fillna("unknown").value_counts().items()
                    },
                }
            )

    seeds = config.seed_list()
    pooled = []
    for (h, arm, col), per_seed in frames.items():
        # The untouched base model is one checkpoint (one log) for every seed: pooled as one
        # draw, not as identical seeds (which would halve its bootstrap variance).
        distinct = _distinct_logs(per_seed)
        said = _distinct_logs(answers[(h, arm, col)])
        pooled.append(
            PooledCell(
                heading=h,
                arm=arm,
                column=col,
                seeds=sorted(distinct),
                summary=nan_to_none(
                    pooled_summary(
                        distinct, ci=rs.ci, n_resamples=min(rs.n_resamples, 2000), seed=rs.seed
                    ).model_dump()
                ),
                length=_length(pd.concat(list(said.values()), ignore_index=True), length_summary),
            )
        )
    stacked = {k: stack_seeds(v) for k, v in frames.items()}
    decay, curve_notes = decay_coords(plan)
    from .probes import probe_rows

    probes, direction = probe_rows(config, plan)
    comparisons: list[ArmComparison] = []
    not_compared: list[dict[str, Any]] = []
    entries = config.eval.tasks if config.eval else []
    arms = list(dict.fromkeys(st.arm for st in plan.stages))  # `<arm>@<n>` rows of a sweep
    for entry in entries:
        heading = entry.heading()
        family: list[ArmComparison] = []
        within: list[ArmComparison] = []
        planned_family = planned_within = 0
        for column in plan.columns:
            for ref in rs.reference_arms:
                if ref not in config.arms:
                    continue
                for arm in arms:
                    if arm == ref:
                        continue
                    if arm in rs.reference_arms and rs.reference_arms.index(
                        arm
                    ) < rs.reference_arms.index(ref):
                        continue  # compared already the other way round
                    planned_family += 1
                    why = _why_not(frames, heading, [(ref, column), (arm, column)])
                    if why:
                        not_compared.append(_skip(heading, column, arm, ref, "between_arms", why))
                        continue
                    family.append(
                        _compare(
                            entry,
                            stacked[(heading, ref, column)],
                            stacked[(heading, arm, column)],
                            column,
                            arm,
                            ref,
                            rs,
                            "between_arms",
                        )
                    )
        for arm in arms:
            for column in plan.columns:
                if column == ARM_STAGE:
                    continue
                planned_within += 1
                why = _why_not(frames, heading, [(arm, ARM_STAGE), (arm, column)])
                if why:
                    not_compared.append(_skip(heading, column, arm, arm, "within_arm", why))
                    continue
                within.append(
                    _compare(
                        entry,
                        stacked[(heading, arm, ARM_STAGE)],
                        stacked[(heading, arm, column)],
                        column,
                        arm,
                        arm,
                        rs,
                        "within_arm",
                    )
                )
        for c in family + within:
            ref_col = c.column if c.kind == "between_arms" else ARM_STAGE
            c.length_controlled = _length_controlled(
                entry, frames, answers, (c.reference, ref_col), (c.arm, c.column), rs.ci
            )
        # Two Holm families per table, each as large as the config plans: a comparison that
        # could not be made counts as p = 1, so missing logs never make the others look better.
        for group, planned in ((family, planned_family), (within, planned_within)):
            ps = [f.comparison["p_value"] for f in group]
            ps += [1.0] * (planned - len(group))
            adjusted = adjust_pvalues(ps, "holm")
            for f, p in zip(group, adjusted.tolist()):
                f.p_adjusted = None if math.isnan(p) else p
                f.comparison = nan_to_none(f.comparison)
            comparisons.extend(group)

    return Results(
        name=config.name,
        config_hash=plan.config_hash,
        created_at=now(),
        arms=arms,
        columns=plan.columns,
        ci=rs.ci,
        n_resamples=rs.n_resamples,
        cells=cells,
        seeds=seeds,
        pooled=pooled if len(seeds) > 1 else [],
        comparisons=comparisons,
        not_compared=not_compared,
        exposure=stage_exposure(plan),
        scaling=scaling_points(plan, pooled),
        decay=curve_points(pooled, decay, "sft_samples"),
        probes=probes,
        persona_direction=direction,
        curve_notes=curve_notes,
        missing=missing,
        failures=list(failures or []),
    )


def _distinct_logs(per_seed: dict[int, pd.DataFrame]) -> dict[int, pd.DataFrame]:
    """The seeds' frames with each log once (the first seed that read it)."""
    out: dict[int, pd.DataFrame] = {}
    seen: set[tuple[str, ...]] = set()
    for s, f in sorted(per_seed.items()):
        logs = tuple(sorted(str(x) for x in f["log"].unique())) if "log" in f else (str(s),)
        if logs and logs in seen:
            continue
        seen.add(logs)
        out[s] = f
    return out


def _length(said: pd.DataFrame, summarize_lengths: Any) -> dict[str, Any] | None:
    """Answer count, truncated share and mean length (None: the log has no answer records)."""
    if said.empty:
        return None
    return nan_to_none(summarize_lengths(said).model_dump())


def _length_controlled(
    entry: EvalTask,
    frames: dict[tuple[str, str, str], dict[int, pd.DataFrame]],
    answers: dict[tuple[str, str, str], dict[int, pd.DataFrame]],
    ref: tuple[str, str],
    arm: tuple[str, str],
    ci: float,
) -> dict[str, Any] | None:
    """`caml-evals compare`'s length-controlled difference (arm - reference) on the entry's
    key: per question (seeds and epochs averaged), the score difference regressed on the
    answer-length difference. None when either side has no answer records."""
    from caml_evals.stats.length import length_controlled_frames

    heading = entry.heading()
    sides = [(heading, *ref), (heading, *arm)]
    said = [pd.concat(list(answers[k].values()), ignore_index=True) for k in sides]
    if any(a.empty for a in said):
        return None
    scored = [pd.concat(list(frames[k].values()), ignore_index=True) for k in sides]
    rows = length_controlled_frames(
        scored[0], scored[1], said[0], said[1], key=entry.score_key, ci=ci
    )
    lc = rows.get(entry.task) or next(iter(rows.values()), None)
    return None if lc is None else nan_to_none(lc.model_dump())


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def _stats_cells(c: ArmComparison) -> str:
    """diff | CI | p | p (Holm) | effect size d | pairs, for either comparison table."""
    m = c.comparison
    return (
        f"{_fmt(m['diff'])} | [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}] | "
        f"{_fmt_p(m['p_value'])} | {_fmt_p(c.p_adjusted)} | {_fmt(m['effect_size'], 2)} | {m['n']}"
    )


def _pairing(c: ArmComparison) -> str:
    m = c.comparison
    if not m.get("paired"):
        return "unpaired (too few matching samples)"
    return str(m.get("pairing") or "paired")


def _length_cell(length: dict[str, Any] | None) -> str:
    if not length or not length["answers"]:
        return "–"
    share = length["truncated_share"]
    cut = "–" if share is None else f"{share:.0%}"
    return (
        f"{_fmt(length['mean_answer_tokens'], 1)} tokens, {cut} cut (answers={length['answers']})"
    )


def _length_table(results: Results, heading: str, cells: list[Cell]) -> list[str]:
    """Mean answer length and truncated share per arm and stage (pooled over seeds)."""
    index = {(c.arm, c.column): c.length for c in cells if c.seed == results.seeds[0]}
    pooled = {(c.arm, c.column): c.length for c in results.pooled if c.heading == heading}
    index |= pooled
    if not any(v and v["answers"] for v in index.values()):
        return []
    lines = [
        "",
        (
            "Answers of the evaluated model: mean length in tokens and the share cut by max_tokens "
            "(a judge may reward length; a cut answer loses what it never said):"
        ),
        "",
        "| arm | " + " | ".join(column_title(c) for c in results.columns) + " |",
        "|---|" + "---|" * len(results.columns),
    ]
    for arm in results.arms:
        row = [_length_cell(index.get((arm, col))) for col in results.columns]
        lines.append(f"| {arm} | " + " | ".join(row) + " |")
    return lines


def _length_controlled_table(comps: list[ArmComparison], pct: int) -> list[str]:
    measured = [c for c in comps if c.length_controlled]
    rows = [c for c in measured if c.length_controlled["raw_diff"] is not None]
    if not rows:
        if not measured:
            return []
        n = max(c.length_controlled["n_questions"] for c in measured)
        return [
            "",
            (
                "Length-controlled differences need 3 or more questions answered by both sides "
                f"(here at most {n}): none computed."
            ),
        ]
    lines = [
        "",
        (
            "Length-controlled difference (as `caml-evals compare`): per question, the score "
            "difference regressed on the answer-length difference; the intercept is the "
            f"difference at equal length. Raw: the mean per-question difference; {pct}% t CIs "
            "(HC1 for the regression)."
        ),
        "",
        (
            "| stage | arm | reference | raw diff [CI] | length-controlled [CI] | slope /100 tokens "
            "| length diff (tokens) | questions |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in rows:
        m = c.length_controlled
        ref = c.reference if c.kind == "between_arms" else "its own stage"
        lines.append(
            f"| {column_title(c.column)} | {c.arm} | {ref} | {_fmt(m['raw_diff'])} "
            f"[{_fmt(m['raw_ci_low'])}, {_fmt(m['raw_ci_high'])}] | {_fmt(m['lc_diff'])} "
            f"[{_fmt(m['lc_ci_low'])}, {_fmt(m['lc_ci_high'])}] | "
            f"{_fmt(m['slope_per_100_tokens'])} | {_fmt(m['mean_length_diff'], 1)} | "
            f"{m['n_questions']} |"
        )
    return lines


def _curves_section(results: Results) -> list[str]:
    """The curve files and, for the decay curves, their points as a table."""
    if not (results.scaling or results.decay or results.curve_notes):
        return []
    lines = ["## Curves", ""]
    if results.scaling:
        lines.append(
            "- `scaling.png` / `scaling.json`: score vs documents trained on, per arm and stage "
            "(corpus_sizes), pooled mean with its CI band."
        )
    if results.decay or results.curve_notes:
        lines.append(
            "- `decay.png` / `decay.json`: score vs SFT samples trained on, per arm and SFT "
            "stage (sft.eval_every; 0 = after the arm's own stage), pooled mean with its CI band."
        )
    panels = sorted({(p["heading"], p["column"]) for p in results.decay})
    for heading, column in panels:
        pts = [p for p in results.decay if (p["heading"], p["column"]) == (heading, column)]
        lines += ["", f"Decay, {heading} · {column_title(column)}:", ""]
        lines += ["| arm | SFT samples | score [CI] |", "|---|---|---|"]
        for q in pts:
            lines.append(
                f"| {q['arm']} | {q['sft_samples']:g} | {_fmt(q['mean'])} "
                f"[{_fmt(q['ci_low'])}, {_fmt(q['ci_high'])}] |"
            )
    if results.curve_notes:
        lines += ["", "Decay points not made:", ""] + [f"- {n}" for n in results.curve_notes]
    return lines + [""]


_PROBE_INTRO = {
    "depth": (
        "Depth (KL from the base model along the checkpoint's own greedy answers, nats per "
        "token): first answer tokens · the rest. A tuning that moves only the opening has a "
        "large first and a small rest."
    ),
    "persona": (
        "Persona: mean projection of the checkpoint's own answers on the compassion direction "
        "(from the base model; higher = more compassionate by the direction)."
    ),
}


def _probe_cell(probe: str, rows: list[dict[str, Any]]) -> str:
    """Mean over seeds of one probe's values for one arm and stage."""
    if not rows:
        return "–"

    def mean(key: str) -> float | None:
        vals = [r["values"][key] for r in rows if r["values"].get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    seeds = f" (seeds={len(rows)})" if len(rows) > 1 else ""
    if probe == "depth":
        head = rows[0]["values"]["head"]
        return f"{_fmt(mean('mean_kl_first'))} (first {head}) · {_fmt(mean('mean_kl_rest'))}{seeds}"
    return f"{_fmt(mean('projection'))}{seeds}"


def _probes_section(results: Results) -> list[str]:
    if not results.probes:
        return []
    lines = ["## Probes", ""]
    d = results.persona_direction
    for probe in ("depth", "persona"):
        rows = [r for r in results.probes if r["probe"] == probe]
        if not rows:
            continue
        intro = _PROBE_INTRO[probe]
        if probe == "persona" and d:
            intro += (
                f" Direction: layer {d['layer']} of {d['model']}, held-out pairs separated "
                f"{d['held_out_accuracy']:.0%} of {d['held_out_pairs']} (chance 50%)."
            )
        lines += [
            intro,
            "",
            "| arm | " + " | ".join(column_title(c) for c in results.columns) + " |",
            "|---|" + "---|" * len(results.columns),
        ]
        for arm in results.arms:
            cells = [
                _probe_cell(probe, [r for r in rows if (r["arm"], r["column"]) == (arm, col)])
                for col in results.columns
            ]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def render_markdown(results: Results) -> str:
    pct = round(results.ci * 100)
    lines = [
        f"# Results: {results.name}",
        "",
        (
            f"Config hash `{results.config_hash[:12]}` · built {results.created_at} · "
            f"{pct}% cluster-bootstrap CIs ({results.n_resamples} resamples, clustered by question)."
        ),
        "Cells: mean [CI] (questions; missing grades are excluded and counted, never scored 0).",
        "",
    ]
    if len(results.seeds) > 1:
        lines += [
            (
                f"Training seeds {results.seeds}: each cell pools the seeds with a two-level "
                "bootstrap (seeds, then questions) and gives the SD of the per-seed means; "
                "comparisons pair by (seed, question). Per-seed cells are in results.json."
            ),
            "",
        ]
    by_heading: dict[str, list[Cell]] = {}
    for c in results.cells:
        by_heading.setdefault(c.heading, []).append(c)
    for heading, cells in by_heading.items():
        lines += [f"## {heading} — `{cells[0].key}`", ""]
        lines.append("| arm | " + " | ".join(column_title(c) for c in results.columns) + " |")
        lines.append("|---|" + "---|" * len(results.columns))
        index = {(c.arm, c.column): c for c in cells}
        pooled = {(c.arm, c.column): c for c in results.pooled if c.heading == heading}
        for arm in results.arms:
            row = []
            for col in results.columns:
                c = index.get((arm, col))
                pc = pooled.get((arm, col))
                if pc is not None:
                    s = pc.summary
                    sd = s["between_seed_sd"]
                    row.append(
                        f"{_fmt(s['mean'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}] "
                        f"(seeds={s['n_seeds']}, SD between seeds {_fmt(sd)}, "
                        f"n={s['n_questions']})"
                    )
                elif c is None:
                    row.append("")
                elif c.summary is None:
                    row.append(f"n/a ({c.note})")
                else:
                    s = c.summary
                    miss = f", {s['n_missing']} missing" if s["n_missing"] else ""
                    row.append(
                        f"{_fmt(s['mean'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}] "
                        f"(n={s['n_clusters']}{miss})"
                    )
            lines.append(f"| {arm} | " + " | ".join(row) + " |")
        lines += _length_table(results, heading, cells)
        comps = [
            c for c in results.comparisons if c.heading == heading and c.kind == "between_arms"
        ]
        within = [c for c in results.comparisons if c.heading == heading and c.kind == "within_arm"]
        if comps:
            lines += [
                "",
                (
                    f"Arm vs reference: diff = arm − reference, paired by sample; {pct}% CI; "
                    "p from a sign-flip permutation test over questions, Holm-adjusted in this table."
                ),
                "",
                (
                    "| stage | arm | reference | diff | CI | p | p (Holm) | effect size d "
                    "| pairs | pairing |"
                ),
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for c in comps:
                lines.append(
                    f"| {column_title(c.column)} | {c.arm} | {c.reference} | {_stats_cells(c)} "
                    f"| {_pairing(c)} |"
                )
        if within:
            lines += [
                "",
                (
                    "Within arm (does it survive SFT?): diff = after +SFT N − after the arm's own "
                    f"stage, paired by sample; {pct}% CI; sign-flip p, Holm-adjusted in this table."
                ),
                "",
                "| arm | stage | diff | CI | p | p (Holm) | effect size d | pairs | pairing |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for c in within:
                lines.append(
                    f"| {c.arm} | {column_title(c.column)} | {_stats_cells(c)} | {_pairing(c)} |"
                )
        lines += _length_controlled_table(comps + within, pct)
        notes = sorted(
            {
                f"{c.arm} vs {c.reference} ({column_title(c.column)}): {n}"
                for c in comps + within
                for n in c.comparison.get("notes") or []
            }
        )
        skipped = [m for m in results.not_compared if m["heading"] == heading]
        if notes:
            lines += ["", "Reliability notes:", ""] + [f"- {n}" for n in notes]
        if skipped:
            lines += [
                "",
                "Not compared (still counted in the Holm family, as p = 1):",
                "",
            ] + [
                f"- {m['arm']} vs {m['reference'] if m['kind'] == 'between_arms' else 'its own stage'}"
                f" ({column_title(m['column'])}): {m['reason']}"
                for m in skipped
            ]
        lines.append("")
    lines += _curves_section(results)
    lines += _probes_section(results)
    if results.exposure:
        lines += [
            "## Training exposure",
            "",
            "| arm | stage | seed | steps | tokens | target tokens | value tokens | train loss |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in results.exposure:
            cells = [e["steps"], e["tokens_trained"], e["target_tokens_trained"]]
            cells += [e["value_tokens_trained"]]
            shown = ["–" if v is None else f"{v:,}" for v in cells]
            lines.append(
                f"| {e['arm']} | {column_title(e['column'])} | {e['seed']} | "
                + " | ".join(shown)
                + f" | {_fmt(e['train_loss'])} |"
            )
        lines.append("")
    if results.missing:
        lines += [
            "## Missing grades",
            "",
            "| eval | arm | stage | missing | reasons |",
            "|---|---|---|---|---|",
        ]
        for m in results.missing:
            reasons = "; ".join(f"{k} ×{v}" for k, v in m["reasons"].items())
            lines.append(
                f"| {m['heading']} | {m['arm']} | {column_title(m['column'])} | "
                f"{m['n_missing']} | {reasons} |"
            )
        lines.append("")
    if results.failures:
        lines += (
            ["## Failures (re-run to resume)", ""] + [f"- {f}" for f in results.failures] + [""]
        )
    return "\n".join(lines)


def write_results(results: Results, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if results.scaling:
        (out_dir / "scaling.json").write_text(
            json.dumps(nan_to_none(results.scaling), indent=2, allow_nan=False), encoding="utf-8"
        )
        scaling_plot(results.scaling, out_dir / "scaling.png")
    if results.decay:
        (out_dir / "decay.json").write_text(
            json.dumps(nan_to_none(results.decay), indent=2, allow_nan=False), encoding="utf-8"
        )
        curve_plot(results.decay, out_dir / "decay.png", "sft_samples", "SFT samples trained on")
    md, js = out_dir / "results.md", out_dir / "results.json"
    md.write_text(render_markdown(results), encoding="utf-8")
    js.write_text(
        json.dumps(nan_to_none(results.model_dump(mode="json")), indent=2, allow_nan=False),
        encoding="utf-8",
    )
    return md, js
