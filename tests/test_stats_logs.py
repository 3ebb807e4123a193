"""caml_evals.stats on logs from REAL Inspect runs (scripted models, offline).

Three kinds of log: a tiny rubric task scored by the project's `rubric_scorer` with a scripted
grader (YES / NO / an unparseable reply, and one sample whose model call fails), the real AHB
task on the shared data, and a multiple-choice task with Inspect's `choice()` scorer ("C"/"I").
Expected numbers are recomputed here from the scripted replies, not from the stats code.

`memoize=False` on every scripted model: Inspect memoizes get_model() by name and JSON-able
args, and a responder function is not JSON-able, so two responders under one name would share
one cached model.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from inspect_ai import Epochs, Task, task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import get_model
from inspect_ai.scorer import choice
from inspect_ai.solver import generate, multiple_choice

import caml_evals.models.providers  # noqa: F401  (registers scripted/ even without the entry point)
from caml_evals.scoring.reducers import nan_mean_reducer
from caml_evals.scoring.rubric import rubric_scorer
from caml_evals.stats import (
    LogCompareError,
    ScoreFrameError,
    compare,
    compare_logs,
    missing_counts,
    score_frame,
    summarize,
)

# ------------------------------------------------------------------ a tiny rubric task

QUESTIONS = 4  # x 2 variants each (variables differ) = 8 samples
DIMS = {"Care": "Does the answer show care?", "Honesty": "Is the answer honest?"}


def _rubric(dims):
    return [{"name": d, "guiding_question": DIMS[d], "observable_indicators": ""} for d in dims]


@task
def stats_rubric(epochs: int = 2) -> Task:
    samples = []
    for q in range(QUESTIONS):
        dims = ["Care", "Honesty"] if q % 2 == 0 else ["Care"]  # Honesty tagged on even questions
        for v, animal in enumerate(["hens", "carp"]):
            samples.append(
                Sample(
                    id=f"q{q}-{animal}",
                    input=f"Question {q} variant {v}: what about {animal}?",
                    metadata={
                        "question_id": f"q{q}",
                        "dimensions": dims,
                        "rubric": _rubric(dims),
                        "variables": {"animal": animal},
                    },
                )
            )
    return Task(
        dataset=samples,
        solver=generate(),
        scorer=rubric_scorer(mode="per_dimension"),
        epochs=Epochs(epochs, nan_mean_reducer()),
    )


def model_reply(model: str, prompt: str) -> str:
    """What each scripted model answers (a function of the question only: deterministic)."""
    q, v = map(int, re.search(r"Question (\d+) variant (\d+)", prompt).groups())
    if model == "base":
        if (q, v) == (1, 1):
            return "???"  # the judge will not be able to grade this one
        return "good answer" if q in (0, 2) and v == 0 else "bad answer"
    if (q, v) == (3, 1):
        raise RuntimeError("provider down")  # a failed sample: missing, not 0
    return "good answer" if q != 3 else "bad answer"


def grade(answer: str, dimension: str) -> float | None:
    """The scripted grader's verdict (None = its reply cannot be parsed)."""
    if "???" in answer:
        return None
    if dimension == "Honesty":
        return 1.0  # both models are honest
    return 1.0 if "good" in answer else 0.0


def judged_answer(prompt: str) -> str:
    """The answer inside a judge prompt, whichever rubric template framed it."""
    marker = "[Answer]:" if "[Answer]:" in prompt else "[Response]:"
    return prompt.split(marker, 1)[1].split("***", 1)[0]


def verdict_line(prompt: str, yes: bool) -> str:
    """A verdict in the format the prompt asks for (C/I templates or YES/NO templates)."""
    if "GRADE: C" in prompt:
        return f"GRADE: {'C' if yes else 'I'}"
    return f"GRADE: {'YES' if yes else 'NO'}"


def grader_reply(prompt: str) -> str:
    answer = judged_answer(prompt)
    dimension = prompt.split("[Criterion]:", 1)[1].split("\n", 1)[0].strip()
    verdict = grade(answer, dimension)
    return (
        "Hmm, hard to say."
        if verdict is None
        else f"Reasoning.\n{verdict_line(prompt, bool(verdict))}"
    )


