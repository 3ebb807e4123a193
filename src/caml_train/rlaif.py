"""RLAIF preference pairs: sample k answers per prompt from a checkpoint, have a judge rank them
by a general constitution, keep (best, worst) as a (chosen, rejected) pair.

Why this exists: the research asks whether document-tuned values survive *ordinary* post-training,
so the constitution (`judges/rlaif_constitution.txt`) is a plain helpfulness / honesty /
harmlessness one that never mentions the value under study; the pairs it yields feed the `pref`
(DPO) stage in TRL's conversational preference format.

What makes a pair trustworthy:

- the judge ranks the answers listed in sample order and again reversed (`both_orders`); a pair is
  kept only when both orders name the same best and the same worst answer, so a judge that
  prefers a position produces `inconsistent` prompts (counted), not pairs;
- a reply without a complete `RANKING: 2 > 1 > 3` line (nothing parseable, a number out of range,
  one repeated or missing) is `unparseable`: counted, its prompt yields no pair, never a random
  one; a tie (`=` at the top or bottom, or best and worst with the same text) and k identical
  answers (not sent to the judge) are counted too;
- every answer is sampled with its own seed (from the settings' seed, the prompt and the sample
  index) at the settings' temperature, so a rerun asks for exactly the same samples; the local
  provider honours it with `seed_each_request` (one batch per seed), vLLM and most APIs natively.

Resume: every answer and every judge reply is written to a response cache (the generation
pipeline's `ResponseCache`: one file per request, atomic) keyed by its content (policy identity,
prompt, sample index, sampling settings; judge identity and settings, constitution, the judge
prompt, order) the moment it returns. A killed run, restarted, finds them and makes no repeated
call; the output files are rebuilt whole from the caches at the end and written atomically, so
every pair appears exactly once. A call that fails (after the provider's retries) is reported and
not cached: the next run retries exactly those.

Files in `out_dir`: `answers.jsonl`, `judgements.jsonl` (one line per prompt: its outcome and the
raw judge replies with their parse), `pairs.jsonl`, `rlaif_report.json` (the counts), `cache/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from caml_evals.errors import ConfigError
from caml_evals.outputs import ensure_dir, writable_dir, write_text
from caml_evals.scoring.judge_replies import excerpt
from caml_evals.scoring.templates import JudgeTemplate, load_template

from .config import GraderSpec
from .data import DataError, Problems, checked_messages, sample_rows
from .generate.cache import CacheEntry, ResponseCache, Usage, request_key
from .runcard import RUN_CARD

if TYPE_CHECKING:
    from inspect_ai.model import GenerateConfig, Model

CONSTITUTION = "rlaif_constitution.txt"
REPORT = "rlaif_report.json"
Outcome = Literal["pair", "identical", "tie", "inconsistent", "unparseable", "failed"]
_MAX_LISTED = 50  # skipped rows and failures listed in the report (all are counted)


class RlaifSettings(BaseModel):
    """How pairs are built. A YAML `rlaif:` block and the CLI flags mean the same fields."""

    model_config = ConfigDict(extra="forbid")

    n_prompts: int = Field(gt=0)
    samples_per_prompt: int = Field(2, ge=2)
    temperature: float = Field(0.9, gt=0)  # k greedy answers would all be the same
    max_tokens: int = Field(512, ge=1)  # per answer
    seed: int = 0  # prompt subset and per-sample seeds
    judge: GraderSpec = Field(default_factory=GraderSpec)
    constitution: Path | None = None  # None: judges/rlaif_constitution.txt
    both_orders: bool = True
    max_connections: int = Field(8, ge=1)  # concurrent policy calls (and judge calls, unless
    # judge.grader_max_connections says otherwise)

    def answer_params(self) -> dict[str, Any]:
        """The settings an answer depends on (judge settings are not: a new judge reuses them)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}


# ---------------------------------------------------------------------------- prompts


