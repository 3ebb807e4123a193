"""caml_train.data and the TRL preparation: loading and validating rows (bad lines skipped or
raised), the shipped SmolLM2 training chat template, assistant-only labels as TRL builds them,
BFD packing without cross-document attention, and token accounting."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from caml_evals.datasource import DataSourceError
from caml_train.config import DataSource
from caml_train.data import (
    IGNORE_INDEX,
    DataError,
    Problems,
    exposure,
    load_rows,
    rows_sha256,
    sample_rows,
    to_records,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "train"
TINY = ROOT / "examples" / "tiny"


@pytest.fixture(scope="module")
def tokenizer(embedded_checkpoint: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_checkpoint)


@pytest.fixture(scope="module")
def full_model(embedded_checkpoint: Path):
    """The embedded model loaded exactly as for full fine-tuning (no LoRA), in eval mode."""
    from caml_train.train import load_model_and_tokenizer

    model, _, _ = load_model_and_tokenizer(
        _config(embedded_checkpoint, "text", TINY / "documents.jsonl")
    )
    return model.eval()


def _config(checkpoint: Path, stage: str, data: Path, **hp):
    from caml_train.config import Hyperparams, TrainConfig

    return TrainConfig(
        stage=stage,
        model=str(checkpoint),
        data=DataSource(path=data),
        output_dir=Path("unused"),
        hparams=Hyperparams(lora=None, per_device_train_batch_size=2, **hp),
    )


# ---------------------------------------------------------------------------- rows


def test_load_rows_jsonl_parquet_and_folder(tmp_path: Path) -> None:
    import pandas as pd

    rows = load_rows(DataSource(path=TINY / "sft.jsonl"))
    assert len(rows) == 40 and {"prompt", "response"} <= set(rows[0])
    pd.DataFrame(rows[:5]).to_parquet(tmp_path / "part.parquet")
    (tmp_path / "more.jsonl").write_text("\n".join(json.dumps(r) for r in rows[5:7]) + "\n")
    assert len(load_rows(DataSource(path=tmp_path / "part.parquet"))) == 5
    (tmp_path / "more.rejected.jsonl").write_text(json.dumps(rows[9]) + "\n")  # generator rejects
    assert len(load_rows(DataSource(path=tmp_path))) == 7  # a folder: every jsonl/parquet file


def test_malformed_jsonl_lines_are_reported_by_number_or_skipped_and_listed() -> None:
    """Defect 9: `on_bad_rows: skip` covers broken JSON lines too (recorded, not lost)."""
    source = DataSource(path=FIXTURES / "malformed.jsonl")
    with pytest.raises(DataSourceError, match="line 2") as err:
        load_rows(source)
    assert "on_bad_rows: skip" in str(err.value) and "\n" not in str(err.value)
    problems = Problems()
    rows = load_rows(source, problems)
    assert rows and all(isinstance(r, dict) for r in rows)
    assert problems.items and problems.items[0].startswith("malformed.jsonl line 2: not valid JSON")


def test_non_utf8_and_folder_data_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataSourceError, match="not UTF-8"):
        load_rows(DataSource(path=bad))
    with pytest.raises(DataSourceError, match="no JSONL/parquet data"):
        load_rows(DataSource(path=tmp_path / "missing"))


def test_hub_source_must_be_pinned_and_fails_clearly_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="40-hex commit sha"):
        DataSource(hub="HuggingFaceH4/ultrachat_200k", revision="main")
    with pytest.raises(ValueError, match="exactly one"):
        DataSource()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    src = DataSource(
        hub="HuggingFaceH4/ultrachat_200k",
        revision="8049631c405ae6576f93f445c6b8166f76f5505a",
        split="train_sft",
    )
    with pytest.raises(DataSourceError, match="offline"):
        load_rows(src)


def test_sample_rows_is_seeded_nested_and_refuses_too_many() -> None:
    rows = [{"id": i} for i in range(50)]
    small, large = sample_rows(rows, 10, seed=3), sample_rows(rows, 20, seed=3)
    assert small == large[:10]  # N=10 is inside N=20: sizes differ only by the added data
    assert small == sample_rows(rows, 10, seed=3) and small != sample_rows(rows, 10, seed=4)
    assert rows_sha256(small) != rows_sha256(sample_rows(rows, 10, seed=4))
    with pytest.raises(DataError, match="only 50 rows"):
        sample_rows(rows, 51, seed=0)


def test_bad_rows_raise_with_reasons_or_are_skipped_and_listed() -> None:
    rows = load_rows(DataSource(path=FIXTURES / "bad_pairs.jsonl"))
    with pytest.raises(DataError) as err:
        to_records(rows, "instruct")
    message = str(err.value)
    assert "3 unusable" in message
    for rid in ("empty-answer", "bad-role", "no-columns"):
        assert rid in message
    built = to_records(rows, "instruct", on_bad_rows="skip")
    assert built.rows_used == 2 and len(built.problems) == 3
    assert all(r["messages"][-1]["role"] == "assistant" for r in built.records)
    docs = load_rows(DataSource(path=FIXTURES / "bad_documents.jsonl"))
    built = to_records(docs, "text", on_bad_rows="skip")
    assert built.rows_used == 1 and [p.split(":")[0] for p in built.problems.items] == [
        "row 1 (id d2)",
        "row 2 (id d3)",
    ]


# ---------------------------------------------------------------------------- chat template


CONVERSATION = [
    {"role": "user", "content": "My neighbour's dog barks all day. What can I do?"},
    {"role": "assistant", "content": "Talk to your neighbour kindly first: the dog may be bored."},
    {"role": "user", "content": "And if that fails?"},
    {"role": "assistant", "content": "Contact your local council's animal welfare officer."},
]


def _expected_assistant_mask(ids: list[int], tokenizer) -> list[bool]:
    """Independent oracle on token ids: after each `<|im_start|>assistant\\n`, every token up to
    and including the next `<|im_end|>` is a target; nothing else is."""
    header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask, i = [False] * len(ids), 0
    while i < len(ids):
        if ids[i : i + len(header)] == header:
            j = i + len(header)
            while j < len(ids) and ids[j] != end:
                mask[j] = True
                j += 1
            if j < len(ids):
                mask[j] = True
            i = j
        i += 1
    return mask


@pytest.mark.parametrize("system", [False, True])
def test_shipped_smollm2_training_template_renders_the_same_and_marks_replies(
    tokenizer, system: bool
) -> None:
    from caml_train.chat_templates import training_chat_template

    messages = ([{"role": "system", "content": "Be careful."}] if system else []) + CONVERSATION
    template = training_chat_template(tokenizer)
    assert template is not None and "{%- generation -%}" in template
    for gen in (False, True):
        assert tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=gen, chat_template=template
        ) == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    out = tokenizer.apply_chat_template(
        messages, chat_template=template, return_dict=True, return_assistant_tokens_mask=True
    )
    expected = _expected_assistant_mask(list(out["input_ids"]), tokenizer)
    assert sum(expected) > 0 and [bool(m) for m in out["assistant_masks"]] == expected


def test_a_template_without_a_known_training_variant_is_a_config_error(tokenizer) -> None:
    import copy

    from caml_evals.errors import ConfigError
    from caml_train.chat_templates import training_chat_template

    other = copy.copy(tokenizer)
    other.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ConfigError, match="assistant_only_loss: false"):
        training_chat_template(other)


# ---------------------------------------------------------------------------- TRL preparation


def test_exposure_counts_tokens_and_targets_per_sequence() -> None:
    import datasets

    packed = datasets.Dataset.from_list(
        [
            {"input_ids": [1, 2, 3, 4, 5], "labels": [1, 2, 3, -100, 5], "seq_lengths": [3, 2]},
            {"input_ids": [6, 7], "labels": [-100, -100], "seq_lengths": [2]},
        ]
    )
    seen = exposure(packed)
    assert (seen.rows, seen.sequences, seen.tokens) == (2, 3, 7)
    assert seen.target_tokens == 2 + 1 and seen.empty_sequences == 1
    plain = exposure(datasets.Dataset.from_list([{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}]))
    assert (plain.rows, plain.sequences, plain.target_tokens) == (1, 1, 2)


@pytest.mark.slow
def test_trl_labels_are_the_assistant_replies_packed_or_not(
    tokenizer, full_model, embedded_checkpoint: Path, tmp_path: Path
) -> None:
    """The labels SFTTrainer trains on: exactly the replies plus their <|im_end|> (the oracle),
    the same tokens packed (BFD) and unpacked; a document stage labels every token."""
    from caml_train.train import build_trainer

    rows = load_rows(DataSource(path=TINY / "pairs.jsonl"))[:4]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    per_mode = {}
    for packing in (False, True):
        config = _config(embedded_checkpoint, "instruct", data, max_length=512, packing=packing)
        ds = build_trainer(config, model=full_model, tokenizer=tokenizer).trainer.train_dataset
        seqs = []
        for row in ds:
            lengths = row.get("seq_lengths") or [len(row["input_ids"])]
            start = 0
            for n in lengths:
                seqs.append((row["input_ids"][start : start + n], row["labels"][start : start + n]))
                start += n
        for ids, labels in seqs:
            expected = _expected_assistant_mask(ids, tokenizer)
            assert [lab != IGNORE_INDEX for lab in labels] == expected
            assert all(lab in (IGNORE_INDEX, tok) for tok, lab in zip(ids, labels))
        per_mode[packing] = sorted((tuple(a), tuple(b)) for a, b in seqs)
    assert per_mode[True] == per_mode[False] and len(per_mode[True]) == 4
    text = _config(embedded_checkpoint, "text", TINY / "documents.jsonl", max_length=64)
    ds = build_trainer(text, model=full_model, tokenizer=tokenizer).trainer.train_dataset
    docs = [r["text"] for r in load_rows(DataSource(path=TINY / "documents.jsonl"))]
    eos = tokenizer.eos_token_id
    want = sum(len(tokenizer(d, add_special_tokens=False)["input_ids"]) + 1 for d in docs)
    assert sum(len(r["input_ids"]) for r in ds) == want  # bfd_split: long documents split, not cut
    assert all(r["labels"] == r["input_ids"] for r in ds) and eos in ds[0]["input_ids"]
    assert max(len(r["input_ids"]) for r in ds) <= 64


@pytest.mark.slow
def test_packed_padding_free_batches_have_no_cross_document_attention(
    tokenizer, full_model, embedded_checkpoint: Path
) -> None:
    """Logits of each document in TRL's packed, padding-free batch equal its logits alone, and
    the batch loss is the per-document losses combined; without the position reset they differ
    (so this test can fail)."""
    import torch

    from caml_train.train import build_trainer

    config = _config(embedded_checkpoint, "text", TINY / "documents.jsonl", max_length=256)
    trainer = build_trainer(config, model=full_model, tokenizer=tokenizer).trainer
    rows = [trainer.train_dataset[i] for i in range(2)]
    batch = trainer.data_collator(rows)
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    ids, pos = batch["input_ids"][0], batch["position_ids"][0]
    starts = (pos == 0).nonzero().flatten().tolist() + [len(ids)]
    assert len(starts) - 1 == sum(len(r["seq_lengths"]) for r in rows) >= 3
    inputs = {k: batch[k] for k in ("input_ids", "labels", "position_ids")}
    with torch.no_grad():
        out = full_model(**inputs)
        leaky = full_model(input_ids=batch["input_ids"]).logits[0]
        total, n_targets = 0.0, 0
        for a, b in itertools.pairwise(starts):
            alone = full_model(input_ids=ids[a:b][None]).logits[0]
            assert torch.allclose(out.logits[0, a:b], alone, atol=2e-3)
            if a > 0:
                assert not torch.allclose(leaky[a:b], alone, atol=1e-1)
            targets = batch["labels"][0, a + 1 : b]
            total += torch.nn.functional.cross_entropy(
                alone[:-1], targets, ignore_index=IGNORE_INDEX, reduction="sum"
            )
            n_targets += int((targets != IGNORE_INDEX).sum())
    assert torch.allclose(out.loss, total / n_targets, atol=1e-3)


def test_value_tokens_count_sentences_with_a_keyword(tokenizer) -> None:
    from caml_train.data import Records, value_tokens

    records = Records(
        [
            {"text": "Hens feel pain. The market rose today.\nCalves call for their mothers!"},
            {
                "messages": [
                    {"role": "user", "content": "Do hens feel pain?"},
                    {"role": "assistant", "content": "Yes, hens feel pain. Stocks fell."},
                ]
            },
        ],
        [0, 1],
        Problems(),
    )
    count = lambda s: len(tokenizer(s, add_special_tokens=False)["input_ids"])
    want = count("Hens feel pain.") + count("Calves call for their mothers!")
    want += count("Yes, hens feel pain.")  # the user's question is not trained on
    assert value_tokens(records, tokenizer, ["feel PAIN", "mothers"]) == want
    assert value_tokens(records, tokenizer, []) == 0
