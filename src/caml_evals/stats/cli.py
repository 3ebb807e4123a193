"""`caml-evals compare` and `caml-evals leaderboard` (registered by caml_evals.cli).

compare LOG... : groups logs into arms (by model, or one arm per log with --by log), compares
every arm with the baseline (the first arm, or --baseline) per benchmark and score key, adjusts
p-values over all rows, prints the table and writes comparison.json, comparison.md and
forest.png. When all logs carry one model name (checkpoints often do) but a benchmark has
several logs, it falls back to one arm per log (labelled by file name) and says so.

leaderboard LOG_DIR... -o site/ : one self-contained HTML page (+ leaderboard.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from caml_evals.cli.argtypes import open_unit_interval, positive_int

from .frame import CLUSTER_BY, expand_log_paths, score_frame
from .logcompare import LogCompareError, adjust_rows, compare_frames
from .multiple import ADJUST_METHODS
from .reader import clear_cache


def register(subparsers: argparse._SubParsersAction) -> None:
    cmp = subparsers.add_parser(
        "compare",
        help="compare models/checkpoints from their eval logs (CIs, p-values, forest plot)",
        description="Compare arms (models or single logs) per benchmark and score key: means with "
        "cluster-bootstrap CIs, paired differences, permutation p-values (raw and adjusted).",
    )
    cmp.add_argument("logs", nargs="+", help="Inspect .eval/.json logs or directories of logs")
    cmp.add_argument(
        "--by",
        choices=["model", "log"],
        default="model",
        help="arm = all logs of one model (default; one model name with several logs per "
        "benchmark falls back to per log) or each log on its own",
    )
    cmp.add_argument("--baseline", help="label of the baseline arm (default: the first arm)")
    cmp.add_argument(
        "--keys",
        help="comma-separated score keys (default: overall + every score key; bookkeeping such "
        "as missing_rate, unparsed, completed, overall@<grader> only when named here)",
    )
    cmp.add_argument("--scorer", help="scorer name (default: each log's primary scorer)")
    cmp.add_argument("--n-resamples", type=positive_int, default=10_000)
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--ci", type=open_unit_interval, default=0.95)
    cmp.add_argument(
        "--method", choices=["percentile", "bca"], default="percentile", help="bootstrap CI"
    )
    cmp.add_argument(
        "--adjust", choices=ADJUST_METHODS, default="holm", help="multiple-comparison adjustment"
    )
    cmp.add_argument("--paired", choices=["auto", "yes", "no"], default="auto")
    cmp.add_argument("--alternative", choices=["two-sided", "less", "greater"], default="two-sided")
    cmp.add_argument(
        "--cluster-weight",
        choices=["size", "equal"],
        default="size",
        help="size: every observation counts once; equal: every question counts once",
    )
    cmp.add_argument(
        "--cluster-by",
        choices=list(CLUSTER_BY),
        default="question",
        help="the unit of resampling for SEs, CIs and permutations: question (default) or "
        "source (sample metadata source_id: translations of one source question are one cluster)",
    )
    cmp.add_argument(
        "-o", "--out-dir", default="caml-compare", help="folder for the files (default %(default)s)"
    )
    cmp.add_argument("--json", help="JSON path (default OUT_DIR/comparison.json)")
    cmp.add_argument("--markdown", help="markdown path (default OUT_DIR/comparison.md)")
    cmp.add_argument("--plot", help="forest plot PNG path (default OUT_DIR/forest.png)")
    cmp.set_defaults(func=run_compare)

    board = subparsers.add_parser(
        "leaderboard",
        help="static HTML leaderboard (models x benchmarks with CIs) from log directories",
    )
    board.add_argument("log_dirs", nargs="+", help="directories (or files) of Inspect logs")
    board.add_argument(
        "-o", "--out-dir", default="site", help="output folder (default %(default)s)"
    )
    board.add_argument("--title", default="caml-evals leaderboard")
    board.add_argument("--scorer")
    board.add_argument("--n-resamples", type=positive_int, default=2_000)
    board.add_argument("--seed", type=int, default=0)
    board.add_argument("--ci", type=open_unit_interval, default=0.95)
    board.add_argument("--method", choices=["percentile", "bca"], default="percentile")
    board.add_argument(
        "--no-copy-logs",
        action="store_true",
        help="link logs where they are instead of copying them into OUT_DIR/logs",
    )
    board.set_defaults(func=run_leaderboard)


def _arms(frame: pd.DataFrame, by: str) -> dict[str, pd.DataFrame]:
    if by == "model":
        return {model: frame[frame["model"] == model] for model in dict.fromkeys(frame["model"])}
    arms: dict[str, pd.DataFrame] = {}
    for log in dict.fromkeys(frame["log"]):
        label = Path(log).stem
        label = label if label not in arms else log
        arms[label] = frame[frame["log"] == log]
    return arms


def _several_logs_per_task(frame: pd.DataFrame) -> bool:
    return bool((frame.groupby("task")["log"].nunique() > 1).any())


def run_compare(args: argparse.Namespace) -> int:
    from .judges import render_judges
    from .length import length_report_from, render_length
    from .report import print_table, render_markdown, to_json, write_text

    compared = _compare_arms(args)
    # The score frames died with `_compare_arms`; the records go too, before the tail imports
    # what it needs (statsmodels for the regressions and the adjustment, matplotlib for the
    # plot), so those imports reuse the frames' memory instead of adding to it (issue 16).
    clear_cache()
    lengths = length_report_from(compared.length_inputs, ci=args.ci)
    rows, judges = adjust_rows(compared.rows, args.adjust), compared.judges
    out = Path(args.out_dir)
    settings = {k: v for k, v in vars(args).items() if k != "func"} | {
        "by": compared.by,
        "baseline": compared.baseline,
        "arms": compared.arms,
        "length": lengths,
        "judges": judges,
    }
    json_path = write_text(
        Path(args.json) if args.json else out / "comparison.json", to_json(rows, settings)
    )
    md_path = write_text(
        Path(args.markdown) if args.markdown else out / "comparison.md",
        render_markdown(rows)
        + "\n## Answer length and judges\n\n```\n"
        + f"{render_length(lengths)}\n{render_judges(judges)}\n```\n",
    )
    from .plot import forest_plot  # matplotlib: imported once the frames are freed

    png_path = forest_plot(rows, Path(args.plot) if args.plot else out / "forest.png")
    print_table(rows)
    print(render_length(lengths))
    print(render_judges(judges))
    print(f"wrote {json_path}, {md_path}, {png_path}")
    return 0


class _Compared(NamedTuple):
    """What `compare` keeps of the score frames (nothing that holds one)."""

    rows: list[Any]  # unadjusted ComparisonRows
    by: str  # the arms were split by this ("model" or "log")
    baseline: str
    arms: list[str]
    length_inputs: Any  # caml_evals.stats.length.LengthInputs
    judges: dict[str, Any]


def _compare_arms(args: argparse.Namespace) -> _Compared:
    """What needs the score frames: the unadjusted rows, the arms, the length report's inputs
    and the judges."""
    from .judges import judge_report
    from .length import length_inputs

    # reasons=False: the table counts missing values but never says why, so the whole
    # samples holding the reasons are not read
    frame = score_frame(
        expand_log_paths(args.logs),
        args.scorer,
        cluster_by=getattr(args, "cluster_by", "question"),
        reasons=False,
    )
    by = args.by
    arms = _arms(frame, by)
    if by == "model" and len(arms) < 2 and _several_logs_per_task(frame):
        # checkpoints of one model often share its name: compare the logs instead
        (model,) = arms
        by = "log"
        arms = _arms(frame, by)
        print(
            f"caml-evals compare: note: every log has model {model!r}; "
            f"comparing one arm per log ({', '.join(arms)}) as with --by log",
            file=sys.stderr,
        )
    if len(arms) < 2:
        raise LogCompareError(
            f"need at least two arms to compare, found {list(arms)} (use --by log to compare "
            "logs of one model)"
        )
    baseline = args.baseline or next(iter(arms))
    if baseline not in arms:
        raise LogCompareError(f"baseline {baseline!r} is not one of the arms {list(arms)}")
    rows = []
    for label, arm in arms.items():
        if label == baseline:
            continue
        rows += compare_frames(
            arms[baseline],
            arm,
            keys=args.keys.split(",") if args.keys else None,
            label_a=baseline,
            label_b=label,
            ci=args.ci,
            n_resamples=args.n_resamples,
            seed=args.seed,
            method=args.method,
            paired={"auto": None, "yes": True, "no": False}[args.paired],
            alternative=args.alternative,
            cluster_weight=args.cluster_weight,
        )
    # answer length and truncation per arm; judges: a changed judge shows
    return _Compared(
        rows, by, baseline, list(arms), length_inputs(arms, baseline), judge_report(arms)
    )


def run_leaderboard(args: argparse.Namespace) -> int:
    from .leaderboard import build_leaderboard, write_site
    from .report import fmt

    board = build_leaderboard(
        args.log_dirs,
        scorer=args.scorer,
        ci=args.ci,
        n_resamples=args.n_resamples,
        seed=args.seed,
        method=args.method,
        title=args.title,
    )
    page = write_site(board, args.out_dir, copy_logs=not args.no_copy_logs)
    header = ["model", *(f"{t} ({board.headlines.get(t, 'overall')})" for t in board.tasks)]
    body = []
    for model in board.models:
        row = [model]
        for task in board.tasks:
            cell = board.cell(model, task)
            row.append(
                "–"
                if cell is None
                else f"{fmt(cell.overall.mean)} [{fmt(cell.overall.ci_low)}, {fmt(cell.overall.ci_high)}]"
            )
        body.append(row)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=board.title)
        for h in header:
            table.add_column(h)
        for row in body:
            table.add_row(*row)
        Console().print(table)
    else:
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        for r in [header, *body]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"wrote {page} and {page.parent / 'leaderboard.json'}")
    return 0
