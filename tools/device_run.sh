#!/usr/bin/env bash
# The GPU session in one call. On the lent machine, from the repository root, with the kit carried:
#
#   device run  command: bash tools/device_run.sh      carry: [".device-kit", ".device-results"]
#
# 1. installs the kit's wheels into a target folder (--no-index --no-deps); the project runs from the source tree;
# 2. prints versions and the GPU; 3. `pytest -m gpu`; 4. ZSSR step rates (tools/bench_zssr_speed.py);
#    and batched ZSSR training rates for K = 1, 2, 4, 8, 16 (paper crops; eager and CUDA graph), merged into steps.json;
# 5. the harness, paper profile: Set5 x2 and x4 with the default methods, Set14 x2 with the ZSSR presets and
#    dat-light, and Set14 x2 of zssr-original with BATCH=14 (all 14 images in one batch); each stage resumes from .device-results/<stage>/ when that was carried in, and starts no cell once
#    the budget (BUDGET_S, default 480 s from the start) is spent, so the call ends cleanly inside its limit.
# Files into $OUT (at most 8 come back): device.log, steps.json, <stage>-results.csv and <stage>-run.tar.gz (the
# run folder without SR images: results.csv, run.json, report.md, index.html, figures, crops, curves).
# `tools/device_collect.sh <files_at>` unpacks them into .device-results/ so the next call resumes.
# Rehearsal without a GPU (make device-rehearsal): DEVICE=cpu PROFILE=quick STAGES=rehearsal.
# The study stage (STAGES=study, with the kit from `make device-kit KIT_FOR=study`): the main study
# (STUDY=internal-vs-external) for the methods the kit holds weights for (STUDY_METHODS), into .device-results/study/
# (cheapest units first; resumes when carried back); after tools/device_collect.sh, copy .device-results/study/ to
# reports/studies/<study>/machines/<gpu name>/ (without sr/ and inputs/) and re-render: the document then shows
# both machines' seconds per image.
set -uo pipefail
START=$(date +%s)
BUDGET_S=${BUDGET_S:-480}
KIT=${KIT:-.device-kit}
RESULTS=${RESULTS:-.device-results}
DEVICE=${DEVICE:-cuda}
PROFILE=${PROFILE:-paper}
PRECISION=${PRECISION:-auto}
STAGES=${STAGES:-set5 set14 set14-batched}
PY=${PY:-python3}
SITE=${SITE:-/tmp/zssr-bench-site}
OUT=${OUT:-$RESULTS/out}
mkdir -p "$OUT" "$RESULTS"
LOG="$OUT/device.log"
log() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

test -d "$KIT/wheels" || { echo "no kit at $KIT: run 'make device-kit' and carry .device-kit" >&2; exit 2; }
KIT=$(cd "$KIT" && pwd)
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$KIT"/wheels/*.whl \
    || { echo "installing the kit's wheels failed" >&2; exit 2; }
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export ZSSR_BENCH_KIT="$KIT" ZSSR_BENCH_DATA="$KIT/data" ZSSR_BENCH_CACHE=${CACHE:-/tmp/zssr-bench-cache}
# no network there: official URLs skipped, and no pip download may wait on an index (a rehearsal here too)
export ZSSR_BENCH_OFFLINE=1 PIP_NO_INDEX=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg

log "kit installed into $SITE"
$PY - <<'EOF' 2>&1 | tee -a "$LOG"
import platform, torch
from importlib import metadata
from zssr.precision import native_bf16, resolve_precision
names = ["torch", "torchvision", "numpy", "spandrel", "lpips", "basicsr-fixed", "pandas", "opencv-python-headless"]
print("python", platform.python_version(), "|", ", ".join(f"{n} {metadata.version(n)}" for n in names))
cuda = torch.cuda.is_available()
print("cuda", cuda, torch.version.cuda, torch.cuda.get_device_name(0) if cuda else "-",
      "capability", torch.cuda.get_device_capability(0) if cuda else "-")
dev = "cuda" if cuda else "cpu"
print("native bf16:", native_bf16(dev), "| precision auto ->", resolve_precision("auto", dev))
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm \
    --format=csv 2>&1 | tee -a "$LOG"

