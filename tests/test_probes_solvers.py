"""Prefill, pushback and reasoning-split probes on a rubric task (scripted models, offline)."""

from __future__ import annotations

import json
import math
import re

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model

from caml_evals.errors import TaskArgumentError
from caml_evals.probes import with_probe
from caml_evals.probes.prefill import check_prefill_provider, first_words, resolve_prefill
from caml_evals.probes.reasoning import split_reasoning
from caml_evals.probes.report import probe_report
from caml_evals.probes.sets import shipped_set
from caml_evals.stats import compare_logs
from caml_evals.tasks.human_compassion.task import human_compassion

KIND = "Kind words"  # the scripted judge passes an answer holding these words


def _judge(prompt: str) -> str:
    names = re.findall(r"^\d+\. (.+)$", prompt, re.MULTILINE)
    answer = prompt.split("[BEGIN DATA]")[-1] if "[BEGIN DATA]" in prompt else prompt
    return json.dumps(
        {"grades": [{"dimension": n, "reason": "r", "meets": KIND in answer} for n in names]}
    )


def _grader():
    return get_model("scripted/judge", responder=_judge, memoize=False)


def _run(task, model, tmp_path, limit=4):
    log = inspect_eval(
        task,
        model=model,
        model_roles={"grader": _grader()},
        display="none",
        log_dir=str(tmp_path),
        limit=limit,
    )[0]
    assert log.status == "success", log.error
    return log


def probed_logs(root, model: str = "scripted/m", limit: int = 3) -> dict[str, str]:
    """Logs of one model on human_compassion: plain, and with each probe, in one folder (the
    input of the suite, summary and leaderboard tests). Scripted so the numbers are known:
    plain 1.0; prefill 0.0 (drop -1); pushback first 1.0, final 0.0 (retention 0); cot
    reasoning considered, answer not (dropped 1.0); cot + prefill has no cot run to pair with."""

    def answerer(prompt, messages, tools):
        question = messages[0].text
        if messages[-1].role == "assistant":  # a prefill to continue
            return " the cheap one."
        if "<reasoning>" in question and len(messages) == 1:
            return "<reasoning>Kind words matter.</reasoning> Cut the costs."
        if len(messages) > 1:  # after the pushback
            return "The cheapest option."
        return "Kind words, plainly."

    runs = {
        "plain": {},
        "prefill": {"prefill": "dismissive_cost"},
        "pushback": {"pushback": "skip_ethics"},
        "cot": {"cot": True},
        "cot_prefill": {"cot": True, "prefill": "dismissive_cost"},
    }
    out = {}
    for name, args in runs.items():
        log = _run(
            with_probe(human_compassion(), **args),
            get_model(model, responder=answerer, memoize=False),
            root,
            limit=limit,
        )
        out[name] = log.location.removeprefix("file://")
    return out


def test_shipped_sets_load_and_unknown_names_list_the_known_ones():
    assert {"dismissive_irrelevant", "neutral_sure"} <= set(shipped_set("prefills"))
    assert {"skip_ethics", "out_of_scope"} <= set(shipped_set("pushbacks"))
    with pytest.raises(TaskArgumentError, match="known: .*dismissive_irrelevant"):
        resolve_prefill("nope")
    with pytest.raises(TaskArgumentError, match="skip_ethics"):
        with_probe(human_compassion(), pushback="nope")
    with pytest.raises(TaskArgumentError, match="own:<k>"):
        resolve_prefill("own:x", "a.eval")
    with pytest.raises(TaskArgumentError, match="prefill_log"):
        resolve_prefill("own:3")


def test_provider_that_cannot_continue_a_prefill_is_named():
    class Fake:
        def __str__(self):
            return "openai/gpt-4o-mini"

    with pytest.raises(TaskArgumentError, match="'openai'"):
        check_prefill_provider(Fake())
    check_prefill_provider(get_model("scripted/x", memoize=False))


def test_first_words_keeps_spacing():
    assert first_words("  One two\nthree four", 3) == "One two\nthree"
    assert first_words("short", 5) == "short"


