"""caml_evals.suite: building the task list, running it resumably, the summary table, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from inspect_ai.model import get_model

from caml_evals import suite
from caml_evals.cli import main as cli_main

FIXTURES = Path(__file__).parent / "fixtures" / "controls"
TEST_FIXTURES = Path(__file__).parent / "fixtures"
CONTROL_TASKS = ["hellaswag", "strongreject", "power_seeking", "corrigibility"]
COMPASSION_TASKS = ["ahb", "moru", "tac", "human_compassion"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory, shared_data: Path) -> Path:
    """A data_dir pool in the shared layout: project fixtures + the real risk evals."""
    root = tmp_path_factory.mktemp("pool")
    (root / "hellaswag").mkdir()
    shutil.copy(FIXTURES / "hellaswag.jsonl", root / "hellaswag" / "validation.jsonl")
    (root / "strongreject").mkdir()
    shutil.copy(FIXTURES / "strongreject_dataset.csv", root / "strongreject")
    (root / "advanced-ai-risk").symlink_to(shared_data / "advanced-ai-risk")
    return root


@pytest.fixture(scope="module")
def compassion_pool(tmp_path_factory, shared_data: Path) -> Path:
    """A data_dir pool for the compassion set: real AHB 2.1 + the project's own fixtures."""
    ahb = shared_data / "ahb-2.1"
    if not (ahb / "questions.jsonl").is_file():
        pytest.skip(f"AHB 2.1 data missing under {ahb}")
    root = tmp_path_factory.mktemp("compassion-pool")
    (root / "ahb-2.1").symlink_to(ahb)
    for name in ("moru", "human_compassion", "tac"):
        shutil.copytree(TEST_FIXTURES / name, root / name)
    return root


def test_compassion_entries_build_from_a_local_pool(compassion_pool, monkeypatch):
    """Each compassion benchmark builds through the suite from the pool, not the Hub or the
    packaged sets (offline, so a fallback to the Hub would fail loudly)."""
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tasks, unavailable = suite.suite_tasks(
        COMPASSION_TASKS, data_dir=str(compassion_pool), limit=2, model="scripted/subject"
    )
    assert unavailable == []
    by_name = {t.name.split("/")[-1]: t for t in tasks}
    assert list(by_name) == COMPASSION_TASKS
    assert all(len(t.dataset) == 2 for t in tasks)
    assert str(compassion_pool / "ahb-2.1") in by_name["ahb"].dataset.location
    assert by_name["moru"].dataset.location == str(compassion_pool / "moru")
    assert [s.id for s in by_name["moru"].dataset] == ["1-en", "1-ms"]  # the fixture's rows
    assert str(compassion_pool / "human_compassion") in by_name["human_compassion"].dataset.location
    assert by_name["tac"].metadata["scenarios"] == (
        f"data_dir:{compassion_pool / 'tac' / 'scenarios.json'}"
    )
    assert [s.metadata["scenario_id"] for s in by_name["tac"].dataset] == ["fx-riding"] * 2
    for name in ("ahb", "moru", "human_compassion"):  # rubric tasks: one rubric per sample
        assert all(s.metadata["rubric"] for s in by_name[name].dataset), name


def test_tac_without_pool_data_uses_its_open_set(pool, monkeypatch):
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    tasks, unavailable = suite.suite_tasks(["tac"], data_dir=str(pool))  # pool has no tac/
    assert unavailable == [] and len(tasks[0].dataset) == 48
    assert tasks[0].metadata["scenarios"].startswith("open:")


def _judge(prompt: str) -> str:
    return "#scores\n1.b 1\n2.b 1\n3.b 1"  # always a refusal


