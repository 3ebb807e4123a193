"""The `caml/<dir>` provider: requested max_tokens, per-sequence usage, real stop reasons, batching.

Fast tests run on a tiny hand-built Llama checkpoint (a word-level tokenizer and a 1-layer
model whose output head is set so the next token is known: always EOS, or never EOS), so the
outcome of every request is fixed by construction, not by what a random model happens to say.
The embedded-model tests (slow) check the same on SmolLM2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from inspect_ai.model import GenerateConfig, get_model

from caml_evals.models.local import sequence_outcome

WORDS = ["<unk>", "<pad>", "<eos>", "user", "assistant", ":"] + [f"w{i}" for i in range(26)]
EOS = WORDS.index("<eos>")
FILLER = WORDS.index("w7")


def _checkpoint(path: Path, next_token: int) -> Path:
    """A tiny Llama whose greedy next token is always `next_token` (EOS or a filler word)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    raw = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    raw.pre_tokenizer = WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    config = transformers.LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        eos_token_id=EOS,
        pad_token_id=EOS,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        # The final norm makes hidden states non-zero; a head that maps every direction to
        # one token (and nothing else) fixes the greedy choice whatever the input.
        model.lm_head.weight.zero_()
        model.lm_head.weight[next_token] = 1.0
        model.model.norm.weight.abs_()
        model.model.norm.weight.add_(1.0)
    # positive hidden states: lm_head row of ones gives a positive logit for next_token only
    model.model.norm.register_forward_hook(lambda mod, inp, out: out.abs() + 0.1)
    model.generation_config.eos_token_id = EOS
    model.generation_config.pad_token_id = EOS
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _fixed_head_model(path: Path, next_token: int):
    """Load the checkpoint through the provider, then fix the head again (hooks are not saved)."""
    model = get_model(f"caml/{_checkpoint(path, next_token)}", memoize=False)
    hf = model.api.model
    hf.model.norm.register_forward_hook(lambda mod, inp, out: out.abs() + 0.1)
    return model


@pytest.fixture(scope="module")
def never_stops(tmp_path_factory):
    return _fixed_head_model(tmp_path_factory.mktemp("filler"), FILLER)


@pytest.fixture(scope="module")
def stops_at_once(tmp_path_factory):
    return _fixed_head_model(tmp_path_factory.mktemp("eos"), EOS)


def test_sequence_outcome_cuts_at_first_eos_and_names_the_cap() -> None:
    assert sequence_outcome([5, 6, 2, 2, 2], {2}, 5).n_tokens == 3
    assert sequence_outcome([5, 6, 2, 2, 2], {2}, 5).stop_reason == "stop"
    cut = sequence_outcome([5, 6, 7], {2}, 3)
    assert (cut.n_tokens, cut.stop_reason) == (3, "max_tokens")
    # shorter than the cap without EOS: a stop sequence ended it
    assert sequence_outcome([5, 6], {2}, 8).stop_reason == "stop"
    assert sequence_outcome([9, 5], {2, 9}, 8).tokens == [9]  # any of several EOS ids


async def test_requested_max_tokens_wins_and_a_cut_answer_says_max_tokens(never_stops) -> None:
    out = await never_stops.generate("w1 w2", config=GenerateConfig(max_tokens=5))
    assert out.stop_reason == "max_tokens"
    assert out.usage.output_tokens == 5
    assert out.completion.split() == ["w7"] * 5
    # none requested: Inspect fills in the provider's default, which becomes the token cap
    assert never_stops.api.max_tokens() == 512
    assert (
        never_stops.api._generation_kwargs(GenerateConfig(max_tokens=None))["max_new_tokens"] == 512
    )


async def test_an_answer_ending_on_eos_says_stop_and_counts_its_eos(stops_at_once) -> None:
    out = await stops_at_once.generate("w1 w2", config=GenerateConfig(max_tokens=50))
    assert out.stop_reason == "stop"
    assert out.usage.output_tokens == 1
    assert out.completion == ""


async def test_batched_requests_report_their_own_prompt_and_answer_lengths(never_stops) -> None:
    tokenizer = never_stops.api.tokenizer
    prompts = ["w1", "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12", "w3 w4 w5"]
    caps = [3, 3, 3]
    before = len(never_stops.api.batch_sizes)
    outs = await asyncio.gather(
        *(
            never_stops.generate(p, config=GenerateConfig(max_tokens=n))
            for p, n in zip(prompts, caps)
        )
    )
    assert never_stops.api.batch_sizes[before:] == [3]  # one batch of three
    for prompt, out in zip(prompts, outs):
        chat = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        assert out.usage.input_tokens == len(tokenizer(chat)["input_ids"])  # not the padded length
        assert out.usage.output_tokens == 3
        assert out.metadata["batch_size"] == 3
    assert len({o.usage.input_tokens for o in outs}) == 3


async def test_requests_with_other_settings_are_batched_apart(never_stops) -> None:
    before = len(never_stops.api.batch_sizes)
    outs = await asyncio.gather(
        never_stops.generate("w1", config=GenerateConfig(max_tokens=2)),
        never_stops.generate("w2", config=GenerateConfig(max_tokens=4)),
        never_stops.generate("w3", config=GenerateConfig(max_tokens=2)),
    )
    assert [o.usage.output_tokens for o in outs] == [2, 4, 2]
    assert sorted(never_stops.api.batch_sizes[before:]) == [1, 2]


async def test_logprobs_cover_the_answer_tokens_only(never_stops) -> None:
    out = await never_stops.generate(
        "w1", config=GenerateConfig(max_tokens=4, logprobs=True, top_logprobs=2)
    )
    assert len(out.choices[0].logprobs.content) == 4
    assert out.choices[0].logprobs.content[0].token == "w7"


def test_cpu_default_batch_and_connection_limit(never_stops) -> None:
    from caml_evals.models.local import CPU_BATCH

    assert never_stops.api.max_connections() == CPU_BATCH


# ------------------------------------------------------------------------- the embedded model (slow)


@pytest.mark.slow
async def test_embedded_model_honours_max_tokens_and_reports_stop_reasons(
    embedded_checkpoint: Path,
) -> None:
    model = get_model("caml/smollm2", memoize=False)
    cut = await model.generate(
        "Write a long essay about farm animals.", config=GenerateConfig(max_tokens=6)
    )
    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 6
    short = await model.generate(
        "Reply with the single word: yes", config=GenerateConfig(max_tokens=40)
    )
    assert short.stop_reason == "stop"
    assert 0 < short.usage.output_tokens < 40
    # batched: each request's own prompt length, the same greedy answers as alone
    prompts = ["Name one animal.", "Name one colour that a barn is often painted, please."]
    alone = [await model.generate(p, config=GenerateConfig(max_tokens=5)) for p in prompts]
    together = await asyncio.gather(
        *(model.generate(p, config=GenerateConfig(max_tokens=5)) for p in prompts)
    )
    assert [o.usage.input_tokens for o in together] == [o.usage.input_tokens for o in alone]
    assert together[0].usage.input_tokens != together[1].usage.input_tokens
    assert all(o.usage.output_tokens <= 5 for o in together)