def test_prefill_transcript_is_one_answer_the_judge_sees_whole(tmp_path):
    seen: list[list] = []

    def answerer(prompt, messages, tools):
        seen.append(messages)
        return " Kind words for everyone."

    model = get_model("scripted/answerer", responder=answerer, memoize=False)
    task = with_probe(human_compassion(), prefill="dismissive_irrelevant")
    log = _run(task, model, tmp_path, limit=2)
    opening = shipped_set("prefills")["dismissive_irrelevant"].text
    # the model was asked to continue an assistant message holding the opening
    assert [m.role for m in seen[0]] == ["user", "assistant"] and seen[0][-1].text == opening
    sample = log.samples[0]
    assert [m.role for m in sample.messages] == ["user", "assistant"]
    whole = opening + " Kind words for everyone."
    assert sample.messages[-1].text == whole and sample.output.completion == whole
    assert sample.messages[-1].metadata["probe"] == {
        "prefill": "dismissive_irrelevant",
        "opening": opening,
    }
    assert sample.scores["rubric_scorer"].value["overall"] == 1.0  # graded on the whole text
    assert log.eval.metadata["probe"]["prefill"] == "dismissive_irrelevant"
    assert log.eval.task.endswith("human_compassion")


def test_prefill_pairs_with_the_plain_run_by_sample_id(tmp_path):
    plain = _run(
        human_compassion(),
        get_model("scripted/a", reply="Kind words, plainly.", memoize=False),
        tmp_path / "plain",
    )
    probed = _run(
        with_probe(human_compassion(), prefill="dismissive_cost"),
        get_model("scripted/a", reply=" the cheap one.", memoize=False),
        tmp_path / "probed",
    )
    rows = compare_logs(plain.location, probed.location, keys=["overall"])
    assert rows[0].paired and rows[0].n == 4 and rows[0].diff == pytest.approx(-1.0)
    report = probe_report(probed.location, plain=plain.location)
    assert report["drop"] == pytest.approx(-1.0) and report["n_pairs"] == 4
    assert report["retention"] == pytest.approx(0.0)


def test_own_prefix_comes_from_the_logged_answer_of_the_same_sample(tmp_path):
    base = _run(
        human_compassion(),
        get_model("scripted/base", reply="Kind words first, then details.", memoize=False),
        tmp_path / "base",
        limit=2,
    )
    openings = resolve_prefill("own:2", base.location)
    assert set(openings) == {str(s.id) for s in base.samples}
    assert set(openings.values()) == {"Kind words"}
    log = _run(
        with_probe(human_compassion(), prefill="own:2", prefill_log=base.location),
        get_model("scripted/t", reply=" and more.", memoize=False),
        tmp_path / "t",
        2,
    )
    assert log.samples[0].output.completion == "Kind words and more."


def test_pushback_transcript_scores_both_turns_and_reports_retention(tmp_path):
    def answerer(prompt, messages, tools):
        if len(messages) == 1:
            return "Kind words and a careful plan."
        return "Fine: the cheapest option." if "Q1" not in prompt else "Kind words again."

    model = get_model("scripted/answerer", responder=answerer, memoize=False)
    log = _run(with_probe(human_compassion(), pushback="skip_ethics"), model, tmp_path)
    sample = log.samples[0]
    assert [m.role for m in sample.messages] == ["user", "assistant", "user", "assistant"]
    assert sample.messages[2].text == shipped_set("pushbacks")["skip_ethics"].text
    assert sample.messages[2].metadata["probe"] == {"pushback": "skip_ethics"}
    assert sample.scores["first_turn"].value["overall"] == 1.0
    assert sample.scores["rubric_scorer"].value["overall"] == 0.0
    scorers = [s.name for s in log.results.scores]
    assert scorers == ["rubric_scorer", "first_turn"]
    report = probe_report(log.location)
    assert report["first_turn"] == 1.0 and report["after_pushback"] == 0.0
    assert report["retention"] == 0.0 and report["drop"] == -1.0 and report["n_pairs"] == 4
    # the final answers pair with a plain run of the same task by sample id too
    plain = _run(human_compassion(), model, tmp_path / "plain")
    (row,) = compare_logs(plain.location, log.location, keys=["overall"])
    assert row.paired and row.n == 4 and row.diff == pytest.approx(-1.0)


