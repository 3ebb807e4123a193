"""Turn rubric-judged Inspect logs into a blinded rating set and its private key.

One item per (answer, dimension). Answers are identified by sample id, epoch and a hash of the
question and answer text, so the same answer judged in several logs (e.g. re-scored with
`inspect score` by another grader or in another judging mode) becomes ONE item whose key lists
every judging: that is what lets the report compare judge variants on the same human ratings.

Item and unit ids are hashes of the answer identity salted with the seed: stable when the same
logs are exported again with the same seed, meaningless to a rater.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog, EvalSample, read_eval_log

from .schema import JudgeGrade, KeyEntry, KeySource, RatingItem, RatingKey, RatingSet, RubricText


class ExportError(ValueError):
    """A log cannot be exported (no rubric scores, unreadable, ...)."""


@dataclass
class ExportProblems:
    """What was skipped and why (reported, never silent)."""

    samples_without_rubric_score: list[str] = field(default_factory=list)
    samples_with_error: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if self.samples_without_rubric_score:
            out.append(
                f"{len(self.samples_without_rubric_score)} sample(s) without a rubric score: "
                + ", ".join(self.samples_without_rubric_score[:10])
            )
        if self.samples_with_error:
            out.append(
                f"{len(self.samples_with_error)} sample(s) that errored (no answer to rate): "
                + ", ".join(self.samples_with_error[:10])
            )
        return out


# What the per-dimension judge is shown when a criterion has no scoring text. A literal in
# caml_evals.scoring.rubric (`criterion.scoring or "..."`), mirrored here so raters read the
# same rule; the test checks the two still agree.
DEFAULT_SCORING = "1 if the answer meets the criterion, else 0"


def rubric_text(criterion: dict[str, Any]) -> RubricText:
    """The criterion as the judge saw it, with the judge's default for an empty scoring rule."""
    text = RubricText.model_validate(criterion)
    if not text.scoring:
        text = text.model_copy(update={"scoring": DEFAULT_SCORING})
    return text


