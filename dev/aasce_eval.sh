#!/usr/bin/env bash
# Real-data evaluation beyond the benchmark's pixel table, for the AASCE 2019 import:
# predict one split with each trained model, then Cobb angles (SMAPE, MAE) and per-vertebra
# instance quality, each with and without order-aware post-processing (--levels, the default, and
# --no-levels). Usage: [SPLIT=val|test] dev/aasce_eval.sh DATA_ROOT RUNS OUT
#   RUNS: a folder holding linknet/ap_vertebra*/model_best.pth and/or maskrcnn/ap_vertebra*/model_best.pth
#   (a benchmark's runs/ folder, every seed); several folders may be given as RUNS1:RUNS2.
#   SPLIT: test (default) or val, the 48 validation films where post-processing settings are chosen.
set -euo pipefail
data=$1; runs=$2; out=$3
split=${SPLIT:-test}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
"$py" -m spine_det.tools measure-cobb --data-root "$data" --split "$split" --source gt --out "$out/cobb_gt_$split" --no-overlay
IFS=: read -ra dirs <<< "$runs"
for d in "${dirs[@]}"; do
  for ck in "$d"/{linknet,maskrcnn}/ap_vertebra*/model_best.pth; do  # every seed (ap_vertebra, ap_vertebra-seed1, ...)
    [ -f "$ck" ] || continue
    unit=$(dirname "$ck"); model=$(basename "$(dirname "$unit")")
    tag=$(basename "$(dirname "$d")")-$model-$(basename "$unit")-$split
    "$py" -m spine_det.tools predict --model "$model" --checkpoint "$ck" --data-root "$data" --split "$split" --view ap \
        --output "$out/pred_$tag" --skip-existing
    src=$([ "$model" = maskrcnn ] && echo instances || echo mask)
    split_mask=$([ "$model" = maskrcnn ] || echo --split-mask)
    for lv in levels no-levels; do
      "$py" -m spine_det.tools measure-cobb --data-root "$data" --split "$split" --source "$src" \
          --pred-dir "$out/pred_$tag" --out "$out/cobb_${tag}_$lv" --"$lv" $([ "$lv" = levels ] || echo --no-overlay)
      "$py" -m spine_det.tools eval-instances --data-root "$data" --split "$split" --pred-dir "$out/pred_$tag" \
          --task ap_vertebra --expected 17 --out "$out/instances_${tag}_$lv" --"$lv" $split_mask
    done
  done
done