def prompt_messages(row: Any) -> list[dict[str, str]]:
    """The conversation of a row up to and including its last user turn.

    Takes SFT rows (`messages`, or `prompt` + `response`, optional `system`) and prompt-only rows
    (`prompt` as text or as a message list). A ValueError says why a row holds no prompt.
    """
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a bad row
    if "messages" in row:
        messages = checked_messages(row["messages"], "messages")
    elif isinstance(row.get("prompt"), list):
        messages = checked_messages(row["prompt"], "prompt")
    elif isinstance(row.get("prompt"), str):
        messages = [{"role": "user", "content": row["prompt"]}]
        if isinstance(row.get("system"), str) and row["system"]:
            messages.insert(0, {"role": "system", "content": row["system"]})
    else:
        raise ValueError("expected a `messages` list or a `prompt` (text or message list)")
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        raise ValueError("no user turn")
    if not messages[users[-1]]["content"].strip():
        raise ValueError("the last user turn is empty")
    return messages[: users[-1] + 1]


def prompt_id(messages: list[dict[str, str]]) -> str:
    """Stable id of a prompt: a hash of its messages (the same conversation, the same id)."""
    payload = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def prompts_from_rows(
    rows: Sequence[Any], n: int, seed: int, problems: Problems | None = None
) -> list[dict[str, Any]]:
    """n prompts from SFT-style rows, in the seeded order `sample_rows` gives SFT subsets (so
    the first 100 prompts of seed s are also the first 100 of a 200-prompt run).

    Each prompt is `{"prompt_id", "messages", "row", "id"}` (`row`: index in `rows`). A row with
    no usable prompt, or the same prompt as an earlier row, is recorded in `problems` with its
    reason (and in the report), never silently dropped; fewer than n usable prompts is an error.
    """
    problems = problems if problems is not None else Problems()
    order = sample_rows([{"index": i} for i in range(len(rows))], len(rows), seed)
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for item in order:
        if len(out) == n:
            break
        i = item["index"]
        row = rows[i]
        try:
            messages = prompt_messages(row)
        except ValueError as ex:
            problems.add(i, row, f"no prompt: {ex}")
            continue
        pid = prompt_id(messages)
        if pid in seen:
            problems.add(i, row, f"same prompt as row {seen[pid]}")
            continue
        seen[pid] = i
        rid = row.get("id") if isinstance(row, dict) else None
        out.append({"prompt_id": pid, "messages": messages, "row": i, "id": rid})
    if len(out) < n:
        shown = "; ".join(problems.items[:5])
        raise DataError(
            f"asked for {n} prompts but only {len(out)} of {len(rows)} rows hold a usable, "
            f"distinct prompt" + (f" ({len(problems)} not usable: {shown})" if problems else "")
        )
    return out


# ---------------------------------------------------------------------------- judge replies

# `RANKING:` anywhere in a line (`**Final ranking:** 2 > 1` too); the ranking is the rest of it.
_RANKING_LINE = re.compile(r"(?i)(?<![A-Za-z])RANKING[ \t]*\**[ \t]*[:=][ \t]*\**([^\n]*)")
_RANKING_BODY = re.compile(r"^\d+(?:\s*[>=]\s*\d+)*$")


class ParsedRanking(BaseModel):
    """A judge reply's ranking: tiers of 0-based displayed positions, best first; or why not."""

    tiers: list[list[int]] | None = None
    error: str | None = None


