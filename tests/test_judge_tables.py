"""The judge's settings in every results table: `caml-evals summary`, the suite summary and
`caml-evals compare` show, per log or arm, the grader models and settings the log recorded, and
compare warns when two arms were judged differently (part of their difference is the judge's).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.model import get_model

from caml_evals.scoring.judge_settings import judge_text, logged_judge
from caml_evals.tasks.human_compassion.task import human_compassion


def _judge(prompt: str) -> str:
    listed = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
    return json.dumps(
        {"grades": [{"dimension": d, "meets": i % 2 == 0} for i, d in enumerate(listed)]}
    )


def _run(log_dir: Path, **task_args) -> str:
    [log] = eval(
        human_compassion(**task_args),
        model=get_model("scripted/answerer", memoize=False, reply="An answer."),
        model_roles={"grader": get_model("scripted/judge", memoize=False, responder=_judge)},
        log_dir=str(log_dir),
        display="none",
        limit=3,
    )
    assert log.status == "success", log.error
    return log.location


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("judged")
    return {
        "cold": _run(tmp / "cold", grader_temperature=0, grader_max_tokens=400),
        "warm": _run(tmp / "warm", grader_temperature=1, criteria_order="both"),
    }


def test_logged_judge_and_its_text(logs) -> None:
    from caml_evals.logs import read_log_header

    judge = logged_judge(read_log_header(logs["cold"]))
    assert judge["graders"] == {"grader": "scripted/judge"}
    assert judge["grader_temperature"] == 0 and judge["grader_max_tokens"] == 400
    text = judge_text(judge)
    assert text == "grader=scripted/judge temperature=0.0 max_tokens=400 order=shuffled repeats=1"
    defaults = {**judge, "grader_temperature": None, "grader_max_tokens": None}
    assert "provider defaults" in judge_text(defaults)
    assert judge_text(None) == "-"


def test_summary_cli_has_a_judge_column(logs, tmp_path, capsys) -> None:
    from caml_evals.cli import main

    out = tmp_path / "s.json"
    args = ["summary", logs["cold"], logs["warm"], "--brief", "--n-resamples", "50"]
    assert main([*args, "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split("\t")
    assert header[-1] == "judge"
    judge = [line.split("\t")[header.index("judge")] for line in lines[1:3]]
    assert judge[0].endswith("temperature=0.0 max_tokens=400 order=shuffled repeats=1")
    assert judge[1].endswith("temperature=1.0 order=both repeats=1")
    rows = json.loads(out.read_text())
    assert rows[0]["judge"]["grader_max_tokens"] == 400


def test_suite_summary_has_a_judge_column(logs) -> None:
    from caml_evals.suite import summarise_logs, to_markdown

    summary = summarise_logs(Path(logs["warm"]).parent, require=True)
    [row] = summary.rows
    assert row.judge["criteria_order"] == "both"
    md = to_markdown(summary)
    assert "| judge |" in md and "temperature=1.0 order=both repeats=1 |" in md


def test_compare_shows_each_arms_judge_and_warns_when_they_differ(logs, tmp_path, capsys) -> None:
    from caml_evals.cli import main

    out = tmp_path / "cmp"
    args = ["compare", logs["cold"], logs["warm"], "--by", "log", "-o", str(out)]
    assert main([*args, "--n-resamples", "100", "--keys", "overall"]) == 0
    printed = capsys.readouterr().out
    assert "judge per arm" in printed
    assert "temperature=0.0 max_tokens=400" in printed and "temperature=1.0" in printed
    assert "judged differently" in printed
    data = json.loads((out / "comparison.json").read_text())
    judges = data["settings"]["judges"]
    [mismatch] = judges["mismatches"]
    assert mismatch["task"].endswith("human_compassion")
    assert "judged differently" in (out / "comparison.md").read_text()


def test_compare_says_nothing_when_the_judge_is_the_same(logs, tmp_path, capsys) -> None:
    from caml_evals.cli import main

    again = _run(tmp_path / "again", grader_temperature=0, grader_max_tokens=400)
    args = ["compare", logs["cold"], again, "--by", "log", "-o", str(tmp_path / "cmp")]
    assert main([*args, "--n-resamples", "100", "--keys", "overall"]) == 0
    printed = capsys.readouterr().out
    assert "judge per arm" in printed and "judged differently" not in printed


def test_value_pressure_takes_the_judge_settings() -> None:
    from caml_evals.tasks.value_pressure.task import value_pressure

    task = value_pressure(
        grader_temperature=0, grader_seed=3, criteria_order="both", judge_repeats=2
    )
    settings = task.metadata["judge_settings"]
    assert settings["grader_temperature"] == 0 and settings["grader_seed"] == 3
    assert (settings["criteria_order"], settings["judge_repeats"]) == ("both", 2)
