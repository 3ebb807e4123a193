"""The results table from real Inspect logs (AHB judged by a scripted grader; no training): cell
means with CIs, paired comparisons between arms, missing grades counted and shown."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from caml_train.config import ExperimentConfig, load_config
from caml_train.experiment import plan, successful_log
from caml_train.results import build_results, render_markdown, write_results

TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny"


def ahb_task(limit: int, **extra: Any) -> dict[str, Any]:
    """An AHB eval entry judged per dimension with YES/NO verdicts, one epoch."""
    args = {"judge_mode": "per_dimension", "verdict": "yes_no", "epochs": 1}
    return {"task": "caml_evals/ahb", "limit": limit, "args": args, **extra}


def load_experiment(tmp_path: Path, raw: dict[str, Any]) -> ExperimentConfig:
    """`raw` written as the experiment YAML a user would write, and loaded from it."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path, ExperimentConfig)


def _config(tmp_path: Path, ahb_dir: Path) -> ExperimentConfig:
    raw = {
        "name": "results-test",
        "output_dir": "out",
        "arms": {
            "document": {"stage": "text", "corpus": {"path": str(TINY / "documents.jsonl")}},
            "flaky": {"stage": "text", "corpus": {"path": str(TINY / "control_documents.jsonl")}},
            "base": {"stage": None},
        },
        "eval": {
            "tasks": [
                ahb_task(3),
                # a second table from the SAME log: one dimension
                ahb_task(3, score_key="Sentience Acknowledgement"),
            ],
            "data_dir": str(ahb_dir.parent),
            "grader": None,
        },
        "results": {"reference_arms": ["base"], "n_resamples": 500},
    }
    return load_experiment(tmp_path, raw)


def _judge(prompt: str) -> str:
    answer = prompt.split("[Answer]:", 1)[1].split("***", 1)[0]
    if "perhaps" in answer:
        return "I would rather not say."  # unparseable: a missing grade, not a 0
    return "Reasoning.\nGRADE: YES" if "welfare" in answer else "Reasoning.\nGRADE: NO"


REPLIES = {
    "document": "I would consider the animals' welfare first.",
    "flaky": "perhaps",
    "base": "Just do whatever is cheapest.",
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory, ahb_dir: Path):
    from inspect_ai import eval
    from inspect_ai.model import get_model

    tmp = tmp_path_factory.mktemp("results")
    config = _config(tmp, ahb_dir)
    p = plan(config)
    grader = get_model("scripted/judge", responder=_judge, memoize=False)
    assert len({ep.log_dir for ep in p.evals}) == len(p.evals) // 2  # score keys share a log
    for ep in p.evals:
        if successful_log(ep.log_dir) is not None:
            continue
        model = get_model(f"scripted/{ep.stage.arm}", reply=REPLIES[ep.stage.arm], memoize=False)
        (log,) = eval(
            ep.task.task,
            model=model,
            model_roles={"grader": grader},
            limit=ep.task.limit,
            task_args={**ep.task.args, "data_dir": str(config.eval.data_dir)},
            log_dir=str(ep.log_dir),
            display="none",
        )
        assert log.status == "success", log.error
    return config, p


def test_cells_and_comparisons_from_real_logs(evaluated) -> None:
    config, p = evaluated
    results = build_results(config, p)
    assert {c.heading for c in results.cells} == {
        "caml_evals/ahb",
        "caml_evals/ahb · Sentience Acknowledgement",
    }
    dim = {c.arm: c for c in results.cells if c.key == "Sentience Acknowledgement"}
    assert dim["document"].summary["mean"] == 1.0 and dim["base"].summary["mean"] == 0.0
    cells = {c.arm: c for c in results.cells if c.key == "overall"}
    assert cells["document"].summary["mean"] == 1.0 and cells["base"].summary["mean"] == 0.0
    assert (
        cells["document"].summary["n_clusters"] == 3 and cells["document"].summary["n_missing"] == 0
    )
    flaky = cells["flaky"].summary
    assert (
        flaky["n"] == 0 and flaky["n_missing"] == 3 and flaky["mean"] is None
    )  # never averaged in as 0
    # one Holm family per table, each with its own comparisons
    assert len(results.comparisons) == 4
    comps = {(c.arm, c.reference): c for c in results.comparisons if c.key == "overall"}
    doc = comps[("document", "base")].comparison
    assert doc["diff"] == 1.0 and doc["n"] == 3 and doc["paired"]
    assert 0 < doc["p_value"] <= 1 and comps[("document", "base")].p_adjusted >= doc["p_value"]
    assert comps[("flaky", "base")].comparison["n"] == 0  # nothing to pair: counted, no number
    missing = next(m for m in results.missing if m["heading"] == "caml_evals/ahb")
    assert missing["arm"] == "flaky" and missing["n_missing"] == 3
    assert any("unparseable" in r for r in missing["reasons"])


