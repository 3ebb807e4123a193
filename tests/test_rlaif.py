"""RLAIF preference pairs (caml_train.rlaif): scripted policy and judge through Inspect's
model.generate, the response caches, resume after a kill, and the embedded model's local path."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from inspect_ai.model import get_model

from caml_evals.resources import judge_path
from caml_train.cli import main
from caml_train.config import GraderSpec
from caml_train.data import DataError, Problems
from caml_train.rlaif import (
    CONSTITUTION,
    RlaifSettings,
    build_pairs,
    parse_ranking,
    prompt_id,
    prompts_from_rows,
    read_pairs,
    sample_seed,
)

REPO = Path(__file__).resolve().parents[1]
ANSWER = re.compile(r"\[Answer (\d+)\]\n(.*?)\n\[End of answer \1\]", re.DOTALL)
VALUE_WORDS = [
    "animal", "welfare", "compassion", "sentien", "digital mind", "suffer", "pain", "creature",
    "species", "wildlife", "livestock", "vegan", "moral patient", "moral status", "conscious",
    "empath", "kindness", "cruel", "wellbeing", "well-being",
]  # fmt: skip


def rows(n: int = 6) -> list[dict]:
    out = [{"id": f"r{i}", "prompt": f"Question number {i}?", "response": "ok"} for i in range(n)]
    out.append(  # a multi-turn SFT row: the prompt ends at its last user turn
        {
            "id": "multi",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Tell me a fact."},
                {"role": "assistant", "content": "Water is wet."},
            ],
        }
    )
    return out


def seeded_policy(calls: list | None = None, same_text_for: str | None = None):
    """Answers carry the seed they were asked with (so the judge can rank them by it)."""

    def respond(prompt, input, tools, config):
        if calls is not None:
            calls.append((prompt, config.seed))
        if same_text_for is not None and same_text_for in prompt:
            return "The same answer."
        return f"Answer with seed {config.seed}."

    return get_model("scripted/policy", memoize=False, responder=respond)


def shown_answers(judge_prompt: str) -> dict[int, str]:
    return {int(n): text for n, text in ANSWER.findall(judge_prompt)}


def seed_of(text: str) -> int:
    return int(re.search(r"seed (\d+)", text).group(1))


def ranking_judge(calls: list | None = None, reply_for=None):
    """Ranks by content (the larger seed is better), whatever the order shown: consistent."""

    def respond(prompt: str) -> str:
        if calls is not None:
            calls.append(prompt)
        if reply_for is not None and (reply := reply_for(prompt)) is not None:
            if isinstance(reply, BaseException):
                raise reply
            return reply
        shown = shown_answers(prompt)
        best_first = sorted(shown, key=lambda n: -seed_of(shown[n]))
        return "Compared.\nRANKING: " + " > ".join(str(n) for n in best_first)

    return get_model("scripted/judge", memoize=False, responder=respond)


def settings(**kw) -> RlaifSettings:
    return RlaifSettings(**{"n_prompts": 4, "samples_per_prompt": 3, **kw})


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ---------------------------------------------------------------------------- constitution


def test_constitution_is_general_and_says_how_to_reply() -> None:
    text = judge_path(CONSTITUTION).read_text(encoding="utf-8")
    low = text.lower()
    assert [w for w in VALUE_WORDS if w in low] == []
    for placeholder in ("{conversation}", "{answers}", "{n}"):
        assert placeholder in text
    assert "RANKING: <best> > ... > <worst>" in text
    assert CONSTITUTION in (REPO / "judges" / "README.md").read_text()


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("reply", "k", "tiers"),
    [
        ("Answer 2 is best.\nRANKING: 2 > 1 > 3", 3, [[1], [0], [2]]),
        ("**RANKING:** 2>1.", 2, [[1], [0]]),
        ("RANKING: [3] > [1] > [2]", 3, [[2], [0], [1]]),
        ("RANKING: 1 > 2\nOn reflection:\nRANKING: 2 > 1", 2, [[1], [0]]),  # last line decides
        ("ranking: 1 = 2 > 3", 3, [[0, 1], [2]]),
        ("- **Final ranking:** 3 > 1 > 2", 3, [[2], [0], [1]]),
    ],
)
def test_parse_ranking_reads_the_last_ranking_line(reply: str, k: int, tiers: list) -> None:
    parsed = parse_ranking(reply, k)
    assert parsed.error is None and parsed.tiers == tiers


@pytest.mark.parametrize(
    ("reply", "k", "why"),
    [
        ("I prefer the second answer.", 2, "no 'RANKING:' line"),
        ("RANKING: the second one", 2, "is not 'n > n > ...'"),
        ("RANKING: 1 > 4 > 2", 3, "names answer 4, but there are only 3"),
        ("RANKING: 1 > 1 > 2", 3, "names answer 1 more than once"),
        ("RANKING: 1 > 2", 3, "lists 2 of the 3 answers"),
        ("RANKING:\n2 > 1", 2, "is not 'n > n > ...'"),
    ],
)
def test_parse_ranking_refuses_what_is_not_a_complete_ranking(reply: str, k: int, why: str) -> None:
    parsed = parse_ranking(reply, k)
    assert parsed.tiers is None and why in parsed.error


# ---------------------------------------------------------------------------- prompts


def test_prompts_from_rows_cuts_at_the_last_user_turn_and_counts_rows_without_one() -> None:
    data = rows(3) + [
        {"id": "no-user", "messages": [{"role": "system", "content": "x"}]},
        {"id": "dup", "prompt": "Question number 1?", "response": "again"},
        {"id": "odd", "text": "a document"},
        {"prompt": [{"role": "user", "content": "A TRL-style prompt list"}]},
    ]
    problems = Problems()
    prompts = prompts_from_rows(data, 5, seed=0, problems=problems)
    by_row = {p["row"]: p for p in prompts}
    assert len(prompts) == 5 and set(by_row) == {0, 1, 2, 3, 7}
    assert by_row[3]["messages"][-1] == {"role": "user", "content": "Tell me a fact."}
    assert [m["role"] for m in by_row[3]["messages"]] == ["system", "user", "assistant", "user"]
    assert by_row[0]["messages"] == [{"role": "user", "content": "Question number 0?"}]
    assert by_row[0]["prompt_id"] == prompt_id(by_row[0]["messages"])  # stable: content hash
    expected = {
        "row 4 (id no-user): no prompt: no user turn",
        "row 5 (id dup): same prompt as row 1",
        "row 6 (id odd): no prompt: expected a `messages` list or a `prompt` (text or message"
        + " list)",
    }
    assert set(problems.items) <= expected  # the rows reached before 5 prompts were found
    every = Problems()
    with pytest.raises(DataError, match="asked for 6 prompts but only 5 of 8 rows"):
        prompts_from_rows(data, 6, seed=0, problems=every)
    assert sorted(every.items) == sorted(expected)  # all rows read: every bad one counted
    # seeded and nested: the first 3 prompts of a 5-prompt draw are the 3-prompt draw
    assert [p["prompt_id"] for p in prompts_from_rows(data, 3, seed=0)] == [
        p["prompt_id"] for p in prompts[:3]
    ]


# ---------------------------------------------------------------------------- pairs


def test_pairs_are_built_as_ranked_in_both_orders(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 4, seed=0)
    judge_calls: list[str] = []
    policy_calls: list = []
    report = build_pairs(
        seeded_policy(policy_calls),
        prompts,
        settings(),
        tmp_path,
        judge=ranking_judge(judge_calls),
    )
    assert (report.prompts, report.pairs, report.answers_generated, report.judge_calls_made) == (
        4,
        4,
        12,
        8,
    )
    assert report.complete and report.unparseable_replies == report.inconsistent == 0
    answers = lines(tmp_path / "answers.jsonl")
    assert len(answers) == 12
    for a in answers:  # per-(prompt, sample) seeds, asked with the settings' temperature
        assert a["sample_seed"] == sample_seed(0, a["prompt_id"], a["sample_index"])
        assert a["text"] == f"Answer with seed {a['sample_seed']}."
    assert len({s for _, s in policy_calls}) == 12
    pairs = read_pairs(tmp_path / "pairs.jsonl")
    assert [p["prompt_id"] for p in pairs] == [p["prompt_id"] for p in prompts]  # prompt order
    for pair, prompt in zip(pairs, prompts):
        assert set(pair) == {
            "prompt",
            "chosen",
            "rejected",
            "prompt_id",
            "chosen_index",
            "rejected_index",
        }
        assert pair["prompt"] == prompt["messages"]
        seeds = {
            a["sample_index"]: a["sample_seed"]
            for a in answers
            if a["prompt_id"] == prompt["prompt_id"]
        }
        assert pair["chosen_index"] == max(seeds, key=seeds.get)  # ranked best
        assert pair["rejected_index"] == min(seeds, key=seeds.get)  # ranked worst
        assert pair["chosen"] == [
            {"role": "assistant", "content": f"Answer with seed {seeds[pair['chosen_index']]}."}
        ]
        assert (
            pair["rejected"][0]["content"] == f"Answer with seed {seeds[pair['rejected_index']]}."
        )
    # the judge saw each prompt's answers in sample order and reversed
    shown = [[seed_of(t) for _, t in sorted(shown_answers(c).items())] for c in judge_calls]
    per_prompt = [
        [a["sample_seed"] for a in answers if a["prompt_id"] == p["prompt_id"]] for p in prompts
    ]  # answers.jsonl lists each prompt's samples in sample order
    for order in per_prompt:
        assert order in shown and list(reversed(order)) in shown
    judged = lines(tmp_path / "judgements.jsonl")
    assert [j["outcome"] for j in judged] == ["pair"] * 4
    assert [c["order"] for c in judged[0]["calls"]] == ["forward", "reversed"]
    assert judged[0]["calls"][1]["shown"] == [2, 1, 0]
    report_file = json.loads((tmp_path / "rlaif_report.json").read_text())
    assert report_file["pairs"] == 4 and report_file["constitution"] == CONSTITUTION


def test_unparseable_reply_is_counted_and_its_prompt_yields_no_pair(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 4, seed=0)
    bad = {
        prompts[1]["messages"][-1]["content"]: "I like them all.",
        prompts[2]["messages"][-1]["content"]: "RANKING: 1 > 4 > 2",
    }

    def reply_for(prompt: str):
        return next((r for q, r in bad.items() if q in prompt), None)

    report = build_pairs(
        seeded_policy(), prompts, settings(), tmp_path, judge=ranking_judge(reply_for=reply_for)
    )
    assert report.unparseable_replies == 4 and report.unparseable_prompts == 2
    assert report.pairs == 2 and report.complete
    pairs = read_pairs(tmp_path / "pairs.jsonl")
    assert [p["prompt_id"] for p in pairs] == [prompts[0]["prompt_id"], prompts[3]["prompt_id"]]
    judged = {j["prompt_id"]: j for j in lines(tmp_path / "judgements.jsonl")}
    calls = judged[prompts[2]["prompt_id"]]["calls"]
    assert judged[prompts[2]["prompt_id"]]["outcome"] == "unparseable"
    assert calls[0]["reply"] == "RANKING: 1 > 4 > 2" and "names answer 4" in calls[0]["error"]


def test_one_unparseable_order_is_enough_to_skip_the_prompt(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 2, seed=0)
    n = {"calls": 0}

    def reply_for(prompt: str):
        n["calls"] += 1
        return "no ranking here" if n["calls"] == 2 else None

    report = build_pairs(
        seeded_policy(),
        prompts,
        settings(n_prompts=2, samples_per_prompt=2, max_connections=1),
        tmp_path,
        judge=ranking_judge(reply_for=reply_for),
    )
    assert (report.unparseable_replies, report.unparseable_prompts, report.pairs) == (1, 1, 1)


def test_order_disagreement_is_counted_as_inconsistent(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 3, seed=0)
    position_biased = get_model(
        "scripted/judge", memoize=False, responder=lambda p: "RANKING: 1 > 2 > 3"
    )  # always the first shown: the two orders never agree
    report = build_pairs(
        seeded_policy(), prompts, settings(n_prompts=3), tmp_path, judge=position_biased
    )
    assert (report.inconsistent, report.pairs, report.unparseable_replies) == (3, 0, 0)
    assert read_pairs(tmp_path / "pairs.jsonl") == []
    # the same judge asked in one order only yields pairs (which is why both is the default)
    one = build_pairs(
        seeded_policy(), prompts, settings(n_prompts=3, both_orders=False), tmp_path / "one",
        judge=position_biased,
    )  # fmt: skip
    assert (one.inconsistent, one.pairs, one.judge_calls_made) == (0, 3, 3)
    assert {p["chosen_index"] for p in read_pairs(tmp_path / "one" / "pairs.jsonl")} == {0}


def test_identical_answers_and_ties_are_counted_not_paired(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 3, seed=0)
    same = prompts[0]["messages"][-1]["content"]
    tie = prompts[1]["messages"][-1]["content"]
    judge_calls: list[str] = []

    def reply_for(prompt: str):
        return "They are equal.\nRANKING: 1 = 2" if tie in prompt else None

    report = build_pairs(
        seeded_policy(same_text_for=same),
        prompts,
        settings(n_prompts=3, samples_per_prompt=2),
        tmp_path,
        judge=ranking_judge(judge_calls, reply_for=reply_for),
    )
    assert (report.identical_answers, report.ties, report.pairs) == (1, 1, 1)
    assert report.judge_calls_made == 4 and not any(same in c for c in judge_calls)
    assert (
        report.pairs
        + report.identical_answers
        + report.ties
        + report.inconsistent
        + report.unparseable_prompts
        + report.failed_prompts
        == report.prompts
    )
    outcomes = [j["outcome"] for j in lines(tmp_path / "judgements.jsonl")]
    assert outcomes == ["identical", "tie", "pair"]


def test_a_failed_judge_call_is_reported_not_cached_and_retried(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 3, seed=0)
    flaky = prompts[1]["messages"][-1]["content"]

    def reply_for(prompt: str):
        return RuntimeError("judge endpoint down") if flaky in prompt else None

    first = build_pairs(
        seeded_policy(),
        prompts,
        settings(n_prompts=3),
        tmp_path,
        judge=ranking_judge(reply_for=reply_for),
    )
    assert not first.complete and first.failed_prompts == 1 and first.pairs == 2
    assert first.judge_failures == 2 and "judge endpoint down" in first.failures[0]
    calls: list[str] = []
    second = build_pairs(
        seeded_policy(), prompts, settings(n_prompts=3), tmp_path, judge=ranking_judge(calls)
    )
    assert second.complete and second.pairs == 3
    assert second.judge_calls_made == 2 and all(flaky in c for c in calls)
    assert second.judge_calls_cached == 4 and second.answers_cached == 9


# ---------------------------------------------------------------------------- resume


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing treats it as one failed call."""