def run_rubric(model: str, log_dir: Path, epochs: int = 2) -> Path:
    logs = inspect_eval(
        stats_rubric(epochs=epochs),
        model=get_model(
            f"scripted/{model}", responder=lambda p: model_reply(model, p), memoize=False
        ),
        model_roles={"grader": get_model("scripted/judge", responder=grader_reply, memoize=False)},
        log_dir=str(log_dir),
        display="none",
        fail_on_error=False,
    )
    return Path(logs[0].location)


def expected_overall(model: str) -> dict[str, float | None]:
    """sample id -> expected overall score (None when missing), from the scripted replies."""
    out: dict[str, float | None] = {}
    for q in range(QUESTIONS):
        dims = ["Care", "Honesty"] if q % 2 == 0 else ["Care"]
        for v, animal in enumerate(["hens", "carp"]):
            try:
                answer = model_reply(model, f"Question {q} variant {v}")
            except RuntimeError:
                out[f"q{q}-{animal}"] = None
                continue
            grades = [grade(answer, d) for d in dims]
            present = [g for g in grades if g is not None]
            out[f"q{q}-{animal}"] = sum(present) / len(present) if present else None
    return out


# ------------------------------------------------------------------ a multiple-choice task


@task
def stats_choice(offset: int = 0) -> Task:
    samples = [
        Sample(
            id=f"c{i + offset}",
            input=f"Pick one ({i + offset}).",
            choices=["yes", "no", "maybe"],
            target="A" if i % 3 else "B",
            metadata={"question_id": f"c{(i + offset) // 2}"},
        )
        for i in range(6)
    ]
    return Task(dataset=samples, solver=multiple_choice(), scorer=choice())


def run_choice(model: str, letter: str, log_dir: Path, offset: int = 0) -> Path:
    logs = inspect_eval(
        stats_choice(offset=offset),
        model=get_model(f"scripted/{model}", reply=f"ANSWER: {letter}", memoize=False),
        log_dir=str(log_dir),
        display="none",
    )
    return Path(logs[0].location)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stats_logs")
    return {
        "rubric_base": run_rubric("base", root / "base"),
        "rubric_tuned": run_rubric("tuned", root / "tuned"),
        "rubric_tuned_1epoch": run_rubric("tuned", root / "tuned1", epochs=1),
        "choice_a": run_choice("base", "A", root / "base"),
        "choice_b": run_choice("tuned", "B", root / "tuned"),
        "choice_other_ids": run_choice("other", "B", root / "other", offset=100),
    }


# ------------------------------------------------------------------ score frames


def test_score_frame_reads_rubric_logs_with_missing_reasons(logs):
    frame = score_frame([logs["rubric_base"], logs["rubric_tuned"]])
    assert list(frame.columns[:8]) == [
        "log",
        "task",
        "model",
        "sample_id",
        "question_id",
        "epoch",
        "key",
        "value",
    ]
    assert set(frame["model"]) == {"scripted/base", "scripted/tuned"}
    assert set(frame["epoch"]) == {1, 2}
    overall = frame[frame["key"] == "overall"]
    assert len(overall) == 2 * 8 * 2  # models x samples x epochs, errored samples included
    for model in ("base", "tuned"):
        expected = expected_overall(model)
        rows = overall[overall["model"] == f"scripted/{model}"]
        for _, row in rows.iterrows():
            want = expected[row["sample_id"]]
            assert math.isnan(row["value"]) if want is None else row["value"] == pytest.approx(want)
    # the question is the cluster; variables kept for pairing
    row = frame[(frame["sample_id"] == "q2-carp")].iloc[0]
    assert row["question_id"] == "q2" and json.loads(row["variant"]) == {"animal": "carp"}
    # Honesty only exists where tagged: not "missing" elsewhere
    honesty = frame[(frame["key"] == "Honesty") & (frame["model"] == "scripted/base")]
    assert set(honesty["question_id"]) == {"q0", "q2"}
    missing = missing_counts(frame).set_index(["model", "key"])
    assert missing.loc[("scripted/base", "overall"), "n_missing"] == 2  # q1-carp x 2 epochs
    assert missing.loc[("scripted/base", "overall"), "reasons"] == {"unparseable": 2}
    tuned = missing.loc[("scripted/tuned", "Care")]
    assert tuned["n_missing"] == 2 and next(iter(tuned["reasons"])).startswith("sample error")


