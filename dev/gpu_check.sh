#!/usr/bin/env bash
# One short device check for a lent GPU (<= 10 minutes on one H100/H200), so that a loan is never
# wasted. From the repository root, with the package installed (make install):
#
#     bash dev/gpu_check.sh [OUT]        # OUT defaults to $OUT (the device tool's folder) or output/gpu_check
#
# 1. doctor on CUDA: Detectron2's origin, torch, the device, one Mask R-CNN forward pass;
# 2. a 60-patient phantom (512 px);
# 3. Mask R-CNN, full profile (R50-FPN), random init (the device has no network: no COCO download),
#    200 iterations through --num-gpus 1 (Detectron2's launch), evaluated: s/iter and Dice;
# 4. each default family's training and inference speed on the same data: the benchmark's cost table
#    (LinkNet, Mask R-CNN and the vertebra-landmark family, cpu-profile schedules shortened, on CUDA):
#    images/s side by side.
# Every step writes its log under OUT and goes on if one fails; the summary is OUT/summary.txt.
# CPU-only machines: GPU_CHECK_DEVICE=cpu GPU_CHECK_ITERS=4 runs the same steps as a smoke test.
set -uo pipefail
out=${1:-${OUT:-output/gpu_check}}
py=${PYTHON:-.venv/bin/python}
device=${GPU_CHECK_DEVICE:-cuda}
iters=${GPU_CHECK_ITERS:-200}
mkdir -p "$out"
export SPINE_DET_CACHE="$out/cache" MPLBACKEND=Agg
summary="$out/summary.txt"
: > "$summary"
step() {  # step NAME CMD...: run, time, log; record the exit status
  local name=$1; shift
  local t0=$(date +%s)
  "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc, $(( $(date +%s) - t0 )) s (log: $name.log)" | tee -a "$summary"
}
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$summary"
step doctor "$py" -m spine_det.tools doctor --device "$device"
step phantom "$py" -m spine_det.tools make-phantom --out "$out/phantom" --patients 60 --seed 0 --size 512
step maskrcnn_full "$py" -m spine_det.tools train-net --config-file configs/lat_vertebra.yaml --profile full \
    --num-gpus 1 --data-root "$out/phantom" OUTPUT_DIR "$out/maskrcnn_full" MODEL.WEIGHTS "" MODEL.DEVICE "$device" \
    SOLVER.MAX_ITER "$iters" SOLVER.STEPS "($(( iters * 8 / 10 )),)" SOLVER.WARMUP_ITERS $(( iters / 10 )) \
    SOLVER.CHECKPOINT_PERIOD "$iters" TEST.EVAL_PERIOD "$iters"
grep -h -A1 "copypaste: dice,jaccard,tpr" "$out/maskrcnn_full.log" | tail -n 1 | sed 's/.*copypaste: /maskrcnn_full dice,jaccard,tpr: /' | tee -a "$summary"
grep -h "Overall training speed" "$out/maskrcnn_full.log" | tail -n 1 | sed 's/.*\]: /maskrcnn_full: /' | tee -a "$summary"
step families "$py" -m spine_det.tools benchmark --profile cpu --device "$device" --data-root "$out/phantom" \
    --out "$out/bench" --tasks lat_vertebra --models linknet,maskrcnn,landmark --skip-classifier --cost-images 8 \
    --maskrcnn-opts SOLVER.MAX_ITER "$iters" SOLVER.STEPS "($(( iters * 8 / 10 )),)" SOLVER.WARMUP_ITERS $(( iters / 10 )) \
        TEST.EVAL_PERIOD "$iters" SOLVER.CHECKPOINT_PERIOD "$iters" \
    --linknet-opts SOLVER.MAX_EPOCHS 2 --landmark-opts SOLVER.MAX_EPOCHS 2
sed -n '/^## Cost/,/^## Classification/p' "$out/bench/results.md" 2>/dev/null | head -n 8 | tee -a "$summary"
echo "summary: $summary"
