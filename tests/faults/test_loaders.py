"""Fault injection, loader layer: 7 loaders x 9 faults = 63 cases (`<loader>-<fault>`).

Layer choice: each task function is called in-process with `data_dir` pointing at a copy of its
real data (from ../shared/data or the test fixtures) with one fault injected, so the suite stays
fast. `inspect eval` itself turns the same `UserError` (a `PrerequisiteError`) into its message
without a traceback; that end-to-end outcome is checked once in test_inspect_cli.py.

Documented outcomes, per fault:

* empty, whitespace-only, wrong encoding (latin-1 bytes), a column missing from every row:
  an error (`UserError`) in one line naming the file and the problem;
* a broken JSON line, a NaN / Infinity value: the same error, or the row counted and reported in
  the task's `dataset_problems` (never silently dropped, never averaged in);
* a UTF-8 byte-order mark: read as if it were not there (same samples);
* a duplicate id (an exact duplicate row): the task loads and the duplicate is reported, or
  (where ids must be unique, as TAC's scenario ids) an error saying so;
* a huge field (200,000 characters, over `csv`'s default field limit): loads with the same
  samples, or a one-line error naming the file; never a traceback. So does the text "NaN" in a
  CSV cell (CSV has no numbers, so it is a prompt like any other).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faultlib import Outcome, assert_user_error, call

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared" / "data"
HUGE = 200_000


# --- the loaders -------------------------------------------------------------------------------


def _ahb(data_dir: Path):
    from caml_evals.tasks.ahb.task import ahb

    return ahb(data_dir=str(data_dir))


def _moru(data_dir: Path):
    from caml_evals.tasks.moru.task import moru

    return moru(data_dir=str(data_dir))


def _human(data_dir: Path):
    from caml_evals.tasks.human_compassion.task import human_compassion

    return human_compassion(data_dir=str(data_dir))


def _tac(data_dir: Path):
    from caml_evals.tasks.tac.task import tac

    return tac(data_dir=str(data_dir))


def _strongreject(data_dir: Path):
    from caml_evals.tasks.strongreject.task import strongreject

    return strongreject(data_dir=str(data_dir))


def _hellaswag(data_dir: Path):
    from caml_evals.tasks.hellaswag.task import hellaswag

    return hellaswag(data_dir=str(data_dir))


def _power_seeking(data_dir: Path):
    from caml_evals.tasks.advanced_ai_risk.task import power_seeking

    return power_seeking(data_dir=str(data_dir))


@dataclass(frozen=True)
class Loader:
    name: str
    subfolder: str
    files: dict[str, tuple[Path, int | None]]  # file name -> (source, first n lines or all)
    target: str  # the file the fault goes into
    field: str  # a required text field (missing column, NaN, huge, encoding)
    make: Callable[[Path], Any]
    outcomes: tuple[tuple[str, str], ...] = ()  # (fault, outcome) where it differs by format


LOADERS = [
    Loader(
        "ahb",
        "ahb-2.1",
        {
            "questions.jsonl": (SHARED / "ahb-2.1" / "questions.jsonl", 6),
            "dimensions.jsonl": (SHARED / "ahb-2.1" / "dimensions.jsonl", None),
        },
        "questions.jsonl",
        "question",
        _ahb,
    ),
    Loader(
        "moru",
        "moru",
        {
            "questions.jsonl": (FIXTURES / "moru" / "questions.jsonl", None),
            "dimensions.jsonl": (FIXTURES / "moru" / "dimensions.jsonl", None),
        },
        "questions.jsonl",
        "question",
        _moru,
    ),
    Loader(
        "human_compassion",
        "human_compassion",
        {
            "questions.jsonl": (FIXTURES / "human_compassion" / "questions.jsonl", None),
            "dimensions.jsonl": (FIXTURES / "human_compassion" / "dimensions.jsonl", None),
        },
        "questions.jsonl",
        "question",
        _human,
    ),
    Loader(
        "tac",
        "tac",
        {"scenarios.json": (FIXTURES / "tac" / "scenarios.json", None)},
        "scenarios.json",
        "input",
        _tac,
    ),
    Loader(
        "strongreject",
        "strongreject",
        {
            "strongreject_dataset.csv": (
                FIXTURES / "controls" / "strongreject_dataset.csv",
                None,
            )
        },
        "strongreject_dataset.csv",
        "forbidden_prompt",
        _strongreject,
        # CSV has no NaN: the cell is the text "NaN", a prompt like any other (or reported)
        (("nan", "same-samples-or-error"),),
    ),
    Loader(
        "hellaswag",
        "hellaswag",
        {"validation.jsonl": (FIXTURES / "controls" / "hellaswag.jsonl", None)},
        "validation.jsonl",
        "ctx_a",
        _hellaswag,
    ),
    Loader(
        "advanced_ai_risk",
        "advanced-ai-risk",
        {
            "power-seeking-inclination.jsonl": (
                SHARED / "advanced-ai-risk" / "power-seeking-inclination.jsonl",
                6,
            )
        },
        "power-seeking-inclination.jsonl",
        "question",
        _power_seeking,
    ),
]


def _install(loader: Loader, root: Path) -> Path:
    """A data_dir holding a clean copy of the loader's data; returns the target file."""
    folder = root / loader.subfolder
    folder.mkdir(parents=True)
    for name, (source, n) in loader.files.items():
        if not source.is_file():
            pytest.skip(f"data for {loader.name} not found at {source}")
        if n is None:
            shutil.copyfile(source, folder / name)
        else:
            lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
            (folder / name).write_text("".join(lines[:n]), encoding="utf-8")
    return folder / loader.target


