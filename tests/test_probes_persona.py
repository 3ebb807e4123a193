"""Persona-vector probe: pairs load and split; steering is a no-op at alpha 0 and acts otherwise;
on SmolLM2 the direction separates held-out pairs above chance (slow)."""

from __future__ import annotations

import json

import pytest
import torch

from caml_evals.cli import main as cli_main
from caml_evals.errors import DataSourceError
from caml_evals.probes.depth import LoadedModel, greedy_answer, prompt_ids
from caml_evals.probes.persona import (
    load_pairs,
    persona_directions,
    persona_probe,
    split_pairs,
    steering,
)
from caml_evals.probes.steer import load_direction


@pytest.fixture(scope="module")
def tokenizer(embedded_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_checkpoint)


def _tiny(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).eval()


def test_shipped_pairs_load_and_split_disjoint(tmp_path):
    pairs = load_pairs()
    assert len(pairs) >= 20 and len({p.id for p in pairs}) == len(pairs)
    train, held = split_pairs(pairs, seed=0)
    assert {p.id for p in train}.isdisjoint({p.id for p in held}) and len(held) == 8
    assert split_pairs(pairs, seed=0) == (train, held)
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"id": "x", "question": "q"}\n')
    with pytest.raises(DataSourceError, match="pairs.jsonl:1: not a contrastive pair"):
        load_pairs(bad)


def test_steering_at_zero_is_the_plain_model_and_nonzero_changes_it(tokenizer):
    lm = LoadedModel("tiny", _tiny(tokenizer), tokenizer)
    pairs = load_pairs()[:6]
    directions = persona_directions(lm, pairs)
    assert directions.shape == (3, 16)  # embeddings + 2 layers
    prompt = prompt_ids(tokenizer, "How do I get rid of mice?")
    plain = greedy_answer(lm.model, tokenizer, prompt, 8)
    with steering(lm.model, 2, directions[2], 0.0):
        assert greedy_answer(lm.model, tokenizer, prompt, 8) == plain
    ids = torch.tensor([prompt])
    before = lm.model(input_ids=ids).logits
    with steering(lm.model, 2, directions[2] / directions[2].norm(), 50.0):
        after = lm.model(input_ids=ids).logits
    assert not torch.allclose(before, after)
    assert torch.allclose(lm.model(input_ids=ids).logits, before)  # the hook is removed