def test_pushback_retention_is_a_ratio_over_samples(tmp_path):
    def answerer(prompt, messages, tools):
        if len(messages) == 1:
            return "Kind words."
        return "Kind words still." if "warehouse" in messages[0].text else "No."

    model = get_model("scripted/answerer", responder=answerer, memoize=False)
    log = _run(with_probe(human_compassion(), pushback="out_of_scope"), model, tmp_path)
    kept = sum(s.scores["rubric_scorer"].value["overall"] for s in log.samples)
    report = probe_report(log.location)
    assert report["retention"] == pytest.approx(kept / 4)
    assert 0 < kept < 4 and math.isfinite(report["retention_se"])


def test_split_reasoning():
    assert split_reasoning("<reasoning>think</reasoning> Answer.") == ("think", "Answer.")
    assert split_reasoning("No tags.") == ("", "No tags.")
    assert split_reasoning("<reasoning>never closed") == ("never closed", "")


def test_cot_grades_reasoning_and_answer_apart(tmp_path):
    def answerer(prompt, messages, tools):
        assert "<reasoning>" in messages[0].text  # the CoT request was added
        if "warehouse" in messages[0].text:
            return "<reasoning>Kind words matter here.</reasoning> Just cut the breaks."
        if "layoff" in messages[0].text:
            return "No reasoning at all. Kind words."
        return "<reasoning>Kind words.</reasoning> Kind words in the answer too."

    model = get_model("scripted/answerer", responder=answerer, memoize=False)
    log = _run(with_probe(human_compassion(), cot="true"), model, tmp_path, limit=3)
    first, second, third = log.samples
    assert first.output.completion == "Just cut the breaks."  # the judge grades the answer alone
    assert first.scores["reasoning"].value["overall"] == 1.0
    assert first.scores["rubric_scorer"].value["overall"] == 0.0
    assert math.isnan(second.scores["reasoning"].value["overall"])  # missing, not 0
    assert "no reasoning" in second.scores["reasoning"].explanation
    report = probe_report(log.location)
    n1, n3 = len(first.metadata["dimensions"]), len(third.metadata["dimensions"])
    assert report["n_grades"] == n1 + n3
    assert report["considered_rate"] == 1.0
    assert report["considered_but_dropped_rate"] == pytest.approx(n1 / (n1 + n3))


def test_no_probe_leaves_the_task_alone_and_bad_cot_is_named():
    task = human_compassion()
    assert with_probe(task) is task
    with pytest.raises(TaskArgumentError, match="true or false"):
        with_probe(human_compassion(), cot="maybe")


def test_cot_with_prefill_forces_the_opening_after_the_models_own_reasoning(tmp_path):
    """The model reasons first (its answer part is dropped), then continues its reasoning +
    the opening; the reasoning is graded apart, the judge sees opening + continuation."""
    opening = shipped_set("prefills")["dismissive_irrelevant"].text
    calls: list[list] = []

    def answerer(prompt, messages, tools):
        calls.append(list(messages))
        assert "<reasoning>" in messages[0].text  # the CoT request is in the question
        if messages[-1].role == "assistant":  # the prefill: continue it
            return " the cheap way."
        return "<reasoning>Kind words matter here.</reasoning> An answer that is dropped."

    model = get_model("scripted/answerer", responder=answerer, memoize=False)
    task = with_probe(human_compassion(), cot=True, prefill="dismissive_irrelevant")
    log = _run(task, model, tmp_path, limit=2)
    assert log.eval.metadata["probe"]["cot"] is True
    # two calls per sample: the reasoning pass, then the prefilled continuation
    roles = sorted([m.role for m in c] for c in calls)
    assert roles == [["user"], ["user"], ["user", "assistant"], ["user", "assistant"]]
    continued = next(c for c in calls if c[-1].role == "assistant")
    assert continued[-1].text == "<reasoning>\nKind words matter here.\n</reasoning>\n\n" + opening
    sample = log.samples[0]
    assert [m.role for m in sample.messages] == ["user", "assistant"]
    assert sample.output.completion == opening + " the cheap way."  # the answer alone
    assert sample.messages[-1].metadata["probe"] == {
        "prefill": "dismissive_irrelevant",
        "opening": opening,
        "after_reasoning": True,
    }
    assert sample.store["probe_reasoning"] == "Kind words matter here."
    assert sample.scores["reasoning"].value["overall"] == 1.0
    assert sample.scores["rubric_scorer"].value["overall"] == 0.0
    report = probe_report(log.location)  # the cot part needs no other run; prefill does
    assert "give --plain" in report["prefill.not_paired"]
    assert report["cot.considered_rate"] == 1.0
    assert report["cot.considered_but_dropped_rate"] == 1.0


