"""Training throughput through the TRL path: packed (BFD, padding-free) vs padded batches on the
same realistic corpus, with the losses of both paths compared.

    python bench/train_throughput.py                      # CPU: lengths scaled down 10x
    python bench/train_throughput.py --scale 1 --steps 20 --max-length 4096 --bf16 \\
        --model HuggingFaceTB/SmolLM2-1.7B-Instruct       # GPU: the research's lengths

The corpus is made here: documents whose lengths follow a log-normal distribution with the
research corpus's ~2,500-token mean and a wide spread (sigma 0.6: a few hundred to ~10,000
tokens), `--scale` shrinks every length by the same factor for CPU runs (the shape stays).
Both paths are `caml_train.train.build_trainer` (TRL's SFTTrainer, LoRA r=16 unless --full),
one optimizer step per batch of `--batch-size` sequences (padded) or packed rows (packed).
Printed per path: non-pad tokens/s, the padding share of the positions computed, and on a GPU
model FLOPs utilisation (6 * params * non-pad tokens / time / peak; with LoRA ~4N is closer,
so MFU is overstated by up to 1.5x). Then the ratio, and the ratio to the pre-TRL trainer's
figure (1.31x, on the tiny corpus: short, even documents). Before timing, the mean loss of the
untrained model over the whole corpus is computed through each path's own batches: the two
must agree (same tokens, same targets, no cross-document attention), else the bench fails.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

PRE_TRL_RATIO = 1.31
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
WORDS = [
    "the",
    "hen",
    "barn",
    "water",
    "grain",
    "field",
    "farmer",
    "calf",
    "welfare",
    "market",
    "rain",
    "river",
    "price",
    "law",
    "court",
    "study",
    "pain",
    "care",
    "light",
    "city",
    "road",
    "school",
    "fish",
    "sea",
    "net",
    "boat",
    "cost",
    "plan",
    "vote",
    "report",
    "data",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps per path")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--docs", type=int, default=24, help="documents in the corpus")
    p.add_argument("--mean-tokens", type=float, default=2500.0)
    p.add_argument("--sigma", type=float, default=0.6, help="log-normal spread of lengths")
    p.add_argument("--scale", type=float, default=0.1, help="length factor (1 = research)")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="packed row length; default: a power of two above the longest document, so both "
        "paths train on the same whole documents (nothing truncated or split)",
    )
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--attn", default=None, help="attn_implementation, e.g. flash_attention_2")
    p.add_argument("--rtol", type=float, default=2e-3, help="allowed relative loss gap")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def make_corpus(path: Path, args: argparse.Namespace) -> list[int]:
    """Documents of log-normal word counts (mean `mean_tokens * scale`); returns the lengths."""
    rng = random.Random(args.seed)
    mu = math.log(args.mean_tokens * args.scale) - args.sigma**2 / 2
    lengths = [max(8, round(rng.lognormvariate(mu, args.sigma))) for _ in range(args.docs)]
    with path.open("w", encoding="utf-8") as f:
        for i, n in enumerate(lengths):
            words = [rng.choice(WORDS) for _ in range(n)]
            text = " ".join(words).capitalize() + "."
            f.write(json.dumps({"id": f"bench-{i}", "text": text}) + "\n")
    return lengths


def corpus_loss(trainer) -> tuple[float, int]:
    """Mean token loss of the current model over one pass of the trainer's own batches."""
    import torch

    model = trainer.model
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in trainer.get_train_dataloader():
            targets = int((batch["labels"][:, 1:] != -100).sum())
            out = model(**{k: v for k, v in batch.items()})
            total += float(out.loss) * targets
            n += targets
    model.train()
    return total / n, n


def main() -> int:
    import torch
    from transformers import TrainerCallback

    from caml_train.config import DataSource, Hyperparams, LoraSettings, TrainConfig
    from caml_train.train import build_trainer

    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="caml-bench-"))
    corpus = tmp / "corpus.jsonl"
    lengths = make_corpus(corpus, args)
    if args.max_length is None:  # ~1.1 tokens per word of this vocabulary, plus EOS
        args.max_length = 2 ** math.ceil(math.log2(max(lengths) * 1.5 + 2))
    print(
        f"corpus: {len(lengths)} documents, words per document mean {sum(lengths) / len(lengths):.0f}"
        f" (min {min(lengths)}, max {max(lengths)}; research mean {args.mean_tokens:.0f} x scale "
        f"{args.scale}), max_length {args.max_length}, batch {args.batch_size}"
    )

    class Clock(TrainerCallback):
        def __init__(self, trainer):
            self.trainer, self.elapsed, self.t0 = trainer, 0.0, 0.0
            self.tokens = self.slots = 0

        def on_step_begin(self, a, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()
            self.before = (self.trainer.caml_tokens, self.trainer.caml_slots)

        def on_step_end(self, a, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if state.global_step > args.warmup:
                self.elapsed += time.perf_counter() - self.t0
                self.tokens += self.trainer.caml_tokens - self.before[0]
                self.slots += self.trainer.caml_slots - self.before[1]

    results, losses = {}, {}
    n_params = 0
    for name, packing in (("padded", False), ("packed", True)):
        hp = Hyperparams(
            max_length=args.max_length,
            packing=packing,
            packing_strategy="bfd_split",
            per_device_train_batch_size=args.batch_size,
            max_steps=args.warmup + args.steps,
            learning_rate=1e-5,
            warmup_steps=0.0,
            logging_steps=1000,
            save_steps=10_000,
            lora=None if args.full else LoraSettings(),
            bf16=args.bf16,
            attn_implementation=args.attn,
        )
        config = TrainConfig(
            stage="text",
            model=args.model,
            data=DataSource(path=corpus),
            output_dir=tmp / name,
            seed=args.seed,
            hparams=hp,
        )
        st = build_trainer(config)
        trainer = st.trainer
        losses[name] = corpus_loss(trainer)
        clock = Clock(trainer)
        trainer.add_callback(clock)
        trainer.train()
        n_params = sum(p.numel() for p in trainer.model.parameters())
        rate = clock.tokens / clock.elapsed
        pad = 1 - clock.tokens / clock.slots
        results[name] = rate
        line = f"{name:>7}: {rate:9.1f} non-pad tokens/s, {100 * pad:4.1f}% padding"
        line += f", loss before training {losses[name][0]:.4f} over {losses[name][1]} targets"
        if torch.cuda.is_available():
            peak = next(
                (v for k, v in PEAK_TFLOPS.items() if k in torch.cuda.get_device_name()), None
            )
            if peak:
                line += f", MFU {100 * 6 * n_params * rate / (peak * 1e12):.1f}%"
        print(line, flush=True)
        del trainer, st
    ratio = results["packed"] / results["padded"]
    print(
        f"packed/padded: {ratio:.2f}x  (pre-TRL trainer, tiny corpus: {PRE_TRL_RATIO:.2f}x; "
        f"this / that = {ratio / PRE_TRL_RATIO:.2f})"
    )
    (a, na), (b, nb) = losses["padded"], losses["packed"]
    gap = abs(a - b) / abs(a)
    print(
        f"losses: padded {a:.5f} vs packed {b:.5f} (relative gap {gap:.1e}, tolerance {args.rtol:.0e})"
    )
    if na != nb or gap > args.rtol:
        print("FAIL: the two paths do not train on the same targets", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