# --- the faults --------------------------------------------------------------------------------
# Each takes the clean text of the target file and the loader, and returns the bytes to write.


def _jsonl_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _csv_rows(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def _csv(header: list[str], rows: list[dict]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _edit(text: str, loader: Loader, change: Callable[[list[dict], list[str] | None], None]) -> str:
    """Apply `change` to the rows (scenarios for TAC) and serialise them back."""
    if loader.target.endswith(".csv"):
        header, rows = _csv_rows(text)
        change(rows, header)
        return _csv(header, rows)
    if loader.target.endswith(".json"):
        data = json.loads(text)
        change(data["scenarios"], None)
        return json.dumps(data, indent=1, ensure_ascii=False)
    rows = _jsonl_rows(text)
    change(rows, None)
    return _jsonl(rows)


def f_empty(text: str, loader: Loader) -> bytes:
    return b""


def f_whitespace(text: str, loader: Loader) -> bytes:
    return b"  \n\n\t \n"


def f_broken_line(text: str, loader: Loader) -> bytes:
    if loader.target.endswith(".json"):
        return text[: len(text) // 2].encode()  # a truncated JSON document
    lines = text.splitlines(keepends=True)
    if loader.target.endswith(".csv"):
        bad = 'Disinformation and deception,custom,"an opening quote never closed\n'
    else:
        bad = '{"id": "broken", "' + loader.field + '": "no closing brace"\n'
    return "".join(lines[:2] + [bad] + lines[2:]).encode()


LATIN1 = " Café crème, naïve"


def f_latin1(text: str, loader: Loader) -> bytes:
    """One field saved in latin-1 (as an editor on another system would), the rest UTF-8."""

    def change(rows: list[dict], header: list[str] | None) -> None:
        rows[0][loader.field] = str(rows[0][loader.field]) + LATIN1

    utf8 = _edit(text, loader, change).encode("utf-8")
    return utf8.replace(LATIN1.encode("utf-8"), LATIN1.encode("latin-1"))


def f_bom(text: str, loader: Loader) -> bytes:
    return b"\xef\xbb\xbf" + text.encode("utf-8")


def f_missing_column(text: str, loader: Loader) -> bytes:
    def change(rows: list[dict], header: list[str] | None) -> None:
        for row in rows:
            row.pop(loader.field, None)
        if header is not None:
            header.remove(loader.field)

    return _edit(text, loader, change).encode()


def f_duplicate_id(text: str, loader: Loader) -> bytes:
    def change(rows: list[dict], header: list[str] | None) -> None:
        rows.insert(1, copy.deepcopy(rows[0]))  # an exact duplicate row (same id, same text)

    return _edit(text, loader, change).encode()


def f_nan(text: str, loader: Loader) -> bytes:
    def change(rows: list[dict], header: list[str] | None) -> None:
        if loader.name == "tac":
            rows[0]["experiences"][0]["price"] = float("inf")  # flips the cheapest-cue baseline
        elif header is not None:
            rows[0][loader.field] = "NaN"
        else:
            rows[0][loader.field] = float("nan")

    return _edit(text, loader, change).encode()  # json.dumps writes NaN / Infinity


def f_huge(text: str, loader: Loader) -> bytes:
    def change(rows: list[dict], header: list[str] | None) -> None:
        rows[0][loader.field] = str(rows[0][loader.field]) + " " + "x" * HUGE

    return _edit(text, loader, change).encode()


ERROR = "error"
ERROR_OR_REPORTED = "error-or-reported"
SAME = "same-samples"
DUPLICATE_REPORTED = "duplicate-reported"
SAME_OR_ERROR = "same-samples-or-error"

EMPTY = r"empty|no usable|no (rows|questions|scenarios|samples|data|items)|0 rows|not valid json"

# fault name -> (how to make it, documented outcome, what the error line must say)
FAULTS: dict[str, tuple[Callable[[str, Loader], bytes], str, str]] = {
    "empty": (f_empty, ERROR, EMPTY),
    "whitespace": (f_whitespace, ERROR, EMPTY),
    "broken-line": (f_broken_line, ERROR_OR_REPORTED, r"json|line \d|malformed|quote|parse"),
    "latin1": (f_latin1, ERROR, r"utf-?8|encod|decod"),
    "bom": (f_bom, SAME, ""),
    "missing-column": (f_missing_column, ERROR, r"missing|required|lacks|column|field|no "),
    "duplicate-id": (f_duplicate_id, DUPLICATE_REPORTED, ""),
    "nan": (f_nan, ERROR_OR_REPORTED, r"nan|inf|finite|number|string|str\b|type|invalid"),
    "huge": (f_huge, SAME_OR_ERROR, r"long|large|size|limit|characters"),
}


def _problems(task: Any) -> dict:
    meta = getattr(task, "metadata", None) or {}
    return meta.get("dataset_problems") or {}


def _samples(outcome: Outcome) -> int:
    return len(outcome.value.dataset)


CASES = [
    pytest.param(loader, fault, id=f"{loader.name}-{fault}")
    for loader in LOADERS
    for fault in FAULTS
]


@pytest.mark.parametrize(("loader", "fault"), CASES)
def test_loader_fault(loader: Loader, fault: str, tmp_path: Path) -> None:
    make_fault, expected, problem = FAULTS[fault]
    expected = dict(loader.outcomes).get(fault, expected)
    target = _install(loader, tmp_path)
    clean = call(lambda: loader.make(tmp_path))
    assert clean.code == 0, f"the clean {loader.name} data does not load: {clean.err}"
    target.write_bytes(make_fault(target.read_text(encoding="utf-8"), loader))
    got = call(lambda: loader.make(tmp_path))

    if expected == ERROR:
        assert_user_error(got, target, problem)
    elif expected == ERROR_OR_REPORTED:
        if got.code == 0:
            assert _problems(got.value), (
                f"{fault}: loaded without an error and without a reported problem "
                f"({_samples(got)} samples, {_samples(clean)} clean)"
            )
        else:
            assert_user_error(got, target, problem)
    elif expected == SAME:
        assert got.code == 0, f"{fault}: expected the file to load as without it: {got.err}"
        assert _samples(got) == _samples(clean)
        assert not _problems(got.value) or _problems(got.value) == _problems(clean.value)
    elif expected == DUPLICATE_REPORTED:
        if got.code != 0:
            assert_user_error(got, target, "duplicate")
            return
        text = json.dumps(got.value.metadata or {}, default=str).lower()
        assert "duplicate" in text, (
            f"{fault}: the duplicate row is not reported: {_problems(got.value)}"
        )
    elif expected == SAME_OR_ERROR:
        if got.code == 0:
            assert _samples(got) == _samples(clean)
        else:
            assert_user_error(got, target, problem)
    else:  # pragma: no cover
        raise AssertionError(expected)


def test_case_count() -> None:
    assert len(LOADERS) == 7 and len(FAULTS) == 9 and len(CASES) == 63
