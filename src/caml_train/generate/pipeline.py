"""Plan → fetch (cache/client) → post-process → write corpus, rejects and manifest.

The expensive middle step persists every response in the cache, so the cheap last step can be rerun
at will: after a crash, after merging the caches of all shards (`cache_only=True`, no API needed), or
after changing a filter threshold.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.console import Console

from caml_train.generate.cache import ResponseCache, request_key
from caml_train.generate.client import LLMClient, RetryPolicy, Transport
from caml_train.generate.filters import (
    Reason,
    Rejection,
    check_answer,
    check_document,
    compile_patterns,
    normalize_text,
)
from caml_train.generate.grid import Shard, sample_grid
from caml_train.generate.manifest import Counts, Manifest, UsageReport, usage_by_mode
from caml_train.generate.prompts import document_messages, instruction_messages
from caml_train.generate.qa import parse_qa_reply
from caml_train.generate.rows import (
    ChatMessage,
    DocumentRow,
    InstructionRow,
    MalformedLine,
    RejectedRow,
    read_document_rows,
    write_json,
    write_jsonl,
)
from caml_train.generate.runner import Job, RunResult, execute
from caml_train.generate.spec import GenerationSpec


class RunConfig(BaseModel):
    """Everything one generation run needs (the CLI builds it from its flags)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    spec: GenerationSpec
    spec_ref: str
    model: str = Field(description="litellm model string, e.g. openai/gpt-4o-mini")
    out_dir: Path
    cache_dir: Path
    api_base: str | None = None
    api_key: str | None = Field(None, repr=False, exclude=True)
    n: int | None = Field(None, ge=1, description="documents (or source documents) to use")
    seed: int = 0
    shard: Shard = Shard()
    concurrency: int | Literal["auto"] = Field(8, description=">= 1, or 'auto' (AIMD)")
    mode: Literal["online", "batch"] = "online"
    engine: Literal["api", "vllm"] = "api"
    engine_model: str | None = None
    batch_poll: float = Field(30.0, gt=0)
    batch_timeout: float | None = Field(None, gt=0)
    cache_only: bool = False
    retry: RetryPolicy = RetryPolicy()
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, gt=0)
    documents: Path | None = Field(None, description="derive Q/A pairs from this documents corpus")
    transport: Transport = Field(
        "auto",
        description="auto: direct HTTP for openai/<name> at an api_base, else litellm (client.py)",
    )

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, value: int | str) -> int | str:
        if value != "auto" and (not isinstance(value, int) or value < 1):
            raise ValueError("concurrency must be >= 1 or 'auto'")
        return value

    def request_params(self) -> dict[str, Any]:
        params = self.spec.generation.request_params()
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        return params

    def resolved_api_key(self) -> str | None:
        """A local OpenAI-compatible server (vLLM, TGI, ...) needs *some* key for the OpenAI SDK."""
        if self.api_key:
            return self.api_key
        if (
            self.api_base
            and self.model.startswith("openai/")
            and not os.environ.get("OPENAI_API_KEY")
        ):
            return "EMPTY"
        return None


def output_paths(out_dir: Path, kind: str, shard: Shard) -> dict[str, Path]:
    return {
        "corpus": out_dir / f"{kind}{shard.suffix}.jsonl",
        # In a subfolder: a loader pointed at `out_dir` (every *.jsonl in it) must not train on rejects.
        "rejected": out_dir / "rejected" / f"{kind}{shard.suffix}.jsonl",
        "manifest": out_dir / f"{kind}{shard.suffix}.manifest.json",
    }


# ------------------------------------------------------------------------------------------ planning


def document_id(spec: GenerationSpec, key: str) -> str:
    return f"{spec.name}-{key[:16]}"


def plan_documents(cfg: RunConfig) -> list[Job]:
    """This shard's document requests, in seeded sample order."""
    n = cfg.n if cfg.n is not None else cfg.spec.n_documents
    cells = cfg.shard.select(sample_grid(cfg.spec.grid, n, cfg.seed))
    params = cfg.request_params()
    jobs = []
    for cell in cells:
        messages = document_messages(cfg.spec, cell)
        key = request_key(cfg.model, messages, params)
        jobs.append(Job(id=document_id(cfg.spec, key), params=cell, messages=messages, key=key))
    return jobs


class SpecMismatchError(ValueError):
    """A documents corpus written for another spec was passed to generate-instructions."""