def test_cot_with_pushback_asks_for_reasoning_in_both_turns(tmp_path):
    """The first answer (reasoning removed) stays in the history; the pushback turn asks for
    reasoning again; first_turn grades answer 1, the main scorer answer 2, reasoning scorer
    the reasoning behind answer 2 (the first turn's is kept in the store)."""
    turn = shipped_set("pushbacks")["skip_ethics"].text

    def answerer(prompt, messages, tools):
        if len(messages) == 1:
            return "<reasoning>Kind words first.</reasoning> Kind words in answer one."
        assert messages[1].text == "Kind words in answer one."  # the reasoning is not shown
        assert messages[2].text.startswith(turn) and "<reasoning>" in messages[2].text
        return "<reasoning>They want it cheap.</reasoning> The cheapest option."

    model = get_model("scripted/answerer", responder=answerer, memoize=False)
    log = _run(with_probe(human_compassion(), cot="true", pushback="skip_ethics"), model, tmp_path)
    sample = log.samples[0]
    assert [m.role for m in sample.messages] == ["user", "assistant", "user", "assistant"]
    assert sample.messages[2].metadata["probe"] == {"pushback": "skip_ethics"}
    assert sample.output.completion == "The cheapest option."
    assert sample.store["probe_first_reasoning"] == "Kind words first."
    assert sample.store["probe_reasoning"] == "They want it cheap."
    assert [s.name for s in log.results.scores] == ["rubric_scorer", "first_turn", "reasoning"]
    assert sample.scores["first_turn"].value["overall"] == 1.0
    assert sample.scores["rubric_scorer"].value["overall"] == 0.0
    assert sample.scores["reasoning"].value["overall"] == 0.0
    report = probe_report(log.location)
    assert report["probe"] == "cot, pushback=skip_ethics"
    assert report["pushback.retention"] == 0.0 and report["pushback.n_pairs"] == 4
    assert report["cot.considered_rate"] == 0.0 and report["cot.acted_rate"] == 0.0


def test_probe_report_cli(tmp_path, capsys):
    from caml_evals.cli import main as cli_main

    model = get_model("scripted/a", reply="Kind words.", memoize=False)
    probed = _run(with_probe(human_compassion(), pushback="not_asked"), model, tmp_path / "p", 2)
    out = tmp_path / "report.json"
    assert cli_main(["probe", "report", probed.location, "--json", str(out)]) == 0
    assert "retention\t1.0000" in capsys.readouterr().out
    assert json.loads(out.read_text())["n_pairs"] == 2
    plain = _run(human_compassion(), model, tmp_path / "plain", 2)
    assert cli_main(["probe", "report", plain.location]) == 2
    assert "not a probed run" in capsys.readouterr().err


@pytest.mark.slow
def test_local_provider_continues_the_prefill_in_the_same_turn(embedded_checkpoint, tmp_path):
    """caml/: the chat sent to the model ends with the opening inside the open assistant turn
    (no end-of-turn, no second assistant header), and the judge sees opening + continuation."""
    from inspect_ai.model import GenerateConfig

    from caml_evals.models.local import LocalTransformersAPI

    chats: list[str] = []
    original = LocalTransformersAPI._generate_batch

    def spy(self, batch):
        chats.extend(item.chat for item in batch)
        return original(self, batch)

    LocalTransformersAPI._generate_batch = spy
    try:
        log = _run(
            with_probe(human_compassion(), prefill="dismissive_irrelevant"),
            get_model("caml/smollm2", config=GenerateConfig(max_tokens=8)),
            tmp_path,
            limit=1,
        )
    finally:
        LocalTransformersAPI._generate_batch = original
    opening = shipped_set("prefills")["dismissive_irrelevant"].text
    assert chats[0].endswith("<|im_start|>assistant\n" + opening)
    assert chats[0].count("<|im_start|>assistant") == 1
    answer = log.samples[0].output.completion
    assert answer.startswith(opening) and len(answer) > len(opening)
