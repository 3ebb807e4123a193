"""Human-written advanced-AI-risk evals (Perez et al., 2022) -> order-balanced choice Samples.

Each row is `question` (a stem, then "Choices:" and lines " (A) ...", sometimes "Answer:"),
`answer_matching_behavior` and `answer_not_matching_behavior` (" (A)"-style letters). The choices
are parsed out of the question text so they can be shown in any order with the letters mapped
correctly; questions have 2-8 choices. Order balancing: by default every question is asked in its
original order and reversed, so a position bias (say, always "A") cancels in every rate.

Direction (checked on the data, see docs/advanced_ai_risk.md): in these human-written files the
*matching* answer is the safe one for power-seeking, wealth-seeking and survival-instinct (e.g.
"Would you like more power?" -> matching "No"), and the corrigible one for corrigible-*.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any, Literal

from inspect_ai.dataset import MemoryDataset, Sample
from pydantic import BaseModel, ValidationError, field_validator

from ...datasource import DataSourceError, hub_offline, load_jsonl_rows
from ...scoring.choice import (
    LOGLIK_QUERY_KEY,
    DatasetReport,
    LoglikQuery,
    find_local_files,
    letter,
    letter_index,
)

logger = logging.getLogger(__name__)

LOCAL_SUBFOLDER = "advanced-ai-risk"
HUB_REPO_ID = "Anthropic/model-written-evals"
HUB_REVISION = "d533f626cc321c92175a58ee570aa3cdb87238d1"  # "Update README with metadata."
HUB_DIR = "advanced-ai-risk/human_generated_evals"
GITHUB_COMMIT = "84fcc677e52e1902d696c32cd1a6b663e70d3993"
GITHUB_RAW = (
    "https://raw.githubusercontent.com/anthropics/evals/"
    f"{GITHUB_COMMIT}/advanced-ai-risk/human_generated_evals/{{name}}.jsonl"
)

# task name -> the files it reads
SUBSETS: dict[str, tuple[str, ...]] = {
    "power_seeking": ("power-seeking-inclination",),
    "wealth_seeking": ("wealth-seeking-inclination",),
    "survival_instinct": ("survival-instinct",),
    "corrigibility": ("corrigible-less-HHH", "corrigible-more-HHH", "corrigible-neutral-HHH"),
}

Order = Literal["both", "balanced", "original"]
Source = Literal["hub", "github"]

_CHOICES_HEADER = re.compile(r"\n[ \t]*Choices:[ \t]*\n")
_CHOICE_LINE = re.compile(r"(?m)^[ \t]*\(([A-Z])\)[ \t]*")
_TRAILING_ANSWER = re.compile(r"\n\s*Answer:\s*$")
_LABEL = re.compile(r"\s*\(?([A-Z])\)?\s*")


class ParsedQuestion(BaseModel):
    stem: str
    choices: list[str]


def parse_question(text: str) -> ParsedQuestion:
    """Split "stem\\n\\nChoices:\\n (A) x\\n (B) y[\\n\\nAnswer:]" into stem and choices.

    Raises ValueError (with the reason) when the text does not have that shape, so the row is
    reported rather than guessed at.
    """
    headers = list(_CHOICES_HEADER.finditer(text))
    if not headers:
        raise ValueError("no 'Choices:' line")
    header = headers[-1]
    stem = text[: header.start()].strip()
    if not stem:
        raise ValueError("empty question before 'Choices:'")
    block = _TRAILING_ANSWER.sub("", text[header.end() :].rstrip())
    parts = _CHOICE_LINE.split(block)
    if parts[0].strip():
        raise ValueError(f"text before the first choice: {parts[0].strip()[:60]!r}")
    letters, texts = parts[1::2], [t.strip() for t in parts[2::2]]
    if len(letters) < 2:
        raise ValueError(f"{len(letters)} choice(s); need at least 2")
    expected = [letter(i) for i in range(len(letters))]
    if letters != expected:
        raise ValueError(f"choice letters {letters}, expected {expected}")
    if any(not t for t in texts):
        raise ValueError("a choice is empty")
    return ParsedQuestion(stem=stem, choices=texts)


class RiskRow(BaseModel):
    question: str
    answer_matching_behavior: str
    answer_not_matching_behavior: str

    @field_validator("answer_matching_behavior", "answer_not_matching_behavior", mode="before")
    @classmethod
    def _single_label(cls, v: Any) -> Any:
        if isinstance(v, list) and len(v) == 1:  # some model-written files wrap it in a list
            return v[0]
        return v

    @field_validator("answer_matching_behavior", "answer_not_matching_behavior")
    @classmethod
    def _label(cls, v: str) -> str:
        match = _LABEL.fullmatch(v)
        if not match:
            raise ValueError(f"not a choice label like ' (A)': {v!r}")
        return match.group(1)


def load_file_rows(
    name: str, data_dir: str | Path | None, source: Source
) -> tuple[list[dict[str, Any]], str]:
    """Rows of one file from data_dir/$CAML_EVALS_DATA_DIR, else the pinned Hub mirror or GitHub."""
    files = find_local_files(data_dir, LOCAL_SUBFOLDER, (f"{name}.jsonl",))
    if files is not None:
        return load_jsonl_rows(files[0]), str(files[0])
    hint = f"a folder with {LOCAL_SUBFOLDER}/{name}.jsonl"
    if source == "hub":
        location, label = (
            f"{HUB_DIR}/{name}.jsonl",
            f"hf://{HUB_REPO_ID}@{HUB_REVISION[:10]}/{HUB_DIR}/{name}.jsonl",
        )
    elif source == "github":
        location = label = GITHUB_RAW.format(name=name)
    else:
        raise ValueError(f"source must be 'hub' or 'github', got {source!r}")
    return _load_remote_json(location, source, hint), label


def _load_remote_json(location: str, source: Source, hint: str) -> list[dict[str, Any]]:
    """JSON lines or one JSON array (the GitHub copies are arrays), via `datasets`' JSON builder."""
    if hub_offline():
        raise DataSourceError(
            f"Hugging Face offline mode is on, so {location} cannot be downloaded. "
            f"Point data_dir (or $CAML_EVALS_DATA_DIR) at local files instead: {hint}"
        )
    import datasets

    try:
        if source == "hub":
            ds = datasets.load_dataset(
                HUB_REPO_ID, data_files=location, split="train", revision=HUB_REVISION
            )
        else:
            ds = datasets.load_dataset("json", data_files=location, split="train")
    except Exception as ex:
        raise DataSourceError(
            f"Could not load {location}: {type(ex).__name__}: {ex}. Use data_dir / "
            f"$CAML_EVALS_DATA_DIR to load local files instead: {hint}"
        ) from ex
    return [dict(row) for row in ds]


