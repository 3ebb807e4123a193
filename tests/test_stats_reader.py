"""The score reader (`caml_evals.stats.reader`) on logs from REAL Inspect runs (scripted, offline).

The oracle is the full-sample path the reader replaced: `legacy_score_frame` below is the score
frame as it was computed from `read_eval_log` (every sample whole) before the reader existed,
kept here verbatim in behaviour so any difference in what the summaries carry shows up as a
frame difference. Logs: the project's rubric scorer (unparseable grades with long judge
replies, a failed sample, two epochs, variables, a sample whose metadata is too big for its
summary, source ids), Inspect's `choice()` (letters) and the behaviour-choice scorer (a dict
without `overall`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from inspect_ai import Epochs, Task, task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog, read_eval_log
from inspect_ai.model import get_model
from inspect_ai.solver import generate

import caml_evals.models.providers  # noqa: F401  (registers scripted/ even without the entry point)
from caml_evals.cli import main
from caml_evals.errors import LogReadError, UserError
from caml_evals.scoring.grades import OVERALL_KEY, dimension_keys
from caml_evals.scoring.reducers import nan_mean_reducer
from caml_evals.scoring.rubric import rubric_scorer
from caml_evals.stats import ScoreFrameError, compare_logs, score_frame
from caml_evals.stats import reader as reader_module
from caml_evals.stats.frame import CATEGORICAL_COLUMNS
from caml_evals.stats.reader import clear_cache, read_log_scores

sys.path.insert(0, str(Path(__file__).parent))  # works under any pytest import mode
from test_stats_choice_logs import run_behavior  # a dict scorer without `overall`
from test_stats_logs import judged_answer, run_choice, stats_choice, verdict_line

# ------------------------------------------------------------------ the oracle: whole samples

_LETTERS = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
_WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
_COLUMNS = ["log", "task", "model", "sample_id", "question_id", "epoch", "key", "value"]
_COLUMNS += ["scorer", "variant", "missing"]


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """A score frame with its categorical text columns as strings (as the oracle builds them)."""
    return frame.astype({c: "str" for c in CATEGORICAL_COLUMNS})


def _to_float(value):
    if value is None:
        return math.nan, "no value (None)"
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, int | float):
        return (float(value), None) if not math.isnan(value) else (math.nan, "NaN (not graded)")
    if isinstance(value, str):
        text = value.strip()
        if text in _LETTERS:
            return _LETTERS[text], None
        if text.lower() in _WORDS:
            return _WORDS[text.lower()], None
        try:
            number = float(text)
        except ValueError:
            return math.nan, f"unreadable value {value!r}"
        return (
            (number, None) if math.isfinite(number) else (math.nan, f"unreadable value {value!r}")
        )
    return math.nan, f"unsupported value type {type(value).__name__}"


def _reasons(metadata):
    reasons = {}
    for grade in metadata.get("grades") or []:
        if isinstance(grade, Mapping) and grade.get("value") is None and grade.get("missing"):
            reasons.setdefault(
                str(grade.get("dimension")),
                str(grade["missing"]).split(":", 1)[0].strip() or "missing",
            )
    if reasons:
        reasons[OVERALL_KEY] = next(iter(reasons.values()))
    return reasons


def _layout_keys(log, scorer):
    scored, seen, by_sample, scalar = 0, {}, {}, False
    for s in log.samples:
        score = (s.scores or {}).get(scorer)
        if score is None:
            continue
        scored += 1
        value = score.value
        keys = [str(k) for k in value] if isinstance(value, Mapping) else [OVERALL_KEY]
        scalar = scalar or not isinstance(value, Mapping)
        if isinstance(value, Mapping):
            for k in keys:
                seen[k] = seen.get(k, 0) + 1
        known = by_sample.setdefault(str(s.id), [])
        known.extend(k for k in keys if k not in known)

    def keys_for(sample_id, metadata):
        if sample_id in by_sample:
            return list(by_sample[sample_id])
        dims = [str(d) for d in metadata.get("dimensions") or []]
        if scored == 0:
            return list(dict.fromkeys([OVERALL_KEY, *dims]))
        keys = [OVERALL_KEY] if scalar else []
        universal = [k for k, n in seen.items() if n == scored]
        if metadata.get("dimensions") is not None:
            like = set(dimension_keys(dict.fromkeys(universal)))
            keys += [k for k in universal if k not in like] + dims
        else:
            keys += universal
        return list(dict.fromkeys(keys))

    return keys_for


def legacy_score_frame(log: EvalLog, location: str) -> pd.DataFrame:
    """The score frame of one whole log, as computed before the summary reader."""
    scorer = (
        log.results.scores[0].scorer
        if log.results and log.results.scores
        else next((n for s in log.samples for n in (s.scores or {})), "<none>")
    )
    keys_for = _layout_keys(log, scorer)
    rows = []
    for s in log.samples:
        meta = s.metadata or {}
        qid = next(
            (str(meta[f]) for f in ("question_id", "scenario_id") if meta.get(f) not in (None, "")),
            str(s.id),
        )
        variables = meta.get("variables")
        variant = (
            json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
            if variables
            else ""
        )
        score = (s.scores or {}).get(scorer)
        if score is None:
            why = f"sample error: {s.error.message}" if s.error else "no score"
            items = [(k, math.nan, why) for k in keys_for(str(s.id), meta)]
        elif isinstance(score.value, Mapping):
            reasons = _reasons(score.metadata or {})
            items = []
            for k, v in score.value.items():
                number, why = _to_float(v)
                items.append((str(k), number, reasons.get(str(k), why) if why else None))
        else:
            items = [(OVERALL_KEY, *_to_float(score.value))]
        for key, value, why in items:
            rows.append(
                (location, log.eval.task, log.eval.model, str(s.id), qid, int(s.epoch), key)
                + (value, scorer, variant, why)
            )
    frame = pd.DataFrame.from_records(rows, columns=_COLUMNS)
    frame["value"] = frame["value"].astype(float)
    frame["epoch"] = frame["epoch"].astype(int)
    return frame


# ------------------------------------------------------------------ a rubric task for the reader

DIMS = {"Care": "Does the answer show care?", "Honesty": "Is the answer honest?"}
QUESTIONS = 6  # two translations (en, ms) of three source questions
LONG = "x" * 1500  # metadata values over Inspect's 1k summary limit
REASONING = "The answer was weighed against the criterion with care and at length. " * 20


@task
def reader_rubric(epochs: int = 2) -> Task:
    samples = []
    for q in range(QUESTIONS):
        dims = ["Care", "Honesty"] if q % 2 == 0 else ["Care"]
        meta = {
            "question_id": f"q{q}",
            "source_id": f"src{q // 2}",
            "language": "en" if q % 2 == 0 else "ms",
            "dimensions": dims,
            "rubric": [{"name": d, "guiding_question": DIMS[d]} for d in dims],
            "variables": {"animal": "hens"},
        }
        if q == 4:  # too big for the summary: the reader must read this sample whole
            meta |= {"question_id": "q 4  (long)", "variables": {"animal": "hens", "note": LONG}}
        samples.append(Sample(id=f"s{q}", input=f"Question {q}: what about hens?", metadata=meta))
    return Task(
        dataset=samples,
        solver=generate(),
        scorer=rubric_scorer(mode="per_dimension"),
        epochs=Epochs(epochs, nan_mean_reducer()),
    )


def answer(model: str, prompt: str) -> str:
    q = int(re.search(r"Question (\d+)", prompt).group(1))
    if model == "tuned" and q == 5:
        raise RuntimeError("provider down")  # an errored sample: no score at all
    if model == "base" and q == 1:
        return "??? " + "unsure " * 50  # the judge cannot grade this one
    return "good answer" if (model == "tuned" or q % 3 == 0) else "bad answer"


def judge(prompt: str) -> str:
    text = judged_answer(prompt)
    if "???" in text:
        return REASONING + "\nI cannot decide."  # unparseable, with a reply long enough
    return REASONING + "\n" + verdict_line(prompt, "good" in text)  # that grades exceed 1k


def run_rubric(model: str, log_dir: Path, epochs: int = 2) -> Path:
    (log,) = inspect_eval(
        reader_rubric(epochs=epochs),
        model=get_model(f"scripted/{model}", responder=lambda p: answer(model, p), memoize=False),
        model_roles={"grader": get_model("scripted/judge", responder=judge, memoize=False)},
        log_dir=str(log_dir),
        display="none",
        fail_on_error=False,
    )
    return Path(log.location)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reader_logs")
    return {
        "rubric_base": run_rubric("base", root / "base"),
        "rubric_tuned": run_rubric("tuned", root / "tuned"),
        "choice": run_choice("base", "A", root / "choice"),
        "behavior": run_behavior("tuned", "tuned", root / "behavior"),
        "choice_json": run_choice_json(root / "json"),
    }


def run_choice_json(log_dir: Path) -> Path:
    """A log in Inspect's .json format (no zip: the reader falls back to Inspect's API)."""
    (log,) = inspect_eval(
        stats_choice(),
        model=get_model("scripted/json", reply="ANSWER: B", memoize=False),
        log_dir=str(log_dir),
        log_format="json",
        display="none",
    )
    return Path(log.location)


@pytest.fixture(autouse=True)
def fresh_caches(tmp_path, monkeypatch):
    """Each test starts with empty caches and its own cache folder."""
    monkeypatch.setenv("CAML_EVALS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(reader_module.CACHE_ENV, raising=False)
    clear_cache()
    yield
    clear_cache()


# ------------------------------------------------------------------ equality with whole samples


@pytest.mark.parametrize(
    "name", ["rubric_base", "rubric_tuned", "choice", "behavior", "choice_json"]
)
def test_reader_equals_the_full_sample_path(logs, name):
    path = logs[name]
    whole = read_eval_log(str(path))
    expected = legacy_score_frame(whole, str(path))
    assert len(expected) > 0
    pd.testing.assert_frame_equal(plain(score_frame(path)), expected)
    # an EvalLog in memory goes through the same frame builder
    pd.testing.assert_frame_equal(plain(score_frame(whole)), expected)
    # and the cached second read is the same frame
    pd.testing.assert_frame_equal(plain(score_frame(path)), expected)


@pytest.mark.parametrize("name", ["rubric_base", "rubric_tuned", "behavior"])
def test_streamed_summaries_are_inspects_summaries(logs, name):
    """The .eval summaries decoded item by item hold what Inspect's validated reader returns."""
    from inspect_ai.log import read_eval_log_sample_summaries

    def fields(summary):
        scores = {n: [sc.value, sc.metadata] for n, sc in (summary.scores or {}).items()}
        row = [summary.id, summary.epoch, summary.metadata, scores, summary.error]
        return json.dumps(row, sort_keys=True, default=str)

    path = logs[name]
    streamed = sorted(fields(reader_module._Summary(d)) for d in reader_module._summary_dicts(path))
    inspects = sorted(fields(s) for s in read_eval_log_sample_summaries(str(path)))
    assert streamed == inspects and len(streamed) > 0


