"""The declarative generation spec: which value a synthetic corpus should instil and the template grid
it is written over.

A spec is YAML validated by pydantic, so a typo (an unknown key, a duplicated domain, a regex that does
not compile, a prompt template that references an unknown variable) fails at load time with the field
path, before a single paid request is made. Specs shipped with the package live in `caml_train/specs/`
and are loaded by name (`load_spec("animal_welfare")`); any other YAML file is loaded by path. A spec may
`extends:` another one (by name or path) and override only what differs, which is how the AI-identity
variant stays one flag away from the base spec.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from caml_evals.strict_yaml import load_yaml


SPEC_PACKAGE = "caml_train.specs"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

NonEmptyStr = Annotated[str, Field(min_length=1)]


class SpecError(ValueError):
    """A spec that cannot be found, parsed or validated; the message names the file and the fields."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _clean_unique(values: list[str], what: str) -> list[str]:
    """Strip entries and refuse blanks and case-insensitive duplicates: a duplicated grid entry would
    silently double the weight of one cell of the cross product."""
    cleaned = [v.strip() for v in values]
    if any(not v for v in cleaned):
        raise ValueError(f"{what} contains an empty entry")
    seen: dict[str, str] = {}
    for v in cleaned:
        low = v.casefold()
        if low in seen:
            raise ValueError(f"{what} contains a duplicate entry: {v!r}")
        seen[low] = v
    return cleaned


class TemplateGrid(_Strict):
    """The four axes of the template grid; documents are drawn from their full cross product."""

    institutions: list[str] = Field(min_length=1)
    domains: list[str] = Field(min_length=1)
    doc_types: list[str] = Field(min_length=1)
    reasoning: list[str] = Field(min_length=1, description="reasoning approaches")

    @field_validator("institutions", "domains", "doc_types", "reasoning")
    @classmethod
    def _unique(cls, values: list[str], info: Any) -> list[str]:
        return _clean_unique(values, info.field_name)

    @property
    def size(self) -> int:
        return (
            len(self.institutions) * len(self.domains) * len(self.doc_types) * len(self.reasoning)
        )


class Principles(_Strict):
    """The writing principles of the research recipe; each one switches a clause of the prompt."""

    link_to_outcomes: bool = Field(True, description="show the value leading to good outcomes")
    lexical_repetition: bool = Field(True, description="repeat the spec's key phrases")
    implicit_values: bool = Field(True, description="show, never preach")
    ai_identity: bool = Field(False, description="tie the value to the AI-assistant identity")


class GenerationParams(_Strict):
    """Sampling parameters sent with every request; they are part of the cache key."""

    temperature: float = Field(1.0, ge=0.0, le=2.0)
    max_tokens: int = Field(4096, gt=0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)

    def request_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.top_p is not None:
            params["top_p"] = self.top_p
        return params