def parse_ranking(reply: str, k: int) -> ParsedRanking:
    """The last `RANKING: a > b > c` line of a reply, as tiers (`=` joins a tier).

    It must list each of the k answer numbers exactly once; anything else is an error, so a
    prompt never gets a pair the judge did not give.
    """
    lines = _RANKING_LINE.findall(reply)
    if not lines:
        return ParsedRanking(error=f"no 'RANKING:' line in reply: {excerpt(reply)!r}")
    body = re.sub(r"(?i)\banswers?\b|[\[\]()*_`#]", "", lines[-1]).strip().rstrip(".").strip()
    if not _RANKING_BODY.match(body):
        return ParsedRanking(error=f"ranking {excerpt(lines[-1], 60)!r} is not 'n > n > ...'")
    tiers = [[int(x) for x in tier.split("=")] for tier in re.sub(r"\s+", "", body).split(">")]
    numbers = [x for tier in tiers for x in tier]
    if bad := [x for x in numbers if not 1 <= x <= k]:
        return ParsedRanking(error=f"ranking names answer {bad[0]}, but there are only {k}")
    if len(set(numbers)) != len(numbers):
        twice = next(x for x in numbers if numbers.count(x) > 1)
        return ParsedRanking(error=f"ranking names answer {twice} more than once")
    if len(numbers) != k:
        return ParsedRanking(error=f"ranking lists {len(numbers)} of the {k} answers")
    return ParsedRanking(tiers=[[x - 1 for x in tier] for tier in tiers])


def best_and_worst(tiers: list[list[int]], order: list[int]) -> tuple[int | None, int | None]:
    """Sample indices of the ranked best and worst answers (None where a tier ties them)."""
    if len(tiers) < 2:
        return None, None
    best = order[tiers[0][0]] if len(tiers[0]) == 1 else None
    worst = order[tiers[-1][0]] if len(tiers[-1]) == 1 else None
    return best, worst


def render_conversation(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{m['role'].capitalize()}]\n{m['content']}" for m in messages)


def render_answers(texts: list[str]) -> str:
    return "\n\n".join(
        f"[Answer {i}]\n{text}\n[End of answer {i}]" for i, text in enumerate(texts, start=1)
    )


# ---------------------------------------------------------------------------- identities


def model_identity(model: str | Model) -> str:
    """What a cache key records of a model: its name, and for a local checkpoint folder a
    fingerprint of what is in it (a retrained checkpoint at the same path is a new policy)."""
    name = model if isinstance(model, str) else str(model)
    provider, _, rest = name.partition("/")
    path = Path(rest).expanduser()
    if provider in {"caml", "hf", "vllm"} and rest and path.is_dir():
        return f"{provider}/{path.resolve()}#{checkpoint_fingerprint(path)}"
    return name


def checkpoint_fingerprint(path: Path) -> str:
    """The run card's hash when the folder has one (written last, new on every retrain), else
    a hash of the names, sizes and modification times of its files."""
    card = path / RUN_CARD
    h = hashlib.sha256()
    if card.is_file():
        h.update(card.read_bytes())
    else:
        for f in sorted(p for p in path.iterdir() if p.is_file()):
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def policy_name(policy: str) -> str:
    """`--policy` as an Inspect model name: a folder is `caml/<folder>`, `smollm2` the embedded
    model, anything else (`caml/...`, `vllm/...`, `openai/...`) is taken as given."""
    if Path(policy).expanduser().is_dir():
        return f"caml/{Path(policy).expanduser().resolve()}"
    if policy == "smollm2":
        return "caml/smollm2"
    if "/" not in policy:
        raise ConfigError(
            f"--policy {policy!r}: not a checkpoint folder and not an Inspect model name "
            "(provider/model, e.g. caml/smollm2 or vllm/<path>)"
        )
    return policy


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=repr))


# ---------------------------------------------------------------------------- the report