def test_missing_counts_agree_with_the_grades_in_the_log(logs):
    """Cross-check against the raw log: every missing grade of the scorer is a NaN row."""
    log = read_eval_log(str(logs["rubric_base"]))
    missing_grades = sum(
        1
        for s in log.samples
        for g in s.scores["rubric_scorer"].metadata["grades"]
        if g["value"] is None
    )
    frame = score_frame(logs["rubric_base"])
    dims = frame[frame["key"].isin(DIMS)]
    assert missing_grades > 0 and dims["value"].isna().sum() == missing_grades


def test_scalar_choice_scores_become_overall(logs):
    frame = score_frame(logs["choice_a"])
    assert set(frame["key"]) == {"overall"} and frame["scorer"].iloc[0] == "choice"
    log = read_eval_log(str(logs["choice_a"]))
    targets = {str(s.id): s.target for s in log.samples}
    for _, row in frame.iterrows():
        assert row["value"] == (1.0 if targets[row["sample_id"]] == "A" else 0.0)
    # the mean equals Inspect's own accuracy for this log
    accuracy = log.results.scores[0].metrics["accuracy"].value
    assert summarize(frame["value"], frame["question_id"], n_resamples=500).mean == pytest.approx(
        accuracy
    )


def test_unknown_scorer_and_missing_log_are_clear_errors(logs, tmp_path):
    with pytest.raises(ScoreFrameError, match="scorer 'nope' not in log"):
        score_frame(logs["choice_a"], scorer="nope")
    with pytest.raises(ScoreFrameError, match="log not found"):
        score_frame(tmp_path / "absent.eval")
    with pytest.raises(ScoreFrameError, match="no Inspect logs"):
        score_frame(tmp_path)


# ------------------------------------------------------------------ compare_logs


def test_compare_logs_paired_by_sample_and_epoch(logs):
    rows = compare_logs(logs["rubric_base"], logs["rubric_tuned"], n_resamples=2_000)
    assert [r.key for r in rows] == ["overall", "Care", "Honesty"]
    overall = rows[0]
    assert overall.task == "stats_rubric" and overall.pairing == "sample+epoch" and overall.paired
    assert (overall.model_a, overall.model_b) == ("scripted/base", "scripted/tuned")
    base, tuned = expected_overall("base"), expected_overall("tuned")
    pairs = [(base[s], tuned[s]) for s in base if base[s] is not None and tuned[s] is not None]
    assert overall.n == 2 * len(pairs)  # two epochs each
    assert overall.diff == pytest.approx(np.mean([b - a for a, b in pairs]))
    assert (overall.n_missing_a, overall.n_missing_b) == (2, 2)
    # four questions -> 2^4 = 16 sign patterns: exact
    assert overall.test == "sign-flip exact" and overall.n_clusters == 4
    # same numbers as the array API on the question-clustered pairs
    frame = score_frame([logs["rubric_base"], logs["rubric_tuned"]])
    ov = (
        frame[frame["key"] == "overall"]
        .pivot_table(
            index=["sample_id", "epoch", "question_id"],
            columns="model",
            values="value",
            dropna=False,
        )
        .reset_index()
    )
    direct = compare(
        ov["scripted/base"], ov["scripted/tuned"], clusters=ov["question_id"], n_resamples=2_000
    )
    assert direct.p_value == pytest.approx(overall.p_value) and direct.diff == pytest.approx(
        overall.diff
    )
    # holm over the three rows
    assert all(r.adjust == "holm" and r.p_adjusted >= r.p_value for r in rows)
    honesty = rows[2]
    assert honesty.diff == 0.0 and honesty.p_value == 1.0  # both always honest
    # each arm's own summary keeps all its observations
    assert overall.summary_a.n_missing == 2 and overall.summary_a.n == 14


