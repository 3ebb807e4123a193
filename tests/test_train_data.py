"""caml_train.data: loading and validating rows, tokenisation, assistant-only labels on the real
SmolLM2 chat template, packing, and the absence of cross-document attention in packed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caml_evals.datasource import DataSourceError
from caml_train.config import DataSource
from caml_train.data import (
    IGNORE_INDEX,
    DataError,
    Example,
    PackedCollator,
    PaddedCollator,
    build_examples,
    load_rows,
    pack,
    rows_sha256,
    sample_rows,
    tokenize_conversation,
    tokenize_document,
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
    """The embedded model prepared exactly as for full fine-tuning (no LoRA), in eval mode."""
    from caml_train.config import Hyperparams, TrainConfig
    from caml_train.train import load_model_and_tokenizer

    config = TrainConfig(
        stage="text",
        model=str(embedded_checkpoint),
        data=DataSource(path=TINY / "documents.jsonl"),
        output_dir=Path("unused"),
        hparams=Hyperparams(lora=None),
    )
    model, _, _ = load_model_and_tokenizer(config)
    return model.eval()


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


def test_malformed_jsonl_lines_are_reported_by_number() -> None:
    with pytest.raises(DataSourceError, match="line 2"):
        load_rows(DataSource(path=FIXTURES / "malformed.jsonl"))


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


def test_bad_rows_raise_with_reasons_or_are_skipped_and_listed(tokenizer) -> None:
    rows = load_rows(DataSource(path=FIXTURES / "bad_pairs.jsonl"))
    with pytest.raises(DataError) as err:
        build_examples(rows, "instruct", tokenizer, 128)
    message = str(err.value)
    assert "3 unusable" in message
    for rid in ("empty-answer", "bad-role", "no-columns"):
        assert rid in message
    built = build_examples(rows, "instruct", tokenizer, 128, on_bad_rows="skip")
    assert built.rows_used == 2 and len(built.problems) == 3
    docs = load_rows(DataSource(path=FIXTURES / "bad_documents.jsonl"))
    built = build_examples(docs, "text", tokenizer, 64, on_bad_rows="skip")
    assert built.rows_used == 1 and [p.split(":")[0] for p in built.problems.items] == [
        "row 1 (id d2)",
        "row 2 (id d3)",
    ]


# ---------------------------------------------------------------------------- tokenisation


def test_document_labels_every_token_but_the_first_and_split_long_documents(tokenizer) -> None:
    text = load_rows(DataSource(path=TINY / "documents.jsonl"))[0]["text"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    (ex,) = tokenize_document(text, tokenizer, 512)
    assert ex.input_ids == ids and ex.input_ids[-1] == tokenizer.eos_token_id
    assert ex.labels == [IGNORE_INDEX] + ids[1:]
    pieces = tokenize_document(text, tokenizer, 16)
    assert all(len(p) <= 16 for p in pieces)
    assert [t for p in pieces for t in p.input_ids] == ids  # split, not truncated


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
def test_assistant_only_labels_token_by_token_on_smollm2_template(tokenizer, system: bool) -> None:
    messages = [
        {"role": "user", "content": "My neighbour's dog barks all day. What can I do?"},
        {
            "role": "assistant",
            "content": "Talk to your neighbour kindly first: the dog may be lonely or bored.",
        },
        {"role": "user", "content": "And if that fails?"},
        {"role": "assistant", "content": "Contact your local council's animal welfare officer."},
    ]
    if system:
        messages.insert(0, {"role": "system", "content": "You are a careful assistant."})
    ex = tokenize_conversation(messages, tokenizer, 1024)
    assert ex is not None
    # Same tokens as the library's own chat-template tokenisation.
    reference = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)[
        "input_ids"
    ]
    assert ex.input_ids == list(reference)
    expected = _expected_assistant_mask(ex.input_ids, tokenizer)
    assert sum(expected) > 0
    for pos, (tok, lab, want) in enumerate(zip(ex.input_ids, ex.labels, expected)):
        assert (lab != IGNORE_INDEX) == want, f"token {pos} {tokenizer.decode([tok])!r}"
        assert lab in (IGNORE_INDEX, tok)
    # Each labelled run decodes to exactly one reply plus its end-of-turn token.
    runs, current = [], []
    for tok, lab in zip(ex.input_ids, ex.labels):
        if lab != IGNORE_INDEX:
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    assert [tokenizer.decode(r) for r in runs] == [
        messages[-3]["content"] + "<|im_end|>",
        messages[-1]["content"] + "<|im_end|>",
    ]


def test_truncated_conversation_without_assistant_tokens_is_rejected(tokenizer) -> None:
    messages = [
        {"role": "user", "content": "word " * 200},
        {"role": "assistant", "content": "Short."},
    ]
    assert tokenize_conversation(messages, tokenizer, 64) is None
    with pytest.raises(DataError, match="no assistant token within seq_len=64"):
        build_examples([{"messages": messages}], "sft", tokenizer, 64)


# ---------------------------------------------------------------------------- packing


def test_pack_keeps_every_example_whole_with_positions_restarting() -> None:
    examples = [
        Example(
            list(range(100 + i, 100 + i + n)), [IGNORE_INDEX] + list(range(101 + i, 100 + i + n))
        )
        for i, n in enumerate([5, 9, 3, 7, 12, 2, 6])
    ]
    rows = pack(examples, 16, pad_token_id=0)
    assert all(len(r.input_ids) == len(r.labels) == len(r.position_ids) == 16 for r in rows)
    assert len(rows) == 3  # 44 tokens first-fit-decreasing into 16-token rows
    seen = []
    for r in rows:
        start = 0
        for length in r.lengths:
            seg = slice(start, start + length)
            assert r.position_ids[seg] == list(range(length))
            assert r.labels[start] == IGNORE_INDEX  # never predict across a boundary
            seen.append((tuple(r.input_ids[seg]), tuple(r.labels[seg])))
            start += length
    real = {(tuple(e.input_ids), tuple(e.labels)) for e in examples}
    assert real <= set(seen)
    pads = [s for s in seen if s not in real]
    assert all(set(ids) == {0} and set(labs) == {IGNORE_INDEX} for ids, labs in pads)
    assert sum(len(ids) for ids, _ in seen if (ids, _) in real) == 44


def test_collators_mask_padding_even_when_pad_is_eos(tokenizer) -> None:
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos  # SmolLM2: padding and end-of-text share an id
    rows = [
        {"input_ids": [5, 6, eos], "labels": [IGNORE_INDEX, 6, eos]},
        {"input_ids": [7, 8], "labels": [IGNORE_INDEX, 8]},
    ]
    batch = PaddedCollator(eos)(rows)
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, eos], [IGNORE_INDEX, 8, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    packed = PackedCollator()(
        [{"input_ids": [1, 2], "labels": [IGNORE_INDEX, 2], "position_ids": [0, 1]}]
    )
    assert "attention_mask" not in packed and packed["position_ids"].tolist() == [[0, 1]]


@pytest.mark.slow
def test_packed_rows_have_no_cross_document_attention(tokenizer, full_model) -> None:
    """Logits of each document inside a packed row equal its logits alone; without the position
    reset they do not (so this test can fail)."""
    import torch

    model = full_model
    texts = [r["text"] for r in load_rows(DataSource(path=TINY / "documents.jsonl"))[:3]]
    examples = [tokenize_document(t, tokenizer, 96)[0] for t in texts]
    rows = pack(examples, 256, tokenizer.pad_token_id)
    assert len(rows) == 1 and len(rows[0].lengths) == 4  # 3 documents + padding
    batch = PackedCollator()(
        [
            {"input_ids": r.input_ids, "labels": r.labels, "position_ids": r.position_ids}
            for r in rows
        ]
    )
    with torch.no_grad():
        out = model(**batch)  # exactly what the Trainer runs: ids, labels, position_ids, no mask
        packed = out.logits[0]
        leaky = model(input_ids=batch["input_ids"]).logits[0]
        start, total, n_targets = 0, 0.0, 0
        for ex in examples:  # pack orders a row's members by example index
            alone = model(input_ids=torch.tensor([ex.input_ids])).logits[0]
            seg = slice(start, start + len(ex))
            assert rows[0].input_ids[seg] == ex.input_ids
            assert torch.allclose(packed[seg], alone, atol=2e-3), (packed[seg] - alone).abs().max()
            if start > 0:
                assert not torch.allclose(leaky[seg], alone, atol=1e-1)
            targets = torch.tensor(ex.labels[1:])
            total += torch.nn.functional.cross_entropy(
                alone[:-1], targets, ignore_index=IGNORE_INDEX, reduction="sum"
            )
            n_targets += int((targets != IGNORE_INDEX).sum())
            start += len(ex)
        # the Trainer's loss on the packed row is the per-document losses combined
        assert torch.allclose(out.loss, total / n_targets, atol=1e-3)


def test_flash_attention_gets_flattened_packed_batches() -> None:
    """transformers sees packed segments under flash attention only in a batch of ONE row."""
    from caml_train.data import BuiltDataset, Problems, needs_flat_batches, training_rows

    assert needs_flat_batches("flash_attention_2") and needs_flat_batches("flash_attention_3")
    assert not needs_flat_batches("sdpa") and not needs_flat_batches(None)
    built = BuiltDataset(
        [Example([1, 2, 3], [-100, 2, 3]), Example([4, 5], [-100, 5])], 2, Problems()
    )
    rows, collator = training_rows(built, 4, True, 0, "flash_attention_2")
    batch = collator(rows)
    assert batch["input_ids"].shape == (1, 8) and "attention_mask" not in batch
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 0, 1, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 2, 3, -100, -100, 5, -100, -100]]
    assert not training_rows(built, 4, True, 0, "sdpa")[1].flatten


@pytest.mark.slow
def test_flattened_packed_batch_equals_the_stacked_batch(tokenizer, full_model) -> None:
    """Under sdpa both layouts give the same per-token logits and loss, so flattening (what
    flash attention needs) changes nothing but the kernel's view: no token predicts across the
    seam between two rows, and no document sees another."""
    import torch

    from caml_train.data import as_rows

    model = full_model
    texts = [r["text"] for r in load_rows(DataSource(path=TINY / "documents.jsonl"))[:6]]
    examples = [tokenize_document(t, tokenizer, 60)[0] for t in texts]
    rows = as_rows(pack(examples, 128, tokenizer.pad_token_id))
    assert len(rows) >= 2
    stacked, flat = PackedCollator()(rows), PackedCollator(flatten=True)(rows)
    with torch.no_grad():
        a, b = model(**stacked), model(**flat)
    vocab = a.logits.shape[-1]
    assert torch.allclose(a.logits.reshape(-1, vocab), b.logits[0], atol=2e-3)
    assert torch.allclose(a.loss, b.loss, atol=1e-4)