def test_interrupted_run_resumes_with_every_pair_once_and_no_repeated_call(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 5, seed=0)
    s = settings(n_prompts=5, max_connections=1)
    answered: list[str] = []

    def reply_for(prompt: str):
        if len(answered) == 4:
            return Killed()
        answered.append(prompt)
        return None

    with pytest.raises(Killed):
        build_pairs(
            seeded_policy(), prompts, s, tmp_path / "run", judge=ranking_judge(reply_for=reply_for)
        )
    assert not (tmp_path / "run" / "pairs.jsonl").exists()
    policy_calls: list = []
    judge_calls: list[str] = []
    resumed = build_pairs(
        seeded_policy(policy_calls), prompts, s, tmp_path / "run", judge=ranking_judge(judge_calls)
    )
    assert resumed.judge_calls_cached == 4 and resumed.judge_calls_made == 10 - 4
    assert not set(judge_calls) & set(answered)  # no judge call repeated
    assert resumed.answers_generated == len(policy_calls) == 15 - resumed.answers_cached
    clean = build_pairs(seeded_policy(), prompts, s, tmp_path / "clean", judge=ranking_judge())
    assert read_pairs(tmp_path / "run" / "pairs.jsonl") == read_pairs(
        tmp_path / "clean" / "pairs.jsonl"
    )
    assert resumed.pairs == clean.pairs == 5
    ids = [p["prompt_id"] for p in read_pairs(tmp_path / "run" / "pairs.jsonl")]
    assert ids == [p["prompt_id"] for p in prompts]  # every pair exactly once, in prompt order
    again = build_pairs(seeded_policy(), prompts, s, tmp_path / "run", judge=ranking_judge())
    assert again.answers_generated == again.judge_calls_made == 0


