"""Inspect model API for the embedded model and any local transformers checkpoint (`caml/<name>`).

Built on Inspect's own `hf` provider (model loading, chat templates, tool-call parsing, logprob
extraction) with its own generation path, because what the `hf` provider reports is not what
each request cost or why it stopped:

- usage: `hf` reports the *padded batch* lengths (every request in a batch of a long and a short
  prompt is billed the long one, and every answer the longest answer's length, pad tokens
  included); here each sequence counts its own prompt tokens (attention mask) and its own
  generated tokens up to and including its end-of-sequence token;
- `stop_reason`: `max_tokens` when an answer was cut at the token cap, `stop` when it ended on
  EOS or a stop sequence (`hf` leaves it `unknown`);
- batching: concurrent `generate` calls (up to `max_connections`) are collected into one
  `model.generate` batch as `hf` does, but a batch starts as soon as the queue has been quiet
  for `BATCH_WAIT_S` (the `hf` provider waits 2 s of quiet and polls every second), and requests
  that arrive while a batch runs form the next one;
- greedy decoding by default (reproducible scores), `max_connections` sized for the device
  (`CPU_BATCH` on CPU, `ACCELERATOR_BATCH` on a GPU), the requested `max_tokens` honoured over
  the default of `DEFAULT_MAX_TOKENS`, and token counting with the model's own tokenizer
  (Inspect's default counts with tiktoken, which downloads its vocabulary at run time).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    GenerateConfig,
    Logprobs,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.model._providers.hf import (
    GenerateOutput,
    HuggingFaceAPI,
    chat_completion_assistant_message,
    extract_logprobs,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from .embedded import resolve_model_path

DEFAULT_MAX_TOKENS = 512
# Requests batched together (Inspect's --max-connections overrides). bench/local_batching.py on
# 2 starved CPU cores: no batch gains there (0.81x tokens/s at 8, 0.44x at 32), so the CPU default
# stays small; a GPU runs a batch's forward pass for little more than one sequence's.
CPU_BATCH = 8
ACCELERATOR_BATCH = 32
BATCH_WAIT_S = 0.02


@dataclass(frozen=True)
class SequenceOutcome:
    """What one sequence of a batch generated: its own tokens, not the batch's padded length."""

    tokens: list[int]  # generated token ids, EOS included when the answer ended on it
    stop_reason: str  # "stop" | "max_tokens"

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


def sequence_outcome(
    generated: Sequence[int], eos_ids: set[int], max_new_tokens: int | None
) -> SequenceOutcome:
    """Cut one row of a batch's generated ids at its first EOS (finished rows are EOS-padded).

    No EOS: the row ran until the cap (`max_tokens`) or was stopped by a stop sequence while
    shorter than the batch (`stop`; the rest of its row is then padding, also EOS).
    """
    row = list(generated)
    for i, token in enumerate(row):
        if token in eos_ids:
            return SequenceOutcome(tokens=row[: i + 1], stop_reason="stop")
    cut = max_new_tokens is not None and len(row) >= max_new_tokens
    return SequenceOutcome(tokens=row, stop_reason="max_tokens" if cut else "stop")


@dataclass
class _Request:
    chat: str
    kwargs: dict[str, Any]
    key: Hashable
    batch_size: int
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class _Result:
    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str
    logprobs: Any
    seconds: float
    batch_size: int


def _kwargs_key(kwargs: dict[str, Any]) -> Hashable:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