class RlaifReport(BaseModel):
    """What one `build_pairs` run did. prompts = pairs + identical_answers + ties +
    inconsistent + unparseable_prompts + failed_prompts."""

    model_config = ConfigDict(extra="forbid")

    policy: str
    judge: str
    constitution: str
    constitution_sha256: str
    settings: dict[str, Any]
    prompts: int = 0
    rows_skipped: int = 0  # input rows without a usable prompt (or repeating one)
    skipped_rows: list[str] = []  # the first of them, with reasons
    answers_generated: int = 0
    answers_cached: int = 0
    answer_failures: int = 0
    judge_calls_made: int = 0
    judge_calls_cached: int = 0
    judge_failures: int = 0
    unparseable_replies: int = 0
    unparseable_prompts: int = 0
    inconsistent: int = 0  # the two orders disagree on the best or the worst answer
    identical_answers: int = 0  # all k answers the same text: not judged
    ties: int = 0  # the judge tied best or worst, or best and worst have the same text
    failed_prompts: int = 0  # an answer or judge call failed (not cached: a rerun retries)
    pairs: int = 0
    failures: list[str] = []  # the first failed calls, with the error
    cache_corrupt: int = 0  # unreadable cache files set aside (and redone)
    complete: bool = False  # no call failed: every prompt has its final outcome
    files: dict[str, str] = {}

    def summary(self) -> str:
        return (
            f"prompts {self.prompts} (rows skipped {self.rows_skipped}); answers "
            f"{self.answers_generated} generated, {self.answers_cached} cached, "
            f"{self.answer_failures} failed; judge calls {self.judge_calls_made} made, "
            f"{self.judge_calls_cached} cached, {self.judge_failures} failed; unparseable "
            f"replies {self.unparseable_replies} ({self.unparseable_prompts} prompts); "
            f"inconsistent {self.inconsistent}; identical answers {self.identical_answers}; "
            f"ties {self.ties}; failed prompts {self.failed_prompts}; pairs {self.pairs}"
        )


# ---------------------------------------------------------------------------- building pairs