def test_cli_writes_the_layer_table(tokenizer, tmp_path, capsys):
    model = _tiny(tokenizer)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(p.model_dump_json() for p in load_pairs()[:6]))
    out = tmp_path / "out"
    code = cli_main(
        [
            "probe",
            "persona",
            str(tmp_path / "m"),
            "--pairs",
            str(pairs),
            "--task",
            "value_pressure",
            "--limit",
            "1",
            "--max-tokens",
            "3",
            "--steer",
            "0",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads((out / "persona.json").read_text())
    assert len(data["layers"]) == 3 and len(data["held_out_pairs"]) == 2
    assert [s["alpha"] for s in data["steering"]] == [0.0, 1.0]
    assert str(tmp_path / "m") in data["projections"]
    assert "held-out separation" in capsys.readouterr().out
    vector, layer, source = load_direction(out / "direction.pt")
    assert vector.shape == (16,) and layer == data["best_layer"] and source == str(tmp_path / "m")


def _answers(task, model, tmp_path):
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model

    if isinstance(model, str):
        model = get_model(model, config=GenerateConfig(max_tokens=5), memoize=False)
    log = inspect_eval(
        task,
        model=model,
        model_roles={"grader": get_model("scripted/judge", reply="{}", memoize=False)},
        display="none",
        log_dir=str(tmp_path),
        limit=1,
    )[0]
    return log


def test_steer_solver_on_a_local_model_and_its_errors(tokenizer, tmp_path):
    from caml_evals.errors import TaskArgumentError
    from caml_evals.probes import with_probe
    from caml_evals.probes.steer import save_direction
    from caml_evals.tasks.value_pressure.task import value_pressure

    model = _tiny(tokenizer)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    direction = tmp_path / "direction.pt"
    torch.manual_seed(1)
    save_direction(direction, torch.randn(16) * 100, 1, "tiny")
    from inspect_ai.model import GenerateConfig, get_model

    name = get_model(f"caml/{tmp_path / 'm'}", config=GenerateConfig(max_tokens=5), memoize=False)
    plain = _answers(value_pressure(), name, tmp_path / "plain").samples[0].output.completion
    zero = _answers(
        with_probe(value_pressure(), steer=str(direction), steer_alpha=0), name, tmp_path / "zero"
    )
    assert zero.samples[0].output.completion == plain
    assert zero.eval.metadata["probe"] == {"steer": str(direction), "steer_alpha": 0.0}
    steered = (
        _answers(value_pressure(steer=str(direction), steer_alpha=5.0), name, tmp_path / "five")
        .samples[0]
        .output.completion
    )
    assert steered != plain
    after = _answers(value_pressure(), name, tmp_path / "after").samples[0].output.completion
    assert after == plain  # the same model object, unsteered again after the steered run
    scripted = _answers(
        with_probe(value_pressure(), steer=str(direction), steer_alpha=1),
        "scripted/x",
        tmp_path / "s",
    )
    assert scripted.status == "error" and "caml/ checkpoint" in str(scripted.error)
    with pytest.raises(TaskArgumentError, match="no such file"):
        with_probe(value_pressure(), steer=str(tmp_path / "absent.pt"), steer_alpha=1)
    with pytest.raises(TaskArgumentError, match="needs -T steer"):
        with_probe(value_pressure(), steer_alpha=1)


@pytest.mark.slow
def test_smollm2_direction_separates_held_out_pairs_and_alpha_zero_is_exact(embedded_checkpoint):
    from caml_evals.probes.depth import load_local
    from caml_evals.probes.persona import steered_answers

    lm = load_local("smollm2")
    result = persona_probe(lm)  # the shipped pairs: 16 to derive, 8 held out
    best = next(s for s in result.layers if s.layer == result.best_layer)
    print(
        f"SmolLM2-135M held-out separation at layer {best.layer}: {best.accuracy:.3f} "
        f"over {len(result.held_out_pairs)} pairs (gap z {best.gap_z:.2f})"
    )
    assert best.accuracy > 0.5
    question = "How do I get rid of the mice in my barn?"
    prompt = prompt_ids(lm.tokenizer, question)
    plain = lm.tokenizer.decode(
        greedy_answer(lm.model, lm.tokenizer, prompt, 6), skip_special_tokens=True
    )
    direction = persona_directions(lm, load_pairs()[:4])[best.layer]
    assert steered_answers(lm, direction, best.layer, 0.0, [question], 6) == [plain]


# ------------------------------------------------------------------ AHB score vs steering alpha


def _ahb_judge(prompt: str) -> str:
    """C when the graded answer has an even number of words: a rule the test can recompute
    from the logged answers, so the curve's numbers are checked, not assumed."""
    answer = prompt.split("[Response]: ", 1)[1].split("\n***\n[Criterion]", 1)[0]
    return "GRADE: C" if len(answer.split()) % 2 == 0 else "GRADE: I"


def _saved_tiny(tokenizer, tmp_path):
    from caml_evals.probes.steer import save_direction

    model = _tiny(tokenizer)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    torch.manual_seed(1)
    direction = save_direction(tmp_path / "direction.pt", torch.randn(16) * 100, 1, "tiny")
    return tmp_path / "m", direction


def test_steer_curve_scores_ahb_at_each_alpha_against_alpha_zero(tokenizer, tmp_path, ahb_dir):
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model

    from caml_evals.logs import read_log
    from caml_evals.probes.steer_curve import steer_curve, write_curve
    from caml_evals.tasks.ahb.task import ahb

    checkpoint, direction = _saved_tiny(tokenizer, tmp_path)
    task_args = {"data_dir": str(ahb_dir), "epochs": 1}
    judge = get_model("scripted/j", responder=_ahb_judge, memoize=False)

    def curve():
        return steer_curve(
            str(checkpoint),
            direction,
            [5.0],  # 0 is added
            grader=judge,
            task="ahb",
            task_args=task_args,
            limit=2,
            max_tokens=5,
            log_dir=tmp_path / "logs",
        )

    result = curve()
    assert [p.alpha for p in result.points] == [0.0, 5.0]
    assert result.layer == 1 and result.direction_model == "tiny" and result.task == "ahb"
    answers = {}
    for point in result.points:
        assert point.status == "success" and not point.reused
        log = read_log(point.log)
        assert log.eval.metadata["probe"] == {"steer": str(direction), "steer_alpha": point.alpha}
        answers[point.alpha] = [s.output.completion for s in log.samples]
        expected = sum(len(a.split()) % 2 == 0 for a in answers[point.alpha]) / 2
        assert point.score == pytest.approx(expected) and point.n == 2 and point.n_missing == 0
        assert point.ci_low <= point.score <= point.ci_high
    zero, five = result.points
    assert answers[5.0] != answers[0.0]  # the direction moves the answers
    assert zero.diff == 0.0 and five.n_pairs == 2
    assert five.diff == pytest.approx(five.score - zero.score)
    # alpha 0 is the unsteered model token for token
    plain = inspect_eval(
        ahb(**task_args),
        model=get_model(f"caml/{checkpoint}", config=GenerateConfig(max_tokens=5), memoize=False),
        model_roles={"grader": judge},
        limit=2,
        display="none",
        log_dir=str(tmp_path / "plain"),
    )[0]
    assert [s.output.completion for s in plain.samples] == answers[0.0]

    js, png = write_curve(result, tmp_path / "out")
    data = json.loads(js.read_text())
    assert [(p["alpha"], p["score"]) for p in data["points"]] == [
        (0.0, zero.score),
        (5.0, five.score),
    ]
    assert png.read_bytes()[:4] == b"\x89PNG"
    # a rerun resumes: the successful logs of the same runs are used, nothing runs again
    before = sorted((tmp_path / "logs").glob("*.eval"))
    again = curve()
    assert (
        all(p.reused for p in again.points) and sorted((tmp_path / "logs").glob("*.eval")) == before
    )
    assert [p.score for p in again.points] == [zero.score, five.score]


def test_probe_steer_cli_writes_the_curve_and_needs_a_grader(tokenizer, tmp_path, ahb_dir, capsys):
    checkpoint, direction = _saved_tiny(tokenizer, tmp_path)
    reply = tmp_path / "reply.txt"
    reply.write_text("GRADE: C")
    base = ["probe", "steer", str(checkpoint), str(direction), "--alpha", "5", "--task", "ahb"]
    base += ["-T", f"data_dir={ahb_dir}", "-T", "epochs=1", "--limit", "1", "--max-tokens", "3"]
    assert cli_main(base + ["--out", str(tmp_path / "none")]) == 2
    assert "--grader MODEL is required" in capsys.readouterr().err
    grader = ["--grader", "scripted/j", "--grader-arg", f"reply_file={reply}"]
    assert cli_main(base + grader + ["--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("alpha\tscore\tci_low")
    data = json.loads((tmp_path / "out" / "steer_curve.json").read_text())
    assert [p["alpha"] for p in data["points"]] == [0.0, 5.0]
    assert [p["score"] for p in data["points"]] == [1.0, 1.0]  # the judge always says C
    assert (tmp_path / "out" / "steer_curve.png").is_file()
    assert len(list((tmp_path / "out" / "steer_logs").glob("*.eval"))) == 2


@pytest.mark.slow
def test_smollm2_ahb_score_vs_alpha_from_the_persona_cli(embedded_checkpoint, ahb_dir, tmp_path):
    """The whole causal check on the embedded model: direction from the shipped pairs, then AHB
    (1 question, 1 epoch, 6 tokens) at alpha 0 and 8 through the steered `caml/smollm2`; the
    alpha-0 answer is the plain model's token for token. (The judge is scripted, so the
    scores here test the plumbing; a real curve needs a real judge: docs/probes.md.)"""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model

    from caml_evals.logs import read_log
    from caml_evals.tasks.ahb.task import ahb

    reply = tmp_path / "reply.txt"
    reply.write_text("GRADE: C")
    out = tmp_path / "persona"
    code = cli_main(
        ["probe", "persona", "smollm2", "--task", "ahb", "-T", f"data_dir={ahb_dir}"]
        + ["-T", "epochs=1", "--limit", "1", "--max-tokens", "6", "--steer", "0", "8"]
        + ["--grader", "scripted/j", "--grader-arg", f"reply_file={reply}", "--out", str(out)]
    )
    assert code == 0
    curve = json.loads((out / "steer_curve.json").read_text())
    assert [p["alpha"] for p in curve["points"]] == [0.0, 8.0]
    assert all(p["status"] == "success" and p["n"] == 1 for p in curve["points"])
    assert (out / "steer_curve.png").is_file() and (out / "persona.json").is_file()
    answers = {p["alpha"]: read_log(p["log"]).samples[0].output.completion for p in curve["points"]}
    plain = inspect_eval(
        ahb(data_dir=str(ahb_dir), epochs=1),
        model=get_model("caml/smollm2", config=GenerateConfig(max_tokens=6), memoize=False),
        model_roles={"grader": get_model("scripted/j", reply="GRADE: C", memoize=False)},
        limit=1,
        display="none",
        log_dir=str(tmp_path / "plain"),
    )[0]
    print(f"SmolLM2 AHB answer at alpha 0: {answers[0.0]!r}; at alpha 8: {answers[8.0]!r}")
    assert plain.samples[0].output.completion == answers[0.0]
