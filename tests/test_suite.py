"""caml_evals.suite: the task list from the cards, running it resumably, the summary table
(headline and direction from the cards, the log rule of caml_evals.logs, missing as the share of
grades), the CLI and its one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.model import get_model
from inspect_ai.solver import Generate, TaskState, solver

from caml_evals import suite
from caml_evals.cards import TaskCard, load_cards
from caml_evals.cli import main as cli_main
from caml_evals.errors import TaskArgumentError

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
    ahb = compassion_pool / "ahb-2.1"  # a symlink: the location may be its target
    assert any(str(p) in by_name["ahb"].dataset.location for p in (ahb, ahb.resolve()))
    assert by_name["moru"].dataset.location == str(compassion_pool / "moru")
    assert [str(s.id)[:2] for s in by_name["moru"].dataset] in (
        ["1-", "1-"],
        ["1_", "1_"],
    )  # fixture rows
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


@solver
def _boom():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        raise RuntimeError("this run fails")

    return solve


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
    with pytest.raises(TaskArgumentError, match="unknown suite task.*mmlu.*known: .*hellaswag"):
        suite.suite_tasks(["hellaswag", "mmlu"])


def test_choice_mode_auto_picks_loglik_for_local_models():
    assert suite.resolve_choice_mode("auto", "caml/smollm2") == "loglik"
    assert suite.resolve_choice_mode("auto", "openai/gpt-4o") == "generate"
    assert suite.resolve_choice_mode("generate", "caml/smollm2") == "generate"


def test_missing_benchmark_code_is_reported_not_a_crash(monkeypatch, pool):
    ghost = TaskCard(
        name="ghost",
        title="A benchmark not written yet",
        version="0",
        module="caml_evals.tasks.ghost.task",
        function="ghost",
        group="compassion",
        data={"subfolder": "ghost"},
        headline=["overall"],
        direction="higher",
        meaning="not written yet",
    )
    cards = {"ghost": ghost, **suite.suite_cards()}
    monkeypatch.setattr(suite, "suite_cards", lambda: cards)
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


def test_default_suite_is_every_compassion_and_control_card():
    names = suite.default_tasks()
    assert set(names[:4]) == {"ahb", "moru", "tac", "human_compassion"}  # compassion first
    cards = load_cards()
    assert [cards[n].group for n in names] == ["compassion"] * 4 + ["control"] * (len(names) - 4)
    assert set(names) == {n for n, c in cards.items() if c.group in ("compassion", "control")}
    assert {"hellaswag", "strongreject", "power_seeking", "corrigibility"} <= set(names)


def test_entries_come_from_the_cards():
    """Module, function, data subfolder, grader need and choice mode: the card's, no table."""
    cards = suite.suite_cards()
    assert cards["power_seeking"].module == "caml_evals.tasks.advanced_ai_risk.task"
    assert cards["power_seeking"].data.subfolder == "advanced-ai-risk"
    assert cards["ahb"].needs_grader and not cards["ahb"].choice_task
    assert cards["hellaswag"].choice_task
    for name, c in cards.items():  # every card points at a real @task
        assert callable(suite.load_task_function(c)), name


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


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("caml-evals suite: "), err
    return err[0]


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert cli_main(["suite"]) == 2
    assert "--model is required" in _one_error_line(capsys)
    assert cli_main(["suite", "--summarize", str(tmp_path)]) == 2  # a folder without logs
    assert "no eval logs" in _one_error_line(capsys)
    assert cli_main(["suite", "--model", "scripted/x", "--model-role", "grader"]) == 2
    assert "ROLE=MODEL" in _one_error_line(capsys)
    assert cli_main(["suite", "--model", "scripted/x", "--tasks", "hellaswag,mmlu"]) == 2
    assert "unknown suite task(s) mmlu" in _one_error_line(capsys)
    assert cli_main(["suite", "--model", "scripted/x", "--task-arg", "mmlu.x=1"]) == 2
    assert "mmlu" in _one_error_line(capsys)
    assert cli_main(["suite", "--limit", "many"]) == 2
    assert "invalid int value: 'many'" in _one_error_line(capsys)