def sample_seed(seed: int, pid: str, index: int) -> int:
    """The seed of one answer: fixed by the run's seed, the prompt and the sample index, so a
    rerun (or a resumed run) asks for exactly the same sample."""
    digest = hashlib.sha256(f"{seed}:{pid}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1  # 31 bits: every provider takes it


class _Failed(Exception):
    """A call that failed for good (after the provider's retries); reported, not cached."""


class _Run:
    """One build: the models, caches, semaphores and the counts they update."""

    def __init__(
        self,
        policy: Model,
        policy_id: str,
        judge: Model,
        judge_id: dict[str, Any],
        settings: RlaifSettings,
        template: JudgeTemplate,
        out_dir: Path,
        report: RlaifReport,
    ) -> None:
        from inspect_ai.model import GenerateConfig

        self.policy, self.policy_id, self.judge, self.judge_id = policy, policy_id, judge, judge_id
        self.settings, self.template, self.report = settings, template, report
        self.answers = ResponseCache(out_dir / "cache" / "answers")
        self.judgements = ResponseCache(out_dir / "cache" / "judge")
        self.policy_slots = asyncio.Semaphore(settings.max_connections)
        judge_connections = settings.judge.grader_max_connections or settings.max_connections
        self.judge_slots = asyncio.Semaphore(judge_connections)
        self.judge_config: GenerateConfig = settings.judge.generate_config()
        self.answer_config = GenerateConfig(
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            max_connections=settings.max_connections,
        )

    async def answer(self, prompt: dict[str, Any], index: int) -> CacheEntry:
        seed = sample_seed(self.settings.seed, prompt["prompt_id"], index)
        params = {
            "kind": "rlaif-answer",
            "sample_index": index,
            "sample_seed": seed,
            **self.settings.answer_params(),
        }
        key = request_key(self.policy_id, prompt["messages"], params)
        entry = self.answers.get(key)
        if entry is not None:
            self.report.answers_cached += 1
            return entry
        async with self.policy_slots:
            output = await self._call(
                self.policy,
                _chat(prompt["messages"]),
                self.answer_config.merge(_seed_config(seed)),
                f"answer {index} of prompt {prompt['prompt_id']}",
                "answer",
            )
        entry = _entry(key, self.policy_id, prompt["messages"], params, output)
        # written in the event loop, before anything else runs: a reply received is never lost
        # to a cancel (a write in a worker thread can be, while queued); its fsync costs
        # milliseconds beside a generation's seconds
        self.answers.put(entry)
        self.report.answers_generated += 1
        return entry

    async def rank(
        self, prompt: dict[str, Any], texts: list[str], order: list[int], name: str
    ) -> tuple[CacheEntry, ParsedRanking]:
        shown = [texts[i] for i in order]
        text = self.template.render(
            conversation=render_conversation(prompt["messages"]),
            answers=render_answers(shown),
            n=str(len(shown)),
        )
        messages = [{"role": "user", "content": text}]
        params = {
            "kind": "rlaif-judge",
            "order": name,
            "judge": self.judge_id,
            "constitution_sha256": self.report.constitution_sha256,
        }
        key = request_key(self.judge_id["model"], messages, params)
        entry = self.judgements.get(key)
        if entry is not None:
            self.report.judge_calls_cached += 1
        else:
            async with self.judge_slots:
                output = await self._call(
                    self.judge,
                    text,
                    self.judge_config,
                    f"judge ({name}) of prompt {prompt['prompt_id']}",
                    "judge",
                )
            entry = _entry(key, self.judge_id["model"], messages, params, output)
            self.judgements.put(entry)  # at once, as answers are
            self.report.judge_calls_made += 1
        parsed = parse_ranking(entry.text, len(texts))
        if parsed.error is not None:
            self.report.unparseable_replies += 1
        return entry, parsed

    async def _call(
        self, model: Model, messages: Any, config: GenerateConfig, what: str, kind: str
    ) -> Any:
        from inspect_ai._util.error import PrerequisiteError

        try:
            output = await model.generate(messages, config=config)
            error = getattr(output, "error", None)
            if error:
                raise RuntimeError(str(error))  # one report path for both
        except PrerequisiteError:
            raise  # a missing key or package: every call would fail the same way, stop now
        except Exception as ex:  # any provider error is one failed call
            if kind == "answer":
                self.report.answer_failures += 1
            else:
                self.report.judge_failures += 1
            if len(self.report.failures) < _MAX_LISTED:
                self.report.failures.append(f"{what}: {type(ex).__name__}: {excerpt(str(ex))}")
            raise _Failed(what) from ex
        return output

    async def prompt(self, prompt: dict[str, Any]) -> dict[str, Any]:
        """One prompt's answers, judgements and outcome (its judgements.jsonl line)."""
        k = self.settings.samples_per_prompt
        line: dict[str, Any] = {"prompt_id": prompt["prompt_id"], "outcome": None, "calls": []}
        results = await asyncio.gather(
            *(self.answer(prompt, i) for i in range(k)), return_exceptions=True
        )
        _reraise_unexpected(results)
        if any(isinstance(r, _Failed) for r in results):
            return {**line, "outcome": "failed", "answers": None}
        entries: list[CacheEntry] = list(results)  # type: ignore[arg-type]
        line["answers"] = entries
        texts = [e.text for e in entries]
        if len({t.strip() for t in texts}) == 1:
            return {**line, "outcome": "identical"}
        orders = [("forward", list(range(k)))]
        if self.settings.both_orders:
            orders.append(("reversed", list(reversed(range(k)))))
        ranked = await asyncio.gather(
            *(self.rank(prompt, texts, order, name) for name, order in orders),
            return_exceptions=True,
        )
        _reraise_unexpected(ranked)
        if any(isinstance(r, _Failed) for r in ranked):
            return {**line, "outcome": "failed"}
        picks = []
        for (name, order), (entry, parsed) in zip(orders, ranked):  # type: ignore[misc]
            pick = best_and_worst(parsed.tiers, order) if parsed.tiers else None
            picks.append(pick)
            line["calls"].append(
                {
                    "order": name,
                    "shown": order,  # sample indices in the order the judge saw them
                    "reply": entry.text,
                    "ranking": None if parsed.tiers is None else _to_samples(parsed.tiers, order),
                    "error": parsed.error,
                    "key": entry.key,
                }
            )
        line.update(_decide(picks, texts))
        return line


def _decide(picks: list[tuple[int | None, int | None] | None], texts: list[str]) -> dict[str, Any]:
    if any(p is None for p in picks):
        return {"outcome": "unparseable"}
    if len(set(picks)) > 1:
        return {"outcome": "inconsistent"}
    best, worst = picks[0]  # type: ignore[misc]
    if best is None or worst is None or texts[best].strip() == texts[worst].strip():
        return {"outcome": "tie"}
    return {"outcome": "pair", "chosen_index": best, "rejected_index": worst}


def _to_samples(tiers: list[list[int]], order: list[int]) -> list[list[int]]:
    return [[order[x] for x in tier] for tier in tiers]


def _reraise_unexpected(results: Sequence[Any]) -> None:
    """gather(return_exceptions=True) keeps one prompt's failed call from stopping the others;
    anything but a failed call (a bug, a cancel, a kill) still ends the run."""
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, _Failed):
            raise r


