#!/usr/bin/env bash
# A GPU smoke check (not part of CI): every stage of `stage=pipeline` with a bart-base-shaped model built from
# scratch (random weights; d_model 768, 6+6 layers, 12 heads, ffn 3072, 1024 positions; bf16 where supported)
# on a small news world, then the speeds: MLE tokens/s, candidate generation documents/s, QUALS summaries/s and
# each stage's peak GPU memory (torch.cuda.max_memory_allocated). On a machine without CUDA it says so and exits 1.
#
#   scripts/gpu_check.sh                          # about 1000 training documents, one contrastive variant
#   N_TRAIN=3000 scripts/gpu_check.sh stages.generate.batch_size=64     # more data; any extra Hydra override
#
# Env: PYTHON (default .venv/bin/python), GPU_CHECK_ROOT (the cache root, default a fresh temporary folder, so
# nothing is a cache hit), N_TRAIN, N_QA, PRECISION (bf16 | fp16 | no; default bf16 where the GPU supports it).
# The numbers are whole-stage rates (setup, validation and saving included); scripts/gpu_check.py prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False): run it on a machine with a GPU" >&2
  exit 1
fi
PRECISION=${PRECISION:-$("$PY" -c 'import torch; print("bf16" if torch.cuda.is_bf16_supported() else "fp16")')}
ROOT=${GPU_CHECK_ROOT:-$(mktemp -d -t conseq_gpu_check.XXXXXX)}
N_TRAIN=${N_TRAIN:-1000}
N_QA=${N_QA:-1000}

shape() {  # the bart-base shape for one model group
  echo "$1.d_model=768 $1.encoder_layers=6 $1.decoder_layers=6 $1.attention_heads=12 $1.ffn_dim=3072" \
    "$1.vocab_size=8000 $1.dropout=0.1 $1.max_source_length=1024 $1.max_target_length=64"
}
precision() {  # accelerate's mixed precision for every training stage
  for stage in pretrain qagen mle contrastive; do echo -n "stages.$stage.mixed_precision=$PRECISION "; done
}

# shellcheck disable=SC2046  # the helpers print one override per word
exec "$PY" scripts/gpu_check.py \
  "paths.root=$ROOT" \
  $(shape model) $(shape qagen_model) $(precision) \
  "data.world.n_train=$N_TRAIN" data.world.n_validation=64 data.world.n_test=64 "data.world.n_qa=$N_QA" \
  stages.pretrain.n_documents=2000 stages.pretrain.max_steps=200 stages.pretrain.eval_every=0 \
  stages.mle.epochs=2 stages.qagen.epochs=2 stages.contrastive.epochs=1 \
  stages.mle.eval_every=0 stages.qagen.eval_every=0 stages.contrastive.eval_every=0 \
  stages.mle.eval_samples=32 \
  "stages.pipeline.variants=[conseq]" stages.pipeline.ceiling=false \
  "stages.evaluate.extra_scorers=[]" stages.evaluate.max_rows=64 stages.report.evidence=5 \
  "$@"
