"""Read and write human ratings as CSV or JSONL, validating every row.

Labs may already have ratings from their own tools. A file is read completely and every problem
is collected with its line number (bad values, unknown item ids, duplicates, missing columns);
callers import nothing unless the whole file is clean, so a half-imported file never happens.
Several files imported together are checked as ONE import (`parse_rating_files`): a rater's
rating of an item in two of the files is a problem too, naming both files and lines.

Columns / keys: item_id, rater, value (yes/no/true/false/1/0 or a number in [0, 1]), and
optionally unsure (true/false), comment, updated.

CSV is parsed strictly (`csv.reader(strict=True)`): an unclosed quote, text after a closing
quote or a field over the size limit is an error naming the line, never a silently merged or
altered row. A quoted field that spans lines is allowed (comments may hold line breaks), unless
a line inside it reads like another rating row (a known item id first, or as many cells as the
header): that is an opening quote that swallowed the rows after it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..errors import UserError
from ..outputs import write_text
from .schema import MAX_COMMENT_CHARS, HumanRating

FIELDS = ["item_id", "rater", "value", "unsure", "comment", "updated"]
REQUIRED = {"item_id", "rater"}


# Python's csv default; a longer field is reported (with its line), never a traceback.
MAX_FIELD_CHARS = csv.field_size_limit()


class RatingsFileError(UserError, ValueError):
    """A ratings file that cannot be read or has problems. One problem: one line
    (`path: problem`); several: a count, then one indented line each."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        if len(problems) == 1:
            message = f"{path}: {problems[0]}"
        else:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            message = f"{path}: {len(problems)} problem(s):\n  {shown}{more}"
        super().__init__(message)


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
    # "\n" only: str.splitlines() would also split at U+2028 and friends, valid inside JSON strings
    for lineno, line in enumerate(text.split("\n"), start=1):
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


def _swallowed_row(value: str, width: int, known_items: set[str] | None) -> int | None:
    """The offset (in lines) of a line inside a multi-line cell that reads like a rating row."""
    for offset, line in enumerate(value.splitlines()[1:], start=1):
        try:
            cells = next(csv.reader([line]), [])
        except csv.Error:
            continue
        first = cells[0].strip() if cells else ""
        if (known_items is not None and first in known_items) or (
            known_items is None and len(cells) == width
        ):
            return offset
    return None


def _csv_error(ex: csv.Error, start: int, end: int) -> str:
    """What a csv.Error means, for the record that starts on line `start` and ends on `end`."""
    text = str(ex)
    if "field larger than field limit" in text:
        why = f"a field is longer than {MAX_FIELD_CHARS} characters"
    elif "unexpected end of data" in text or "EOF" in text:
        why = "a quoted field is never closed (an opening quote without its closing quote)"
    elif "expected after" in text:
        why = f"text after a closing quote ({text}): quote the whole field and double inner quotes"
    else:
        why = f"malformed CSV ({text})"
    return why if end <= start else f"{why}; the record runs from here to line {end}"


def _rows_csv(text: str, known_items: set[str] | None = None) -> Iterable[tuple[int, dict | str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = next(reader, [])
        start = reader.line_num + 1
        missing = REQUIRED - set(header)
        if missing or "value" not in header:
            need = sorted(missing | ({"value"} - set(header)))
            yield 1, f"header lacks column(s) {need} (has {header})"
            return
        unknown = set(header) - set(FIELDS)
        if unknown:
            yield 1, f"unknown column(s) {sorted(unknown)} (allowed: {FIELDS})"
            return
        if len(set(header)) != len(header):
            yield 1, f"a column name appears twice in the header {header}"
            return
        for cells in reader:
            lineno, start = start, reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            if len(cells) > len(header):
                yield lineno, f"{len(cells) - len(header)} cell(s) more than the header has"
                continue
            row = dict(zip(header, cells))
            swallowed = next(
                (
                    (name, off)
                    for name, value in row.items()
                    if ("\n" in value or "\r" in value)
                    and (off := _swallowed_row(value, len(header), known_items)) is not None
                ),
                None,
            )
            if swallowed is not None:
                name, off = swallowed
                yield (
                    lineno,
                    (
                        f"the {name} field opens a quote that swallows line {lineno + off} "
                        "(it reads like another rating row): close the quote or remove the stray one"
                    ),
                )
                continue
            yield lineno, row
    except csv.Error as ex:
        yield start, _csv_error(ex, start, reader.line_num)


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a BOM allowed), or a one-line RatingsFileError saying why not."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RatingsFileError(str(path), ["cannot read: no such file"]) from None
    except IsADirectoryError:
        raise RatingsFileError(str(path), ["cannot read: it is a folder, not a file"]) from None
    except OSError as ex:
        raise RatingsFileError(str(path), [f"cannot read: {ex.strerror or ex}"]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as ex:
        line = data[: ex.start].count(b"\n") + 1
        why = (
            f"cannot read: line {line} is not UTF-8 (byte 0x{data[ex.start]:02x}); save it as UTF-8"
        )
        raise RatingsFileError(str(path), [why]) from None


def parse_ratings(path: str | Path, known_items: set[str] | None = None) -> ParsedRatings:
    """All valid ratings of a file plus a line-numbered list of every problem.

    `known_items`: the item ids of the rating set; a rating of another id is a problem.
    Format by suffix: .csv, else JSONL.
    """
    path = Path(path)
    text = _read_text(path)
    rows = _rows_csv(text, known_items) if path.suffix.lower() == ".csv" else _rows_jsonl(text)
    out = ParsedRatings([])
    seen: dict[tuple[str, str], int] = {}
    for lineno, row in rows:
        if isinstance(row, str):
            out.problems.append(f"line {lineno}: {row}")
            continue
        comment = row.get("comment")
        if isinstance(comment, str) and len(comment) > MAX_COMMENT_CHARS:
            out.problems.append(
                f"line {lineno}: comment has {len(comment)} characters (at most "
                f"{MAX_COMMENT_CHARS})"
            )
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
    """Write ratings as CSV (.csv) or JSONL (anything else), atomically; returns the number
    written. An unwritable path is an OutputError and leaves nothing behind."""
    path = Path(path)
    rows = [r.model_dump() for r in ratings]
    buf = io.StringIO(newline="")
    if path.suffix.lower() == ".csv":
        writer = csv.DictWriter(buf, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "value": "" if row["value"] is None else row["value"]})
    else:
        for row in rows:
            buf.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_text(path, buf.getvalue())
    return len(rows)