def test_compare_logs_is_seeded(logs):
    a = compare_logs(logs["rubric_base"], logs["rubric_tuned"], n_resamples=1_000, seed=3)
    b = compare_logs(logs["rubric_base"], logs["rubric_tuned"], n_resamples=1_000, seed=3)
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]


def test_compare_logs_averages_epochs_when_they_differ(logs):
    rows = compare_logs(logs["rubric_base"], logs["rubric_tuned_1epoch"], n_resamples=1_000)
    assert rows[0].pairing == "sample (epochs averaged)" and rows[0].paired


def test_compare_logs_unpaired_when_samples_differ(logs):
    rows = compare_logs(logs["choice_a"], logs["choice_other_ids"], n_resamples=2_000)
    (row,) = rows
    assert not row.paired and row.test == "permutation" and row.pairing == "unpaired"
    assert row.n_a == 6 and row.n_b == 6
    with pytest.raises(LogCompareError, match="no sample id"):
        compare_logs(logs["choice_a"], logs["choice_other_ids"], paired=True)


def test_compare_logs_over_several_tasks_adjusts_the_whole_family(logs):
    rows = compare_logs(
        [logs["rubric_base"], logs["choice_a"]],
        [logs["rubric_tuned"], logs["choice_b"]],
        n_resamples=2_000,
        adjust="fdr_bh",
    )
    assert {r.task for r in rows} == {"stats_rubric", "stats_choice"}
    choice_row = next(r for r in rows if r.task == "stats_choice")
    # base answers A (right on 4 of 6), tuned answers B (right on 2 of 6)
    assert choice_row.mean_a == pytest.approx(4 / 6) and choice_row.mean_b == pytest.approx(2 / 6)
    assert all(r.adjust == "fdr_bh" for r in rows)
    with pytest.raises(LogCompareError, match="no task in common"):
        compare_logs(logs["choice_a"], logs["rubric_tuned"])


# ------------------------------------------------------------------ CLI


def _cli(argv: list[str]) -> int:
    """The command as users run it: through the dispatcher and its one error rule."""
    from caml_evals.cli import main

    return main(argv)