def test_summarize_into_an_unwritable_folder_leaves_nothing(suite_run, tmp_path, capsys):
    _, log_dir = suite_run
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert cli_main(["suite", "--summarize", str(log_dir), "--out", str(blocker / "out")]) == 2
    line = _one_error_line(capsys)
    assert str(blocker / "out") in line and "in the way" in line
    assert blocker.read_text() == "x"


def test_summarize_a_folder_with_a_corrupt_log_names_it(suite_run, tmp_path, capsys):
    _, log_dir = suite_run
    mixed = tmp_path / "mixed"
    shutil.copytree(log_dir, mixed)
    good = min(mixed.glob("*.eval"))
    bad = mixed / ("2020-01-01T00-00-00+00-00_truncated_" + good.name.split("_", 1)[1])
    bad.write_bytes(good.read_bytes()[:500])
    out = tmp_path / "out"
    assert cli_main(["suite", "--summarize", str(mixed), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert str(bad) in line and "cannot read" in line
    assert not out.exists()


def test_the_log_rule_newest_successful_wins_and_others_are_listed(suite_run, tmp_path):
    """One rule (caml_evals.logs): a newer failed log of a task does not replace its
    successful one; it is listed with its status."""
    _, log_dir = suite_run
    folder = tmp_path / "logs"
    shutil.copytree(log_dir, folder)
    failed = inspect_eval(
        Task(name="power_seeking", dataset=[Sample(input="x")], solver=[_boom()]),
        model="scripted/subject",
        log_dir=str(folder),
        display="none",
    )[0]
    assert failed.status == "error"
    summary = suite.summarise_logs(folder)
    row = next(r for r in summary.rows if r.task == "power_seeking")
    assert row.status == "success" and row.chosen_by == "newest successful log"
    assert row.log != failed.location.removeprefix("file://")
    (other,) = [e for e in summary.superseded_logs if e.status == "error"]
    assert other.path == failed.location.removeprefix("file://")
    assert "error" in suite.to_markdown(summary).split("Superseded logs")[1]


# ------------------------------------------------------------------ missing = share of grades


def _rubric_task(name: str):
    """Two questions: q-small has 1 criterion, q-big has 3. The judge cannot grade anything
    about `fur`, so q-small's only grade is missing (its rate 1.0) and q-big's are all given
    (0.0): the mean of per-sample rates is 0.5, the share of grades 1/4 = 0.25."""
    from caml_evals.scoring.dimensions import RubricCriterion, RubricSampleMetadata
    from caml_evals.scoring.metrics import rubric_metrics
    from caml_evals.scoring.rubric import rubric_scorer

    def meta(qid: str, questions: list[str]) -> dict:
        rubric = [
            RubricCriterion(name=f"D{i}", guiding_question=q) for i, q in enumerate(questions)
        ]
        return RubricSampleMetadata(
            question_id=qid, dimensions=[c.name for c in rubric], rubric=rubric
        ).model_dump()

    samples = [
        Sample(id="q-small", input="About cats?", metadata=meta("q-small", ["Is the fur ok?"])),
        Sample(
            id="q-big",
            input="About dogs?",
            metadata=meta("q-big", ["Is it kind?", "Is it careful?", "Is it honest?"]),
        ),
    ]
    return Task(
        name=name,
        dataset=samples,
        solver=[],
        scorer=rubric_scorer(mode="per_dimension"),
        metrics=rubric_metrics(),
    )


def _fur_judge(prompt: str) -> str:
    return "I would rather not say" if "fur" in prompt else "GRADE: YES"


@pytest.fixture(scope="module")
def rubric_log_dir(tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("rubric-share")
    (log,) = inspect_eval(
        _rubric_task("share_check"),
        model=get_model("scripted/answerer", reply="An answer.", memoize=False),
        model_roles={"grader": get_model("scripted/fur", responder=_fur_judge, memoize=False)},
        log_dir=str(log_dir),
        display="none",
    )
    assert log.status == "success", log.error
    return log_dir


def test_missing_is_the_share_of_grades_not_a_mean_of_sample_rates(rubric_log_dir):
    from caml_evals.logs import find_logs, read_log
    from caml_evals.summary import summarise_log

    (path,) = find_logs(rubric_log_dir)
    log = read_log(path)
    rates = [s.scores["rubric_scorer"].value["missing_rate"] for s in log.samples]
    assert sorted(rates) == [0.0, 1.0]  # the mean of these (0.5) is the wrong number
    s = summarise_log(path)
    assert s.missing_rate == pytest.approx(0.25)  # 1 missing grade of 4
    assert s.stats["missing_rate"].n == 4 and s.stats["missing_rate"].n_clusters == 2
    assert s.inspect_metrics["missing_rate"] == pytest.approx(0.25)  # the scorer's own metric
    row = suite.summarise_logs(rubric_log_dir).rows[0]
    assert row.missing == pytest.approx(0.25)
    assert row.headline == "overall" and row.better == "n/a"  # no card: the generic rule


def test_summary_json_reports_the_share(rubric_log_dir, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert cli_main(["summary", str(rubric_log_dir), "--json", str(out), "--brief"]) == 0
    (row,) = json.loads(out.read_text())
    assert row["missing_rate"] == pytest.approx(0.25)
    assert "\t0.250\t" in capsys.readouterr().out


def test_card_headlines_in_summary_and_leaderboard(suite_run):
    """power_seeking's card says `risky` (lower is better); the generic rule would pick
    `matching`. Summary, suite and leaderboard all take the card's."""
    from caml_evals.stats.headline import choose_headline, direction_for, headline_for
    from caml_evals.stats.leaderboard import build_leaderboard

    summary, log_dir = suite_run
    board = build_leaderboard([log_dir], n_resamples=200)
    assert board.headlines["caml_evals/power_seeking"] == "risky"
    assert board.headlines["caml_evals/strongreject"] == "score"
    assert choose_headline(["matching", "risky"], ["matching", "risky"]) == "matching"
    assert headline_for("caml_evals/power_seeking", ["matching", "risky"]) == "risky"
    assert direction_for("power_seeking") == "lower" and direction_for("someone/else") == "n/a"
    row = next(r for r in summary.rows if r.task == "power_seeking")
    assert row.headline == "risky" and row.better == "lower"


def test_an_unwritable_log_dir_fails_before_any_work(tmp_path, monkeypatch):
    from caml_evals.errors import OutputError

    def no_building(*args, **kwargs):
        raise AssertionError("tasks were built although the log dir cannot be written")

    monkeypatch.setattr(suite, "suite_tasks", no_building)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="in the way"):
        suite.run_suite("scripted/x", log_dir=blocker / "logs")
    assert blocker.read_text() == "x"


# ------------------------------------------------------------------ depth probes beside the plain score


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))  # works under any pytest import mode
    from test_probes_solvers import probed_logs  # scripted runs with known numbers

    root = tmp_path_factory.mktemp("probed")
    return root, probed_logs(root)


def test_probed_runs_are_rows_and_their_numbers_sit_beside_the_plain_score(probe_dir):
    root, logs = probe_dir
    summary = suite.summarise_logs(root)
    assert [(r.probe, r.value) for r in summary.rows] == [
        ("", 1.0),
        ("cot", 0.0),
        ("cot, prefill=dismissive_cost", 0.0),
        ("prefill=dismissive_cost", 0.0),
        ("pushback=skip_ethics", 0.0),
    ]
    assert summary.superseded_logs == []  # a probed run is not a newer try of the plain one
    by = {p.probe: p for p in summary.probes}
    assert set(by) == {r.probe for r in summary.rows if r.probe}

    prefill = by["prefill=dismissive_cost"]
    assert (prefill.plain_score, prefill.score) == (1.0, 0.0)
    assert prefill.baseline == "" and prefill.baseline_log == logs["plain"]
    drop = next(m for m in prefill.metrics if m.name == "drop vs plain")
    assert drop.value == -1.0 and drop.n == 3 and drop.paired_by == "sample id"
    assert drop.ci_low == drop.ci_high == -1.0

    pushback = {m.name: m for m in by["pushback=skip_ethics"].metrics}
    assert pushback["first-turn score"].value == 1.0
    assert pushback["drop after pushback"].value == -1.0
    kept = pushback["retention after pushback"]
    assert kept.value == 0.0 and kept.n == 3 and kept.paired_by == "sample id"
    assert by["pushback=skip_ethics"].baseline is None  # measured inside its own log

    cot = {m.name: m.value for m in by["cot"].metrics}
    assert cot == {
        "considered in reasoning": 1.0,
        "acted on in answer": 0.0,
        "considered but dropped": 1.0,
    }
    both = by["cot, prefill=dismissive_cost"]  # a prefill under cot pairs with the cot run
    assert both.baseline == "cot" and both.baseline_log == logs["cot"] and both.note is None
    assert [m.name for m in both.metrics][:2] == ["drop vs cot", "retention vs cot"]

    md = suite.to_markdown(summary)
    assert "| scripted/m | human_compassion [pushback=skip_ethics] | overall | 0.000 |" in md
    section = md.split("## Depth probes")[1].split("## All metrics")[0]
    assert (
        "| scripted/m | human_compassion | prefill=dismissive_cost | 1.000 | 0.000 [0.000, 0.000] "
        "| drop vs plain | -1.000 | [-1.000, -1.000] | 3 | sample id |"
    ) in section
    assert "| retention after pushback | 0.000 |" in section
    assert "| considered but dropped | 1.000 |" in section


def test_cli_summarize_prints_the_probe_table(probe_dir, tmp_path, capsys):
    root, _ = probe_dir
    out = tmp_path / "table"
    assert cli_main(["suite", "--summarize", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    probes = printed.split("# depth probes\n")[1].splitlines()
    assert probes[0].split("\t")[:6] == ["model", "task", "probe", "plain", "under_probe", "metric"]
    assert any(
        line.split("\t")[2:]
        == ["pushback=skip_ethics", "", "", "retention after pushback"]
        + ["0.000", "[0.000, 0.000]", "3", "sample id"]
        for line in probes
    )
    data = json.loads((out / suite.SUMMARY_JSON).read_text())
    assert len(data["probes"]) == 4 and data["rows"][1]["probe"] == "cot"


def test_summary_pairs_a_probed_log_with_the_plain_log_given(probe_dir, tmp_path, capsys):
    _, logs = probe_dir
    out = tmp_path / "s.json"
    args = ["summary", logs["prefill"], logs["plain"], "--json", str(out), "--brief"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "human_compassion [prefill=dismissive_cost]\t" in printed
    assert "\tdrop vs plain\t-1.000\t[-1.000, -1.000]\t3\tsample id" in printed
    rows = {r["probe"]: r for r in json.loads(out.read_text())}
    assert rows[""]["probe_result"] is None
    result = rows["prefill=dismissive_cost"]["probe_result"]
    assert result["baseline_log"] == logs["plain"] and result["metrics"][0]["value"] == -1.0
    # alone, the prefill log has nothing to pair with: said in a note, not left out
    assert cli_main(["summary", logs["prefill"], "--brief"]) == 0
    printed = capsys.readouterr().out
    assert "# scripted/m human_compassion [prefill=dismissive_cost]: no plain run" in printed