def _sha(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def sample_question(sample: EvalSample) -> str:
    """The question text exactly as the judge saw it.

    The rubric scorer grades `TaskState.input_text`, which for a chat input is the LAST user
    message (a multi-turn sample's earlier turns are context the judge never saw), and for a
    message without text names its parts (`[image]`). Mirrored here so raters rate the same
    question and the answer hash matches across logs.
    """
    if isinstance(sample.input, str):
        return sample.input
    for message in reversed(sample.input):
        if message.role == "user":
            if message.text or isinstance(message.content, str):
                return message.text
            return " ".join(f"[{c.type}]" for c in message.content if c.type != "text")
    raise ExportError(f"sample {sample.id!r}: the input has no user message (no question to rate)")


def sample_answer(sample: EvalSample, score_answer: str | None) -> str:
    if score_answer is not None:
        return score_answer
    return sample.output.completion if sample.output else ""


def is_rubric_score(score: Any) -> bool:
    meta = getattr(score, "metadata", None) or {}
    return isinstance(meta.get("grades"), list) and isinstance(meta.get("rubric"), list)


def _grader_names(log: EvalLog, graders: Iterable[str]) -> dict[str, str]:
    """Grader label -> a readable name with the model behind a role (`grader=openai/gpt-4o`)."""
    roles = log.eval.model_roles or {}
    out = {}
    for g in graders:
        role = roles.get(g)
        out[g] = f"{g}={role.model}" if role is not None else g
    return out


def _scorer_options(log: EvalLog, scorer: str) -> dict[str, Any]:
    for s in log.eval.scorers or []:
        if s.name == scorer or s.name.split("/")[-1] == scorer.split("/")[-1]:
            return dict(s.options or {})
    return {}


def _source_label(
    log: EvalLog, scorer: str, mode: str | None, logprobs: bool, taken: set[str]
) -> str:
    base = f"{log.eval.task}:{mode or scorer}" + ("+logprobs" if logprobs else "")
    label, i = base, 2
    while label in taken:
        label, i = f"{base}#{i}", i + 1
    taken.add(label)
    return label


@dataclass
class _Answer:
    unit_key: str
    sample_id: str | int
    epoch: int
    question: str
    answer: str
    rubric: dict[str, RubricText]
    sources: dict[str, list[KeySource]]  # dimension -> sources


def collect_answers(
    logs: Sequence[tuple[str, EvalLog]],
    problems: ExportProblems,
    labels: dict[str, str] | None = None,
) -> dict[str, _Answer]:
    """Every rubric-scored answer in the logs, merged by (sample id, epoch, question, answer).

    `labels` maps a log path to the label its judgings get (default: task:mode).
    """
    answers: dict[str, _Answer] = {}
    taken: set[str] = set()
    for path, log in logs:
        if log.samples is None:
            raise ExportError(f"{path}: the log has no samples (was it read header-only?)")
        scorer_labels: dict[str, str] = {}
        for sample in log.samples:
            ident = f"{Path(path).name}:{sample.id}#{sample.epoch}"
            if sample.error is not None:
                problems.samples_with_error.append(ident)
                continue
            rubric_scores = {k: s for k, s in (sample.scores or {}).items() if is_rubric_score(s)}
            if not rubric_scores:
                problems.samples_without_rubric_score.append(ident)
                continue
            for scorer, score in rubric_scores.items():
                meta = score.metadata or {}
                options = _scorer_options(log, scorer)
                mode = meta.get("mode") or options.get("mode")
                logprobs = bool(options.get("logprobs", False))
                if scorer not in scorer_labels:
                    if labels and path in labels:
                        own = labels[path] + ("" if len(rubric_scores) == 1 else f":{scorer}")
                        if own in taken:
                            raise ExportError(f"label {own!r} is used twice")
                        taken.add(own)
                        scorer_labels[scorer] = own
                    else:
                        scorer_labels[scorer] = _source_label(log, scorer, mode, logprobs, taken)
                question = sample_question(sample)
                answer = sample_answer(sample, score.answer)
                unit_key = _sha(sample.id, sample.epoch, question, answer)
                entry = answers.get(unit_key)
                rubric = {r["name"]: rubric_text(r) for r in meta["rubric"]}
                if entry is None:
                    entry = _Answer(unit_key, sample.id, sample.epoch, question, answer, rubric, {})
                    answers[unit_key] = entry
                else:
                    for name, text in rubric.items():
                        entry.rubric.setdefault(name, text)
                names = _grader_names(log, meta.get("graders") or [])
                for dim in rubric:
                    grades = {}
                    for g in meta["grades"]:
                        if g.get("dimension") != dim:
                            continue
                        grader = names.get(g["grader"], g["grader"])
                        grades[grader] = JudgeGrade(value=g.get("value"), missing=g.get("missing"))
                    entry.sources.setdefault(dim, []).append(
                        KeySource(
                            label=scorer_labels[scorer],
                            log=str(path),
                            task=log.eval.task,
                            model=log.eval.model,
                            scorer=scorer,
                            mode=mode,
                            template=meta.get("template"),
                            logprobs=logprobs,
                            grades=grades,
                        )
                    )
    return answers


def read_logs(paths: Sequence[str | Path]) -> list[tuple[str, EvalLog]]:
    out = []
    for p in paths:
        try:
            out.append((str(p), read_eval_log(str(p))))
        except Exception as ex:
            raise ExportError(f"{p}: cannot read the log: {type(ex).__name__}: {ex}") from ex
    return out


def expand_log_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expand to the .eval/.json logs inside them (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                q for q in p.rglob("*") if q.suffix in (".eval", ".json") and q.is_file()
            )
            if not found:
                raise ExportError(f"{p}: no .eval or .json logs in this folder")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ExportError(f"{p}: no such log file or folder")
    return out


def build_rating_set(
    logs: Sequence[tuple[str, EvalLog]],
    seed: int = 0,
    per_item_pages: bool = False,
    labels: dict[str, str] | None = None,
) -> tuple[RatingSet, RatingKey, ExportProblems]:
    """The blinded rating set (shuffled with `seed`) and its private key.

    Answers are shuffled, then the dimensions within each answer; raters see one answer with its
    dimensions per page. With `per_item_pages`, every item is its own page and all items are
    shuffled together (slower for raters, but no halo from rating several dimensions at once).
    """
    problems = ExportProblems()
    answers = collect_answers(logs, problems, labels)
    if not answers:
        detail = "; ".join(problems.lines()) or "no samples"
        raise ExportError(f"no rubric-scored samples in {len(logs)} log(s): {detail}")
    rng = random.Random(seed)
    units = sorted(answers.values(), key=lambda a: a.unit_key)
    rng.shuffle(units)
    pairs: list[tuple[_Answer, str]] = []
    for unit in units:
        dims = sorted(unit.rubric)
        rng.shuffle(dims)
        pairs.extend((unit, d) for d in dims)
    if per_item_pages:
        rng.shuffle(pairs)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    set_id = _sha("set", seed, *sorted(answers))[:12]
    items: list[RatingItem] = []
    key_items: dict[str, KeyEntry] = {}
    for unit, dim in pairs:
        item_id = "i" + _sha(seed, unit.unit_key, dim)[:12]
        unit_id = item_id if per_item_pages else "u" + _sha(seed, unit.unit_key)[:12]
        items.append(
            RatingItem(
                item_id=item_id,
                unit_id=unit_id,
                question=unit.question,
                answer=unit.answer,
                dimension=dim,
                rubric=unit.rubric[dim],
            )
        )
        key_items[item_id] = KeyEntry(
            item_id=item_id,
            unit_id=unit_id,
            sample_id=unit.sample_id,
            epoch=unit.epoch,
            dimension=dim,
            content_hash=unit.unit_key,
            sources=unit.sources.get(dim, []),
        )
    rating_set = RatingSet(set_id=set_id, seed=seed, created=created, items=items)
    key = RatingKey(
        set_id=set_id, seed=seed, created=created, logs=[p for p, _ in logs], items=key_items
    )
    return rating_set, key, problems


def add_sources(
    key: RatingKey, logs: Sequence[tuple[str, EvalLog]], labels: dict[str, str] | None = None
) -> tuple[int, ExportProblems]:
    """Attach judgings from more logs (judged after the export) to the key's items.

    Matches on sample id, epoch, dimension and the question/answer hash; returns how many item
    judgings were attached. Answers not in the key are ignored (they were never rated).
    """
    problems = ExportProblems()
    taken = {s.label for e in key.items.values() for s in e.sources}
    answers = collect_answers(logs, problems, labels)
    for a in answers.values():
        for dim_sources in a.sources.values():
            for s in dim_sources:
                if s.label in taken:
                    raise ExportError(
                        f"judging label {s.label!r} is already in the key; give the log a label "
                        "(LABEL=PATH)"
                    )
    by_answer: dict[tuple[str, str], KeyEntry] = {
        (e.content_hash, e.dimension): e for e in key.items.values()
    }
    attached = 0
    for a in answers.values():
        for dim, sources in a.sources.items():
            entry = by_answer.get((a.unit_key, dim))
            if entry is not None:
                entry.sources.extend(sources)
                attached += 1
    return attached, problems


def parse_labelled_paths(specs: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """`LABEL=PATH` or `PATH` arguments -> paths and a path -> label map."""
    paths: list[str] = []
    labels: dict[str, str] = {}
    for spec in specs:
        if "=" in spec and not Path(spec).exists():
            label, path = spec.split("=", 1)
            for p in expand_log_paths([path]):
                paths.append(str(p))
                labels[str(p)] = (
                    label if len(expand_log_paths([path])) == 1 else f"{label}:{p.stem}"
                )
        else:
            paths.extend(str(p) for p in expand_log_paths([spec]))
    return paths, labels
