"""Importing ratings from CSV/JSONL: validation with line numbers, all-or-nothing, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caml_evals.judging.cli import main as judge_main
from caml_evals.judging.ratings_io import (
    RatingsFileError,
    parse_ratings,
    read_ratings,
    write_ratings,
)
from caml_evals.judging.schema import HumanRating, RatingItem, RatingSet, RubricText
from caml_evals.judging.store import RatingStore, StoreError

FIXTURES = Path(__file__).parent / "fixtures" / "judging"
ITEMS = {"i001", "i002", "i003"}


def rating_set() -> RatingSet:
    return RatingSet(
        set_id="s1",
        seed=0,
        created="",
        items=[
            RatingItem(
                item_id=i,
                unit_id="u1",
                question="Q?",
                answer="A.",
                dimension=f"d{i}",
                rubric=RubricText(name=f"d{i}", guiding_question="G?"),
            )
            for i in sorted(ITEMS)
        ],
    )


def test_valid_csv_and_jsonl_fixtures():
    csv_ratings = read_ratings(FIXTURES / "ratings_valid.csv", ITEMS)
    jsonl_ratings = read_ratings(FIXTURES / "ratings_valid.jsonl", ITEMS)
    assert [r.model_dump(exclude={"updated"}) for r in csv_ratings] == [
        r.model_dump(exclude={"updated"}) for r in jsonl_ratings
    ]
    by = {(r.rater, r.item_id): r for r in csv_ratings}
    assert by[("ana", "i001")].value == 1.0
    assert by[("ana", "i002")].value == 0.0 and by[("ana", "i002")].comment == "hedges, but no"
    assert by[("ben", "i001")].value == 0.5  # labs may rate on a finer scale in [0, 1]
    assert by[("ben", "i003")].value is None and by[("ben", "i003")].unsure


def test_invalid_file_reports_every_problem_with_line_numbers():
    parsed = parse_ratings(FIXTURES / "ratings_invalid.csv", ITEMS)
    text = "\n".join(parsed.problems)
    assert "line 2: value: rating 'maybe' is not yes/no" in text
    assert "line 3: value: rating '1.5' is outside [0, 1]" in text
    assert "line 4: unknown item id 'i999'" in text
    assert "line 5: rater: String should have at least 1 character" in text
    assert "line 6: a rating needs a value (yes/no) unless it is marked unsure" in text
    assert "line 8: rater 'ana' already rated item 'i001' on line 7" in text
    assert "line 9: unsure: unsure 'perhaps' is not true/false" in text
    assert len(parsed.problems) == 7
    with pytest.raises(RatingsFileError, match="7 problem"):
        read_ratings(FIXTURES / "ratings_invalid.csv", ITEMS)


def test_jsonl_syntax_errors_and_unknown_keys(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"item_id": "i001", "rater": "a", "value": "yes"}\n'
        "\n"
        '{"item_id": "i002", "rater": "a", "value": "no"\n'
        '["not", "an", "object"]\n'
        '{"item_id": "i003", "rater": "a", "value": 1, "judge": "gpt"}\n'
    )
    problems = parse_ratings(path, ITEMS).problems
    assert problems[0].startswith("line 3: invalid JSON")
    assert problems[1] == "line 4: expected a JSON object, got list"
    assert problems[2].startswith("line 5: judge: Extra inputs are not permitted")


def test_csv_header_problems(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("item,rater,value\ni001,a,yes\n")
    assert "header lacks column(s) ['item_id']" in parse_ratings(path).problems[0]
    path.write_text("item_id,rater,value,score\ni001,a,yes,3\n")
    assert "unknown column(s) ['score']" in parse_ratings(path).problems[0]
    path.write_text("item_id,rater,value\ni001,a,yes,extra\n")
    assert parse_ratings(path).problems == ["line 2: 1 cell(s) more than the header has"]
    path.write_text("item_id,rater,value\n")
    assert parse_ratings(path).problems == ["no ratings in file"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_round_trip(tmp_path, suffix):
    ratings = [
        HumanRating(
            item_id="i001", rater="ana", value=1.0, comment='says "yes", with commas\nand a newline'
        ),
        HumanRating(
            item_id="i002",
            rater="ana",
            value=None,
            unsure=True,
            updated="2025-01-01T00:00:00+00:00",
        ),
    ]
    path = tmp_path / f"r{suffix}"
    assert write_ratings(path, ratings) == 2
    assert read_ratings(path, ITEMS) == [
        r if r.updated else r.model_copy(update={"updated": None}) for r in ratings
    ]


def test_store_import_is_all_or_nothing(tmp_path):
    store = RatingStore(tmp_path / "db.sqlite")
    store.load_rating_set(rating_set())
    store.save(HumanRating(item_id="i001", rater="ana", value=0.0))
    clash = [
        HumanRating(item_id="i002", rater="ana", value=1.0),
        HumanRating(item_id="i001", rater="ana", value=1.0),
    ]
    with pytest.raises(StoreError, match="already in the database"):
        store.import_ratings(clash, "import:x")
    assert len(store.ratings()) == 1  # nothing of the failed import was kept
    assert store.import_ratings(clash, "import:x", replace=True) == 2
    assert {r.item_id: r.value for r in store.ratings()} == {"i001": 1.0, "i002": 1.0}
    with pytest.raises(StoreError, match="unknown item id"):
        store.save(HumanRating(item_id="nope", rater="ana", value=1.0))
    other = rating_set().model_copy(update={"set_id": "s2"})
    with pytest.raises(StoreError, match="holds rating set s1"):
        store.load_rating_set(other)


def test_cli_import_check_dump(tmp_path, capsys):
    set_path = tmp_path / "set.json"
    set_path.write_text(rating_set().model_dump_json())
    db = tmp_path / "db.sqlite"
    summary = tmp_path / "import.json"
    code = judge_main(
        [
            "import",
            str(FIXTURES / "ratings_invalid.csv"),
            "--db",
            str(db),
            "--rating-set",
            str(set_path),
            "--json",
            str(summary),
        ]
    )
    assert code == 2  # bad input: every problem listed, then one error line, nothing imported
    err = capsys.readouterr().err
    assert f"{FIXTURES / 'ratings_invalid.csv'}: line 4: unknown item id 'i999'" in err
    assert "7 problem(s) in 1 file(s) (listed above); nothing imported" in err
    assert json.loads(summary.read_text())["imported"] == 0
    assert RatingStore(db).ratings() == []
    assert (
        judge_main(
            ["import", str(FIXTURES / "ratings_valid.jsonl"), "--db", str(db), "--check-only"]
        )
        == 0
    )
    assert RatingStore(db).ratings() == []
    assert judge_main(["import", str(FIXTURES / "ratings_valid.jsonl"), "--db", str(db)]) == 0
    assert (
        judge_main(["import", str(FIXTURES / "ratings_valid.csv"), "--db", str(db)]) == 2
    )  # duplicates
    out = tmp_path / "dump.csv"
    assert judge_main(["dump", "--db", str(db), "--out", str(out)]) == 0
    dumped = read_ratings(out, ITEMS)
    assert len(dumped) == 5 and all(r.updated for r in dumped)


def test_top_level_cli_wires_the_judge_group(tmp_path):
    """`caml-evals judge ...` reaches this module through the lead's dispatcher."""
    from caml_evals.cli import main as caml_main

    db = tmp_path / "db.sqlite"
    RatingStore(db).load_rating_set(rating_set())
    out = tmp_path / "none.jsonl"
    assert caml_main(["judge", "dump", "--db", str(db), "--out", str(out)]) == 0
    assert out.read_text() == ""


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("item_id,rater,value\n" + "".join(r + "\n" for r in rows))
    return path