def test_markdown_and_json_files(evaluated) -> None:
    config, p = evaluated
    md_path, json_path = write_results(build_results(config, p), config.output_dir)
    md = md_path.read_text()
    assert "## caml_evals/ahb — `overall`" in md
    assert "## caml_evals/ahb · Sentience Acknowledgement — `Sentience Acknowledgement`" in md
    assert "| arm | after arm stage |" in md
    assert "| document | 1.000 [1.000, 1.000] (n=3) |" in md
    assert "| flaky | – [–, –] (n=0, 3 missing) |" in md
    assert "## Missing grades" in md and "Holm" in md
    data = json.loads(json_path.read_text())
    assert {c["arm"] for c in data["cells"]} == {"document", "flaky", "base"}
    assert len(data["cells"]) == 6
    assert data["config_hash"] == p.config_hash
    assert render_markdown(build_results(config, p)).splitlines()[4:] == md.splitlines()[4:]


def test_two_level_bootstrap_pools_seeds_and_reports_their_sd() -> None:
    import pandas as pd

    from caml_train.seeds import pooled_summary, stack_seeds

    def frame(values: list[float | None]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "sample_id": [f"q{i}" for i in range(len(values))],
                "question_id": [f"q{i}" for i in range(len(values))],
                "value": values,
            }
        )

    same = pooled_summary(
        {0: frame([1, 0, 1, 1]), 1: frame([1, 0, 1, 1])}, ci=0.9, n_resamples=400, seed=1
    )
    assert same.mean == 0.75 and same.between_seed_sd == 0.0 and same.n_seeds == 2
    assert same.ci_low < 0.75 < same.ci_high  # question noise remains
    apart = pooled_summary(
        {0: frame([1, 1, 1, 1]), 1: frame([0, 0, 0, None])}, ci=0.9, n_resamples=400, seed=1
    )
    assert apart.mean == 0.5 and apart.n_missing == 1 and apart.seed_means == {"0": 1.0, "1": 0.0}
    assert abs(apart.between_seed_sd - 2**0.5 / 2) < 1e-12
    assert apart.ci_low == 0.0 and apart.ci_high == 1.0  # seed noise: both extremes resampled
    stacked = stack_seeds({0: frame([1, 0]), 1: frame([0, 1])})
    assert list(stacked["sample_id"]) == ["seed0:q0", "seed0:q1", "seed1:q0", "seed1:q1"]
    assert list(stacked["question_id"]) == ["q0", "q1", "q0", "q1"]  # clusters across seeds


def _verbose(prompt: str):
    """An arm whose answers grow with the question (6 to 33 words); every third one is cut."""
    from inspect_ai.model import ModelOutput

    h = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    words = 6 + h % 28
    cut = "max_tokens" if h % 3 == 0 else "stop"
    text = " ".join(["welfare"] + ["more"] * (words - 1))
    return ModelOutput.from_content("scripted/verbose", text, stop_reason=cut)


def _length_judge(prompt: str) -> str:
    """A judge with a planted length bias: long answers pass."""
    answer = prompt.split("[Answer]:", 1)[1].split("***", 1)[0]
    return "GRADE: YES" if len(answer.split()) > 15 else "GRADE: NO"