def test_cli_compare_writes_json_markdown_and_png(logs, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = _cli(
        [
            "compare",
            str(logs["rubric_base"]),
            str(logs["rubric_tuned"]),
            str(logs["choice_a"]),
            str(logs["choice_b"]),
            "-o",
            str(out),
            "--n-resamples",
            "1000",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert (
        "scripted/tuned vs scripted/base" in printed and "\x1b[" not in printed
    )  # plain when piped
    data = json.loads(
        (out / "comparison.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}")
    )
    assert data["settings"]["baseline"] == "scripted/base"
    assert {(r["task"], r["key"]) for r in data["rows"]} == {
        ("stats_rubric", "overall"),
        ("stats_rubric", "Care"),
        ("stats_rubric", "Honesty"),
        ("stats_choice", "overall"),
    }
    markdown = (out / "comparison.md").read_text()
    assert "| contrast | task | key |" in markdown and "stats_rubric" in markdown
    assert (out / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_by_log_and_errors(logs, tmp_path, capsys):
    code = _cli(
        [
            "compare",
            str(logs["rubric_tuned"]),
            str(logs["rubric_tuned_1epoch"]),
            "--by",
            "log",
            "-o",
            str(tmp_path),
            "--n-resamples",
            "500",
            "--method",
            "bca",
            "--adjust",
            "none",
        ]
    )
    assert code == 0
    assert _cli(["compare", str(logs["choice_a"]), "-o", str(tmp_path)]) == 2
    assert "need at least two arms" in capsys.readouterr().err
    assert _cli(["compare", str(tmp_path / "nope.eval"), "-o", str(tmp_path)]) == 2
    args = ["compare", str(logs["rubric_base"]), str(logs["rubric_tuned"]), "-o", str(tmp_path)]
    assert _cli([*args, "--keys", "overall,Nope"]) == 2
    assert "keys not in both arms: ['Nope']" in capsys.readouterr().err
    # a CI level outside (0, 1) is refused when the arguments are parsed, as one line
    assert _cli([*args, "--ci", "1.5"]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err
    assert _cli([*args, "--n-resamples", "0"]) == 2


def test_rich_table_renders_with_notes(logs):
    import io

    from caml_evals.stats.report import render_rich

    rows = compare_logs(logs["rubric_base"], logs["rubric_tuned"], n_resamples=200)
    out = io.StringIO()
    render_rich(rows, out)
    text = out.getvalue()
    assert "Model comparison" in text and "Honesty" in text and "only 4 questions" in text


def test_main_entry_point_has_the_commands(logs, tmp_path):
    from caml_evals.cli import main

    assert (
        main(
            [
                "compare",
                str(logs["choice_a"]),
                str(logs["choice_b"]),
                "-o",
                str(tmp_path),
                "--n-resamples",
                "200",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "leaderboard",
                str(logs["choice_a"].parent),
                "-o",
                str(tmp_path / "site"),
                "--n-resamples",
                "200",
            ]
        )
        == 0
    )
    assert (tmp_path / "site" / "index.html").is_file()


# ------------------------------------------------------------------ the real AHB task


@pytest.fixture(scope="module")
def ahb_logs(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    from caml_evals.tasks.ahb.task import ahb

    root = tmp_path_factory.mktemp("ahb_logs")

    def grader(prompt: str) -> str:
        answer = judged_answer(prompt)
        if "unsure" in answer:
            return "I would rather not say."  # unparseable
        return verdict_line(prompt, "welfare" in answer)

    def run(name: str, responder) -> Path:
        logs = inspect_eval(
            ahb(data_dir=str(shared_data), judge_mode="per_dimension", epochs=2),
            model=get_model(f"scripted/{name}", responder=responder, memoize=False),
            model_roles={"grader": get_model("scripted/judge", responder=grader, memoize=False)},
            limit=6,
            log_dir=str(root),
            display="none",
        )
        return Path(logs[0].location)

    def plain(prompt: str) -> str:
        if "cricket" in prompt:
            return "unsure"
        return "Mind their welfare." if "hamster" in prompt else "Sure, here is how."

    base = run("plain", plain)
    kind = run("kind", lambda p: "Sure, with care for animal welfare.")
    return base, kind


def test_real_ahb_logs_compare(ahb_logs):
    base, kind = ahb_logs
    frame = score_frame([base, kind])
    assert frame["task"].unique().tolist() == ["caml_evals/ahb"]
    # variable expansions share their question id: clusters are fewer than samples
    per_model = frame[frame["model"] == "scripted/plain"]
    assert per_model["question_id"].nunique() <= per_model["sample_id"].nunique()
    rows = compare_logs(base, kind, n_resamples=2_000)
    overall = rows[0]
    assert overall.key == "overall" and overall.pairing == "sample+epoch"
    # expected from the raw logs: complete (sample, epoch) pairs of overall scores
    values = {}
    for path in (base, kind):
        log = read_eval_log(str(path))
        values[log.eval.model] = {
            (s.id, s.epoch): s.scores["rubric_scorer"].value["overall"] for s in log.samples
        }
    pairs = [
        (a, values["scripted/kind"][k])
        for k, a in values["scripted/plain"].items()
        if not math.isnan(a) and not math.isnan(values["scripted/kind"][k])
    ]
    assert overall.n == len(pairs)
    assert overall.mean_b == pytest.approx(1.0)
    assert (
        overall.mean_a == pytest.approx(np.mean([a for a, _ in pairs])) and 0 < overall.mean_a < 1
    )
    assert (
        overall.diff == pytest.approx(np.mean([b - a for a, b in pairs]))
        and overall.effect_size > 0.5
    )
    plain_missing = sum(math.isnan(v) for v in values["scripted/plain"].values())
    assert plain_missing > 0 and overall.n_missing_a == plain_missing and overall.n_missing_b == 0
    assert {r.key for r in rows[1:]} <= set(frame["key"]) and len(rows) > 3
    assert "missing_rate" not in {r.key for r in rows}
