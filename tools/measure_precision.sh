#!/usr/bin/env bash
# fp32 vs bf16 accuracy of paper-profile zssr-original on Set5 x2 (the mixed-precision issue's measurement):
# all of Set5 with run seed 0 in each precision, then two images (bird, butterfly) with run seeds 1 and 2 for the
# seed spread. Results under reports/precision/<precision>-seed<N>/ (the harness's usual run folders; resumable).
#   ZSSR_BENCH_DATA=../shared/datasets tools/measure_precision.sh            # ~80 min on a 2-core AVX512-BF16 CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
: "${ZSSR_BENCH_DATA:?set ZSSR_BENCH_DATA to the datasets folder}"
OUT=${OUT:-reports/precision}
PAIR=$OUT/set5-pair
mkdir -p "$PAIR"
for img in bird butterfly; do cp -n "$ZSSR_BENCH_DATA/set5/HR/$img.png" "$PAIR/"; done
run() {  # dataset precision seed
  "$PY" -m bench run --dataset "$1" --methods zssr-original --scales 2 --profile paper --precision "$2" \
    --seed "$3" --out "$OUT/$(basename "$1")-$2-seed$3" --no-report
}
for p in bf16 fp32; do run set5 "$p" 0; done
for p in bf16 fp32; do for s in 1 2; do run "$PAIR" "$p" "$s"; done; done