def _chat(messages: list[dict[str, str]]) -> list[Any]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    kinds = {
        "system": ChatMessageSystem,
        "user": ChatMessageUser,
        "assistant": ChatMessageAssistant,
    }
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def _seed_config(seed: int) -> GenerateConfig:
    from inspect_ai.model import GenerateConfig

    return GenerateConfig(seed=seed)


def _entry(
    key: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any], output: Any
) -> CacheEntry:
    usage = output.usage
    return CacheEntry(
        key=key,
        model=model,
        messages=messages,
        params=params,
        text=output.completion,
        finish_reason=output.stop_reason,
        usage=Usage(
            prompt_tokens=usage.input_tokens if usage else 0,
            completion_tokens=usage.output_tokens if usage else 0,
        ),
        response_model=output.model,
    )


def _open_policy(policy: str, policy_args: dict[str, Any] | None) -> Model:
    args = dict(policy_args or {})
    if policy.startswith("caml/"):  # sample, and honour each request's seed
        args.setdefault("do_sample", True)
        args.setdefault("seed_each_request", True)
    return _get_model("policy", policy, args)


def _open_judge(spec: GraderSpec) -> Model:
    return _get_model("judge", spec.model, dict(spec.args), config=spec.generate_config())


def _get_model(role: str, name: str, args: dict[str, Any], **kw: Any) -> Model:
    """Inspect's get_model; a model that does not exist (no such checkpoint folder, an unknown
    provider) is the user's to fix: one line naming it."""
    from inspect_ai.model import get_model

    try:
        return get_model(name, memoize=False, **kw, **args)
    except (FileNotFoundError, ValueError) as ex:
        raise ConfigError(f"rlaif {role} {name!r}: {ex}") from None


def build_pairs(
    policy: str | Model,
    prompts: Sequence[dict[str, Any]],
    settings: RlaifSettings,
    out_dir: str | Path,
    *,
    judge: Model | None = None,
    policy_args: dict[str, Any] | None = None,
    problems: Problems | None = None,
) -> RlaifReport:
    """Sample, judge and pair (see the module docstring); returns the report it also writes.

    `policy`: an Inspect model name (`caml/<checkpoint dir>`, `vllm/...`) or a Model; `judge`:
    a Model, default the settings' `judge` spec. `problems`: the rows `prompts_from_rows`
    skipped, so the report counts them. Synchronous; `abuild_pairs` inside an event loop.
    """
    return asyncio.run(
        abuild_pairs(
            policy,
            prompts,
            settings,
            out_dir,
            judge=judge,
            policy_args=policy_args,
            problems=problems,
        )
    )


