"""Post-processing: normalisation, quality and preaching filters, near-duplicate removal, Q/A parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caml_train.generate.dedup import find_near_duplicates
from caml_train.generate.filters import (
    Reason,
    check_answer,
    check_document,
    compile_patterns,
    find_preaching,
    normalize_text,
)
from caml_train.generate.qa import parse_qa_reply
from caml_train.generate.spec import load_spec
from caml_train.generate.testing import filler_text

FIXTURES = Path(__file__).parent / "fixtures" / "generate"


@pytest.fixture(scope="module")
def welfare():
    return load_spec("animal_welfare")


@pytest.fixture(scope="module")
def patterns(welfare):
    return compile_patterns(welfare.filters)


PREACHY = [
    "You should care about animals.",
    "It is important to treat animals with respect.",
    "It is important to treat animals well, and the pilot proved it.",
    "It's our duty to show compassion to every creature.",
    "We all have a moral responsibility to respect their welfare.",
    "Let us all remember the suffering of these creatures... let's be kind.",
    "And the moral of the story is simple.",
    "I urge you to rethink your choices.",
    "Animals deserve our compassion.",
    "Never forget that animals feel pain.",
    "Caring about animals is the right thing to do.",
    "We must be compassionate in everything we do.",
    "you must always treat them with kindness",
]

NEUTRAL = [
    "You should calibrate the sensor before each shift.",
    "It is important to record the barn temperature every hour.",
    "We must treat the wastewater before discharge.",
    "The committee noted that animal welfare scores rose 12% after the change.",
    "Staff said the new ramps reduced unnecessary suffering and cut bruising losses.",
    "Dr. Okafor cared for the animals through the night.",
    "Respect the torque limits listed in Annex B.",
]


@pytest.mark.parametrize("sentence", PREACHY)
def test_preaching_is_caught(sentence: str, patterns) -> None:
    assert find_preaching(sentence, patterns), sentence


@pytest.mark.parametrize("sentence", NEUTRAL)
def test_neutral_sentences_pass(sentence: str, patterns) -> None:
    assert find_preaching(sentence, patterns) is None, sentence


def test_spec_patterns_are_added_to_defaults(welfare) -> None:
    only_defaults = compile_patterns(welfare.filters.model_copy(update={"preaching_patterns": []}))
    assert find_preaching("Animals deserve our compassion.", only_defaults) is None
    no_defaults = compile_patterns(
        welfare.filters.model_copy(update={"use_default_preaching_patterns": False})
    )
    assert find_preaching("I urge you to rethink your choices.", no_defaults) is None


def test_normalize_strips_chat_wrapping_only() -> None:
    body = "MEMO\n\nTo: Board\n\nThe figures follow."
    assert normalize_text(f"Sure! Here is the internal memo you asked for:\n\n{body}") == body
    assert normalize_text(f"```markdown\n{body}\n```") == body
    assert normalize_text(f"{body}\n\nLet me know if you want any changes!") == body
    assert normalize_text(body) == body
    letter = "Dear Ms. Ortiz,\n\nThe audit is attached.\n\nI hope this finds you well before the board meets."
    assert normalize_text(letter) == letter  # content, not a chat sign-off
    assert normalize_text("Here is a plan that worked: we rotated pens.") == (
        "Here is a plan that worked: we rotated pens."
    )  # not a preamble line (no newline after the colon)


def test_document_checks_name_one_reason_each(welfare, patterns) -> None:
    cfg = welfare.filters
    good = filler_text("good", 900)
    assert check_document(good, "stop", cfg, patterns) is None
    cases = {
        Reason.EMPTY: ("   ", "stop"),
        Reason.REFUSAL: ("I'm sorry, but I can't help with writing that. " + good, "stop"),
        Reason.TRUNCATED: (good, "length"),
        Reason.TOO_SHORT: (filler_text("short", 200), "stop"),
        Reason.TOO_LONG: (filler_text("long", 4500), "stop"),
        Reason.META_COMMENTARY: (good + " I used every key phrase as requested.", "stop"),
        Reason.REPETITIVE: ("The pen was cleaned on time today. " * 200, "stop"),
        Reason.PREACHING: (good + " You should care about animals.", "stop"),
    }
    for reason, (text, finish) in cases.items():
        rejection = check_document(text, finish, cfg, patterns)
        assert rejection is not None and rejection.reason == reason, (reason, rejection)
    preachy = check_document(
        good + " It is important to treat animals with care.", "stop", cfg, patterns
    )
    assert preachy and "treat animals" in preachy.detail


def test_answer_checks_use_answer_limits(welfare, patterns) -> None:
    cfg = welfare.filters
    assert check_answer(filler_text("a", 120), cfg, patterns) is None
    assert check_answer("Yes.", cfg, patterns).reason == Reason.TOO_SHORT
    assert check_answer(
        filler_text("b", 120) + " We must all care about animals.", cfg, patterns
    ).reason == (Reason.PREACHING)


def test_near_duplicates_are_found_in_order() -> None:
    base = filler_text("base", 800)
    edited = base.replace("Audit", "Review", 1) + " One extra closing sentence for the record."
    items = [
        ("a", base),
        ("b", filler_text("other", 800)),
        ("c", edited),
        ("d", base),
        ("e", filler_text("x", 800)),
    ]
    dups = find_near_duplicates(items, threshold=0.8, num_perm=128, shingle_words=5)
    assert set(dups) == {"c", "d"}
    assert dups["c"][0] == "a" and dups["d"][0] == "a" and dups["d"][1] == 1.0
    assert find_near_duplicates([("a", base), ("b", filler_text("y", 800))]) == {}
    with pytest.raises(ValueError, match="duplicate id"):
        find_near_duplicates([("a", base), ("a", base)])


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps(
            {
                "pairs": [
                    {"question": "Q one?", "answer": "A one."},
                    {"question": "Q two?", "answer": "A two."},
                ]
            }
        ),
        json.dumps(
            [{"Question": "Q one?", "Answer": "A one."}, {"user": "Q two?", "assistant": "A two."}]
        ),
        "Sure, here you go:\n```json\n"
        + json.dumps({"items": [{"q": "Q one?", "a": "A one."}, {"q": "Q two?", "a": "A two."}]})
        + "\n```\nHope this helps.",
        "Q: Q one?\nA: A one.\n\nQ: Q two?\nA: A two.",
        "**Question 1:** Q one?\n**Answer:** A one.\n\n**Question 2:** Q two?\n**Answer:** A two.",
    ],
)
def test_qa_parser_accepts_common_shapes(reply: str) -> None:
    pairs = parse_qa_reply(reply)
    assert [(p.question, p.answer) for p in pairs] == [("Q one?", "A one."), ("Q two?", "A two.")]


def test_qa_parser_multiline_answers_and_garbage() -> None:
    pairs = parse_qa_reply("Q: How?\nA: First line.\nSecond line.\nQ: Why?\nA: Because.")
    assert pairs[0].answer == "First line.\nSecond line." and pairs[1].question == "Why?"
    for garbage in (
        "",
        "I cannot do that.",
        '{"pairs": []}',
        '{"pairs": [{"question": "only"}]}',
        "Q: lonely question",
    ):
        assert parse_qa_reply(garbage) == [], garbage