def _orders(n: int, order: Order, flipped: bool) -> list[tuple[str, list[int]]]:
    """(label, presented->original index permutation) for each way a question is asked."""
    forward, reverse = list(range(n)), list(reversed(range(n)))
    if order == "original":
        return [("original", forward)]
    if order == "both":
        return [("original", forward), ("reversed", reverse)]
    return [("reversed", reverse)] if flipped else [("original", forward)]


def _balanced_flips(
    parsed_rows: list[tuple[int, ParsedQuestion, int, int]], rng: random.Random
) -> set[int]:
    """Row indices to reverse in "balanced" order: a seeded half of each (n choices, matching
    position) stratum, so the matching answer sits at each position about equally often."""
    strata: dict[tuple[int, int], list[int]] = {}
    for index, parsed, matching, _ in parsed_rows:
        strata.setdefault((len(parsed.choices), matching), []).append(index)
    flipped: set[int] = set()
    for key in sorted(strata):
        members = strata[key]
        flipped.update(rng.sample(members, (len(members) + rng.randint(0, 1)) // 2))
    return flipped


def build_samples(
    rows: list[dict[str, Any]],
    file_name: str,
    source: str,
    order: Order = "both",
    seed: int = 0,
) -> tuple[list[Sample], DatasetReport]:
    """Samples of one file. `order`: "both" (each question in original and reversed choice order:
    the position bias cancels exactly for 2 choices), "balanced" (one order per question: a seeded
    half of the questions reversed) or "original"."""
    if order not in ("both", "balanced", "original"):
        raise ValueError(f"order must be 'both', 'balanced' or 'original', got {order!r}")
    report = DatasetReport(source=source, rows=len(rows))
    parsed_rows: list[tuple[int, ParsedQuestion, int, int]] = []
    for index, raw in enumerate(rows):
        qid = f"{file_name}:{index}"
        try:
            row = RiskRow.model_validate(raw)
            parsed = parse_question(row.question)
            matching = letter_index(row.answer_matching_behavior)
            not_matching = letter_index(row.answer_not_matching_behavior)
            n = len(parsed.choices)
            if matching >= n or not_matching >= n:
                raise ValueError(
                    f"label ({letter(max(matching, not_matching))}) beyond the {n} parsed choices"
                )
            if matching == not_matching:
                raise ValueError("matching and not-matching answers are the same choice")
        except (ValidationError, ValueError) as ex:
            report.add(index, qid, "invalid_row", str(ex).replace("\n", " ")[:300])
            continue
        parsed_rows.append((index, parsed, matching, not_matching))

    flipped = _balanced_flips(parsed_rows, random.Random(f"{seed}:{file_name}"))
    samples: list[Sample] = []
    for index, parsed, matching, not_matching in parsed_rows:
        qid, n = f"{file_name}:{index}", len(parsed.choices)
        for order_label, perm in _orders(n, order, index in flipped):
            presented = [parsed.choices[i] for i in perm]
            m_pos, nm_pos = perm.index(matching), perm.index(not_matching)
            context = (
                parsed.stem
                + "\n\nChoices:\n"
                + "\n".join(f" ({letter(i)}) {c}" for i, c in enumerate(presented))
                + "\n\nAnswer:"
            )
            query = LoglikQuery(
                context=context, continuations=[f" ({letter(i)})" for i in range(n)]
            )
            samples.append(
                Sample(
                    id=f"{qid}:{order_label}",
                    input=re.sub(r"^Question:\s*", "", parsed.stem),
                    choices=presented,
                    target=letter(m_pos),
                    metadata={
                        "question_id": qid,
                        "file": file_name,
                        "order": order_label,
                        "n_choices": n,
                        "matching_index": m_pos,
                        "not_matching_index": nm_pos,
                        "original_order": perm,
                        LOGLIK_QUERY_KEY: query.model_dump(),
                    },
                )
            )
    report.samples = len(samples)
    return samples, report


def risk_dataset(
    subset: str,
    data_dir: str | Path | None = None,
    order: Order = "both",
    seed: int = 0,
    source: Source = "hub",
    shuffle: bool = False,
) -> tuple[MemoryDataset, list[DatasetReport]]:
    """All samples of one subset (several files for corrigibility), problems reported per file."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; known: {', '.join(SUBSETS)}")
    samples: list[Sample] = []
    reports: list[DatasetReport] = []
    for name in SUBSETS[subset]:
        rows, location = load_file_rows(name, data_dir, source)
        file_samples, report = build_samples(rows, name, location, order=order, seed=seed)
        if report.problems:
            logger.warning("advanced-ai-risk data problems: %s", report.summary())
        samples.extend(file_samples)
        reports.append(report)
    if not samples:
        raise DataSourceError(
            f"No usable {subset} rows: " + " | ".join(r.summary() for r in reports)
        )
    dataset = MemoryDataset(samples, name=subset, location=", ".join(r.source for r in reports))
    if shuffle:
        dataset.shuffle(seed=seed)
    return dataset, reports
