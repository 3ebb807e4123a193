"""Read and write human ratings as CSV or JSONL, validating every row.

Labs may already have ratings from their own tools. A file is read completely and every problem
is collected with its line number (bad values, unknown item ids, duplicates, missing columns);
callers import nothing unless the whole file is clean, so a half-imported file never happens.
Several files imported together are checked as ONE import (`parse_rating_files`): a rater's
rating of an item in two of the files is a problem too, naming both files and lines.

Columns / keys: item_id, rater, value (yes/no/true/false/1/0 or a number in [0, 1]), and
optionally unsure (true/false), comment, updated.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .schema import HumanRating

FIELDS = ["item_id", "rater", "value", "unsure", "comment", "updated"]
REQUIRED = {"item_id", "rater"}


class RatingsFileError(ValueError):
    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")


@dataclass
class ParsedRatings:
    ratings: list[HumanRating]
    problems: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each rating in its file


def _validation_message(ex: ValidationError) -> str:
    parts = []
    for err in ex.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _rows_jsonl(text: str) -> Iterable[tuple[int, dict | str]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as ex:
            yield lineno, f"invalid JSON ({ex.msg} at column {ex.colno})"
            continue
        yield (
            lineno,
            row if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}",
        )


def _rows_csv(text: str) -> Iterable[tuple[int, dict | str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = REQUIRED - set(header)
    if missing or "value" not in header:
        need = sorted(missing | ({"value"} - set(header)))
        yield 1, f"header lacks column(s) {need} (has {header})"
        return
    unknown = set(header) - set(FIELDS)
    if unknown:
        yield 1, f"unknown column(s) {sorted(unknown)} (allowed: {FIELDS})"
        return
    for row in reader:
        if None in row:  # more cells than header names
            yield reader.line_num, f"{len(row[None])} cell(s) more than the header has"
            continue
        yield reader.line_num, {k: v for k, v in row.items() if k is not None}


def parse_ratings(path: str | Path, known_items: set[str] | None = None) -> ParsedRatings:
    """All valid ratings of a file plus a line-numbered list of every problem.

    `known_items`: the item ids of the rating set; a rating of another id is a problem.
    Format by suffix: .csv, else JSONL.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as ex:
        raise RatingsFileError(str(path), [f"cannot read: {ex}"]) from ex
    rows = _rows_csv(text) if path.suffix.lower() == ".csv" else _rows_jsonl(text)
    out = ParsedRatings([])
    seen: dict[tuple[str, str], int] = {}
    for lineno, row in rows:
        if isinstance(row, str):
            out.problems.append(f"line {lineno}: {row}")
            continue
        try:
            rating = HumanRating.model_validate(row)
        except ValidationError as ex:
            out.problems.append(f"line {lineno}: {_validation_message(ex)}")
            continue
        if known_items is not None and rating.item_id not in known_items:
            out.problems.append(f"line {lineno}: unknown item id {rating.item_id!r}")
            continue
        pair = (rating.item_id, rating.rater)
        if pair in seen:
            out.problems.append(
                f"line {lineno}: rater {rating.rater!r} already rated item {rating.item_id!r} "
                f"on line {seen[pair]}"
            )
            continue
        seen[pair] = lineno
        out.ratings.append(rating)
        out.lines.append(lineno)
    if not out.ratings and not out.problems:
        out.problems.append("no ratings in file")
    return out


def parse_rating_files(
    paths: Iterable[str | Path], known_items: set[str] | None = None
) -> list[tuple[str, ParsedRatings]]:
    """Each file parsed as by `parse_ratings`, plus one duplicate check across all of them.

    A (item, rater) pair already rated in an earlier file is a problem of the later file's line
    (that rating is left out of its valid ones), so `--replace` can never let the last file
    silently win over another file of the same import. Raises RatingsFileError for a file that
    cannot be read.
    """
    out: list[tuple[str, ParsedRatings]] = []
    first_seen: dict[tuple[str, str], tuple[str, int]] = {}
    for path in paths:
        parsed = parse_ratings(path, known_items)
        keep = ParsedRatings([], parsed.problems)
        for rating, lineno in zip(parsed.ratings, parsed.lines):
            pair = (rating.item_id, rating.rater)
            if pair in first_seen:
                other, other_line = first_seen[pair]
                keep.problems.append(
                    f"line {lineno}: rater {rating.rater!r} already rated item "
                    f"{rating.item_id!r} in {other} line {other_line}"
                )
                continue
            first_seen[pair] = (str(path), lineno)
            keep.ratings.append(rating)
            keep.lines.append(lineno)
        out.append((str(path), keep))
    return out


def read_ratings(path: str | Path, known_items: set[str] | None = None) -> list[HumanRating]:
    """The ratings of a file; raises RatingsFileError listing every problem if there is any."""
    parsed = parse_ratings(path, known_items)
    if parsed.problems:
        raise RatingsFileError(str(path), parsed.problems)
    return parsed.ratings


def write_ratings(path: str | Path, ratings: Iterable[HumanRating]) -> int:
    """Write ratings as CSV (.csv) or JSONL (anything else); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r.model_dump() for r in ratings]
    if path.suffix.lower() == ".csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "value": "" if row["value"] is None else row["value"]})
    else:
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)
