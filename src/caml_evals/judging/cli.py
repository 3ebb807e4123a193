"""`caml-evals judge export|serve|import|dump|report`: the calibration workflow from the shell.

    caml-evals judge export logs/ahb --out calib/            # rating_set.json + key.json (private)
    caml-evals judge serve --db calib/ratings.sqlite --rating-set calib/rating_set.json --rater ana
    caml-evals judge import lab_ratings.csv --db calib/ratings.sqlite
    caml-evals judge dump --db calib/ratings.sqlite --out calib/ratings.csv
    caml-evals judge report --key calib/key.json --db calib/ratings.sqlite --out calib/report

Each subcommand is a function `(args) -> int`; this module only parses and prints. Bad input
(a missing or malformed file, a corrupt database, an unwritable `--out`) raises a `UserError`,
which the `caml-evals` dispatcher prints as one line on stderr with exit code 2; every output is
written atomically, so a failed command leaves no partial file behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A rich table on a terminal, tab-separated plain text when piped."""
    console = Console()
    if console.is_terminal:
        table = Table(title=title)
        for c in columns:
            table.add_column(str(c))
        for r in rows:
            table.add_row(*(str(x) for x in r))
        console.print(table)
    else:
        print(f"# {title}")
        print("\t".join(columns))
        for r in rows:
            print("\t".join(str(x) for x in r))


def _write_json(path: Path, payload: dict) -> None:
    from ..jsonsafe import nan_to_none
    from ..outputs import write_text

    write_text(path, json.dumps(nan_to_none(payload), indent=2))


def _open_store(path: str, create: bool = True):
    from .store import RatingStore

    return RatingStore(path, create=create)


def _loaded_store(args: argparse.Namespace):
    """The database of `--db` with `--rating-set` loaded into it, which must hold items."""
    from .schema import load_rating_set
    from .store import StoreError

    rating_set = load_rating_set(Path(args.rating_set)) if args.rating_set else None
    store = _open_store(args.db, create=rating_set is not None)
    if rating_set is not None:
        added = store.load_rating_set(rating_set)
        if args.judge_command == "serve":
            print(f"{added} new item(s) loaded from {args.rating_set}")
    if not store.item_count():
        raise StoreError(f"{args.db}: the database has no items; pass --rating-set rating_set.json")
    return store


# --- export -------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from ..outputs import writable_dir
    from .export import build_rating_set, parse_labelled_paths, read_logs
    from .schema import write_json

    out = writable_dir(args.out)  # before reading any log: fail at once, not after the work
    paths, labels = parse_labelled_paths(args.logs)
    rating_set, key, problems = build_rating_set(
        read_logs(paths), seed=args.seed, per_item_pages=args.per_item_pages, labels=labels
    )
    write_json(out / "rating_set.json", rating_set)
    write_json(out / "key.json", key)
    summary = {
        "rating_set": str(out / "rating_set.json"),
        "key": str(out / "key.json"),
        "set_id": rating_set.set_id,
        "seed": args.seed,
        "logs": paths,
        "items": len(rating_set.items),
        "answers": len({i.content_hash for i in key.items.values()}),
        "pages": len({i.unit_id for i in rating_set.items}),
        "dimensions": sorted({i.dimension for i in rating_set.items}),
        "criteria": len({i.criterion for i in rating_set.items}),
        "judgings": sorted({s.label for e in key.items.values() for s in e.sources}),
        "problems": problems.lines(),
    }
    _write_json(out / "export.json", summary)
    _print_table(
        "rating set",
        ["field", "value"],
        [
            (k, v if not isinstance(v, list) else ", ".join(map(str, v)) or "-")
            for k, v in summary.items()
        ],
    )
    print(
        f"Give raters {out / 'rating_set.json'} (via `judge serve`); keep {out / 'key.json'} private."
    )
    return 0


# --- serve --------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from .store import StoreError

    store = _loaded_store(args)
    base = f"http://{args.host}:{args.port}"
    existing = set(store.raters())
    for name in args.rater or []:
        if name in existing:
            print(f"rater {name}: exists (use --new-token {name} for a new link)")
            continue
        print(f"rater {name}: {base}/r/{store.add_rater(name)}")
    for name in args.new_token or []:
        print(
            f"rater {name} (new link; the old one no longer works): {base}/r/{store.new_token(name)}"
        )
    if not store.raters():
        raise StoreError(f"{args.db}: no raters yet; add some with --rater NAME")
    if args.no_serve:
        return 0
    import uvicorn

    from .app import create_app, redacted_log_config

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach it and has a link can rate")
    uvicorn.run(
        create_app(args.db),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=redacted_log_config(),
    )
    return 0


