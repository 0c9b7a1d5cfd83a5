#!/usr/bin/env bash
# The new user's path, timed: `pip install .` of this checkout into a new virtualenv (not editable, no
# .venv, no tools/), `spine-det doctor` before and after Detectron2, the README's own-data example on a
# phantom laid out like a user's films, `spine-det predict` on a patient folder that holds masks too,
# the README's Python API lines, and the modes of what was written (umask 022).
#
#   bash dev/new_user_path.sh [WORKDIR]     (default: a new temporary folder; needs PyPI)
#
# Prints one "== step: seconds" line per step and a summary at the end; the work folder is kept.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d -t spine_det_new_user.XXXXXX)}
PYTHON=${PYTHON:-python3}
mkdir -p "$WORK" && cd "$WORK"
umask 022
export SPINE_DET_CACHE="$WORK/cache" MPLBACKEND=Agg OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
step() {  # step NAME COMMAND...: run, time, keep the output in NAME.log
  local name=$1; shift
  local t0=$SECONDS rc=0
  "$@" > "$name.log" 2>&1 || rc=$?
  echo "== $name: $((SECONDS - t0)) s (exit $rc)"
  tail -n 4 "$name.log" | sed 's/^/   | /'
  return 0
}

step venv "$PYTHON" -m venv venv
step pip_install venv/bin/pip install --quiet --disable-pip-version-check -c "$REPO/requirements/constraints.txt" "$REPO"
BIN=$WORK/venv/bin
step doctor_before "$BIN/spine-det" doctor
step install_detectron2 "$BIN/spine-det" install-detectron2
step doctor_after "$BIN/spine-det" doctor
step make_phantom "$BIN/spine-det" make-phantom --out phantom --patients 8 --size 256 --seed 0 --quiet
step train_linknet "$BIN/spine-det" train-linknet --config-file linknet/lat_vertebra.yaml --data-root phantom OUTPUT_DIR run
patient=$(find phantom/Training -mindepth 2 -maxdepth 2 -type d | sort | head -n 1)
step predict_patient_folder "$BIN/spine-det" predict --checkpoint run/model_best.pth --input "$patient" --output pred
cat > api.py <<'EOF'
import glob
from spine_det import Predictor

predictor = Predictor.from_checkpoint("run/model_best.pth")
film = sorted(glob.glob("phantom/Test/*/*/LAT/LAT.jpg"))[0]
result = predictor.predict(film)
mask = result.masks["lat_vertebra"]
boxes, scores = result.instances["lat_vertebra"].boxes, result.instances["lat_vertebra"].scores
print(f"api: {film}: mask {mask.shape} {int(mask.sum())} px, {len(boxes)} instances")
EOF
step api "$BIN/python" api.py

echo "== what predict read and wrote"
grep -hiE "left out|skipped|not films|wrote|predicted" predict_patient_folder.log | head -n 5 | sed 's/^/   | /' || true
find pred -type f | sort | sed 's/^/   | /'
echo "== modes (umask 022)"
for f in run/model_best.pth run/config.yaml run/metrics.json phantom/phantom_manifest.json \
         "$(find phantom -name LAT.jpg | head -n 1)" $(find pred -type f | sort); do
  [ -e "$f" ] && stat -c '   | %a %n' "$f"
done
echo "== work folder: $WORK"