log "pytest -m gpu"
timeout 150 $PY -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors tests 2>&1 | tail -25 | tee -a "$LOG"

log "ZSSR step rates"
timeout 90 $PY tools/bench_zssr_speed.py --device "$DEVICE" --iters "${SPEED_ITERS:-100}" --warmup 10 --repeats 2 \
    --precisions fp32,bf16 --layouts channels_last --presets original,modified --no-e2e \
    --json "$OUT/steps.json" 2>&1 | tail -8 | tee -a "$LOG"
log "batched ZSSR training rates"
timeout 120 $PY tools/bench_zssr_speed.py --device "$DEVICE" --iters "${SPEED_ITERS:-100}" --repeats 1 \
    --profile "$PROFILE" --batch 1,2,4,8,16 --cuda-graph both --json "$OUT/batch.json" 2>&1 | tail -12 | tee -a "$LOG"
$PY - "$OUT" <<'EOF2'  # one file back for both: batch.json merged into steps.json
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
steps, batch = out / "steps.json", out / "batch.json"
if batch.exists():
    merged = json.loads(steps.read_text()) if steps.exists() else {}
    merged["batched"] = json.loads(batch.read_text()).get("batched", [])
    steps.write_text(json.dumps(merged, indent=1))
    batch.unlink()
EOF2

stage() {  # name, dataset, methods (empty: the profile's defaults), scales, batch
    local name=$1 dataset=$2 methods=$3 scales=$4 batch=${5:-auto} budget
    budget=$(( $(left) - 45 ))  # leave time for the report and packing
    if [ "$budget" -lt 20 ]; then log "stage $name skipped: budget spent"; return; fi
    log "stage $name: $dataset x$scales ${methods:-default methods}, budget $budget s"
    $PY -m bench run --dataset "$dataset" ${methods:+--methods "$methods"} --scales "$scales" \
        --profile "$PROFILE" --device "$DEVICE" --precision "$PRECISION" --out "$RESULTS/$name" --batch "$batch" \
        --time-budget "$budget" 2>&1 | grep -v '^\s*$' | tail -15 | tee -a "$LOG"
    cp "$RESULTS/$name/results.csv" "$OUT/$name-results.csv" 2>/dev/null
    tar -czf "$OUT/$name-run.tar.gz" -C "$RESULTS/$name" --exclude=./sr --exclude=./inputs . 2>/dev/null
}
study_stage() {  # the declared study on this machine, its unit folders under $RESULTS/study (costs for the document)
    local budget
    budget=$(( $(left) - 45 ))
    if [ "$budget" -lt 20 ]; then log "stage study skipped: budget spent"; return; fi
    log "stage study: $STUDY (${STUDY_METHODS}), budget $budget s"
    $PY -m bench.study run "$STUDY" --device "$DEVICE" --out-root "$RESULTS/study" --methods "$STUDY_METHODS" \
        --time-budget "$budget" 2>&1 | grep -v '^\s*$' | tail -15 | tee -a "$LOG"
    tar -czf "$OUT/study-run.tar.gz" -C "$RESULTS/study" --exclude='*/sr' --exclude='*/inputs' . 2>/dev/null
}
STUDY=${STUDY:-internal-vs-external}
STUDY_METHODS=${STUDY_METHODS:-bicubic,zssr-fast,zssr-fast+true-kernel,zssr-fast+kernelgan,dat-light}
for s in $STAGES; do
    case $s in
        study) study_stage ;;
        set5) stage set5 set5 "" 2,4 ;;
        set14) stage set14 set14 zssr-original,zssr-modified,zssr-original-gradual,dat-light 2 1 ;;
        set14-batched) stage set14-batched set14 zssr-original 2 14 ;;
        rehearsal)  # one image, bicubic and one quick ZSSR cell
            mkdir -p "$RESULTS/rehearsal-data/one" && cp "$KIT/data/set5/HR/bird.png" "$RESULTS/rehearsal-data/one/"
            stage rehearsal "$RESULTS/rehearsal-data" bicubic,zssr-original 2 ;;
        *) log "unknown stage $s" ;;
    esac
done
log "done; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