@pytest.fixture(scope="module")
def suite_run(pool: Path, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("suite-logs")
    summary = suite.run_suite(
        model="scripted/subject",
        model_args={"reply": "ANSWER: A"},
        model_roles={"grader": get_model("scripted/suite-judge", responder=_judge, memoize=False)},
        tasks=CONTROL_TASKS,
        limit=4,
        log_dir=log_dir,
        data_dir=str(pool),
        choice_mode="auto",
        retry_attempts=0,
        display="none",
    )
    return summary, log_dir


def test_unknown_task_names_are_rejected():
    with pytest.raises(ValueError, match="unknown suite task"):
        suite.suite_tasks(["hellaswag", "mmlu"])


def test_choice_mode_auto_picks_loglik_for_local_models():
    assert suite.resolve_choice_mode("auto", "caml/smollm2") == "loglik"
    assert suite.resolve_choice_mode("auto", "openai/gpt-4o") == "generate"
    assert suite.resolve_choice_mode("generate", "caml/smollm2") == "generate"


def test_missing_benchmark_code_is_reported_not_a_crash(monkeypatch, pool):
    ghost = suite.SuiteEntry(
        name="ghost",
        module="caml_evals.tasks.ghost.task",
        function="ghost",
        group="compassion",
        data_subfolder="ghost",
        headline=("overall",),
        better="higher",
        meaning="not written yet",
    )
    monkeypatch.setitem(suite.SUITE, "ghost", ghost)
    tasks, unavailable = suite.suite_tasks(["ghost", "power_seeking"], data_dir=str(pool), limit=2)
    assert [t.name for t in tasks] == ["caml_evals/power_seeking"]
    assert len(tasks[0].dataset) == 2
    assert unavailable[0].name == "ghost" and "not in this checkout" in unavailable[0].reason


def test_misspelt_task_args_fail_loudly(pool):
    tasks, unavailable = suite.suite_tasks(
        ["power_seeking"], data_dir=str(pool), task_args={"power_seeking": {"oder": "both"}}
    )
    assert tasks == [] and "oder" in unavailable[0].reason


def test_a_broken_data_source_is_reported_per_task(monkeypatch, tmp_path):
    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tasks, unavailable = suite.suite_tasks(["hellaswag", "strongreject"], data_dir=str(tmp_path))
    assert tasks == []
    assert {u.name for u in unavailable} == {"hellaswag", "strongreject"}
    assert all("DataSourceError" in u.reason for u in unavailable)


def test_default_suite_lists_compassion_set_then_controls():
    assert list(suite.DEFAULT_TASKS[:4]) == ["ahb", "moru", "tac", "human_compassion"]
    assert {"hellaswag", "strongreject", "power_seeking", "corrigibility"} <= set(
        suite.DEFAULT_TASKS
    )


def test_suite_runs_and_tabulates(suite_run):
    summary, log_dir = suite_run
    rows = {r.task: r for r in summary.rows}
    assert set(rows) == set(CONTROL_TASKS)
    assert all(r.status == "success" and r.samples == 4 for r in rows.values())
    # hellaswag fixture gold letters D, D, C, A -> always-"A" gets 1 of 4
    assert rows["hellaswag"].headline == "accuracy" and rows["hellaswag"].mode == "generate"
    assert rows["hellaswag"].value == pytest.approx(0.25)
    assert rows["hellaswag"].stderr is not None and rows["hellaswag"].missing == 0.0
    assert rows["strongreject"].headline == "score" and rows["strongreject"].value == 0.0
    assert rows["strongreject"].better == "lower" and rows["strongreject"].metrics["refusal"] == 1.0
    assert rows["corrigibility"].headline == "risky"
    assert rows["corrigibility"].value == pytest.approx(0.5)  # two 2-choice questions, both orders
    assert rows["power_seeking"].missing == 0.0
    assert rows["power_seeking"].headline == "risky" and rows["power_seeking"].better == "lower"
    ps = rows["power_seeking"]
    assert ps.ci_low is not None and ps.ci_low <= ps.value <= ps.ci_high and ps.n_missing == 0

    md = (log_dir / suite.SUMMARY_MD).read_text()
    assert "| scripted/subject | hellaswag (generate) | accuracy | 0.250 |" in md
    assert "| 95% CI |" in md and "| n missing |" in md
    assert "## All metrics" in md and "matching_at=B" in md and "risky" in md
    data = json.loads((log_dir / suite.SUMMARY_JSON).read_text())  # strict JSON: NaN -> null
    assert {r["task"] for r in data["rows"]} == set(CONTROL_TASKS)


def test_rerunning_into_the_same_log_dir_resumes(suite_run, pool):
    _, log_dir = suite_run
    before = sorted(p.name for p in log_dir.glob("*.eval"))
    again = suite.run_suite(
        model="scripted/subject",
        model_args={"reply": "ANSWER: A"},
        model_roles={"grader": get_model("scripted/suite-judge", responder=_judge, memoize=False)},
        tasks=CONTROL_TASKS,
        limit=4,
        log_dir=log_dir,
        data_dir=str(pool),
        retry_attempts=0,
        display="none",
    )
    assert sorted(p.name for p in log_dir.glob("*.eval")) == before  # nothing re-run
    assert len(again.rows) == len(CONTROL_TASKS)


def test_cli_summarize_builds_the_table_from_logs(suite_run, tmp_path, capsys):
    _, log_dir = suite_run
    out = tmp_path / "table"
    assert cli_main(["suite", "--summarize", str(log_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "strongreject" in printed and "\trisky\t" in printed
    assert (out / suite.SUMMARY_MD).is_file() and (out / suite.SUMMARY_JSON).is_file()


def test_cli_errors_are_clear(tmp_path, capsys):
    assert cli_main(["suite"]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert cli_main(["suite", "--summarize", str(tmp_path)]) == 1
    with pytest.raises(SystemExit, match="ROLE=MODEL"):
        cli_main(["suite", "--model", "scripted/x", "--model-role", "grader"])
    with pytest.raises(SystemExit, match="unknown task"):
        cli_main(["suite", "--model", "scripted/x", "--tasks", "hellaswag,mmlu"])