def plan_instructions(cfg: RunConfig) -> tuple[list[Job], list[MalformedLine]]:
    """Q/A requests from the grid, or one per document of `cfg.documents` (this shard's share)."""
    params = cfg.request_params()
    jobs: list[Job] = []
    malformed: list[MalformedLine] = []
    if cfg.documents is None:
        n = cfg.n if cfg.n is not None else cfg.spec.n_documents
        for cell in cfg.shard.select(sample_grid(cfg.spec.grid, n, cfg.seed)):
            messages = instruction_messages(cfg.spec, cell)
            key = request_key(cfg.model, messages, params)
            jobs.append(
                Job(id=f"{cfg.spec.name}-qa-{key[:12]}", params=cell, messages=messages, key=key)
            )
        return jobs, malformed
    rows, malformed = read_document_rows(cfg.documents)
    other = sorted({r.spec for r in rows} - {cfg.spec.name})
    if other:
        raise SpecMismatchError(
            f"{cfg.documents} holds documents of spec(s) {other}, not {cfg.spec.name!r};"
            " pass the spec the documents were generated with"
        )
    if cfg.n is not None and cfg.n < len(rows):
        keep = sorted(random.Random(cfg.seed).sample(range(len(rows)), cfg.n))
        rows = [rows[i] for i in keep]
    for row in cfg.shard.select(rows):
        messages = instruction_messages(cfg.spec, row.params, document=row.text)
        key = request_key(cfg.model, messages, params)
        jobs.append(
            Job(
                id=f"{cfg.spec.name}-qa-{key[:12]}",
                params=row.params,
                messages=messages,
                key=key,
                source_id=row.id,
            )
        )
    return jobs, malformed


# ----------------------------------------------------------------------------------- post-processing


def postprocess_documents(
    spec: GenerationSpec, model: str, jobs: list[Job], result: RunResult
) -> tuple[list[DocumentRow], list[RejectedRow]]:
    patterns = compile_patterns(spec.filters)
    candidates: list[DocumentRow] = []
    rejected: list[RejectedRow] = []
    seen: set[str] = set()
    for job in jobs:
        entry = result.entries.get(job.key)
        if entry is None or job.key in seen:  # failed/missing (reported), or a repeated key
            continue
        seen.add(job.key)
        text = normalize_text(entry.text)
        row = DocumentRow(
            id=job.id,
            text=text,
            spec=spec.name,
            params=job.params,
            model=model,
            prompt_hash=job.key,
        )
        rejection = check_document(text, entry.finish_reason, spec.filters, patterns)
        if rejection is None:
            candidates.append(row)
        else:
            rejected.append(_reject(row, rejection))
    from caml_train.generate.dedup import find_near_duplicates  # datasketch imports scipy: ~1 s

    duplicates = find_near_duplicates(
        ((r.id, r.text) for r in candidates),
        threshold=spec.filters.dedup_threshold,
        num_perm=spec.filters.dedup_num_perm,
        shingle_words=spec.filters.shingle_words,
    )
    kept = []
    for row in candidates:
        if row.id in duplicates:
            dup_of, similarity = duplicates[row.id]
            rejection = Rejection(reason=Reason.NEAR_DUPLICATE, detail=f"jaccard~{similarity:.2f}")
            rejected.append(_reject(row, rejection, duplicate_of=dup_of))
        else:
            kept.append(row)
    return kept, rejected


def _reject(row: DocumentRow, rejection: Rejection, duplicate_of: str | None = None) -> RejectedRow:
    return RejectedRow(
        id=row.id,
        reason=rejection.reason.value,
        detail=rejection.detail,
        text=row.text,
        spec=row.spec,
        params=row.params,
        model=row.model,
        prompt_hash=row.prompt_hash,
        duplicate_of=duplicate_of,
    )


class QAOutcome(BaseModel):
    rows: list[InstructionRow]
    rejected: list[RejectedRow]
    unparseable_replies: int
    pairs_parsed: int


