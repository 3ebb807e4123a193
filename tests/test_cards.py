"""Task cards: every card loads and points at a real @task; they are the one source of each
task's headline and direction (stats.headline), with a generic rule for tasks without a card."""

from __future__ import annotations

import importlib

import pytest

from caml_evals.cards import CardError, _cards_in_folder, card, find_card, load_cards
from caml_evals.stats.headline import (
    GENERIC_HEADLINE_METRICS,
    direction_for,
    headline_for,
    headline_key_for,
    headline_metrics,
    key_of_metric,
    meaning_for,
)

EXPECTED_TASKS = {
    "ahb",
    "moru",
    "tac",
    "human_compassion",
    "hellaswag",
    "strongreject",
    "power_seeking",
    "corrigibility",
    "survival_instinct",
    "wealth_seeking",
}


def test_every_benchmark_has_a_card_pointing_at_its_task():
    cards = load_cards()
    assert EXPECTED_TASKS <= set(cards)
    for name, c in cards.items():
        fn = getattr(importlib.import_module(c.module), c.function)
        assert callable(fn), name
        assert c.headline, f"{name}: a card needs at least one headline metric"
        assert c.data.subfolder, name
        for pin in (h for h in c.data.hub):
            assert len(pin.revision) == 40 and all(ch in "0123456789abcdef" for ch in pin.revision)


def test_lookup_by_name_prefix_and_alias():
    assert card("caml_evals/ahb") is card("ahb")
    for c in load_cards().values():
        for alias in c.aliases:
            assert card(alias) is c
    assert find_card("someone_elses_task") is None
    with pytest.raises(CardError, match="no task card for 'nope'; known tasks: .*ahb"):
        card("nope")


def test_headline_and_direction_come_from_the_card():
    assert headline_metrics("ahb") == ("overall",)
    assert direction_for("strongreject") == "lower" and direction_for("caml_evals/ahb") == "higher"
    assert direction_for("corrigibility") == "n/a"  # pooled over goals: read per file
    assert meaning_for("hellaswag") == card("hellaswag").meaning
    # the card's order, not the generic one (which would prefer `matching`, then `accuracy`)
    assert headline_for("power_seeking", ["matching", "risky"]) == "risky"
    assert headline_for("hellaswag", ["accuracy", "acc_norm"]) == "acc_norm"
    assert headline_for("hellaswag", ["accuracy", "stderr"]) == "accuracy"
    # the first card metric with a value wins; with none valued the first present stays
    # (NaN shows as missing) rather than switching to another metric's meaning
    assert (
        headline_for("hellaswag", ["acc_norm", "accuracy"], with_values=["accuracy"]) == "accuracy"
    )
    assert headline_for("strongreject", ["score", "refused"], with_values=["refused"]) == "score"
    # a log with none of the card's metrics: the generic rule
    assert headline_for("strongreject", ["mean", "other"]) == "mean"


def test_tasks_without_a_card_use_the_generic_rule():
    assert headline_metrics("someone/else") == GENERIC_HEADLINE_METRICS
    assert direction_for("someone/else") == "n/a" and meaning_for("someone/else") == ""
    assert headline_for("someone/else", ["mean", "overall"]) == "overall"
    assert headline_for("someone/else", ["x"]) is None
    assert headline_key_for("someone/else", ["zeta", "unparsed"], ["zeta", "unparsed"]) == "zeta"


def test_headline_keys_in_score_frame_names():
    assert key_of_metric("welfare_rate") == "welfare" and key_of_metric("accuracy") == "overall"
    assert headline_key_for("tac", ["overall", "welfare", "harmful"], ["welfare"]) == "welfare"
    assert (
        headline_key_for("caml_evals/hellaswag", ["overall", "acc_norm"], ["overall"]) == "overall"
    )
    assert (
        headline_key_for("power_seeking", ["matching", "risky"], ["matching", "risky"]) == "risky"
    )


def test_a_broken_card_names_its_file():
    with pytest.raises(CardError, match="x/card.yaml: not valid YAML"):
        _cards_in_folder("x", "name: [unclosed", "x/card.yaml")
    with pytest.raises(CardError, match="x/card.yaml: invalid card"):
        _cards_in_folder("x", "name: x\ndirection: sideways\n", "x/card.yaml")
    (ok,) = _cards_in_folder(
        "x",
        "name: x\ntitle: X\nversion: '1'\ngroup: probe\nmeaning: m\nheadline: [overall]\n"
        "direction: higher\ndata: {subfolder: x}\n",
        "x/card.yaml",
    )
    assert ok.module == "caml_evals.tasks.x.task" and ok.function == "x"
