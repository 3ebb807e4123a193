"""Turn rubric-judged Inspect logs into a blinded rating set and its private key.

One item per (answer, criterion). Answers are identified by sample id, epoch and a hash of the
question and answer text, so the same answer judged in several logs (e.g. re-scored with
`inspect score` by another grader or in another judging mode) becomes ONE answer whose items'
keys list every judging: that is what lets the report compare judge variants on the same human
ratings. A criterion is what the rubric scorer grades on its own: a dimension, or one expansion
of it per variable value (AHB's `{{animal}}` with two animals gives two criteria of one
dimension, each with its own guiding question). Criteria are keyed by the scorer's label
(`criterion` of each grade, `label` of each rubric entry); logs written before criteria have
neither and are keyed by dimension name, exactly as before.

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

from inspect_ai.log import EvalLog, EvalSample

from ..errors import UserError
from ..logs import find_logs, read_log
from ..scoring.rubric import DEFAULT_SCORING  # the rule the judge saw; raters see it too
from .schema import JudgeGrade, KeyEntry, KeySource, RatingItem, RatingKey, RatingSet, RubricText


class ExportError(UserError, ValueError):
    """A log cannot be exported (no rubric scores, a label used twice, ...). A log that cannot
    be found or read at all is a `LogReadError`."""


@dataclass
class ExportProblems:
    """What was skipped and why (reported, never silent)."""

    samples_without_rubric_score: list[str] = field(default_factory=list)
    samples_with_error: list[str] = field(default_factory=list)
    unmatched_grades: list[str] = field(default_factory=list)

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
        if self.unmatched_grades:
            out.append(
                f"{len(self.unmatched_grades)} grade(s) left out (no such criterion in the "
                "sample's rubric, or a grader's second grade of one criterion): "
                + ", ".join(self.unmatched_grades[:10])
            )
        return out


def rubric_text(criterion: dict[str, Any], label: str | None = None) -> RubricText:
    """The criterion as the judge saw it, with the judge's default for an empty scoring rule.

    `label` is the criterion's key in its sample (see `criterion_keys`); default its own.
    """
    text = RubricText.model_validate(criterion)
    update: dict[str, Any] = {"label": label or text.label or text.name}
    if not text.scoring:
        update["scoring"] = DEFAULT_SCORING
    return text.model_copy(update=update)


def criterion_keys(rubric: Sequence[dict[str, Any]]) -> list[str]:
    """The key of each logged rubric entry: its label, else (older logs) its dimension name.

    Made unique within the sample the way the scorer makes its labels unique
    (`caml_evals.scoring.rubric.criterion_labels`: a repeated one gets `#2`), so the keys are
    exactly the `criterion` of the grades.
    """
    keys: list[str] = []
    for r in rubric:
        base = r.get("label") or r["name"]
        key, i = base, 2
        while key in keys:
            key, i = f"{base} #{i}", i + 1
        keys.append(key)
    return keys


def grade_key(grade: dict[str, Any]) -> str | None:
    """The criterion a logged grade belongs to (its dimension in logs from before criteria)."""
    return grade.get("criterion") or grade.get("dimension")


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
    rubric: dict[str, RubricText]  # criterion key -> what the judge saw
    sources: dict[str, list[KeySource]]  # criterion key -> sources


def collect_answers(
    logs: Sequence[tuple[str, EvalLog]],
    problems: ExportProblems,
    labels: dict[str, str] | None = None,
) -> dict[str, _Answer]:
    """Every rubric-scored answer in the logs, merged by (sample id, epoch, question, answer).

    Each answer's rubric and sources are keyed by criterion (`criterion_keys`), every grade
    matched to its criterion; a grade that matches none is reported in `problems`.
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
                keys = criterion_keys(meta["rubric"])
                rubric = {k: rubric_text(r, k) for k, r in zip(keys, meta["rubric"])}
                if entry is None:
                    entry = _Answer(unit_key, sample.id, sample.epoch, question, answer, rubric, {})
                    answers[unit_key] = entry
                else:
                    for name, text in rubric.items():
                        entry.rubric.setdefault(name, text)
                grades_by_key = _grades_by_criterion(
                    meta["grades"],
                    rubric,
                    _grader_names(log, meta.get("graders") or []),
                    f"{ident}[{scorer}]",
                    problems,
                )
                for key, grades in grades_by_key.items():
                    entry.sources.setdefault(key, []).append(
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


def _grades_by_criterion(
    logged: list[dict[str, Any]],
    rubric: dict[str, RubricText],
    names: dict[str, str],
    ident: str,
    problems: ExportProblems,
) -> dict[str, dict[str, JudgeGrade]]:
    """Criterion key -> grader -> grade, for every criterion of the rubric (maybe no grades)."""
    out: dict[str, dict[str, JudgeGrade]] = {key: {} for key in rubric}
    for g in logged:
        key = grade_key(g)
        grader = names.get(g["grader"], g["grader"])
        if key not in out:
            problems.unmatched_grades.append(f"{ident} {key!r} by {grader} (not in the rubric)")
            continue
        if grader in out[key]:
            problems.unmatched_grades.append(f"{ident} {key!r} by {grader} (graded twice)")
            continue
        out[key][grader] = JudgeGrade(value=g.get("value"), missing=g.get("missing"))
    return out


def read_logs(paths: Sequence[str | Path]) -> list[tuple[str, EvalLog]]:
    """Each log with its samples, through the one log reader (`caml_evals.logs.read_log`): a
    missing, truncated or corrupt file is a one-line LogReadError naming it."""
    return [(str(p), read_log(p)) for p in paths]


def expand_log_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expand to every log inside them, sorted by path (the one log
    finder, `caml_evals.logs.find_logs`). Every log is kept, not one per task and model: the
    export merges all judgings of the same answers. A missing path or a folder without logs is
    a LogReadError."""
    out: list[Path] = []
    for p in map(Path, paths):
        found = find_logs([p], require=True)
        out.extend(sorted(found) if p.is_dir() else found)
    return out


def build_rating_set(
    logs: Sequence[tuple[str, EvalLog]],
    seed: int = 0,
    per_item_pages: bool = False,
    labels: dict[str, str] | None = None,
) -> tuple[RatingSet, RatingKey, ExportProblems]:
    """The blinded rating set (shuffled with `seed`) and its private key.

    One item per (answer, criterion). Answers are shuffled, then the criteria within each
    answer; raters see one answer with its criteria per page. With `per_item_pages`, every item
    is its own page and all items are shuffled together (slower for raters, but no halo from
    rating several criteria at once).
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
        criteria = sorted(unit.rubric)
        rng.shuffle(criteria)
        pairs.extend((unit, c) for c in criteria)
    if per_item_pages:
        rng.shuffle(pairs)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    set_id = _sha("set", seed, *sorted(answers))[:12]
    items: list[RatingItem] = []
    key_items: dict[str, KeyEntry] = {}
    for unit, criterion in pairs:
        # salted with the criterion key: for a criterion without variables that is the
        # dimension name, so item ids of such items are what they were before criteria
        item_id = "i" + _sha(seed, unit.unit_key, criterion)[:12]
        unit_id = item_id if per_item_pages else "u" + _sha(seed, unit.unit_key)[:12]
        text = unit.rubric[criterion]
        items.append(
            RatingItem(
                item_id=item_id,
                unit_id=unit_id,
                question=unit.question,
                answer=unit.answer,
                dimension=text.name,
                criterion=criterion,
                variables=text.variables,
                rubric=text,
            )
        )
        key_items[item_id] = KeyEntry(
            item_id=item_id,
            unit_id=unit_id,
            sample_id=unit.sample_id,
            epoch=unit.epoch,
            dimension=text.name,
            criterion=criterion,
            variables=text.variables,
            content_hash=unit.unit_key,
            sources=unit.sources.get(criterion, []),
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

    Matches on the question/answer hash (sample id, epoch, question, answer) and the criterion
    key; returns how many item judgings were attached. Answers and criteria not in the key are
    ignored (they were never rated).
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
    by_item: dict[tuple[str, str], KeyEntry] = {
        (e.content_hash, e.criterion): e for e in key.items.values()
    }
    attached = 0
    for a in answers.values():
        for criterion, sources in a.sources.items():
            entry = by_item.get((a.unit_key, criterion))
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