def postprocess_instructions(
    spec: GenerationSpec, model: str, jobs: list[Job], result: RunResult
) -> QAOutcome:
    patterns = compile_patterns(spec.filters)
    candidates: list[InstructionRow] = []
    rejected: list[RejectedRow] = []
    unparseable = 0
    parsed = 0
    seen: set[str] = set()

    def reject(
        row: InstructionRow, text: str, rejection: Rejection, dup: str | None = None
    ) -> None:
        rejected.append(
            RejectedRow(
                id=row.id,
                reason=rejection.reason.value,
                detail=rejection.detail,
                text=text,
                spec=row.spec,
                params=row.params,
                model=row.model,
                prompt_hash=row.prompt_hash,
                duplicate_of=dup,
                source_id=row.source_id,
            )
        )

    for job in jobs:
        entry = result.entries.get(job.key)
        if entry is None or job.key in seen:
            continue
        seen.add(job.key)
        pairs = parse_qa_reply(entry.text)
        if not pairs:
            unparseable += 1
            cut = " (reply cut at max_tokens)" if entry.finish_reason == "length" else ""
            rejected.append(
                RejectedRow(
                    id=job.id,
                    reason=Reason.UNPARSEABLE.value,
                    detail=f"no Q/A pair found{cut}",
                    text=entry.text,
                    spec=spec.name,
                    params=job.params,
                    model=model,
                    prompt_hash=job.key,
                    source_id=job.source_id,
                )
            )
            continue
        parsed += len(pairs)
        for k, pair in enumerate(pairs):
            question, answer = normalize_text(pair.question), normalize_text(pair.answer)
            row = InstructionRow(
                id=f"{job.id}-{k:02d}",
                messages=[
                    ChatMessage(role="user", content=question),
                    ChatMessage(role="assistant", content=answer),
                ],
                spec=spec.name,
                params=job.params,
                model=model,
                prompt_hash=job.key,
                source_id=job.source_id,
            )
            text = f"Q: {question}\nA: {answer}"
            if entry.finish_reason == "length" and k == len(pairs) - 1:
                reject(
                    row, text, Rejection(reason=Reason.TRUNCATED, detail="last pair of a cut reply")
                )
            elif not question:
                reject(row, text, Rejection(reason=Reason.EMPTY, detail="empty question"))
            elif (rejection := check_answer(answer, spec.filters, patterns)) is not None:
                reject(row, text, rejection)
            else:
                candidates.append(row)
    from caml_train.generate.dedup import find_near_duplicates

    duplicates = find_near_duplicates(
        ((r.id, f"{r.messages[0].content}\n{r.messages[1].content}") for r in candidates),
        threshold=spec.filters.dedup_threshold,
        num_perm=spec.filters.dedup_num_perm,
        shingle_words=spec.filters.shingle_words,
    )
    kept = []
    for row in candidates:
        if row.id in duplicates:
            dup_of, similarity = duplicates[row.id]
            text = f"Q: {row.messages[0].content}\nA: {row.messages[1].content}"
            reject(
                row,
                text,
                Rejection(reason=Reason.NEAR_DUPLICATE, detail=f"jaccard~{similarity:.2f}"),
                dup_of,
            )
        else:
            kept.append(row)
    return QAOutcome(
        rows=kept, rejected=rejected, unparseable_replies=unparseable, pairs_parsed=parsed
    )


# ------------------------------------------------------------------------------------------- running


async def _fetch(
    cfg: RunConfig,
    jobs: list[Job],
    cache: ResponseCache,
    label: str,
    console: Console | None,
    kind: str = "documents",
) -> RunResult:
    if not cfg.cache_only and cfg.engine == "vllm":
        from caml_train.generate.engines import VLLMEngine

        engine = VLLMEngine(cfg.model, weights=cfg.engine_model)
        return await asyncio.to_thread(
            engine.run, jobs, cache=cache, request_params=cfg.request_params()
        )
    if not cfg.cache_only and cfg.mode == "batch":
        from caml_train.generate.batch import BatchRunner

        runner = BatchRunner(
            model=cfg.model,
            api_base=cfg.api_base,
            api_key=cfg.resolved_api_key(),
            state_dir=cfg.out_dir / "batches" / f"{kind}{cfg.shard.suffix}",
            poll_interval=cfg.batch_poll,
            timeout=cfg.batch_timeout,
            progress=lambda m: (console or Console(stderr=True)).print(m, markup=False),
        )
        result = await asyncio.to_thread(
            runner.run, jobs, cache=cache, request_params=cfg.request_params()
        )
        result.batches = runner.report()
        return result
    client = None
    if not cfg.cache_only:
        client = LLMClient(
            cfg.model,
            api_base=cfg.api_base,
            api_key=cfg.resolved_api_key(),
            retry=cfg.retry,
            transport=cfg.transport,
        )
    try:
        return await execute(
            jobs,
            client=client,
            cache=cache,
            request_params=cfg.request_params(),
            concurrency=cfg.concurrency,
            cache_only=cfg.cache_only,
            label=label,
            console=console,
        )
    finally:
        if client is not None:
            await client.aclose()


