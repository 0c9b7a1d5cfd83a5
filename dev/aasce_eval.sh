#!/usr/bin/env bash
# Real-data evaluation beyond the benchmark's pixel table, for the AASCE 2019 import:
# predict the test split with each trained model, then Cobb angles (SMAPE, MAE) and per-vertebra
# instance quality. Usage: dev/aasce_eval.sh DATA_ROOT RUNS OUT
#   RUNS: a folder holding linknet/ap_vertebra/model_best.pth and/or maskrcnn/ap_vertebra/model_best.pth
#   (a benchmark's runs/ folder); several folders may be given as RUNS1:RUNS2.
set -euo pipefail
data=$1; runs=$2; out=$3
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
"$py" tools/measure_cobb.py --data-root "$data" --split test --source gt --out "$out/cobb_gt"
IFS=: read -ra dirs <<< "$runs"
for d in "${dirs[@]}"; do
  for model in linknet maskrcnn; do
    ck="$d/$model/ap_vertebra/model_best.pth"
    [ -f "$ck" ] || continue
    tag=$(basename "$(dirname "$d")")-$model
    "$py" tools/predict.py --model "$model" --checkpoint "$ck" --data-root "$data" --split test --view ap \
        --output "$out/pred_$tag" --skip-existing
    src=$([ "$model" = maskrcnn ] && echo instances || echo mask)
    "$py" tools/measure_cobb.py --data-root "$data" --split test --source "$src" --pred-dir "$out/pred_$tag" \
        --out "$out/cobb_$tag"
    "$py" tools/eval_instances.py --data-root "$data" --pred-dir "$out/pred_$tag" --task ap_vertebra \
        --expected 17 --out "$out/instances_$tag"
  done
done
