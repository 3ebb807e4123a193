"""Training throughput: packed vs padded batches on the same corpus (ours vs the baseline).

    python bench/train_throughput.py --steps 5 --seq-len 256
    python bench/train_throughput.py --steps 50 --seq-len 2048 --batch-size 8 --bf16 \\
        --corpus my_corpus.jsonl --model HuggingFaceTB/SmolLM2-1.7B     # on a GPU

Both variants run the same model preparation, collators and optimizer as `caml_train.train`
(LoRA unless --full), for the same number of optimizer steps; the measure is NON-PAD tokens per
second (padding is work that teaches nothing). On a GPU it also prints model FLOPs utilisation,
6 * params * tokens / time / peak (6N per token is the full fine-tuning count; with LoRA the
frozen weights need no weight gradients, so ~4N is closer and MFU is overstated by up to 1.5x).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 peak TFLOP/s by device name fragment (vendor data sheets; SXM parts).
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 125.0,
    "L4": 121.0,
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--model", default="smollm2")
    p.add_argument(
        "--corpus",
        type=Path,
        nargs="+",
        default=[
            ROOT / "examples/tiny/documents.jsonl",
            ROOT / "examples/tiny/control_documents.jsonl",
        ],
    )
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA r=16")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--attn", default=None, help="attn_implementation, e.g. flash_attention_2")
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="override the device's bf16 peak"
    )
    return p.parse_args()


def main() -> None:
    import torch

    from caml_train.config import DataSource, Hyperparams, TrainConfig
    from caml_train.data import (
        IGNORE_INDEX,
        PackedCollator,
        PaddedCollator,
        build_examples,
        load_rows,
        needs_flat_batches,
        pack,
    )
    from caml_train.train import load_model_and_tokenizer

    args = parse_args()
    hp = Hyperparams(
        seq_len=args.seq_len,
        lora=None if args.full else Hyperparams().lora,
        bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        attn_implementation=args.attn,
    )
    config = TrainConfig(
        stage="text",
        model=args.model,
        data=DataSource(path=args.corpus[0]),
        output_dir=Path("unused"),
        hparams=hp,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer, source = load_model_and_tokenizer(config)
    model.to(device).train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    rows = [r for path in args.corpus for r in load_rows(DataSource(path=path))]
    examples = build_examples(rows, "text", tokenizer, args.seq_len).examples
    n_params = sum(p.numel() for p in model.parameters())
    pad = tokenizer.pad_token_id

    packed_rows = [
        {"input_ids": r.input_ids, "labels": r.labels, "position_ids": r.position_ids}
        for r in pack(examples, args.seq_len, pad)
    ]
    padded_rows = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    variants = {
        "padded": (padded_rows, PaddedCollator(pad)),
        # flash attention sees packed segments only in one flattened row (as caml_train.train does)
        "packed": (packed_rows, PackedCollator(flatten=needs_flat_batches(args.attn))),
    }
    print(
        f"model {source} ({n_params / 1e6:.0f}M params, {'full' if args.full else 'LoRA r=16'}), "
        f"device {device}, corpus {len(rows)} docs -> {len(examples)} examples, "
        f"seq_len {args.seq_len}, batch {args.batch_size}, "
        f"{args.steps} steps (+{args.warmup} warm-up)"
    )

    results = {}
    for name, (data, collate) in variants.items():
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        batches = (collate(list(b)) for b in _batched(itertools.cycle(data), args.batch_size))
        real = total = 0
        elapsed = 0.0
        for step in range(args.warmup + args.steps):
            batch = {k: v.to(device) for k, v in next(batches).items()}
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(**batch).loss
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if step >= args.warmup:
                elapsed += time.perf_counter() - t0
                ids = batch["input_ids"]
                mask = batch.get("attention_mask")
                if mask is None:  # packed: padding is the label-less tail segment of each row
                    mask = _packed_real_mask(batch, IGNORE_INDEX)
                real += int(mask.sum())
                total += ids.numel()
        results[name] = (real / elapsed, real, total, elapsed)
        print(
            f"{name:>7}: {real / elapsed:9.1f} non-pad tokens/s  ({real}/{total} tokens real, "
            f"{100 * (1 - real / total):.0f}% padding, {elapsed:.2f}s)"
        )
        if device == "cuda":
            peak = args.peak_tflops or _peak(torch.cuda.get_device_name())
            if peak:
                mfu = 6 * n_params * real / elapsed / (peak * 1e12)
                print(f"         MFU {100 * mfu:.1f}% of {peak:.0f} TFLOP/s (6*N*non-pad tokens)")
    ratio = results["packed"][0] / results["padded"][0]
    print(f"packed/padded non-pad tokens/s ratio: {ratio:.2f}x")


def _packed_real_mask(batch, ignore_index: int):
    """Real tokens of packed rows: everything before the trailing padding segment. The padding
    segment is the last one, starts at position 0 and has no labels at all."""
    import torch

    pos, labels = batch["position_ids"], batch["labels"]
    mask = torch.ones_like(pos)
    for r in range(pos.shape[0]):
        starts = (pos[r] == 0).nonzero().flatten().tolist()
        last = starts[-1]
        if last > 0 and bool((labels[r, last:] == ignore_index).all()):
            mask[r, last:] = 0
    return mask


def _batched(it, n):
    while True:
        yield [next(it) for _ in range(n)]


def _peak(name: str) -> float | None:
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops
    return None


if __name__ == "__main__":
    main()
