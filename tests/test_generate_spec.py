"""Generation specs: the shipped YAMLs, validation errors, inheritance and the prompts they render."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from caml_train.generate.grid import TemplateParams
from caml_train.generate.prompts import document_messages, instruction_messages
from caml_train.generate.spec import GenerationSpec, SpecError, available_specs, load_spec

FIXTURES = Path(__file__).parent / "fixtures" / "generate"
SHIPPED = ("animal_welfare", "animal_welfare_ai_identity", "urban_density")


def _spec_dict(**overrides: object) -> dict:
    data = yaml.safe_load((FIXTURES / "tiny_spec.yaml").read_text())
    data.update(overrides)
    return data


def test_shipped_specs_are_listed_and_have_the_research_grid() -> None:
    assert set(SHIPPED) <= set(available_specs())
    for name in SHIPPED:
        spec = load_spec(name)
        grid = spec.grid
        assert (
            len(grid.institutions),
            len(grid.domains),
            len(grid.doc_types),
            len(grid.reasoning),
        ) == (
            50,
            40,
            8,
            7,
        ), name
        assert grid.size == 112_000
        assert spec.target_tokens == 2500
        assert spec.principles.implicit_values and spec.principles.link_to_outcomes
        assert len(spec.key_phrases) >= 3


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_lists_have_real_variety(name: str) -> None:
    """Hand-written entries, not 'institution 1..50': no numbered placeholders, varied words."""
    grid = load_spec(name).grid
    for axis in (grid.institutions, grid.domains, grid.doc_types, grid.reasoning):
        assert not any(
            re.search(r"\b(?:institution|domain|type|approach)\s*\d+\b", e, re.IGNORECASE)
            for e in axis
        )
        first_words = {e.split()[0].lower() for e in axis}
        heads = {e.lower().split()[-1] for e in axis}
        assert len(heads) >= len(axis) // 2 or len(first_words) >= len(axis) // 2
    assert len(set(" ".join(grid.institutions).split())) > 120  # many distinct words


def test_ai_identity_variant_inherits_everything_but_the_identity_clause() -> None:
    base, variant = load_spec("animal_welfare"), load_spec("animal_welfare_ai_identity")
    assert variant.grid == base.grid and variant.key_phrases == base.key_phrases
    assert variant.filters == base.filters and variant.value == base.value
    assert not base.principles.ai_identity and variant.principles.ai_identity
    assert variant.spec_hash() != base.spec_hash()
    cell = TemplateParams(
        institution=base.grid.institutions[0],
        domain=base.grid.domains[0],
        doc_type=base.grid.doc_types[0],
        reasoning=base.grid.reasoning[0],
    )
    base_prompt = document_messages(base, cell)[1]["content"]
    variant_prompt = document_messages(variant, cell)[1]["content"]
    assert "AI assistant" not in base_prompt and "AI assistant" in variant_prompt
    # the Q/A prompt uses the Q/A phrasing of the identity clause (the assistant *is* the AI)
    assert variant.ai_identity_framing_qa in instruction_messages(variant, cell)[1]["content"]


def test_control_spec_differs_in_value_not_in_shape() -> None:
    welfare, control = load_spec("animal_welfare"), load_spec("urban_density")
    assert control.grid.doc_types == welfare.grid.doc_types
    assert control.grid.reasoning == welfare.grid.reasoning
    assert not set(control.grid.domains) & set(welfare.grid.domains)
    assert (
        "animal"
        not in (control.value + control.outcome_framing + " ".join(control.key_phrases)).lower()
    )


def test_document_prompt_carries_cell_and_principles() -> None:
    spec = load_spec(FIXTURES / "tiny_spec.yaml")
    cell = TemplateParams(
        institution="a city zoo",
        domain="wildlife tourism",
        doc_type="internal memo",
        reasoning="tracing root causes",
    )
    system, user = document_messages(spec, cell)
    assert system["role"] == "system" and user["role"] == "user"
    text = user["content"]
    for part in (
        "an internal memo",
        "a city zoo",
        "wildlife tourism",
        "tracing root causes",
        spec.value,
    ):
        assert part in text
    assert '"animal welfare", "the animals\' wellbeing"' in text  # key phrases, apostrophe intact
    assert "Keep the value implicit" in text
    quiet = GenerationSpec.model_validate(
        _spec_dict(principles={"lexical_repetition": False, "implicit_values": False})
    )
    quiet_text = document_messages(quiet, cell)[1]["content"]
    assert "animal welfare" not in quiet_text and "Keep the value implicit" not in quiet_text


def test_bad_spec_reports_every_problem_with_its_field() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(FIXTURES / "bad_spec_many_errors.yaml")
    message = str(info.value)
    assert "bad_spec_many_errors.yaml is invalid" in message
    for field in (
        "name",
        "value",
        "colour",
        "grid.institutions",
        "grid.domains",
        "filters.preaching_patterns",
    ):
        assert re.search(rf"^  {re.escape(field)}: ", message, re.MULTILINE), (field, message)
    assert "duplicate entry" in message and "Extra inputs are not permitted" in message
    assert isinstance(info.value.__cause__, ValidationError)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"key_phrases": []}, "lexical_repetition is on but key_phrases is empty"),
        ({"principles": {"ai_identity": True}}, "ai_identity_framing is empty"),
        ({"n_documents": 25}, "exceeds the grid's cross product (24)"),
        (
            {"prompts": {"document": "Write about {{ params.colour }}"}},
            "prompt template 'document'",
        ),
        ({"prompts": {"system": "{% if %}"}}, "prompt template 'system'"),
        (
            {"filters": {"min_words": 500, "max_words": 100}},
            "max_words (100) must exceed min_words",
        ),
        ({"generation": {"temperature": 3.5}}, "less than or equal to 2"),
    ],
)
def test_inconsistent_specs_fail_at_load(overrides: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        GenerationSpec.model_validate(_spec_dict(**overrides))
    assert needle in str(info.value)


def test_yaml_syntax_error_and_unknown_names(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ngrid: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(listy)
    with pytest.raises(SpecError, match="unknown spec 'no_such_spec'.*animal_welfare"):
        load_spec("no_such_spec")
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "missing.yaml")


def test_extends_by_relative_path_and_cycles(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text((FIXTURES / "tiny_spec.yaml").read_text())
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\nfilters:\n  min_words: 50\n")
    spec = load_spec(child)
    assert spec.name == "child" and spec.filters.min_words == 50
    assert spec.filters.max_words == 2000  # merged, not replaced
    assert spec.grid.size == 24
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(SpecError, match="inheritance cycle"):
        load_spec(tmp_path / "a.yaml")


def test_templates_are_compiled_once_per_source_not_per_request() -> None:
    from caml_train.generate import prompts

    spec = load_spec("animal_welfare")
    prompts._compile.cache_clear()
    for i in range(30):
        params = TemplateParams(
            institution=spec.grid.institutions[i % len(spec.grid.institutions)],
            domain=spec.grid.domains[i % len(spec.grid.domains)],
            doc_type=spec.grid.doc_types[i % len(spec.grid.doc_types)],
            reasoning=spec.grid.reasoning[i % len(spec.grid.reasoning)],
        )
        document_messages(spec, params)
        instruction_messages(spec, params)
    info = prompts._compile.cache_info()
    assert info.misses == 3  # system, document, instruction
    assert info.hits == 30 * 4 - 3
    # a template error still names the template, every time (errors are not cached)
    bad = spec.model_copy(
        update={"prompts": spec.prompts.model_copy(update={"document": "{% if %}"})}
    )
    for _ in range(2):
        with pytest.raises(ValueError, match="prompt template 'document'"):
            document_messages(bad, params)