# --- import / dump ------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    """All files form ONE import: validated together (a rating in two files is a problem),
    checked against the database (clashes need --replace, also with --check-only) and written
    in one transaction, or nothing is written at all."""
    from ..errors import UserError
    from ..outputs import writable_file
    from .ratings_io import parse_rating_files

    if args.json:  # checked first: the summary must not fail after the ratings were imported
        writable_file(args.json)
    store = _loaded_store(args)
    parsed_all = parse_rating_files(args.files, store.item_ids())
    results = [
        {"file": path, "valid": len(parsed.ratings), "problems": parsed.problems}
        for path, parsed in parsed_all
    ]
    problems = [(path, p) for path, parsed in parsed_all for p in parsed.problems]
    failure: str | None = None
    if len(problems) == 1:
        path, problem = problems[0]
        failure = f"{path}: {problem}; nothing imported"
    elif problems:
        for path, problem in problems[:50]:
            print(f"{path}: {problem}", file=sys.stderr)
        if len(problems) > 50:
            print(f"... and {len(problems) - 50} more", file=sys.stderr)
        n_files = sum(1 for r in results if r["problems"])
        failure = (
            f"{len(problems)} problem(s) in {n_files} file(s) (listed above); nothing imported: "
            "fix them and run again"
        )
    ratings = [r for _, parsed in parsed_all for r in parsed.ratings]
    sources = [f"import:{Path(path).name}" for path, parsed in parsed_all for _ in parsed.ratings]
    clashes = store.clashes(ratings) if failure is None else []
    if clashes and not args.replace:
        failure = (
            f"{args.db}: {len(clashes)} rating(s) already in the database (use --replace to "
            "overwrite): " + ", ".join(clashes[:10]) + "; nothing imported"
        )
    imported = 0
    if failure is None and not args.check_only:
        imported = store.import_ratings(ratings, sources, args.replace)
    summary = {
        "db": args.db,
        "files": results,
        "valid": len(ratings),
        "already_in_db": len(clashes),
        "imported": imported,
        "replaced": len(clashes) if imported else 0,
        "check_only": bool(args.check_only),
        "ok": failure is None,
        "error": failure,
    }
    if args.json:
        _write_json(Path(args.json), summary)
    _print_table(
        "import",
        ["file", "valid rows", "problems"],
        [(r["file"], r["valid"], len(r["problems"])) for r in results],
    )
    if failure is not None:
        raise UserError(failure)
    if args.check_only:
        extra = f"; {len(clashes)} would replace ratings in the database" if clashes else ""
        print(f"checked {len(ratings)} rating(s) from {len(results)} file(s): all valid{extra}")
    else:
        extra = f" ({len(clashes)} replaced ratings already in the database)" if clashes else ""
        print(f"imported {imported} rating(s) from {len(results)} file(s){extra}")
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    from .ratings_io import write_ratings

    n = write_ratings(args.out, _open_store(args.db, create=False).ratings())
    print(f"wrote {n} rating(s) to {args.out}")
    return 0


# --- report -------------------------------------------------------------------------------------


def _load_ratings(args: argparse.Namespace, known: set[str]):
    from ..errors import ConfigError
    from .ratings_io import read_ratings

    ratings = []
    if args.db:
        ratings.extend(_open_store(args.db, create=False).ratings())
    for path in args.ratings or []:
        ratings.extend(read_ratings(path, known))
    if not ratings:
        where = f"{args.db} holds none" if args.db else "pass --db and/or --ratings"
        raise ConfigError(f"no human ratings to compare with the judge: {where}")
    return ratings


def cmd_report(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..outputs import writable_dir
    from ..scoring.judge_settings import judge_text
    from .align import AlignError, add_ensemble, align
    from .analysis import analyse
    from .checks import CHECKS, variant_checks
    from .export import add_sources, parse_labelled_paths, read_logs
    from .report import write_report
    from .schema import load_key

    if not 0 < args.ci < 1:
        raise ConfigError(f"--ci {args.ci}: a confidence level strictly between 0 and 1")
    if args.resamples < 1:
        raise ConfigError(f"--resamples {args.resamples}: at least 1")
    writable_dir(args.out)  # before the bootstrap: fail at once, not after the work
    key = load_key(Path(args.key))
    if args.log:
        paths, labels = parse_labelled_paths(args.log)
        attached, problems = add_sources(key, read_logs(paths), labels)
        print(f"attached {attached} judging(s) from {len(paths)} extra log(s)")
        for line in problems.lines():
            print(f"warning: {line}", file=sys.stderr)
    ratings = _load_ratings(args, set(key.items))
    data = align(key, ratings, drop_unsure=args.drop_unsure)
    for spec in args.ensemble or []:
        name, _, rest = spec.partition("=")
        how, _, members = rest.partition(":")
        if not (name and how and members):
            raise AlignError(f"--ensemble {spec!r}: expected NAME=majority|mean:VARIANT,VARIANT")
        add_ensemble(data.variants, name, members.split(","), how)
    report = analyse(data, n_resamples=args.resamples, seed=args.seed, ci=args.ci)
    # order, length, repeats per variant, on their own resamples of questions
    report["judge_checks"] = variant_checks(
        data, key, n_resamples=args.resamples, seed=args.seed, ci=args.ci
    )
    html, js = write_report(report, args.out)
    overall = report["scopes"]["overall"]
    rows = [
        (
            "humans (ceiling)",
            overall["ceiling"]["n_items_multi"],
            "-",
            "-",
            _cell(overall["ceiling"]["metrics"]["pairwise_kappa"]),
            _cell(overall["ceiling"]["metrics"]["alpha_nominal"]),
            "-",
        )
    ]
    for v in report["variants"]:
        s = overall["variants"][v["name"]]
        m = s["metrics"]
        rows.append(
            (
                v["name"],
                s["n_items"],
                _cell(m["agreement"]),
                _cell(m["kappa"]),
                _cell(m["pairwise_kappa"]),
                _cell(m["alpha_nominal"]),
                _cell(m["bias"]),
            )
        )
    _print_table(
        f"judge vs humans (overall; {args.ci:.0%} bootstrap CI over answers)",
        ["rater", "items", "agreement", "kappa", "pairwise kappa", "alpha nominal", "bias"],
        rows,
    )
    checks = report["judge_checks"]
    _print_table(
        f"what the judge can get wrong (overall; {args.ci:.0%} bootstrap CI over questions)",
        ["check", *checks],
        [
            *[(m, *(_check_cell(c[m]) for c in checks.values())) for m in CHECKS],
            ("judge", *(judge_text(c["judge"]) for c in checks.values())),
        ],
    )
    print(f"report: {html}\njson:   {js}")
    return 0


def _check_cell(c: dict | None) -> str:
    return "not measured" if c is None else _cell(c)


def _cell(c: dict) -> str:
    if c["value"] is None:
        return "undefined"
    if c["lo"] is None:
        return f"{c['value']:.3f}"
    return f"{c['value']:.3f} [{c['lo']:.2f}, {c['hi']:.2f}]"


# --- wiring -------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    judge = subparsers.add_parser(
        "judge", help="judge calibration: export items, rate them in a web app, report agreement"
    )
    sub = judge.add_subparsers(dest="judge_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("export", help="blinded rating set + private key from rubric-scored logs")
    p.add_argument("logs", nargs="+", help="log files or folders; LABEL=PATH names a log's judging")
    p.add_argument("--out", required=True, help="folder for rating_set.json, key.json, export.json")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    p.add_argument(
        "--per-item-pages",
        action="store_true",
        help="one criterion per page, all items shuffled (default: one answer per page)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="run the rating web app (SQLite storage)")
    p.add_argument("--db", required=True, help="SQLite file (created if missing)")
    p.add_argument("--rating-set", help="rating_set.json to load (needed the first time)")
    p.add_argument("--rater", action="append", help="add a rater and print their link (repeatable)")
    p.add_argument("--new-token", action="append", help="issue a new link for an existing rater")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="warning")
    p.add_argument(
        "--no-serve", action="store_true", help="only load items / add raters, then exit"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "import", help="validate and import ratings from CSV/JSONL into the database"
    )
    p.add_argument("files", nargs="+", help="ratings files (.csv, else JSONL)")
    p.add_argument("--db", required=True)
    p.add_argument("--rating-set", help="rating_set.json (if the database has no items yet)")
    p.add_argument(
        "--replace", action="store_true", help="overwrite ratings already in the database"
    )
    p.add_argument("--check-only", action="store_true", help="validate only, import nothing")
    p.add_argument("--json", help="write the import summary here")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("dump", help="export all ratings of a database as CSV or JSONL")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True, help=".csv or .jsonl")
    p.set_defaults(func=cmd_dump)

    p = sub.add_parser("report", help="agreement of judge variants with the human ratings")
    p.add_argument("--key", required=True, help="key.json from `judge export`")
    p.add_argument("--db", help="ratings database from `judge serve` / `judge import`")
    p.add_argument("--ratings", action="append", help="ratings file(s) (.csv/.jsonl), repeatable")
    p.add_argument(
        "--log",
        action="append",
        help="more logs judging the same answers (LABEL=PATH); become variants",
    )
    p.add_argument(
        "--ensemble",
        action="append",
        help="NAME=majority|mean:VARIANT,VARIANT,... an extra combined judge",
    )
    p.add_argument("--out", required=True, help="folder for agreement.html and agreement.json")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ci", type=float, default=0.95)
    p.add_argument("--drop-unsure", action="store_true", help="leave out ratings marked unsure")
    p.set_defaults(func=cmd_report)


def main(argv: list[str] | None = None) -> int:
    """`python -m caml_evals.judging ...` = `caml-evals judge ...`, through the one dispatcher
    (and so its one error rule: a UserError is one line on stderr and exit code 2)."""
    from caml_evals.cli import main as caml_main

    return caml_main(["judge", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
