#!/bin/bash
# Quality rows of issue 5 run on a lent GPU machine (the `device` tool), in one call:
#   here:  .venv/bin/python bench/device/pack.py
#   there: bench/device/sweep.sh                 (device run, carry [".gpu"], timeout 600)
#   here:  .venv/bin/python bench/device/merge.py PATH/quality.json
# On an H200 (2026-11-27) the reference row took 6 min 25 s: 1 min 31 s training, 2 min 50 s ranking matmuls for the
# int8 fallback (now skipped), the rest preparing, exporting and scoring on the CPU: a call finishes about two rows.
# It installs the carried wheels, widens the carried fp16 encoder to fp32 (models/encoders/minilm-fp16), unpacks the
# shared files, then runs bench/quality.py and bench/ensemble.py rows in order of value: two seeds of the reference
# fine-tune, their ensemble and that ensemble distilled into one model; a third seed, the same for three; then two
# hyperparameter variants. Each row is the CPU protocol unchanged (own training split, selection on the validation
# split, the test split scored once). A row starts only while BUDGET seconds (default 480) have not passed, so the
# call ends inside the tool's 10 minutes.
# After each row bench/results/quality.json is copied to $OUT.
# A dry run here (no setup, any encoder, e.g. one split of complaints):
#   SETUP=0 PYTHON=.venv/bin/python ENCODER=DIR PROTOCOL=complaints EXTRA="--folds 1" bench/device/sweep.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/device-out}
BUDGET=${BUDGET:-480}
PYTHON=${PYTHON:-python3}
PROTOCOL=${PROTOCOL:-tweeteval_sentiment}
ENCODER=${ENCODER:-models/encoders/minilm-fp16}
EXTRA=${EXTRA:-}
START=$(date +%s)
mkdir -p "$OUT"
LOG="$OUT/log.txt"

if [[ ${SETUP:-1} == 1 ]]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site TRIAGE_SHARED_DATA=/tmp/shared-data
  mkdir -p "$TRIAGE_SHARED_DATA" && tar -xJf .gpu/data.tar.xz -C "$TRIAGE_SHARED_DATA" || exit 1
  "$PYTHON" bench/device/pack.py --widen "$ENCODER" || exit 1
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
"$PYTHON" -c "import torch, transformers, onnxruntime, pydantic
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
print('torch', torch.__version__, gpu, '| transformers', transformers.__version__, '| onnxruntime',
      onnxruntime.__version__, '| pydantic', pydantic.__version__)" | tee -a "$LOG"

# row NAME SCRIPT ARGS...: run it unless the budget is spent; stop everything if the first row fails (a broken setup).
ROWS=0
row() {
  local name=$1; shift
  local elapsed=$(( $(date +%s) - START ))
  if (( elapsed > BUDGET )); then echo "== $name: skipped at ${elapsed}s (budget ${BUDGET}s)" | tee -a "$LOG"; return; fi
  echo "== $name: starting at ${elapsed}s" | tee -a "$LOG"
  local began=$(date +%s)
  "$PYTHON" "$@" >> "$LOG" 2>&1
  local rc=$?
  echo "== $name: rc $rc in $(( $(date +%s) - began ))s" | tee -a "$LOG"
  tail -30 "$LOG" | grep -E "(macro_recall|macro_f1|accuracy)[: ]+[0-9]|Error" | tail -4
  cp bench/results/quality.json "$OUT/quality.json"
  ROWS=$((ROWS + 1))
  if (( rc != 0 && ROWS == 1 )); then tail -40 "$LOG"; exit 1; fi
}

Q="bench/quality.py --protocol $PROTOCOL"
# --int8-fallback 0: ranking matmuls for the int8 fallback takes CPU minutes per row, longer than the GPU trains.
Q="$Q --int8-fallback 0"
T="$Q --backend transformer --set transformer.encoder=$ENCODER $EXTRA"
row reference $T --variant gpu,reference
row seed29 $T --set seed=29 --variant gpu,seed=29
TWO=(transformer/gpu,reference transformer/gpu,seed=29)
THREE=("${TWO[@]}" transformer/gpu,seed=7)
row ensemble2 bench/ensemble.py --protocol "$PROTOCOL" --equal-weights --variant gpu,2-seed-ensemble \
  "${TWO[@]/#/--member=}"
row distill2 $Q --backend distill "${TWO[@]/#/--teacher=}" $EXTRA --variant gpu,distilled-2-seeds
row seed7 $T --set seed=7 --variant gpu,seed=7
row ensemble3 bench/ensemble.py --protocol "$PROTOCOL" --equal-weights --variant gpu,3-seed-ensemble \
  "${THREE[@]/#/--member=}"
row distill3 $Q --backend distill "${THREE[@]/#/--teacher=}" $EXTRA --variant gpu,distilled-3-seeds
row lr-decay $T --set transformer.learning_rate=1e-4 --set transformer.layer_lr_decay=0.85 --epochs 3 \
  --variant gpu,learning_rate=1e-4,layer_lr_decay=0.85,epochs=3
row epochs4 $T --epochs 4 --variant gpu,epochs=4
echo "== done in $(( $(date +%s) - START ))s" | tee -a "$LOG"
