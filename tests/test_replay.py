"""Replay (a preservation strategy): an SFT stage with `replay` mixes a seeded, nested share of
the arm's documents into its rows, trains documents on every token and conversations on the
assistant turns only (in the dataset TRL prepared for the trainer), and records the mix in the
run card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caml_evals.errors import ConfigError
from caml_train.config import (
    DataSource,
    Hyperparams,
    LoraSettings,
    Replay,
    TrainConfig,
    load_config,
)
from caml_train.data import (
    IGNORE_INDEX,
    DataError,
    replay_count,
    replay_rows,
    rows_sha256,
    to_messages,
)

TINY = Path(__file__).resolve().parents[1] / "examples" / "tiny"
DOCS = DataSource(path=TINY / "documents.jsonl")  # 30 documents
SFT = DataSource(path=TINY / "sft.jsonl")  # 40 conversations


def _config(checkpoint: Path, out: Path, *, n: int, fraction: float, **hp) -> TrainConfig:
    base = {"lora": None, "max_length": 128, "per_device_train_batch_size": 2}
    return TrainConfig(
        stage="sft",
        model=str(checkpoint),
        data=SFT,
        n_samples=n,
        output_dir=out,
        seed=3,
        hparams=Hyperparams(**(base | hp)),
        replay=Replay(documents=DOCS, fraction=fraction),
    )


# ---------------------------------------------------------------------------- the mix


@pytest.mark.parametrize(
    ("n", "fraction", "documents"),
    [(8, 0.1, 1), (16, 0.1, 2), (16, 0.2, 4), (40, 0.25, 13), (9, 0.5, 9), (30, 0.4, 20)],
)
def test_documents_are_the_configured_fraction_of_the_mixed_rows(
    n: int, fraction: float, documents: int
) -> None:
    assert replay_count(n, fraction) == documents
    rows = replay_rows(Replay(documents=DOCS, fraction=fraction), n, seed=0)
    assert len(rows) == documents and all("text" in r for r in rows)
    assert abs(documents / (documents + n) - fraction) <= 0.5 / (documents + n)


def test_replayed_documents_are_seeded_and_nested() -> None:
    replay = Replay(documents=DOCS, fraction=0.2)
    small, large = replay_rows(replay, 8, seed=0), replay_rows(replay, 16, seed=0)
    assert (len(small), len(large)) == (2, 4)
    assert large[:2] == small  # the documents for n=8 are inside those for n=16
    assert replay_rows(replay, 16, seed=0) == large  # same seed, same documents
    assert replay_rows(replay, 16, seed=1) != large  # another seed, other documents
    assert len({r["id"] for r in large}) == 4


def test_too_few_documents_or_none_at_all_is_one_clear_error() -> None:
    with pytest.raises(DataError, match=r"needs 40 documents but .*documents.jsonl has only 30"):
        replay_rows(Replay(documents=DOCS, fraction=0.5), 40, seed=0)
    with pytest.raises(DataError, match="rounds to 0 documents"):
        replay_rows(Replay(documents=DOCS, fraction=0.05), 4, seed=0)


def _write_yaml(tmp_path: Path, stage: str, fraction: float = 0.1, **extra) -> Path:
    path = tmp_path / "stage.yaml"
    path.write_text(
        json.dumps(
            {
                "stage": stage,
                "model": "smollm2",
                "data": {"path": str(SFT.path if stage != "text" else DOCS.path)},
                "output_dir": str(tmp_path / "out"),
                "replay": {"documents": {"path": str(DOCS.path)}, "fraction": fraction},
                **extra,
            }
        )
    )
    return path


def test_replay_is_refused_at_load_where_it_means_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a text stage already trains on documents"):
        load_config(_write_yaml(tmp_path, "text"), TrainConfig)
    pref = _write_yaml(tmp_path, "pref", pref={"loss_type": "sigmoid"})
    with pytest.raises(ConfigError, match="a document has no rejected side"):
        load_config(pref, TrainConfig)
    for bad in (0, 1, 1.5):
        with pytest.raises(ConfigError, match=r"replay\.fraction"):
            load_config(_write_yaml(tmp_path, "sft", bad), TrainConfig)
    loaded = load_config(_write_yaml(tmp_path, "instruct"), TrainConfig)
    assert loaded.replay is not None and loaded.replay.seed is None


# ---------------------------------------------------------------------------- TRL's dataset


@pytest.fixture(scope="module")
def model_and_tokenizer(embedded_checkpoint: Path):
    from caml_train.train import load_model_and_tokenizer

    config = _config(embedded_checkpoint, Path("unused"), n=8, fraction=0.2)
    model, tokenizer, _ = load_model_and_tokenizer(config)
    return model.eval(), tokenizer


def _sequences(dataset) -> list[tuple[list[int], list[int]]]:
    out = []
    for row in dataset:
        start = 0
        for n in row.get("seq_lengths") or [len(row["input_ids"])]:
            out.append((row["input_ids"][start : start + n], row["labels"][start : start + n]))
            start += n
    return out


@pytest.mark.slow
def test_prepared_dataset_trains_documents_whole_and_conversations_on_replies(
    model_and_tokenizer, embedded_checkpoint: Path
) -> None:
    """In the dataset the trainer uses: every token of a replayed document is a target, the
    targets of a conversation are exactly its replies (plus <|im_end|>), never a user token."""
    from caml_train.train import build_trainer

    model, tokenizer = model_and_tokenizer
    config = _config(embedded_checkpoint, Path("unused"), n=16, fraction=0.2)
    st = build_trainer(config, model=model, tokenizer=tokenizer)
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    docs, conversations = [], []
    for ids, labels in _sequences(st.trainer.train_dataset):
        (conversations if start in ids else docs).append((ids, labels))
    assert (len(docs), len(conversations)) == (4, 16)  # 4 / 20 = the configured 0.2
    assert st.replay is not None and st.replay.rows == replay_rows(config.replay, 16, seed=3)
    texts = {tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in docs}
    assert texts == {r["text"] for r in st.replay.rows}
    for ids, labels in docs:
        assert labels == ids and ids[-1] == tokenizer.eos_token_id
    sft_rows = {to_messages(r)[0]["content"]: r for r in st.rows}
    for ids, labels in conversations:
        targets = tokenizer.decode([t for t in labels if t != IGNORE_INDEX])
        text = tokenizer.decode(ids)
        prompt = next(p for p in sft_rows if p in text)
        assert targets == sft_rows[prompt]["response"] + "<|im_end|>"
        assert prompt not in targets
        assert all(lab in (IGNORE_INDEX, tok) for tok, lab in zip(ids, labels, strict=True))
    assert st.replay.exposure.sequences == 4
    assert st.replay.exposure.target_tokens == sum(len(ids) - 1 for ids, _ in docs)


@pytest.mark.slow
def test_replayed_documents_are_split_never_cut_and_conversations_keep_their_rule(
    model_and_tokenizer, embedded_checkpoint: Path
) -> None:
    """At a max_length shorter than the documents, each one is split into pieces (as in a text
    stage), while conversations are truncated (as in an sft stage): each part keeps its rule."""
    from caml_train.train import build_trainer

    model, tokenizer = model_and_tokenizer
    config = _config(embedded_checkpoint, Path("unused"), n=16, fraction=0.2, max_length=32)
    st = build_trainer(config, model=model, tokenizer=tokenizer)
    assert st.replay is not None
    want = sum(len(tokenizer(r["text"])["input_ids"]) + 1 for r in st.replay.rows)
    assert st.replay.exposure.tokens == want and st.replay.exposure.sequences > 4
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    seqs = _sequences(st.trainer.train_dataset)
    conversations = [ids for ids, _ in seqs if start in ids]
    assert max(len(ids) for ids, _ in seqs) <= 32
    assert len(conversations) == 16 and all(len(ids) == 32 for ids in conversations)  # cut


# ---------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_a_short_training_run_with_replay_records_the_mix_in_its_run_card(
    model_and_tokenizer, embedded_checkpoint: Path, tmp_path: Path
) -> None:
    from caml_train.data import exposure
    from caml_train.train import build_trainer, train

    hp = {
        "lora": LoraSettings(r=4, alpha=8, dropout=0.0),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "logging_steps": 1,
        "save_steps": 100,
        "warmup_steps": 0.0,
    }
    config = _config(embedded_checkpoint, tmp_path / "stage", n=8, fraction=0.2, **hp)
    card = train(config).run_card
    saved = json.loads((tmp_path / "stage" / "merged" / "run_card.json").read_text())
    assert saved["replay"] == card.replay.model_dump() and card.global_step == 2
    documents = replay_rows(config.replay, 8, seed=3)
    replay = card.replay
    assert (replay.n_documents, replay.n_sft_rows, card.n_rows) == (2, 8, 8)
    assert replay.fraction == replay.fraction_realised == 0.2 and replay.seed == 3
    assert replay.sha256 == rows_sha256(documents) and replay.source == DOCS.describe()
    assert card.data_sha256 != replay.sha256 and card.n_examples == 10
    # the SFT exposure is that of the same stage without replay; the documents come on top
    model, tokenizer = model_and_tokenizer
    same = Hyperparams(lora=None, max_length=128, per_device_train_batch_size=2)
    plain = config.model_copy(update={"replay": None, "hparams": same})
    alone = exposure(build_trainer(plain, model=model, tokenizer=tokenizer).trainer.train_dataset)
    assert card.n_target_tokens == alone.target_tokens + replay.n_target_tokens
    assert card.n_tokens == alone.tokens + replay.n_tokens
    want = sum(len(tokenizer(r["text"])["input_ids"]) for r in documents)  # +EOS, -first token
    assert replay.n_target_tokens == want and 0 < replay.target_tokens_trained
    assert card.target_tokens_trained > 0
