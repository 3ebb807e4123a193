"""`--engine vllm`: generate in-process with `vllm.LLM` on this machine's GPUs (one shard per node).

Same prompts, same cache keys (the `--model` string, the messages and the sampling parameters, as
for an online run), same manifest: only the fetch step differs, so a shard run here and an online
or batch run elsewhere fill one cache. The weights are `--engine-model` (a local folder or Hub id;
default: `--model` without its litellm provider prefix, e.g. `openai/Qwen/Qwen2.5-7B-Instruct` ->
`Qwen/Qwen2.5-7B-Instruct`). vLLM is imported only here, and only when asked for: without it (or
without a GPU) the run stops with one line saying what to install, before anything is planned.

Costs: self-hosted generation has no API price; its entries are `cost_known=False` (GPU time is
not priced here), so the manifest lists them as requests of unknown price rather than as $0 bills.

Not tested on a GPU in this project's CI (no GPU there); tests drive this code through a stand-in
`vllm` module with vLLM's documented `LLM.chat` / `SamplingParams` / `RequestOutput` interface.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from caml_train.generate.cache import CacheEntry, ResponseCache, Usage
from caml_train.generate.runner import Failure, Job, RunResult

PROVIDER_PREFIXES = ("openai/", "hosted_vllm/", "vllm/", "hf/", "huggingface/")


class EngineUnavailable(RuntimeError):
    """The engine's library (or a GPU for it) is missing; the message says what to install."""


def engine_model(model: str, override: str | None = None) -> str:
    if override:
        return override
    for prefix in PROVIDER_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def import_vllm() -> Any:
    try:
        return importlib.import_module("vllm")
    except ImportError as ex:
        raise EngineUnavailable(
            "--engine vllm needs vLLM on a GPU machine: pip install vllm (matching your CUDA and"
            f" torch); import failed: {ex}"
        ) from ex


class VLLMEngine:
    """One `vllm.LLM` per run; `run()` has the runner's contract (cache first, results cached)."""

    def __init__(
        self,
        model: str,
        *,
        weights: str | None = None,
        chunk_size: int = 4096,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.weights = engine_model(model, weights)
        self.chunk_size = chunk_size
        self._vllm = import_vllm()
        self._llm = self._vllm.LLM(model=self.weights, **(llm_kwargs or {}))

    def _sampling(self, params: dict[str, Any]) -> Any:
        known = {k: params[k] for k in ("temperature", "max_tokens", "top_p") if k in params}
        return self._vllm.SamplingParams(**known)

    def run(
        self, jobs: list[Job], *, cache: ResponseCache, request_params: dict[str, Any]
    ) -> RunResult:
        started = time.monotonic()
        result = RunResult()
        first: dict[str, Job] = {}
        for job in jobs:
            first.setdefault(job.key, job)
        result.unique_requests = len(first)
        todo = []
        for key, job in first.items():
            entry = cache.get(key)
            if entry is not None:
                result.entries[key] = entry
                result.cached_keys.add(key)
                result.usage_from_cache.add(entry)
            else:
                todo.append(job)
        sampling = self._sampling(request_params)
        for start in range(
            0, len(todo), self.chunk_size
        ):  # cached chunk by chunk: a crash keeps most
            chunk = todo[start : start + self.chunk_size]
            try:
                outputs = self._llm.chat([j.messages for j in chunk], sampling, use_tqdm=False)
            except Exception as ex:  # noqa: BLE001 - reported per request, the rerun retries them
                for job in chunk:
                    result.failures.append(
                        Failure(id=job.id, prompt_hash=job.key, error=f"vllm: {ex}", attempts=1)
                    )
                continue
            for job, out in zip(chunk, outputs):
                completion = out.outputs[0]
                entry = CacheEntry(
                    key=job.key,
                    model=self.model,
                    messages=job.messages,
                    params=request_params,
                    text=completion.text,
                    finish_reason=completion.finish_reason,
                    usage=Usage(
                        prompt_tokens=len(out.prompt_token_ids or []),
                        completion_tokens=len(completion.token_ids or []),
                    ),
                    cost_usd=0.0,
                    cost_known=False,
                    attempts=1,
                    response_model=self.weights,
                    mode="vllm",
                )
                cache.put(entry)
                result.entries[job.key] = entry
                result.usage_this_run.add(entry)
        result.seconds = time.monotonic() - started
        return result