async def abuild_pairs(
    policy: str | Model,
    prompts: Sequence[dict[str, Any]],
    settings: RlaifSettings,
    out_dir: str | Path,
    *,
    judge: Model | None = None,
    policy_args: dict[str, Any] | None = None,
    problems: Problems | None = None,
) -> RlaifReport:
    out_dir = ensure_dir(out_dir)
    ids = [p["prompt_id"] for p in prompts]
    if len(set(ids)) != len(ids):
        raise DataError("build_pairs: two prompts share a prompt_id (use prompts_from_rows)")
    template = load_template(str(settings.constitution) if settings.constitution else CONSTITUTION)
    missing = {"conversation", "answers"} - template.fields
    unknown = template.fields - {"conversation", "answers", "n"}
    if missing or unknown:
        raise ConfigError(
            f"constitution {template.name}: a judge template with the placeholders "
            "{conversation} and {answers} (and optionally {n}); "
            + (f"missing {sorted(missing)}" if missing else f"unknown {sorted(unknown)}")
        )
    own_policy = isinstance(policy, str)
    with contextlib.ExitStack() as owned:
        policy_model = policy
        if isinstance(policy, str):
            policy_model = owned.enter_context(_open_policy(policy, policy_args))
        judge_model = (
            judge if judge is not None else owned.enter_context(_open_judge(settings.judge))
        )
        return await _build(
            policy_model,  # type: ignore[arg-type]
            model_identity(policy if own_policy else policy_model),  # type: ignore[arg-type]
            judge_model,
            judge is None,
            prompts,
            settings,
            template,
            out_dir,
            problems,
        )


async def _build(
    policy_model: Model,
    policy_id: str,
    judge_model: Model,
    judge_from_spec: bool,
    prompts: Sequence[dict[str, Any]],
    settings: RlaifSettings,
    template: JudgeTemplate,
    out_dir: Path,
    problems: Problems | None,
) -> RlaifReport:
    judge_id = {
        "model": model_identity(settings.judge.model if judge_from_spec else judge_model),
        "args": _jsonable(settings.judge.args) if judge_from_spec else None,
        "config": settings.judge.generate_config().model_dump(exclude_none=True),
    }
    report = RlaifReport(
        policy=policy_id,
        judge=judge_id["model"],
        constitution=template.name,
        constitution_sha256=hashlib.sha256(template.text.encode("utf-8")).hexdigest(),
        settings=_jsonable(settings.model_dump(mode="json")),
        prompts=len(prompts),
        rows_skipped=len(problems) if problems else 0,
        skipped_rows=(problems.items[:_MAX_LISTED] if problems else []),
    )
    run = _Run(
        policy_model, report.policy, judge_model, judge_id, settings, template, out_dir, report
    )
    lines = await asyncio.gather(*(run.prompt(p) for p in prompts))
    report.cache_corrupt = len(run.answers.corrupt) + len(run.judgements.corrupt)
    _write_outputs(out_dir, prompts, lines, report)
    return report