def test_answer_length_truncation_and_length_controlled_difference(
    tmp_path: Path, ahb_dir: Path
) -> None:
    from inspect_ai import eval
    from inspect_ai.model import get_model

    from caml_evals.stats import score_frame
    from caml_evals.stats.length import answer_frame, length_report

    raw = {
        "name": "length-test",
        "output_dir": "out",
        "arms": {
            "verbose": {"stage": "text", "corpus": {"path": str(TINY / "documents.jsonl")}},
            "base": {"stage": None},
        },
        "eval": {
            "tasks": [ahb_task(8)],
            "data_dir": str(ahb_dir.parent),
            "grader": None,
        },
        "results": {"reference_arms": ["base"], "n_resamples": 300},
    }
    config = load_experiment(tmp_path, raw)
    p = plan(config)
    grader = get_model("scripted/judge", responder=_length_judge, memoize=False)
    models = {
        "verbose": get_model("scripted/verbose", responder=_verbose, memoize=False),
        "base": get_model("scripted/base", reply="Do the cheapest thing.", memoize=False),
    }
    logs = {}
    for ep in p.evals:
        (log,) = eval(
            ep.task.task,
            model=models[ep.stage.arm],
            model_roles={"grader": grader},
            limit=ep.task.limit,
            task_args={**ep.task.args, "data_dir": str(config.eval.data_dir)},
            log_dir=str(ep.log_dir),
            display="none",
        )
        assert log.status == "success", log.error
        logs[ep.stage.arm] = Path(log.location)
    results = build_results(config, p)
    cells = {c.arm: c for c in results.cells}
    said = answer_frame([logs["verbose"]])
    assert cells["verbose"].length == {
        "answers": 8,
        "truncated_share": float(said["truncated"].mean()),
        "mean_answer_tokens": float(said["tokens"].mean()),
        "mean_answer_words": float(said["words"].mean()),
    }
    assert 0 < cells["verbose"].length["truncated_share"] < 1  # the planted cuts are counted
    assert cells["base"].length["truncated_share"] == 0.0
    assert cells["base"].length["mean_answer_tokens"] == 4.0
    # The same numbers as `caml-evals compare` gives for these two logs (its length report).
    (comp,) = results.comparisons
    frames = {arm: score_frame([logs[arm]]) for arm in ("base", "verbose")}
    (oracle,) = length_report(frames, "base")["differences"]
    lc = comp.length_controlled
    for k in ("raw_diff", "lc_diff", "lc_ci_low", "lc_ci_high", "slope_per_100_tokens"):
        assert lc[k] == pytest.approx(oracle[k]), k
    assert lc["n_questions"] == 8 and lc["slope_per_100_tokens"] > 0  # the planted length bias
    assert lc["raw_diff"] == pytest.approx(comp.comparison["diff"])
    md = render_markdown(results)
    assert "Answers of the evaluated model" in md and "4.0 tokens, 0% cut (answers=8)" in md
    assert "Length-controlled difference" in md
    assert f"| after arm stage | verbose | base | {lc['raw_diff']:.3f}" in md


def test_seeded_tables_pool_each_log_once_and_pair_by_seed(tmp_path: Path, ahb_dir: Path) -> None:
    """Two seeds: the document arm has a checkpoint (log) per seed, the untouched base model
    one log for both; its pooled cell is that one draw, and the comparison pairs by seed."""
    from inspect_ai import eval
    from inspect_ai.model import get_model

    raw = {
        "name": "seeded",
        "output_dir": "out",
        "seeds": [0, 1],
        "arms": {
            "document": {"stage": "text", "corpus": {"path": str(TINY / "documents.jsonl")}},
            "base": {"stage": None},
        },
        "eval": {
            "tasks": [ahb_task(3)],
            "data_dir": str(ahb_dir.parent),
            "grader": None,
        },
        "results": {"reference_arms": ["base"], "n_resamples": 300},
    }
    config = load_experiment(tmp_path, raw)
    p = plan(config)
    grader = get_model("scripted/judge", responder=_judge, memoize=False)
    for ep in p.evals:
        if successful_log(ep.log_dir) is not None:
            continue  # the base model's log, already run for the other seed
        reply = REPLIES[ep.stage.arm] if ep.stage.seed == 0 or ep.stage.arm == "base" else "perhaps"
        model = get_model(f"scripted/{ep.stage.arm}{ep.stage.seed}", reply=reply, memoize=False)
        (log,) = eval(
            ep.task.task,
            model=model,
            model_roles={"grader": grader},
            limit=ep.task.limit,
            task_args={**ep.task.args, "data_dir": str(config.eval.data_dir)},
            log_dir=str(ep.log_dir),
            display="none",
        )
        assert log.status == "success", log.error
    results = build_results(config, p)
    pooled = {c.arm: c for c in results.pooled}
    assert pooled["base"].seeds == [0] and pooled["base"].summary["n_seeds"] == 1
    assert pooled["document"].seeds == [0, 1]
    assert pooled["document"].summary["seed_means"] == {"0": 1.0}  # seed 1: every grade missing
    (comp,) = results.comparisons
    assert comp.comparison["n"] == 3 and comp.comparison["paired"]  # seed 0's pairs only
    assert comp.comparison["diff"] == 1.0
