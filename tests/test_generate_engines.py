"""`--engine vllm`: the import guard, and the engine's code path through a stand-in `vllm` module
with vLLM's documented interface (no GPU here: the real library cannot run in this CI)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from caml_train.generate.cache import ResponseCache
from caml_train.generate.engines import EngineUnavailable, VLLMEngine, engine_model
from caml_train.generate.pipeline import RunConfig, plan_documents
from caml_train.generate.spec import load_spec

FIXTURES = Path(__file__).parent / "fixtures" / "generate"


@dataclass
class _Completion:
    text: str
    finish_reason: str
    token_ids: list[int]


@dataclass
class _Output:
    prompt_token_ids: list[int]
    outputs: list[_Completion]


def _fake_vllm(calls: list) -> types.ModuleType:
    mod = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, model: str, **kw):
            calls.append(("init", model))

        def chat(self, messages, sampling, use_tqdm=True):
            calls.append(("chat", len(messages), sampling.kw))
            return [
                _Output([1] * 7, [_Completion(f"doc for {m[-1]['content'][:20]}", "stop", [1] * 3)])
                for m in messages
            ]

    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    return mod


def test_missing_vllm_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as on a machine without it
    with pytest.raises(EngineUnavailable, match="pip install vllm"):
        VLLMEngine("openai/some/model")
    assert engine_model("openai/Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert engine_model("openai/x", "/models/x") == "/models/x"


def test_engine_fills_the_same_cache_keys(monkeypatch, tmp_path: Path) -> None:
    calls: list = []
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(calls))
    cfg = RunConfig(
        spec=load_spec(FIXTURES / "tiny_spec.yaml"),
        spec_ref="tiny",
        model="openai/Qwen/Qwen2.5-7B-Instruct",
        out_dir=tmp_path / "o",
        cache_dir=tmp_path / "c",
        n=10,
    )
    jobs, params = plan_documents(cfg), cfg.request_params()
    cache = ResponseCache(cfg.cache_dir)
    engine = VLLMEngine(cfg.model, chunk_size=4)
    result = engine.run(jobs, cache=cache, request_params=params)
    assert calls[0] == ("init", "Qwen/Qwen2.5-7B-Instruct")
    assert [c[1] for c in calls[1:]] == [4, 4, 2]
    assert calls[1][2] == {k: params[k] for k in ("temperature", "max_tokens")}
    assert cache.keys() == {j.key for j in jobs} and not result.failures
    entry = cache.get(jobs[0].key)
    assert entry.mode == "vllm" and not entry.cost_known and entry.usage.completion_tokens == 3
    again = engine.run(jobs, cache=cache, request_params=params)
    assert again.cached_keys == {j.key for j in jobs} and len(calls) == 4  # nothing regenerated