def _write_outputs(
    out_dir: Path,
    prompts: Sequence[dict[str, Any]],
    lines: list[dict[str, Any]],
    report: RlaifReport,
) -> None:
    answers, judgements, pairs = [], [], []
    counters = {
        "pair": "pairs",
        "identical": "identical_answers",
        "tie": "ties",
        "inconsistent": "inconsistent",
        "unparseable": "unparseable_prompts",
        "failed": "failed_prompts",
    }
    for prompt, line in zip(prompts, lines):
        outcome: Outcome = line["outcome"]
        setattr(report, counters[outcome], getattr(report, counters[outcome]) + 1)
        entries: list[CacheEntry] | None = line.pop("answers", None)
        for i, e in enumerate(entries or []):
            answers.append(
                {
                    "prompt_id": prompt["prompt_id"],
                    "sample_index": i,
                    "sample_seed": e.params["sample_seed"],
                    "text": e.text,
                    "finish_reason": e.finish_reason,
                    "completion_tokens": e.usage.completion_tokens,
                    "key": e.key,
                }
            )
        judgements.append(line)
        if outcome == "pair":
            chosen, rejected = line["chosen_index"], line["rejected_index"]
            assert entries is not None
            pairs.append(
                {
                    "prompt": prompt["messages"],
                    "chosen": [{"role": "assistant", "content": entries[chosen].text}],
                    "rejected": [{"role": "assistant", "content": entries[rejected].text}],
                    "prompt_id": prompt["prompt_id"],
                    "chosen_index": chosen,
                    "rejected_index": rejected,
                }
            )
    report.complete = report.failed_prompts == 0
    files = {
        "answers": out_dir / "answers.jsonl",
        "judgements": out_dir / "judgements.jsonl",
        "pairs": out_dir / "pairs.jsonl",
        "report": out_dir / REPORT,
    }
    report.files = {k: str(v) for k, v in files.items()}
    write_text(files["answers"], _jsonl(answers))
    write_text(files["judgements"], _jsonl(judgements))
    write_text(files["pairs"], _jsonl(pairs))
    write_text(files["report"], report.model_dump_json(indent=2) + "\n")


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a pairs.jsonl (for the pref stage and tests)."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    """`caml-train rlaif ...` (registered by caml_train.cli)."""
    p = subparsers.add_parser(
        "rlaif",
        help="build preference pairs: sample k answers per prompt, a judge ranks them",
        description=(
            "Sample k answers per prompt from a checkpoint, rank them with a judge by the "
            "general constitution in judges/rlaif_constitution.txt (in both orders), and write "
            "OUT/pairs.jsonl (TRL conversational preference rows), answers.jsonl, "
            "judgements.jsonl and rlaif_report.json. Resumable: rerun the same command."
        ),
    )
    p.add_argument(
        "--policy", required=True, help="checkpoint folder, smollm2, or an Inspect model"
    )
    p.add_argument("--policy-arg", action="append", metavar="KEY=VALUE", help="policy model arg")
    p.add_argument("--prompts", required=True, type=Path, help="JSONL/parquet of SFT-style rows")
    p.add_argument("--n", required=True, type=int, help="number of prompts")
    p.add_argument("-k", "--samples", type=int, default=2, help="answers per prompt (>= 2)")
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--max-tokens", type=int, default=512, help="per answer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge", required=True, help="Inspect model of the judge")
    p.add_argument("--judge-arg", action="append", metavar="KEY=VALUE", help="judge model arg")
    p.add_argument("--judge-temperature", type=float, default=None)
    p.add_argument("--judge-max-tokens", type=int, default=None)
    p.add_argument("--constitution", type=Path, default=None, help="own judge template")
    p.add_argument("--one-order", action="store_true", help="judge in the listed order only")
    p.add_argument("--max-connections", type=int, default=8)
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.set_defaults(func=cmd_rlaif)


def _key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{flag} {item!r}: the value is not valid YAML; quote it") from None
    return out


def cmd_rlaif(args: argparse.Namespace, print_: Callable[..., None] = print) -> int:
    from pydantic import ValidationError

    from .config import DataSource
    from .data import load_rows

    try:
        settings = RlaifSettings(
            n_prompts=args.n,
            samples_per_prompt=args.samples,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
            judge=GraderSpec(
                model=args.judge,
                args=_key_values(args.judge_arg, "--judge-arg"),
                grader_temperature=args.judge_temperature,
                grader_max_tokens=args.judge_max_tokens,
            ),
            constitution=args.constitution,
            both_orders=not args.one_order,
            max_connections=args.max_connections,
        )
    except ValidationError as ex:
        err = ex.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"rlaif {where}={err.get('input')!r}: {err['msg']}") from None
    policy = policy_name(args.policy)
    writable_dir(args.out)
    problems = Problems()
    rows = load_rows(DataSource(path=args.prompts), problems)
    prompts = prompts_from_rows(rows, settings.n_prompts, settings.seed, problems)
    report = build_pairs(
        policy,
        prompts,
        settings,
        args.out,
        policy_args=_key_values(args.policy_arg, "--policy-arg"),
        problems=problems,
    )
    print_(report.summary())
    for item in report.skipped_rows[:10]:
        print_(f"  skipped {item}", file=sys.stderr)
    print_(f"pairs: {report.files['pairs']}; report: {report.files['report']}")
    if not report.complete:
        for failure in report.failures[:10]:
            print_(f"  failed {failure}", file=sys.stderr)
        print_(
            f"{report.failed_prompts} prompt(s) had a failed call (not cached); rerun the same "
            "command to retry them",
            file=sys.stderr,
        )
        return 1
    return 0
