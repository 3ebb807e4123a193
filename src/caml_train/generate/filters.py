"""Post-processing filters: tidy a model reply, then keep it or reject it with one named reason.

Order matters only for which reason a bad text is counted under; every rejected text is written to
`rejected/<kind>.jsonl` with its reason and detail, so nothing is lost and a threshold can be revisited
without paying for generation again (the responses stay in the cache).

The preaching filter enforces the recipe's "implicit, not explicit" principle: a document that tells
the reader what to value ("you should care about animals", "it is important to treat animals with
respect", "we all have a duty to...") teaches the model to moralise rather than to reason with the
value. The default patterns target second-person and collective moral exhortation built on moral
verb phrases, so that neutral instructions in a manual ("you should calibrate the sensor") pass;
specs add topic-specific patterns (`filters.preaching_patterns`).
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel

from caml_train.generate.spec import FilterConfig


class Reason(str, Enum):
    """Why a generated text was not written to the corpus (keys of the manifest's `dropped`)."""

    EMPTY = "empty"
    REFUSAL = "refusal"
    TRUNCATED = "truncated"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    META_COMMENTARY = "meta_commentary"
    REPETITIVE = "repetitive"
    PREACHING = "preaching"
    NEAR_DUPLICATE = "near_duplicate"
    UNPARSEABLE = "unparseable"


class Rejection(BaseModel):
    reason: Reason
    detail: str = ""


# Moral verb phrases: what a preachy sentence tells the reader to do.
_MORAL_VP = (
    r"(?:care (?:about|for)|show (?:compassion|kindness|empathy|mercy)"
    r"|be (?:kind|kinder|compassionate|humane|mindful|considerate|gentle)"
    r"|treat \w+(?: \w+){0,3}? (?:with (?:kindness|compassion|respect|dignity|care)|kindly|humanely"
    r"|ethically|fairly|well|better)"
    r"|respect (?:the |their )?(?:lives|dignity|feelings|rights|welfare|well-?being|interests)"
    r"|(?:consider|think about|remember) (?:the |their )?(?:feelings|welfare|well-?being|suffering|interests)"
    r"|do the right thing|value (?:every|all) (?:life|lives|living))"
)

DEFAULT_PREACHING_PATTERNS: tuple[str, ...] = (
    # "you should care about animals", "you must always treat them with respect"
    rf"\byou (?:all )?(?:should|must|ought to|need to|have to) (?:always |also |really |truly )?{_MORAL_VP}",
    # "it is important to treat animals well", "it's our duty to show compassion"
    (
        rf"\bit(?: is|'s) (?:so |very |deeply |truly |morally |ethically )?(?:important|crucial"
        rf"|essential|vital|imperative|necessary|our (?:moral |ethical )?(?:duty|responsibility"
        rf"|obligation)) (?:that we |for (?:us|everyone|all of us|each of us) )?(?:to )?(?:always )?"
        rf"{_MORAL_VP}"
    ),
    # "we must all care for...", "we have a moral duty to respect their welfare"
    (
        rf"\bwe (?:all )?(?:must|should|ought to|need to|have (?:a|an) (?:moral |ethical )?(?:duty"
        rf"|responsibility|obligation) to) (?:all |always )?{_MORAL_VP}"
    ),
    rf"\b(?:let us|let's) (?:all )?(?:never forget|{_MORAL_VP})",
    r"\bmoral of (?:this|the) story\b",
    r"\bI (?:urge|implore|beg|encourage) (?:you|everyone|all of you|readers?|the reader)\b",
    r"\b(?:dear reader|reader),? (?:you|we) (?:should|must|ought)\b",
)

_REFUSAL = re.compile(
    r"^\W*(?:I'?m sorry|I am sorry|I apologi[sz]e|sorry, (?:but )?I|I can(?:no|')t (?:help|assist|write"
    r"|create|produce|comply|fulfil)|I (?:won't|will not) (?:write|create|produce)|as an AI(?: language"
    r" model)?,? I (?:can(?:no|')t|am unable|won't))",
    re.IGNORECASE,
)
# Traces of the brief leaking into the text.
_META = re.compile(
    r"\b(?:key phrases?|as requested|as you requested|word count|target length"
    r"|(?:this|the) (?:document|text) (?:was|is) (?:written|designed|meant) to (?:convey|illustrate"
    r"|show|instil|teach)|without being told|the guidelines (?:above|you gave))\b",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"\A\s*(?:sure|certainly|of course|absolutely|okay|ok)?[!,.]?\s*"
    r"(?:here(?:'s| is) (?:a|an|the|your)\b[^\n]{0,200}?|below is[^\n]{0,200}?)[:.]\s*\n",
    re.IGNORECASE,
)
_CODE_FENCE = re.compile(r"\A\s*```[\w-]*\s*\n(.*?)\n\s*```\s*\Z", re.DOTALL)
_SIGNOFF = re.compile(
    r"\n\s*(?:---+\s*\n\s*)?(?:let me know if|I hope (?:this|that) helps|feel free to (?:ask|let me"
    r" know|reach out)|would you like me to)[^\n]{0,200}\Z",
    re.IGNORECASE,
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def compile_patterns(cfg: FilterConfig) -> list[re.Pattern[str]]:
    """The preaching regexes of a spec: the defaults (unless switched off) plus the spec's own."""
    sources = (
        list(DEFAULT_PREACHING_PATTERNS) if cfg.use_default_preaching_patterns else []
    ) + list(cfg.preaching_patterns)
    return [re.compile(p, re.IGNORECASE) for p in sources]


def normalize_text(text: str) -> str:
    """Remove chat wrapping the model adds around the requested text: a code fence, a 'Here is...'
    line, a 'Let me know if...' sign-off. The content itself is never edited."""
    text = text.replace("\r\n", "\n").strip()
    fenced = _CODE_FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    text = _PREAMBLE.sub("", text, count=1).strip()
    text = _SIGNOFF.sub("", text).strip()
    return text


def word_count(text: str) -> int:
    return len(text.split())


def find_preaching(text: str, patterns: list[re.Pattern[str]]) -> str | None:
    """The first preachy passage found, or None."""
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match.group(0)
    return None


def repetition_ratio(text: str) -> tuple[float, int]:
    """(distinct sentences / sentences, sentence count): degenerate loops score low."""
    sentences = [s.strip().casefold() for s in _SENTENCE_SPLIT.split(text) if len(s.split()) >= 3]
    if not sentences:
        return 1.0, 0
    return len(set(sentences)) / len(sentences), len(sentences)


def check_text(
    text: str,
    *,
    min_words: int,
    max_words: int,
    cfg: FilterConfig,
    patterns: list[re.Pattern[str]],
    finish_reason: str | None = None,
) -> Rejection | None:
    """None when `text` (already normalized) passes, else the first failing check."""
    if not text.strip():
        return Rejection(reason=Reason.EMPTY)
    if _REFUSAL.search(text[:300]):
        return Rejection(reason=Reason.REFUSAL, detail=text[:120])
    if finish_reason == "length":
        return Rejection(reason=Reason.TRUNCATED, detail="finish_reason=length")
    words = word_count(text)
    if words < min_words:
        return Rejection(reason=Reason.TOO_SHORT, detail=f"{words} words < {min_words}")
    if words > max_words:
        return Rejection(reason=Reason.TOO_LONG, detail=f"{words} words > {max_words}")
    meta = _META.search(text)
    if meta:
        return Rejection(reason=Reason.META_COMMENTARY, detail=meta.group(0))
    ratio, n_sentences = repetition_ratio(text)
    if n_sentences >= 10 and ratio < cfg.min_unique_sentence_ratio:
        return Rejection(reason=Reason.REPETITIVE, detail=f"{ratio:.2f} distinct sentences")
    preachy = find_preaching(text, patterns)
    if preachy:
        return Rejection(reason=Reason.PREACHING, detail=preachy)
    return None


def check_document(
    text: str, finish_reason: str | None, cfg: FilterConfig, patterns: list[re.Pattern[str]]
) -> Rejection | None:
    return check_text(
        text,
        min_words=cfg.min_words,
        max_words=cfg.max_words,
        cfg=cfg,
        patterns=patterns,
        finish_reason=finish_reason,
    )


def check_answer(
    answer: str, cfg: FilterConfig, patterns: list[re.Pattern[str]]
) -> Rejection | None:
    """Q/A answers: same checks with answer-sized limits (truncation is handled by the parser)."""
    return check_text(
        answer,
        min_words=cfg.qa_min_answer_words,
        max_words=cfg.qa_max_answer_words,
        cfg=cfg,
        patterns=patterns,
    )