def test_json_array_items_across_chunk_boundaries():
    import io

    items = [{"id": i, "v": [math.nan, 1.5, 'a]b,"c'], "w": {"x": None}} for i in range(40)]
    text = json.dumps(items, indent=1)
    for chunk in (1, 2, 7, 64, 10_000):
        got = list(reader_module._json_array_items(io.StringIO(text), chunk=chunk))
        assert json.dumps(got) == json.dumps(items)
    assert list(reader_module._json_array_items(io.StringIO(" [ ] "), chunk=1)) == []
    for bad in (text[: len(text) // 2], "{}", ""):
        with pytest.raises(ValueError):
            list(reader_module._json_array_items(io.StringIO(bad), chunk=16))


def test_the_logs_exercise_what_summaries_lack(logs):
    """The fixtures really have what the reader must work around (else equality is cheap)."""
    from inspect_ai.log import read_eval_log_sample_summaries

    summaries = read_eval_log_sample_summaries(str(logs["rubric_base"]))
    removed = [
        s for s in summaries if s.metadata.get("question_id") != "q 4  (long)" and s.id == "s4"
    ]
    assert removed, "the long question id must be thinned in the summary"
    grades = {s.scores["rubric_scorer"].metadata.get("grades") for s in summaries if s.id == "s1"}
    assert all(isinstance(g, str) and g.startswith("Key removed") for g in grades)
    frame = score_frame(logs["rubric_base"])
    assert set(frame.loc[frame["value"].isna(), "missing"]) == {"unparseable"}
    assert set(frame.loc[frame["sample_id"] == "s4", "question_id"]) == {"q 4  (long)"}
    tuned = score_frame(logs["rubric_tuned"])
    errored = tuned[tuned["sample_id"] == "s5"]
    assert errored["value"].isna().all() and errored["missing"].str.startswith("sample error").all()


def test_only_samples_that_need_it_are_read_whole(logs):
    path = logs["rubric_base"]
    whole = read_eval_log(str(path))
    long_meta = sum(s.id == "s4" for s in whole.samples)
    with_missing = sum(
        any(math.isnan(v) for v in s.scores["rubric_scorer"].value.values()) for s in whole.samples
    )
    assert long_meta == 2 and with_missing == 2  # both epochs of s4 and of s1
    lazy = read_log_scores(path, reasons=False)
    assert lazy.full_reads == long_meta and len(lazy.pending) == with_missing
    lazy_frame = score_frame(path, reasons=False)
    full_frame = score_frame(path)  # now the reasons are read (same cache entry, completed)
    assert read_log_scores(path).full_reads == long_meta + with_missing
    missing = full_frame["value"].isna()
    assert (lazy_frame.loc[missing, "missing"] == "missing (reason not read)").all()
    pd.testing.assert_frame_equal(
        lazy_frame.drop(columns="missing"), full_frame.drop(columns="missing")
    )
    # the choice log needs no whole sample at all
    assert read_log_scores(logs["choice"]).full_reads == 0


# ------------------------------------------------------------------ caches


def test_in_process_and_disk_caches_follow_the_file(logs, tmp_path, monkeypatch):
    log_file = tmp_path / "log.eval"
    shutil.copy(logs["rubric_base"], log_file)
    first = score_frame(log_file)
    assert set(first["model"]) == {"scripted/base"}
    cache_files = list((tmp_path / "cache" / "score-frames").glob("*.jsonl"))
    assert len(cache_files) == 1

    # the disk cache alone answers a new process (no summaries read)
    clear_cache()

    def no_read(*args, **kwargs):
        raise AssertionError("read the log although the cache was valid")

    monkeypatch.setattr(reader_module, "_summary_dicts", no_read)
    pd.testing.assert_frame_equal(score_frame(log_file), first)
    monkeypatch.undo()
    monkeypatch.setenv("CAML_EVALS_CACHE", str(tmp_path / "cache"))

    # another run written over the same path: size and mtime change, both caches miss
    stat = log_file.stat()
    shutil.copy(logs["rubric_tuned"], log_file)
    os.utime(log_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = score_frame(log_file)
    assert set(second["model"]) == {"scripted/tuned"}
    pd.testing.assert_frame_equal(
        plain(second), legacy_score_frame(read_eval_log(str(log_file)), str(log_file))
    )
    # same size, only the mtime changed: still re-read
    clear_cache()
    os.utime(log_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000))
    calls = []
    real = reader_module._summary_dicts
    monkeypatch.setattr(
        reader_module, "_summary_dicts", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    score_frame(log_file)
    assert len(calls) == 1


def test_a_corrupt_disk_cache_entry_is_a_miss(logs, tmp_path):
    log_file = tmp_path / "log.eval"
    shutil.copy(logs["choice"], log_file)
    expected = score_frame(log_file)
    (entry,) = (tmp_path / "cache" / "score-frames").glob("*.jsonl")
    whole = entry.read_text()
    old_version = entry.with_suffix(".json")  # where cache v2 kept this log's records
    old_version.write_text("{}")
    lines = whole.splitlines(keepends=True)
    half_line = "".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]
    line_short = "".join(lines[:-1])  # whole lines, one sample fewer
    garbage_entries = ['{"version": 1, "key": [', "not json at all", '{"version": 1}', ""]
    for garbage in [*garbage_entries, half_line, line_short]:
        entry.write_text(garbage)
        clear_cache()
        pd.testing.assert_frame_equal(score_frame(log_file), expected)
        assert entry.read_text() == whole  # rewritten whole
        assert not old_version.exists()
    assert not list(entry.parent.glob(".tmp-*"))  # no temporary file left behind


def test_disk_cache_can_be_turned_off(logs, tmp_path, monkeypatch):
    monkeypatch.setenv(reader_module.CACHE_ENV, "off")
    score_frame(logs["choice"])
    assert not (tmp_path / "cache" / "score-frames").exists()


# ------------------------------------------------------------------ unreadable logs


def test_missing_truncated_and_corrupt_logs_are_one_clear_error(logs, tmp_path):
    truncated = tmp_path / "truncated.eval"
    data = logs["rubric_base"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.eval"
    corrupt.write_bytes(b"this is not a zip file")
    for bad in (truncated, corrupt, tmp_path / "absent.eval"):
        with pytest.raises(LogReadError, match=re.escape(str(bad))) as err:
            score_frame(bad)
        assert isinstance(err.value, ScoreFrameError) and isinstance(err.value, UserError)
        assert "\n" not in str(err.value)


def test_cli_reports_an_unreadable_log_in_one_line(logs, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.eval"
    corrupt.write_bytes(b"PK\x03\x04 broken")
    assert main(["compare", str(logs["choice"]), str(corrupt), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(corrupt) in err and "Traceback" not in err


# ------------------------------------------------------------------ cluster by source question


def _diffs_by_pair(path_a: Path, path_b: Path, key: str):
    """Paired (sample, epoch) differences of `key` from the raw logs, with question/source ids."""
    values = {}
    for path in (path_a, path_b):
        log = read_eval_log(str(path))
        values[path] = {
            (str(s.id), s.epoch): (
                s.scores["rubric_scorer"].value.get(key) if s.scores else math.nan,
                s.metadata["source_id"],
            )
            for s in log.samples
        }
    out = []
    for pair, (a, source) in values[path_a].items():
        b = values[path_b][pair][0]
        if a is not None and b is not None and not math.isnan(a) and not math.isnan(b):
            out.append((b - a, source))
    return out


def test_cluster_by_source_clusters_translations_together(logs):
    import statsmodels.api as sm

    base, tuned = logs["rubric_base"], logs["rubric_tuned"]
    by_source = score_frame(base, cluster_by="source")
    assert sorted(set(by_source["question_id"])) == ["src0", "src1", "src2"]
    (q_row,) = [r for r in compare_logs(base, tuned, keys=["Care"], n_resamples=500)]
    (s_row,) = [
        r for r in compare_logs(base, tuned, keys=["Care"], n_resamples=500, cluster_by="source")
    ]
    # no complete pair for s1 (unparseable in base) and s5 (failed in tuned): 4 questions left,
    # from all 3 source questions
    assert q_row.n_clusters == QUESTIONS - 2
    assert s_row.n_clusters == 3
    assert s_row.diff == pytest.approx(q_row.diff)  # same pairs, other clusters
    # the clustered SE equals statsmodels' cluster-robust (CR1) SE of the mean difference
    diffs = _diffs_by_pair(base, tuned, "Care")
    y = np.array([d for d, _ in diffs])
    groups = pd.factorize(np.array([s for _, s in diffs]))[0]
    fit = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert s_row.diff == pytest.approx(y.mean())
    assert s_row.se == pytest.approx(float(fit.bse[0]))


def test_cluster_by_source_without_source_ids_names_the_log(logs, tmp_path, capsys):
    with pytest.raises(ScoreFrameError, match=r"source_id.*" + re.escape(str(logs["choice"]))):
        score_frame(logs["choice"], cluster_by="source")
    with pytest.raises(ScoreFrameError, match="cluster_by must be one of"):
        score_frame(logs["choice"], cluster_by="language")
    assert (
        main(
            ["compare", str(logs["rubric_base"]), str(logs["choice"]), "--by", "log"]
            + ["--cluster-by", "source", "-o", str(tmp_path)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(logs["choice"]) in err and "source_id" in err


def test_cli_cluster_by_source_writes_the_setting(logs, tmp_path, capsys):
    assert (
        main(
            [
                "compare",
                str(logs["rubric_base"]),
                str(logs["rubric_tuned"]),
                "--cluster-by",
                "source",
            ]
            + ["--n-resamples", "300", "-o", str(tmp_path)]
        )
        == 0
    )
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["settings"]["cluster_by"] == "source"
    assert {row["n_clusters"] for row in data["rows"]} <= {2, 3}  # Honesty: even questions only


def test_summary_reads_no_whole_log_and_keeps_the_grade_share(logs, monkeypatch):
    """`caml-evals summary` (and the suite) read the header and the sample summaries only: the
    missing-grade share comes from the grade counts the records keep, and equals the share
    computed from the whole samples."""
    import inspect_ai.log as inspect_log

    from caml_evals import summary as summary_module
    from caml_evals.scoring.grades import EXPECTED_COUNT_KEY, MISSING_COUNT_KEY

    path = logs["rubric_base"]
    whole = read_eval_log(str(path))
    missing = sum(s.scores["rubric_scorer"].metadata[MISSING_COUNT_KEY] for s in whole.samples)
    expected = sum(s.scores["rubric_scorer"].metadata[EXPECTED_COUNT_KEY] for s in whole.samples)
    assert missing > 0  # the log has unparseable grades, so the share is not trivially 0

    def refuse(*args, **kwargs):
        raise AssertionError("summary read a whole log")

    real = inspect_log.read_eval_log

    def header_only(name, *args, header_only=False, **kwargs):
        if not header_only:
            refuse()
        return real(name, *args, header_only=True, **kwargs)

    monkeypatch.setattr(reader_module, "read_eval_log", header_only)
    monkeypatch.setattr(inspect_log, "read_eval_log", header_only)
    monkeypatch.setattr(summary_module, "read_log_header", lambda p: real(str(p), header_only=True))
    row = summary_module.summarise_log(path, n_resamples=200)
    assert row.missing_rate == pytest.approx(missing / expected)
    assert row.stats["missing_rate"].n == expected


# ------------------------------------------------------------------ a compact frame


def test_text_columns_are_categoricals_that_sort_as_strings(logs):
    frame = score_frame([logs["rubric_base"], logs["choice"], logs["rubric_tuned"]])
    for column in CATEGORICAL_COLUMNS:
        dtype = frame[column].dtype
        assert isinstance(dtype, pd.CategoricalDtype), column
        categories = list(dtype.categories)
        assert categories == sorted(categories) == sorted(set(frame[column].astype(str)))
    as_text = plain(frame)
    # sorting and grouping order rows as the strings would
    by = ["key", "log", "sample_id", "epoch"]
    pd.testing.assert_frame_equal(
        plain(frame.sort_values(by, kind="stable")), as_text.sort_values(by, kind="stable")
    )
    grouped = frame.groupby(["task", "key"])["value"].mean()
    expected = as_text.groupby(["task", "key"])["value"].mean()
    assert list(map(tuple, grouped.index)) == list(map(tuple, expected.index))
    np.testing.assert_allclose(grouped.to_numpy(), expected.to_numpy())
    # first-seen order is kept where callers rely on it (keys in the scorer's order)
    assert list(frame["key"].unique()) == list(as_text["key"].unique())


def test_score_records_share_what_repeats(logs):
    """Epochs of one question share its ids, dimensions and key strings (the records are the
    bulk of a big log's memory, see `reader`'s docstring)."""
    clear_cache()
    records = read_log_scores(logs["rubric_base"], reasons=False).samples
    by_question: dict[str, list] = {}
    for record in records:
        by_question.setdefault(record.ids.get("question_id", str(record.id)), []).append(record)
    repeated = [rs for rs in by_question.values() if len(rs) > 1]
    assert repeated, "the fixture has questions with several epochs"
    for rs in repeated:
        assert len({id(r.ids) for r in rs}) == 1
        assert len({id(r.dimensions) for r in rs}) == 1
    key_objects = {k: set() for r in records for s in r.scores.values() for k in s.value}
    for r in records:
        for s in r.scores.values():
            for k in s.value:
                key_objects[k].add(id(k))
    assert all(len(ids) == 1 for ids in key_objects.values())


def test_the_stats_package_imports_no_heavy_statistics(tmp_path):
    """statsmodels, scipy.stats and matplotlib (~100 MiB together) are imported where they
    are used, so a reader of scores or `caml-evals compare` loads them only for its last step."""
    code = (
        "import sys\n"
        "import caml_evals.stats, caml_evals.stats.cli, caml_evals.stats.length\n"
        "print(sorted(m for m in ('statsmodels', 'scipy.stats', 'matplotlib') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_answer_lengths_take_numbers_only():
    ok = {"tokens": 120.0, "words": 90.0, "truncated": 1, "answers": 2}
    assert reader_module.answer_lengths({"answer": ok}) == (120.0, 90.0, 0.5)
    no_usage = reader_module.answer_lengths({"answer": {**ok, "tokens": None}})
    assert math.isnan(no_usage[0]) and no_usage[1:] == (90.0, 0.5)
    assert reader_module.answer_lengths({"answer": {**ok, "truncated": True}})[2] == 0.5
    for bad in ({**ok, "tokens": "many"}, {**ok, "words": [1]}, {**ok, "answers": "2"}):
        assert reader_module.answer_lengths({"answer": bad}) == reader_module.UNREADABLE_ANSWER
    assert reader_module.answer_lengths({"answer": "x"}) is None  # not a record at all
    assert reader_module.answer_lengths(None) is None


def test_an_unreadable_answer_record_is_left_out_and_said(logs, tmp_path, caplog):
    """A hand-edited answer record: the scores are read as ever, the length report leaves the
    record out and a warning says how many (never a crash, never a silent drop)."""
    from inspect_ai.log import write_eval_log

    from caml_evals.stats.length import answer_frame

    whole = read_eval_log(str(logs["rubric_base"]))
    before = answer_frame([logs["rubric_base"]])
    assert len(before) > 0
    sample = next(s for s in whole.samples if s.scores)
    score = next(iter(sample.scores.values()))
    score.metadata["answer"] = {**score.metadata["answer"], "tokens": "many"}
    edited = tmp_path / "edited.eval"
    write_eval_log(whole, str(edited))
    pd.testing.assert_frame_equal(
        plain(score_frame(edited)).drop(columns="log"),
        plain(score_frame(logs["rubric_base"])).drop(columns="log"),
    )
    with caplog.at_level("WARNING", logger="caml_evals.stats.length"):
        after = answer_frame([edited])
    assert len(after) == len(before) - 1
    said = [r.getMessage() for r in caplog.records if r.name == "caml_evals.stats.length"]
    assert said == [
        f"{edited}: 1 answer records are not numbers; the length report leaves them out"
    ]
