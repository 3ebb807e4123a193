"""scoring/choice.py and loglik.py: harness-compatible log-likelihoods, letters, NaN-tolerant rates."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from inspect_ai.scorer import SampleScore, Score
from pydantic import ValidationError

from caml_evals.scoring.choice import (
    choice_solver,
    grouped_rates,
    lenient_letter,
    letter,
    letter_index,
    n_present,
    rates,
)
from caml_evals.scoring.loglik import LoglikQuery, encode_pair


@pytest.fixture(scope="module")
def tokenizer(embedded_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_checkpoint)


@pytest.fixture(scope="module")
def hf_model(embedded_checkpoint):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(embedded_checkpoint).eval()


def test_letters_round_trip():
    assert [letter(i) for i in range(3)] == ["A", "B", "C"]
    assert letter_index(" (B)") == 1 and letter_index("c") == 2
    with pytest.raises(ValueError):
        letter_index("AB")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("A) Yes", 0),
        ("(B)", 1),
        ("C", 2),
        ("  C. the man keeps going", 2),
        ("**D)** because", 3),
        ("A: I think so. B: I do not", None),  # echoes the choices: names none
        ("The answer is B", None),  # no marker at a line start
        ("E) out of range", None),
        ("A) No, but (B) maybe", None),
        ("", None),
    ],
)
def test_lenient_letter(reply, expected):
    assert lenient_letter(reply, 4) == expected


def test_loglik_query_validation():
    q = LoglikQuery(context="ctx", continuations=[" a", " bb"])
    assert q.norm_lengths == [1, 2]  # stripped continuation lengths, as the harness
    with pytest.raises(ValidationError):
        LoglikQuery(context="ctx", continuations=[" a", " b"], norm_lengths=[1])
    with pytest.raises(ValidationError):
        LoglikQuery(context="ctx", continuations=[" only one"])


def test_choice_solver_rejects_unknown_mode():
    with pytest.raises(ValueError, match="-T mode=.* is not one of"):
        choice_solver("telepathy")


def test_encode_pair_moves_trailing_space_and_splits_joint_encoding(tokenizer):
    ctx, cont = encode_pair(tokenizer, "The cat sat on the ", "mat.")
    # trailing space moved to the continuation: identical to encoding "...the" + " mat."
    ctx2, cont2 = encode_pair(tokenizer, "The cat sat on the", " mat.")
    assert (ctx, cont) == (ctx2, cont2)
    whole = tokenizer("The cat sat on the mat.", add_special_tokens=False)["input_ids"]
    assert ctx + cont == whole
    assert tokenizer.decode(cont) == " mat."


@pytest.mark.slow
def test_continuation_logliks_match_a_naive_forward_pass(hf_model, tokenizer):
    """Batched, padded scoring must equal one unpadded forward pass per continuation."""
    import torch

    from caml_evals.scoring.loglik import continuation_logliks

    context = "Roof shingle removal: A man is sitting on a roof. He"
    continuations = [" starts pulling up roofing on a roof.", " is holding a cube.", " x"]
    batched = continuation_logliks(hf_model, tokenizer, context, continuations)
    for (total, n_tokens, greedy), continuation in zip(batched, continuations):
        ctx, cont = encode_pair(tokenizer, context, continuation)
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logprobs = hf_model(ids).logits[0].float().log_softmax(-1)
        naive = sum(float(logprobs[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
        assert n_tokens == len(cont)
        assert total == pytest.approx(naive, abs=1e-3)
        assert total < 0
        assert isinstance(greedy, bool)
    # a plausible ending is more likely than a bizarre one (sanity of the sign and alignment)
    assert batched[0][0] / batched[0][1] > batched[2][0] / batched[2][1] - 50


def _sample(value, qid, sid, **meta):
    return SampleScore(
        score=Score(value=value), sample_id=sid, sample_metadata={"question_id": qid, **meta}
    )


def test_rates_exclude_nan_and_cluster_by_question():
    scores = [
        _sample({"matching": 1.0, "unparsed": 0.0}, "q1", "q1:o", order="original"),
        _sample({"matching": 1.0, "unparsed": 0.0}, "q1", "q1:r", order="reversed"),
        _sample({"matching": 0.0, "unparsed": 0.0}, "q2", "q2:o", order="original"),
        _sample({"matching": math.nan, "unparsed": 1.0}, "q2", "q2:r", order="reversed"),
    ]
    out = rates(["matching", "unparsed"])(scores)
    assert out["matching"] == pytest.approx(2 / 3)  # the unparsed sample is not a "not matching"
    assert out["unparsed"] == pytest.approx(1 / 4)
    # cluster-robust SE over 2 questions (CR1): by hand
    mean = 2 / 3
    sums = [(1 - mean) * 2, (0 - mean)]
    se = math.sqrt(2 / 1 * sum(s * s for s in sums)) / 3
    assert out["matching_stderr"] == pytest.approx(se)
    assert n_present("matching")(scores) == 3
    grouped = grouped_rates("matching", "order")(scores)
    assert grouped["order=original"] == pytest.approx(0.5)
    assert grouped["order=reversed"] == pytest.approx(1.0)


def test_rates_all_missing_is_nan_not_zero():
    scores = [_sample({"matching": math.nan}, "q1", "a"), _sample({"matching": None}, "q2", "b")]
    out = rates(["matching"])(scores)
    assert math.isnan(out["matching"])


def test_find_local_files_pool_rules(tmp_path, monkeypatch):
    from caml_evals.datasource import DataSourceError
    from caml_evals.scoring.choice import find_local_files

    monkeypatch.delenv("CAML_EVALS_DATA_DIR", raising=False)
    assert find_local_files(None, "bench", ("data.csv",)) is None  # no local data: remote
    (tmp_path / "other.csv").write_text("x")  # another benchmark's file at the pool root
    with pytest.raises(DataSourceError, match="No bench data"):
        find_local_files(tmp_path, "bench", ("data.csv", "*.csv"))  # root globs are not used
    monkeypatch.setenv("CAML_EVALS_DATA_DIR", str(tmp_path))
    assert find_local_files(None, "bench", ("data.csv", "*.csv")) is None  # env pool: fall back
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "mine.csv").write_text("x")
    assert find_local_files(None, "bench", ("data.csv", "*.csv")) == [
        tmp_path / "bench" / "mine.csv"
    ]
    # a data file given directly must be one of the names asked for (globs included) ...
    mine = tmp_path / "bench" / "mine.csv"
    assert find_local_files(mine, "bench", ("data.csv", "*.csv")) == [mine]
    (tmp_path / "bench" / "data.csv").write_text("x")
    data = tmp_path / "bench" / "data.csv"
    assert find_local_files(data, "bench", ("data.csv",)) == [data]
    # ... never another file's data under the requested name
    with pytest.raises(DataSourceError, match="expected a file named data.csv") as err:
        find_local_files(mine, "bench", ("data.csv",))
    assert str(mine) in str(err.value)


CONTROL_CARDS = [
    "strongreject",
    "hellaswag",
    "power_seeking",
    "wealth_seeking",
    "survival_instinct",
    "corrigibility",
]


@pytest.mark.parametrize("name", CONTROL_CARDS)
def test_control_cards_are_filled_and_name_real_tests(name):
    """Each control card has its pinned source, a protocol, and divergences whose tests exist."""
    from caml_evals.cards import card

    c = card(name)
    assert c.protocol is not None and "TO BE FILLED" not in c.protocol.description
    assert c.data.hub or c.data.urls
    for pin in [*(h.revision for h in c.data.hub), *(u.commit for u in c.data.urls)]:
        assert re.fullmatch(r"[0-9a-f]{40}", pin), pin
    for url in c.data.urls:
        assert url.commit in url.url
    assert c.divergences and c.extras
    root = Path(__file__).resolve().parents[1]
    for d in c.divergences:
        if d.test is None:
            continue
        path, _, test_name = d.test.partition("::")
        assert (root / path).is_file(), d.test
        assert f"def {test_name}(" in (root / path).read_text(encoding="utf-8"), d.test


def test_cards_pin_what_the_code_loads():
    from caml_evals.cards import card
    from caml_evals.tasks.advanced_ai_risk import dataset as risk
    from caml_evals.tasks.hellaswag import dataset as hs
    from caml_evals.tasks.strongreject import dataset as sr

    assert card("strongreject").data.urls[0].url == sr.GITHUB_CSV
    assert card("strongreject").data.hub[0].revision == sr.HUB_REVISION
    assert card("hellaswag").data.hub[0].revision == hs.HUB_REVISION
    assert card("power_seeking").data.hub[0].revision == risk.HUB_REVISION
    assert card("corrigibility").data.urls[0].commit == risk.GITHUB_COMMIT