class FilterConfig(_Strict):
    """Post-processing thresholds. Word counts, not tokens: they need no tokenizer download."""

    min_words: int = Field(600, ge=0)
    max_words: int = Field(4000, gt=0)
    min_unique_sentence_ratio: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="below this share of distinct sentences a text is 'repetitive'",
    )
    use_default_preaching_patterns: bool = True
    preaching_patterns: list[str] = Field(
        default_factory=list, description="extra case-insensitive regexes for explicit moralising"
    )
    dedup_threshold: float = Field(0.8, gt=0.0, le=1.0, description="MinHash LSH Jaccard threshold")
    dedup_num_perm: int = Field(128, ge=16)
    shingle_words: int = Field(5, ge=1)
    qa_min_answer_words: int = Field(15, ge=0)
    qa_max_answer_words: int = Field(1200, gt=0)

    @field_validator("preaching_patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as ex:
                raise ValueError(f"preaching pattern {p!r} is not a valid regex: {ex}") from ex
        return patterns

    @model_validator(mode="after")
    def _bounds(self) -> FilterConfig:
        if self.max_words <= self.min_words:
            raise ValueError(
                f"max_words ({self.max_words}) must exceed min_words ({self.min_words})"
            )
        if self.qa_max_answer_words <= self.qa_min_answer_words:
            raise ValueError("qa_max_answer_words must exceed qa_min_answer_words")
        return self


class PromptTemplates(_Strict):
    """Optional jinja2 overrides of the default prompts in `prompts.py` (None = default)."""

    system: str | None = None
    document: str | None = None
    instruction: str | None = None
    instruction_from_document: str | None = None


class GenerationSpec(_Strict):
    """One corpus recipe: the value, the principles, the grid, sampling, filters and prompts."""

    name: str = Field(description="slug used in row ids and file names")
    description: str = ""
    value: NonEmptyStr = Field(description="the value to instil, stated plainly (prompt only)")
    outcome_framing: NonEmptyStr = Field(description="how the value links to good outcomes")
    key_phrases: list[str] = Field(default_factory=list)
    ai_identity_framing: str | None = Field(None, description="clause for documents")
    ai_identity_framing_qa: str | None = Field(
        None, description="clause for Q/A pairs, where the assistant is the AI (default: the above)"
    )
    principles: Principles = Principles()
    target_tokens: int = Field(2500, gt=0)
    n_documents: int = Field(1000, gt=0)
    qa_pairs_per_request: int = Field(3, ge=1, le=20)
    grid: TemplateGrid
    generation: GenerationParams = GenerationParams()
    filters: FilterConfig = FilterConfig()
    prompts: PromptTemplates = PromptTemplates()

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _NAME_RE.match(name):
            raise ValueError(f"name {name!r} must be a lowercase slug (a-z, 0-9, '_', '-')")
        return name

    @field_validator("key_phrases")
    @classmethod
    def _phrases(cls, phrases: list[str]) -> list[str]:
        return _clean_unique(phrases, "key_phrases")

    @model_validator(mode="after")
    def _consistent(self) -> GenerationSpec:
        if self.principles.lexical_repetition and not self.key_phrases:
            raise ValueError("principles.lexical_repetition is on but key_phrases is empty")
        if self.principles.ai_identity and not (self.ai_identity_framing or "").strip():
            raise ValueError("principles.ai_identity is on but ai_identity_framing is empty")
        if self.n_documents > self.grid.size:
            raise ValueError(
                f"n_documents ({self.n_documents}) exceeds the grid's cross product ({self.grid.size});"
                " documents are drawn without replacement"
            )
        # Render every prompt once so a template error surfaces now, not after the first paid call.
        from caml_train.generate.prompts import validate_templates

        validate_templates(self)
        return self

    def spec_hash(self) -> str:
        """A short content hash: two runs with the same hash used the same recipe."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- loading


def available_specs() -> list[str]:
    """Names of the specs shipped with the package."""
    root = resources.files(SPEC_PACKAGE)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """Raw mapping and a human label of where it came from."""
    path = Path(name_or_path)
    looks_like_path = path.suffix in {".yaml", ".yml"} or path.parent != Path(".") or path.exists()
    if looks_like_path:
        if not path.is_file():
            raise SpecError(f"spec file not found: {path}")
        label = str(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as ex:
            raise SpecError(
                f"spec {label} cannot be read: not UTF-8 text ({ex.reason} at byte {ex.start});"
                " save it as UTF-8"
            ) from ex
    else:
        resource = resources.files(SPEC_PACKAGE) / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise SpecError(
                f"unknown spec {str(name_or_path)!r}; shipped specs: {', '.join(available_specs())}"
                " (or pass a path to a .yaml file)"
            )
        text, label = resource.read_text(encoding="utf-8"), f"{SPEC_PACKAGE}/{name_or_path}.yaml"
    try:
        data = load_yaml(text)
    except yaml.YAMLError as ex:
        raise SpecError(f"spec {label} is not valid YAML: {ex}") from ex
    if not isinstance(data, dict):
        raise SpecError(f"spec {label} must be a YAML mapping, got {type(data).__name__}")
    return data, label


def _resolve(name_or_path: str | Path, chain: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    data, label = _read_yaml(name_or_path)
    if label in chain:
        raise SpecError(f"spec inheritance cycle: {' -> '.join((*chain, label))}")
    parent = data.pop("extends", None)
    if parent is None:
        return data, label
    if not isinstance(parent, str):
        raise SpecError(f"spec {label}: 'extends' must be a spec name or path")
    parent_ref: str | Path = parent
    if (
        not Path(parent).is_absolute()
        and Path(parent).suffix in {".yaml", ".yml"}
        and Path(label).is_file()
    ):
        parent_ref = Path(label).parent / parent  # relative to the child file
    base, _ = _resolve(parent_ref, (*chain, label))
    # Imported here: caml_train.config imports caml_evals.errors and so all of inspect_ai
    # (seconds), which a generation run never needs before its first request.
    from caml_train.config import deep_merge

    return deep_merge(base, data), label


def format_validation_error(label: str, error: ValidationError) -> str:
    lines = [f"spec {label} is invalid ({error.error_count()} problem(s)):"]
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_spec(name_or_path: str | Path) -> GenerationSpec:
    """Load a shipped spec by name or any YAML spec by path; raise SpecError with every problem."""
    data, label = _resolve(name_or_path)
    try:
        return GenerationSpec.model_validate(data)
    except ValidationError as ex:
        raise SpecError(format_validation_error(label, ex)) from ex