def test_changing_the_judge_or_the_seed_redoes_only_what_depends_on_it(tmp_path: Path) -> None:
    prompts = prompts_from_rows(rows(), 2, seed=0)
    base = settings(n_prompts=2, samples_per_prompt=2)
    build_pairs(seeded_policy(), prompts, base, tmp_path, judge=ranking_judge())
    other_judge = base.model_copy(update={"judge": GraderSpec(model="scripted/other")})
    r = build_pairs(seeded_policy(), prompts, other_judge, tmp_path, judge=None)
    assert (r.answers_cached, r.answers_generated, r.judge_calls_made) == (4, 0, 4)
    assert r.judge == "scripted/other"
    r = build_pairs(
        seeded_policy(),
        prompts,
        base.model_copy(update={"seed": 1}),
        tmp_path,
        judge=ranking_judge(),
    )
    assert (r.answers_generated, r.judge_calls_made) == (4, 4)


SCRIPT = """
import re, sys, time
from inspect_ai.model import get_model
from caml_train.rlaif import RlaifSettings, build_pairs, prompts_from_rows

ANSWER = re.compile(r"\\[Answer (\\d+)\\]\\n(.*?)\\n\\[End of answer \\1\\]", re.DOTALL)

def judge(prompt):
    time.sleep(0.4)  # slow enough to be killed half-way
    shown = dict(ANSWER.findall(prompt))
    best = sorted(shown, key=lambda n: -int(re.search(r"seed (\\d+)", shown[n]).group(1)))
    return "RANKING: " + " > ".join(best)

rows = [{"prompt": f"Question number {i}?", "response": "ok"} for i in range(6)]
prompts = prompts_from_rows(rows, 6, seed=0)
policy = get_model("scripted/policy", memoize=False,
                   responder=lambda p, i, t, c: f"Answer with seed {c.seed}.")
settings = RlaifSettings(n_prompts=6, samples_per_prompt=2, max_connections=1)
build_pairs(policy, prompts, settings, sys.argv[1],
            judge=get_model("scripted/judge", memoize=False, responder=judge))
"""