class _Batcher:
    """One worker thread per model: drains concurrent requests into `model.generate` batches."""

    def __init__(self, api: LocalTransformersAPI) -> None:
        self.api = api
        self.queue: Queue[_Request | None] = Queue()
        self.batch_sizes: list[int] = []  # every batch run, for tests and benches
        self._thread = threading.Thread(target=self._run, name="caml-local-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: _Request) -> concurrent.futures.Future:
        self.queue.put(request)
        return request.future

    def close(self) -> None:
        self.queue.put(None)

    def _drain(self) -> list[_Request] | None:
        first = self.queue.get()
        if first is None:
            return None
        items = [first]
        while len(items) < first.batch_size:
            try:
                item = self.queue.get(timeout=BATCH_WAIT_S)
            except Empty:
                break
            if item is None:
                self.queue.put(None)  # finish this batch, then stop
                break
            items.append(item)
        return items

    def _run(self) -> None:
        while True:
            batch = self._drain()
            if batch is None:
                return
            groups: dict[Hashable, list[_Request]] = {}
            for item in batch:  # requests with other generation settings cannot share a batch
                groups.setdefault(item.key, []).append(item)
            for group in groups.values():
                try:
                    results = self.api._generate_batch(group)
                except BaseException as ex:  # noqa: BLE001 - every request of the batch learns why
                    for item in group:
                        if not item.future.done():
                            item.future.set_exception(ex)
                    continue
                self.batch_sizes.append(len(group))
                for item, result in zip(group, results):
                    item.future.set_result(result)


class LocalTransformersAPI(HuggingFaceAPI):
    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 - Inspect's ModelAPI signature
        **model_args: Any,
    ) -> None:
        path = resolve_model_path(model_name)
        # seed_each_request=True (with do_sample): the RNG is seeded with each request's
        # GenerateConfig.seed before its batch, and requests with different seeds are never
        # batched together, so a seeded sampled answer is the same in every run (caml_train.rlaif)
        self.seed_each_request = bool(model_args.pop("seed_each_request", False))
        model_args.setdefault("do_sample", False)
        model_args.setdefault("device", "cpu" if _cpu_only() else None)
        if model_args.get("device") is None:
            model_args.pop("device")
        super().__init__(
            model_name=model_name,
            base_url=base_url,
            api_key=api_key,
            config=config,
            model_path=str(path),
            **model_args,
        )
        self.checkpoint_path = path
        self._batcher: _Batcher | None = None
        self._batcher_lock = threading.Lock()

    # -------------------------------------------------------------------------------- generation

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the `model.generate` batches run so far."""
        return list(self._batcher.batch_sizes) if self._batcher else []

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(int(i) for i in source)
        return ids

    def _generation_kwargs(self, config: GenerateConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"do_sample": self.do_sample}
        kwargs["max_new_tokens"] = config.max_tokens or DEFAULT_MAX_TOKENS
        if self.do_sample:  # greedy decoding ignores these (and transformers warns about them)
            for name in ("temperature", "top_p", "top_k"):
                value = getattr(config, name)
                if value is not None:
                    kwargs[name] = value
            if self.seed_each_request and config.seed is not None:
                kwargs["seed"] = config.seed  # part of the batch key: one seed per batch
        if config.logprobs:
            kwargs["output_logits"] = True
        if config.stop_seqs:
            kwargs["stop_strings"] = list(config.stop_seqs)
        return kwargs

    def _generate_batch(self, batch: list[_Request]) -> list[_Result]:
        """Run one batch (worker thread): per-sequence token counts and stop reasons."""
        import torch

        start = time.monotonic()
        kwargs = dict(batch[0].kwargs)
        seed = kwargs.pop("seed", None)
        if seed is not None:
            torch.manual_seed(seed)
        stop_strings = kwargs.pop("stop_strings", None)
        if stop_strings:
            from transformers.generation import StopStringCriteria

            kwargs["stopping_criteria"] = [StopStringCriteria(self.tokenizer, stop_strings)]
        assert isinstance(self.tokenizer_call_args, dict)
        encoded = self.tokenizer(
            [item.chat for item in batch],
            return_tensors="pt",
            padding=True,
            **self.tokenizer_call_args,
        )
        input_ids = encoded["input_ids"].to(self.model.device)
        attention_mask = encoded["attention_mask"].to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id,
                **kwargs,
            )
        generated = out.sequences[:, input_ids.shape[1] :].tolist()
        logprobs = None
        if getattr(out, "logits", None) is not None:
            stacked = torch.stack(out.logits).transpose(0, 1)
            logprobs = torch.nn.functional.log_softmax(stacked.float(), dim=-1)
        prompt_lengths = attention_mask.sum(dim=1).tolist()
        eos = self._eos_ids()
        seconds = time.monotonic() - start
        results = []
        for i, row in enumerate(generated):
            outcome = sequence_outcome(row, eos, kwargs.get("max_new_tokens"))
            results.append(
                _Result(
                    text=self.tokenizer.decode(
                        outcome.tokens,
                        skip_special_tokens=True,
                        clean_up_tokenization_spaces=False,
                    ),
                    input_tokens=int(prompt_lengths[i]),
                    output_tokens=outcome.n_tokens,
                    stop_reason=outcome.stop_reason,
                    logprobs=logprobs[i, : outcome.n_tokens] if logprobs is not None else None,
                    seconds=seconds,
                    batch_size=len(batch),
                )
            )
        return results

    def _get_batcher(self) -> _Batcher:
        with self._batcher_lock:
            if self._batcher is None:
                self._batcher = _Batcher(self)
            return self._batcher

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if self.hidden_states:  # Inspect's path records hidden states; ours does not
            return await super().generate(input, tools, tool_choice, config)
        from inspect_ai.model._providers.util import HFHandler

        handler = HFHandler(self.model_name, self.model_family()) if tools else None
        if input and input[-1].role == "assistant" and not input[-1].tool_calls:
            # an assistant prefill (caml_evals.probes.prefill): continue it, not a new turn
            chat = self.hf_chat(input[:-1], tools) + input[-1].text
        else:
            chat = self.hf_chat(input, tools)
        kwargs = self._generation_kwargs(config)
        batch_size = config.max_connections or self.max_connections()
        request = _Request(chat=chat, kwargs=kwargs, key=_kwargs_key(kwargs), batch_size=batch_size)
        result: _Result = await _await_future(self._get_batcher().submit(request))

        final_logprobs = None
        if config.logprobs and result.logprobs is not None:
            final_logprobs = extract_logprobs(
                response=GenerateOutput(
                    output=result.text,
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    total_tokens=result.input_tokens + result.output_tokens,
                    logprobs=result.logprobs,
                    hidden_states=None,
                    time=result.seconds,
                ),
                top=config.top_logprobs,
                tokenizer=self.tokenizer,
            )
        message = chat_completion_assistant_message(
            _Text(result.text), tools, handler, self.model_name
        )
        stop_reason = "tool_calls" if message.tool_calls else result.stop_reason
        return ModelOutput(
            model=self.model_name,
            choices=[
                ChatCompletionChoice(
                    message=message,
                    stop_reason=stop_reason,  # type: ignore[arg-type]
                    logprobs=Logprobs(content=final_logprobs) if final_logprobs else None,
                )
            ],
            usage=ModelUsage(
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                total_tokens=result.input_tokens + result.output_tokens,
            ),
            time=result.seconds,
            metadata={"batch_size": result.batch_size},
        )

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        super().close()

    # ---------------------------------------------------------------------------------- defaults

    async def count_text_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        return CPU_BATCH if str(self.model.device).startswith("cpu") else ACCELERATOR_BATCH


@dataclass
class _Text:
    output: str  # what Inspect's chat_completion_assistant_message reads


async def _await_future(future: concurrent.futures.Future) -> Any:
    """Await a worker thread's future on asyncio (no polling), or poll it on another loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return await asyncio.wrap_future(future, loop=loop)
    import anyio  # e.g. trio: poll with a short sleep

    while not future.done():
        await anyio.sleep(0.01)
    return future.result()


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def _option_token_ids(tokenizer, option: str) -> list[int]:
    """First token of each spelling of an option as it could follow 'GRADE:' (' YES', 'YES', ' Yes')."""
    ids: set[int] = set()
    for spelling in {option, option.capitalize(), option.lower()}:
        for prefix in (" ", ""):
            tokens = tokenizer(prefix + spelling, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(tokens[0])
    return sorted(ids)


def answer_probabilities(
    api: LocalTransformersAPI, prompt: str, answer_prefix: str, options: list[str]
) -> dict[str, float]:
    """P(option | chat(prompt) + assistant prefix), normalised over the options.

    The logprob-weighted judge: instead of hoping a small model writes 'GRADE: YES', read the
    next-token distribution right after the assistant has written `answer_prefix`. Spellings of
    an option that differ only in case or a leading space are pooled.
    """
    return option_probabilities(api, prompt, answer_prefix, options)[0]


def option_probabilities(
    api: LocalTransformersAPI, prompt: str, answer_prefix: str, options: list[str]
) -> tuple[dict[str, float], int]:
    """`answer_probabilities` and the number of input tokens of the forward pass.

    The forward pass is not a `generate` call, so Inspect records no usage for it; the caller
    records the token count itself (the rubric scorer's `grader_usage`).
    """
    import torch

    tokenizer = api.tokenizer
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    encoded = tokenizer(chat + answer_prefix, return_tensors="pt", add_special_tokens=False)
    n_tokens = int(encoded["input_ids"].shape[-1])
    encoded = {k: v.to(api.model.device) for k, v in encoded.items()}
    with torch.no_grad():
        logits = api.model(**encoded).logits[0, -1].float()
    probs = torch.softmax(logits, dim=-1)
    mass = {opt: float(sum(probs[i] for i in _option_token_ids(tokenizer, opt))) for opt in options}
    total = sum(mass.values())
    if total <= 0:
        raise ValueError("none of the options has any probability mass")
    return {opt: m / total for opt, m in mass.items()}, n_tokens