def _manifest(
    cfg: RunConfig,
    kind: str,
    jobs: list[Job],
    result: RunResult,
    cache: ResponseCache,
    *,
    written: int,
    rejected: list[RejectedRow],
    paths: dict[str, Path],
    unparseable: int = 0,
    pairs_parsed: int = 0,
    malformed: list[MalformedLine] | None = None,
) -> Manifest:
    dropped = Counter(r.reason for r in rejected)
    malformed = malformed or []
    # From a documents corpus, no --n means "every document"; from the grid, the spec's n_documents.
    n = cfg.n if cfg.n is not None or cfg.documents else cfg.spec.n_documents
    return Manifest(
        kind=kind,  # type: ignore[arg-type]
        spec=cfg.spec.name,
        spec_ref=cfg.spec_ref,
        spec_hash=cfg.spec.spec_hash(),
        spec_config=cfg.spec.model_dump(mode="json"),
        model=cfg.model,
        api_base=cfg.api_base,
        request_params=cfg.request_params(),
        seed=cfg.seed,
        n_requested=n,
        grid_size=cfg.spec.grid.size,
        shard={"index": cfg.shard.index, "count": cfg.shard.count},
        source="documents" if cfg.documents else "grid",
        source_path=str(cfg.documents) if cfg.documents else None,
        cache_dir=str(cfg.cache_dir),
        counts=Counts(
            planned=len(jobs),
            unique_requests=result.unique_requests,
            from_cache=len(result.cached_keys),
            generated=result.usage_this_run.requests,
            failed=len(result.failures),
            missing_from_cache=len(result.missing_from_cache),
            replies=len(result.entries),
            unparseable_replies=unparseable,
            pairs_parsed=pairs_parsed,
            written=written,
            dropped_total=sum(dropped.values()),
            malformed_input_lines=len(malformed),
        ),
        dropped=dict(sorted(dropped.items())),
        usage=UsageReport(
            this_run=result.usage_this_run,
            from_cache=result.usage_from_cache,
            total=result.usage_this_run + result.usage_from_cache,
        ),
        retries=result.retries,
        retry_reasons=result.retry_reasons,
        failures=result.failures,
        missing_from_cache=result.missing_from_cache,
        malformed_input=malformed,
        corrupt_cache_entries=cache.corrupt,
        files={k: str(v) for k, v in paths.items()},
        seconds=round(result.seconds, 3),
        complete=not result.failures and not result.missing_from_cache,
        mode="vllm" if cfg.engine == "vllm" else cfg.mode,
        usage_by_mode={
            "this_run": usage_by_mode(
                e for k, e in result.entries.items() if k not in result.cached_keys
            ),
            "total": usage_by_mode(result.entries.values()),
        },
        concurrency=result.concurrency,
        batches=result.batches,
    )


async def generate_documents_async(cfg: RunConfig, console: Console | None = None) -> Manifest:
    cache = ResponseCache(cfg.cache_dir)
    jobs = plan_documents(cfg)
    result = await _fetch(cfg, jobs, cache, f"documents {cfg.shard.label}", console, "documents")
    rows, rejected = postprocess_documents(cfg.spec, cfg.model, jobs, result)
    paths = output_paths(cfg.out_dir, "documents", cfg.shard)
    written = write_jsonl(paths["corpus"], rows)
    write_jsonl(paths["rejected"], rejected)
    manifest = _manifest(
        cfg, "documents", jobs, result, cache, written=written, rejected=rejected, paths=paths
    )
    from caml_train.generate.corpus_report import corpus_stats

    manifest.corpus_stats = corpus_stats(
        (r.model_dump() for r in rows),
        cfg.spec,
        [manifest.model_dump(mode="json")],
        diversity_sample=1000,
    ).model_dump(mode="json")
    write_json(paths["manifest"], manifest.model_dump(mode="json"))
    return manifest


async def generate_instructions_async(cfg: RunConfig, console: Console | None = None) -> Manifest:
    cache = ResponseCache(cfg.cache_dir)
    jobs, malformed = plan_instructions(cfg)
    result = await _fetch(
        cfg, jobs, cache, f"instructions {cfg.shard.label}", console, "instructions"
    )
    outcome = postprocess_instructions(cfg.spec, cfg.model, jobs, result)
    paths = output_paths(cfg.out_dir, "instructions", cfg.shard)
    written = write_jsonl(paths["corpus"], outcome.rows)
    write_jsonl(paths["rejected"], outcome.rejected)
    manifest = _manifest(
        cfg,
        "instructions",
        jobs,
        result,
        cache,
        written=written,
        rejected=outcome.rejected,
        paths=paths,
        unparseable=outcome.unparseable_replies,
        pairs_parsed=outcome.pairs_parsed,
        malformed=malformed,
    )
    write_json(paths["manifest"], manifest.model_dump(mode="json"))
    return manifest


def generate_documents(cfg: RunConfig, console: Console | None = None) -> Manifest:
    """Synchronous entry point (one event loop per run)."""
    return asyncio.run(generate_documents_async(cfg, console))


def generate_instructions(cfg: RunConfig, console: Console | None = None) -> Manifest:
    return asyncio.run(generate_instructions_async(cfg, console))