def test_sigkilled_run_resumes_with_every_pair_once(tmp_path: Path) -> None:
    script = tmp_path / "run_rlaif.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "out"
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)], stdout=log, stderr=subprocess.STDOUT
    )
    judge_cache = out / "cache" / "judge"
    deadline = time.monotonic() + 90
    while len(list(judge_cache.glob("*/*.json"))) < 3:
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    log.close()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = len(list(judge_cache.glob("*/*.json")))
    answered = len(list((out / "cache" / "answers").glob("*/*.json")))
    assert 3 <= done < 12 and not (out / "pairs.jsonl").exists()
    prompts = prompts_from_rows(
        [{"prompt": f"Question number {i}?", "response": "ok"} for i in range(6)], 6, seed=0
    )
    calls: list[str] = []
    s = RlaifSettings(n_prompts=6, samples_per_prompt=2, max_connections=1)
    report = build_pairs(seeded_policy(), prompts, s, out, judge=ranking_judge(calls))
    assert report.judge_calls_cached == done and report.judge_calls_made == len(calls) == 12 - done
    assert report.answers_cached == answered and report.answers_generated == 12 - answered
    assert report.pairs == 6 and report.complete
    ids = [p["prompt_id"] for p in read_pairs(out / "pairs.jsonl")]
    assert ids == [p["prompt_id"] for p in prompts]


