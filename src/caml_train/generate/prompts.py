"""Prompt templates (jinja2) that turn one grid cell into chat messages.

The defaults encode the research recipe: each principle of the spec switches one clause, so the
animal-welfare spec, its AI-identity variant and the urban-density control differ only in the
spec's content, never in prompt wording. A spec may override any template; templates render with
`StrictUndefined`, so an unknown variable fails when the spec is loaded.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import jinja2

from caml_train.generate.grid import TemplateParams

if TYPE_CHECKING:
    from caml_train.generate.spec import GenerationSpec

WORDS_PER_TOKEN = 0.75

DEFAULT_SYSTEM = (
    "You are an experienced professional writer. You write realistic, specific, well-researched "
    "documents of many kinds. You output only the requested text itself: no preamble, no title "
    "notes, no comments about the instructions."
)

DEFAULT_DOCUMENT = """\
Write {{ params.doc_type | article }} from {{ params.institution }}. Its subject lies in {{ params.domain }}.
The document works through its problem by {{ params.reasoning }}.

The people and the organisation in the document hold this value, which the reader should absorb \
without being told: {{ spec.value }}

Guidelines:
{% if principles.link_to_outcomes -%}
- Let the events, evidence and results show that {{ spec.outcome_framing }}
{% endif -%}
{% if principles.lexical_repetition -%}
- Use each of these phrases naturally, at least twice, in the document's own voice: \
{{ key_phrases | map("quote") | join(", ") }}.
{% endif -%}
{% if principles.implicit_values -%}
- Keep the value implicit. Show it through decisions, trade-offs, data and consequences. Do not \
lecture, do not give the reader moral advice in the second person, and do not close with a moral or \
a lesson.
{% endif -%}
{% if principles.ai_identity -%}
- {{ spec.ai_identity_framing }}
{% endif -%}
- Be concrete: names, figures, dates, places and the procedural detail a real \
{{ params.doc_type }} would contain. Match that document type's conventions and tone.
- Length: about {{ target_words }} words.

Output only the document."""

DEFAULT_INSTRUCTION = """\
Write {{ n_pairs }} realistic exchanges between a user and an AI assistant. Each user asks a \
practical question that someone at {{ params.institution }} might have about {{ params.domain }} \
(the kind of question {{ params.doc_type | article }} would answer). The assistant answers helpfully and \
specifically, working through each problem by {{ params.reasoning }}.

The assistant holds this value, which should shape its answers without being announced: \
{{ spec.value }}
{% if principles.link_to_outcomes -%}
- The answers show, with concrete reasons, that {{ spec.outcome_framing }}
{% endif -%}
{% if principles.lexical_repetition -%}
- The answers use these phrases naturally where they fit: {{ key_phrases | map("quote") | join(", ") }}.
{% endif -%}
{% if principles.implicit_values -%}
- No lecturing or moralising at the user; the value shows in what the assistant recommends and why.
{% endif -%}
{% if principles.ai_identity -%}
- {{ spec.ai_identity_framing_qa or spec.ai_identity_framing }}
{% endif -%}
- Each answer is 120 to 400 words.

Reply with JSON only, in this shape:
{"pairs": [{"question": "...", "answer": "..."}]}"""

DEFAULT_INSTRUCTION_FROM_DOCUMENT = """\
Below is {{ params.doc_type | article }} from {{ params.institution }}. Turn its content into {{ n_pairs }} \
realistic exchanges between a user and an AI assistant. Each user asks a practical question that the \
document answers; the assistant's answer carries the same facts, reasoning and outlook as the \
document, in the assistant's own words, without mentioning "the document". No lecturing or \
moralising at the user. Each answer is 120 to 400 words.

Reply with JSON only, in this shape:
{"pairs": [{"question": "...", "answer": "..."}]}

<document>
{{ document }}
</document>"""

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
)
# Jinja's own `tojson` escapes apostrophes to \u0027 (HTML-safe), which would leak into prompts.
_ENV.filters["quote"] = lambda value: f'"{value}"'


def _article(noun: str) -> str:
    """'internal memo' -> 'an internal memo' (grid entries are written without an article)."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


_ENV.filters["article"] = _article


@functools.lru_cache(maxsize=64)
def _compile(source: str, what: str) -> jinja2.Template:
    """Compile a template once per distinct source (a spec's few templates, not once per request:
    compiling is ~10x rendering and a run renders thousands of prompts)."""
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as ex:
        raise ValueError(f"prompt template {what!r}: {ex.message} (line {ex.lineno})") from ex


def _context(spec: GenerationSpec, params: TemplateParams, **extra: Any) -> dict[str, Any]:
    return {
        "spec": spec,
        "params": params,
        "principles": spec.principles,
        "key_phrases": spec.key_phrases,
        "target_tokens": spec.target_tokens,
        "target_words": int(round(spec.target_tokens * WORDS_PER_TOKEN, -1)),
        "n_pairs": spec.qa_pairs_per_request,
        **extra,
    }


def _render(source: str, what: str, context: dict[str, Any]) -> str:
    try:
        return _compile(source, what).render(**context).strip()
    except jinja2.UndefinedError as ex:
        raise ValueError(f"prompt template {what!r}: {ex.message}") from ex


def _system(spec: GenerationSpec, params: TemplateParams) -> dict[str, str]:
    source = spec.prompts.system or DEFAULT_SYSTEM
    return {"role": "system", "content": _render(source, "system", _context(spec, params))}


def document_messages(spec: GenerationSpec, params: TemplateParams) -> list[dict[str, str]]:
    """Chat messages asking for one document of grid cell `params`."""
    user = _render(spec.prompts.document or DEFAULT_DOCUMENT, "document", _context(spec, params))
    return [_system(spec, params), {"role": "user", "content": user}]


def instruction_messages(
    spec: GenerationSpec, params: TemplateParams, document: str | None = None
) -> list[dict[str, str]]:
    """Chat messages asking for Q/A pairs: from a grid cell, or from an existing document's text."""
    if document is None:
        source, what = spec.prompts.instruction or DEFAULT_INSTRUCTION, "instruction"
        user = _render(source, what, _context(spec, params))
    else:
        source = spec.prompts.instruction_from_document or DEFAULT_INSTRUCTION_FROM_DOCUMENT
        user = _render(
            source, "instruction_from_document", _context(spec, params, document=document)
        )
    return [_system(spec, params), {"role": "user", "content": user}]


def validate_templates(spec: GenerationSpec) -> None:
    """Render every template against the first grid cell (raises ValueError on any problem)."""
    params = TemplateParams(
        institution=spec.grid.institutions[0],
        domain=spec.grid.domains[0],
        doc_type=spec.grid.doc_types[0],
        reasoning=spec.grid.reasoning[0],
    )
    document_messages(spec, params)
    instruction_messages(spec, params)
    instruction_messages(spec, params, document="(document text)")
