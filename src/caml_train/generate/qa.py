"""Parse a model's Q/A reply into question/answer pairs, tolerating what models actually send.

Accepted, in order: JSON (bare or inside a ```json fence or surrounded by prose; a list of objects,
`{"pairs": [...]}` or any single list-valued key, or one object), with question/answer keys in several
spellings; then plain-text blocks "Q: ... A: ..." / "Question 1: ... Answer: ...". A reply that yields
no pair is *unparseable*: the caller counts it and keeps the raw reply in `rejected/instructions.jsonl`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

_Q_KEYS = ("question", "q", "user", "prompt", "instruction", "query")
_A_KEYS = ("answer", "a", "assistant", "response", "reply", "output")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_QA_LINE = re.compile(
    r"^\s*(?:[-*>#]+\s*)?(?:\*\*|__)?(?P<tag>Q|Question|User|A|Answer|Assistant)(?:\s*\d+)?"
    r"\s*(?:\*\*|__)?\s*[:.)]\s*(?:\*\*|__)?\s*",
    re.IGNORECASE | re.MULTILINE,
)


class QAPair(BaseModel):
    question: str
    answer: str


def _pick(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    lowered = {str(k).casefold(): v for k, v in obj.items()}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _pairs_from_json(data: Any) -> list[QAPair]:
    if isinstance(data, dict):
        q, a = _pick(data, _Q_KEYS), _pick(data, _A_KEYS)
        if q and a:
            return [QAPair(question=q, answer=a)]
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            data = lists[0]
        else:
            return []
    if not isinstance(data, list):
        return []
    pairs = []
    for item in data:
        if isinstance(item, dict):
            q, a = _pick(item, _Q_KEYS), _pick(item, _A_KEYS)
            if q and a:
                pairs.append(QAPair(question=q, answer=a))
    return pairs


def _json_candidates(text: str) -> list[str]:
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_ch, close_ch in (("{", "}"), ("[", "]")):
        start, end = text.find(open_ch), text.rfind(close_ch)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    return candidates


def _pairs_from_text(text: str) -> list[QAPair]:
    marks = list(_QA_LINE.finditer(text))
    pairs: list[QAPair] = []
    question: str | None = None
    for i, mark in enumerate(marks):
        body_end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : body_end].strip()
        is_question = mark.group("tag").casefold() in {"q", "question", "user"}
        if is_question:
            question = body or None
        elif question and body:
            pairs.append(QAPair(question=question, answer=body))
            question = None
    return pairs


def parse_qa_reply(text: str) -> list[QAPair]:
    """All pairs found in `text` (empty list = unparseable)."""
    for candidate in _json_candidates(text):
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        pairs = _pairs_from_json(data)
        if pairs:
            return pairs
    return _pairs_from_text(text)
