#!/usr/bin/env bash
# GPU smoke test of the training kit (never needed by tests): under 8 minutes on one H100/H200.
#
#   1. doc-tunes SmolLM2-1.7B-Instruct (or $MODEL) for a fixed number of steps in bf16 with
#      sdpa (or $ATTN=flash_attention_2), packed and padded, printing tokens/s and MFU of each
#      (bench/train_throughput.py through the TRL path, losses of both paths compared);
#   2. trains one merged checkpoint with `caml-train train` and scores it on AHB --limit 8
#      through Inspect's vLLM provider (vllm/<merged>), falling back to hf/ without vLLM.
#
# How to run it on a lent GPU machine (the repository root is the working directory there; the
# base model must be in the HF cache or reachable, AHB data under $CAML_EVALS_DATA_DIR):
#   bash bench/gpu_smoke.sh                      # defaults
#   MODEL=/path/to/checkpoint STEPS=30 bash bench/gpu_smoke.sh
# Needs: a CUDA GPU, the venv with the train extras (trl, peft), optionally vllm.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-HuggingFaceTB/SmolLM2-1.7B-Instruct}
STEPS=${STEPS:-20}
ATTN=${ATTN:-sdpa}
OUT=${OUT:-logs/gpu-smoke}
DATA_DIR=${CAML_EVALS_DATA_DIR:-../shared/data}
mkdir -p "$OUT"
SECONDS=0

echo "== throughput: packed vs padded, bf16, $ATTN, $STEPS steps"
timeout 300 "$PY" bench/train_throughput.py --model "$MODEL" --scale 1 --docs 64 \
  --steps "$STEPS" --warmup 2 --batch-size 2 --bf16 --attn "$ATTN"

echo "== one doc-tuning stage -> merged checkpoint"
cat > "$OUT/stage.yaml" <<YAML
stage: text
model: $MODEL
data: {path: $(pwd)/examples/tiny/documents.jsonl}
output_dir: $(pwd)/$OUT/stage
seed: 0
hparams:
  max_length: 2048
  per_device_train_batch_size: 4
  max_steps: $STEPS
  learning_rate: 1.0e-4
  warmup_steps: 0.0
  logging_steps: 5
  save_steps: 1000
  bf16: true
  attn_implementation: $ATTN
YAML
timeout 240 "$PY" -m caml_train.cli train "$OUT/stage.yaml" --force
MERGED="$(pwd)/$OUT/stage/merged"

echo "== AHB --limit 8 on the merged checkpoint"
if "$PY" -c "import vllm" 2>/dev/null; then PROVIDER=vllm; else PROVIDER=hf; fi
timeout 240 .venv/bin/inspect eval caml_evals/ahb --model "$PROVIDER/$MERGED" --limit 8 \
  -T data_dir="$DATA_DIR" -T epochs=1 --model-role grader="$PROVIDER/$MERGED" \
  --max-tokens 256 --log-dir "$OUT/evals" --display plain
echo "== done in ${SECONDS}s (provider $PROVIDER)"