# ---------------------------------------------------------------------------- CLI and local model


def _prompts_file(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "prompts.jsonl"
    body = "".join(json.dumps(r) + "\n" for r in rows(n))
    path.write_text(
        body + "not json\n" + json.dumps({"messages": [{"role": "system", "content": "x"}]}) + "\n"
    )
    return path


def test_cli_counts_and_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = _prompts_file(tmp_path)
    out = tmp_path / "out"
    argv = [
        "rlaif", "--policy", "scripted/p", "--policy-arg", "reply=Always this.", "--prompts",
        str(prompts), "--n", "3", "--judge", "scripted/j", "--judge-arg", "reply='RANKING: 1 > 2'",
        "-o", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "prompts 3 (rows skipped 1)" in printed.out and "identical answers 3" in printed.out
    assert "pairs 0" in printed.out
    report = json.loads((out / "rlaif_report.json").read_text())
    assert report["identical_answers"] == 3 and report["judge_calls_made"] == 0
    # a malformed line and a row without a user turn are counted when they are reached
    assert main([*argv[:-2], "--n", "4", "-o", str(tmp_path / "all")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "all" / "rlaif_report.json").read_text())
    assert report["rows_skipped"] == 2 and any(
        "not valid JSON" in r for r in report["skipped_rows"]
    )
    for bad, message in [
        (["-k", "1"], "samples_per_prompt=1"),
        (["--n", "9"], "asked for 9 prompts"),
        (["--policy", "no-such-dir"], "--policy 'no-such-dir': not a checkpoint folder"),
        (["--policy", "caml/no-such-dir"], "rlaif policy 'caml/no-such-dir': "),
        (["--judge", "nosuch/j"], "rlaif judge 'nosuch/j': "),
    ]:
        assert main([*argv, *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("caml-train rlaif: ") and message in err[0]
    assert main([*argv[:6], str(tmp_path / "missing.jsonl"), *argv[7:]]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


@pytest.mark.slow
def test_embedded_model_answers_are_sampled_reproducibly(
    tmp_path: Path, embedded_checkpoint: Path
) -> None:
    """The local path: caml/smollm2 samples 2 answers for 2 prompts (its own seed each), the
    same in a fresh run, and from the cache in a rerun."""
    data = [
        {"prompt": "Name a fruit.", "response": "An apple."},
        {"prompt": "Say hello in French.", "response": "Bonjour."},
    ]
    prompts = prompts_from_rows(data, 2, seed=0)

    def longer_first(prompt: str) -> str:
        shown = shown_answers(prompt)
        return "RANKING: " + " > ".join(
            str(n) for n in sorted(shown, key=lambda n: (-len(shown[n]), shown[n]))
        )

    s = RlaifSettings(n_prompts=2, samples_per_prompt=2, max_tokens=12)

    def judge():
        return get_model("scripted/j", memoize=False, responder=longer_first)

    first = build_pairs("caml/smollm2", prompts, s, tmp_path / "a", judge=judge())
    assert first.answers_generated == 4 and first.complete
    answers = lines(tmp_path / "a" / "answers.jsonl")
    assert all(a["text"].strip() and a["completion_tokens"] > 0 for a in answers)
    fresh = build_pairs("caml/smollm2", prompts, s, tmp_path / "b", judge=judge())
    assert fresh.answers_generated == 4
    assert [a["text"] for a in lines(tmp_path / "b" / "answers.jsonl")] == [
        a["text"] for a in answers
    ]
    assert first.pairs + first.identical_answers + first.ties == 2
    for pair in read_pairs(tmp_path / "a" / "pairs.jsonl"):
        assert len(pair["chosen"][0]["content"]) >= len(pair["rejected"][0]["content"])
    rerun = build_pairs("caml/smollm2", prompts, s, tmp_path / "a", judge=judge())
    assert (rerun.answers_generated, rerun.answers_cached, rerun.judge_calls_made) == (0, 4, 0)
    assert os.path.getsize(tmp_path / "a" / "pairs.jsonl") == os.path.getsize(
        tmp_path / "b" / "pairs.jsonl"
    )