def _sources(db: Path) -> dict[tuple[str, str], str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT rater, item_id, source FROM ratings").fetchall()
    return {(r, i): s for r, i, s in rows}


def test_cli_multi_file_import_is_one_all_or_nothing_import(tmp_path, capsys):
    set_path = tmp_path / "set.json"
    set_path.write_text(rating_set().model_dump_json())
    db = tmp_path / "db.sqlite"
    RatingStore(db).load_rating_set(rating_set())
    a = _write(tmp_path / "a.csv", ["i001,ana,yes", "i002,ana,no"])
    b = _write(tmp_path / "b.csv", ["i003,ana,yes", "i001,ana,no"])  # i001/ana also in a.csv
    for extra in ([], ["--replace"], ["--check-only"]):
        summary = tmp_path / "s.json"
        code = judge_main(
            ["import", str(a), str(b), "--db", str(db), "--json", str(summary)] + extra
        )
        err = capsys.readouterr().err
        assert code == 2, extra
        assert (
            f"{b}: line 3: rater 'ana' already rated item 'i001' in {a} line 2; nothing imported"
            in err
        )
        assert RatingStore(db).ratings() == []  # a.csv was not committed on its own
        assert json.loads(summary.read_text())["imported"] == 0

    # clean files: one import, counted once, each rating keeps its file as source
    b = _write(tmp_path / "b.csv", ["i003,ana,yes", "i001,ben,no"])
    summary = tmp_path / "s.json"
    assert judge_main(["import", str(a), str(b), "--db", str(db), "--json", str(summary)]) == 0
    assert "imported 4 rating(s) from 2 file(s)" in capsys.readouterr().out
    assert json.loads(summary.read_text())["imported"] == 4
    assert _sources(db) == {
        ("ana", "i001"): "import:a.csv",
        ("ana", "i002"): "import:a.csv",
        ("ana", "i003"): "import:b.csv",
        ("ben", "i001"): "import:b.csv",
    }

    # --check-only also checks clashes with ratings already in the database
    c = _write(tmp_path / "c.csv", ["i002,ana,yes", "i002,ben,yes"])
    assert judge_main(["import", str(c), "--db", str(db), "--check-only"]) == 2
    captured = capsys.readouterr()
    assert "1 rating(s) already in the database (use --replace to overwrite): ana/i002" in (
        captured.err
    )
    assert judge_main(["import", str(c), "--db", str(db), "--check-only", "--replace"]) == 0
    assert "checked 2 rating(s) from 1 file(s): all valid; 1 would replace" in (
        capsys.readouterr().out
    )
    assert {r.item_id: r.value for r in RatingStore(db).ratings("ana")}["i002"] == 0.0
    # and --replace reports what it replaced
    assert judge_main(["import", str(c), "--db", str(db), "--replace", "--json", str(summary)]) == 0
    assert "imported 2 rating(s) from 1 file(s) (1 replaced" in capsys.readouterr().out
    got = json.loads(summary.read_text())
    assert got["imported"] == 2 and got["replaced"] == 1 and got["already_in_db"] == 1
    assert len(RatingStore(db).ratings()) == 5
    # a file that cannot be read is a clear error, not a traceback
    assert judge_main(["import", str(tmp_path / "missing.csv"), "--db", str(db)]) == 2
    assert f"{tmp_path / 'missing.csv'}: cannot read: no such file" in capsys.readouterr().err


def test_store_import_of_several_sources_is_one_transaction(tmp_path):
    store = RatingStore(tmp_path / "db.sqlite")
    store.load_rating_set(rating_set())
    batch = [
        HumanRating(item_id="i001", rater="ana", value=1.0),
        HumanRating(item_id="nope", rater="ana", value=1.0),
    ]
    with pytest.raises(StoreError, match="unknown item id"):
        store.import_ratings(batch, ["import:a.csv", "import:b.csv"])
    assert store.ratings() == []
    twice = [batch[0], batch[0].model_copy(update={"value": 0.0})]
    with pytest.raises(StoreError, match="twice in one import"):
        store.import_ratings(twice, "import:x", replace=True)
    assert store.ratings() == [] and store.clashes(batch) == []
    store.import_ratings(batch[:1], ["import:a.csv"])
    assert store.clashes(batch) == ["ana/i001"]


# --- strict CSV (issue 14, defect 1) --------------------------------------------------------------

HEADER = "item_id,rater,value,comment\n"


def _import(tmp_path, text: str | bytes, capsys, name: str = "r.csv"):
    """`caml-evals judge import FILE` into a fresh database; (exit code, stderr, ratings)."""
    from caml_evals.cli import main as caml_main

    set_path = tmp_path / "set.json"
    set_path.write_text(rating_set().model_dump_json())
    db = tmp_path / "db.sqlite"
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    code = caml_main(["judge", "import", str(path), "--db", str(db), "--rating-set", str(set_path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err, RatingStore(db).ratings(), path


@pytest.mark.parametrize(
    "body, line, why",
    [
        pytest.param(
            'i001,ana,yes,"he said no\ni002,ana,no,fine\ni003,ana,yes,ok\ni001,ben,no,x\n',
            "line 2",
            "a quoted field is never closed (an opening quote without its closing quote); "
            "the record runs from here to line 5",
            id="unclosed-quote-swallows-to-eof",
        ),
        pytest.param(
            'i001,ana,yes,fine\ni002,ana,no,"unclosed\ni003,ana,yes,"closed here"\n',
            "line 3",
            "text after a closing quote",
            id="quote-closed-on-a-later-row",
        ),
        pytest.param(
            'i001,ana,yes,"he said"no loudly\ni002,ana,no,ok\n',
            "line 2",
            "text after a closing quote",
            id="stray-quote-would-alter-the-comment",
        ),
        pytest.param(
            'i001,ana,yes,"opens\ni002,ana,no,and closes"\ni003,ana,yes,ok\n',
            "line 2",
            "swallows line 3",
            id="balanced-quote-swallows-a-row",
        ),
    ],
)
def test_malformed_csv_is_an_error_naming_the_line_and_nothing_is_imported(
    tmp_path, capsys, body, line, why
):
    code, err, stored, path = _import(tmp_path, HEADER + body, capsys)
    assert code == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert f"{path}: {line}: " in lines[0] and why in lines[0]
    assert lines[0].endswith("; nothing imported")
    assert stored == []


def test_multiline_quoted_comments_are_still_fine(tmp_path, capsys):
    body = 'i001,ana,yes,"first line\nsecond, with a comma"\ni002,ana,no,"say ""no"""\n'
    code, err, stored, _ = _import(tmp_path, HEADER + body, capsys)
    assert code == 0, err
    assert {r.item_id: r.comment for r in stored} == {
        "i001": "first line\nsecond, with a comma",
        "i002": 'say "no"',
    }


def test_oversized_field_and_comment_are_line_errors(tmp_path, capsys):
    from caml_evals.judging.ratings_io import MAX_FIELD_CHARS
    from caml_evals.judging.schema import MAX_COMMENT_CHARS

    code, err, stored, path = _import(
        tmp_path, HEADER + f"i001,ana,yes,ok\ni002,ana,no,{'x' * (MAX_FIELD_CHARS + 1)}\n", capsys
    )
    assert code == 2 and stored == []
    assert f"{path}: line 3: a field is longer than {MAX_FIELD_CHARS} characters" in err
    code, err, stored, path = _import(
        tmp_path, HEADER + f"i001,ana,yes,{'x' * (MAX_COMMENT_CHARS + 1)}\n", capsys
    )
    assert code == 2 and stored == []
    assert f"{path}: line 2: comment has {MAX_COMMENT_CHARS + 1} characters" in err


def test_non_utf8_and_bom_files(tmp_path, capsys):
    code, err, stored, path = _import(
        tmp_path, (HEADER + "i001,ana,yes,café\n").encode("latin-1"), capsys
    )
    assert code == 2 and stored == []
    assert f"{path}: cannot read: line 2 is not UTF-8 (byte 0xe9)" in err
    code, err, stored, _ = _import(
        tmp_path, b"\xef\xbb\xbf" + HEADER.encode() + b"i001,ana,yes,ok\n", capsys
    )
    assert code == 0 and [r.item_id for r in stored] == ["i001"]


def test_bad_rating_set_and_corrupt_database_are_one_line_errors(tmp_path, capsys):
    from caml_evals.cli import main as caml_main

    ratings = _write(tmp_path / "r.csv", ["i001,ana,yes"])
    truncated = tmp_path / "set.json"
    truncated.write_text(rating_set().model_dump_json()[:40])
    db = tmp_path / "db.sqlite"
    argv = ["judge", "import", str(ratings), "--db", str(db), "--rating-set", str(truncated)]
    assert caml_main(argv) == 2
    err = capsys.readouterr().err
    assert f"{truncated}: not a rating set: invalid JSON" in err and "(truncated?)" in err
    assert not db.exists()  # nothing created for a failed command
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    assert caml_main(["judge", "dump", "--db", str(corrupt), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{corrupt}: not a usable ratings database" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_jsonl_comment_with_a_unicode_line_separator_round_trips(tmp_path):
    """JSONL is split at "\\n" only: U+2028 is valid raw inside a JSON string (write_ratings
    writes it unescaped), and str.splitlines() used to cut such a row in two."""
    rating = HumanRating(item_id="i001", rater="ana", value=1.0, comment="one\u2028two\x85three")
    path = tmp_path / "r.jsonl"
    write_ratings(path, [rating])
    assert read_ratings(path, ITEMS) == [rating]
