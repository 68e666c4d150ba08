#!/usr/bin/env bash
# Prove the device kit without a GPU: a fresh virtualenv holding only packages the GPU image has (KINDS.md; the
# versions this package index offers; torch runs on the CPU), the kit installed exactly as on the device, and
# tools/device_run.sh with DEVICE=cpu, the quick profile and a small budget (bicubic + one quick ZSSR cell).
# Slow (it builds an environment); not part of `make test`. The kit is built for this machine's Python (3.11 here;
# the GPU image has 3.12): only the binary wheel (lmdb) differs from the real kit.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${REHEARSAL_DIR:-/tmp/zssr-device-rehearsal}
BASE_PY=${BASE_PY:-python3.11}
rm -rf "$R"; mkdir -p "$R"
"$BASE_PY" -m venv "$R/venv"
V="$R/venv/bin/python"
"$V" -m pip install -q --upgrade pip
"$V" -m pip install -q ${TORCH_PKGS:-torch==2.14.1 torchvision==0.29.1}
# the GPU image's own packages that this project imports (names from the device tool's KINDS.md)
"$V" -m pip install -q numpy scipy pandas matplotlib scikit-image opencv-python-headless jinja2 tqdm safetensors \
    pytest pyyaml requests einops pillow typing-extensions
"${PY:-.venv/bin/python}" tools/device_kit.py --python-version "$("$V" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    --out "$R/kit"
KIT="$R/kit" RESULTS="$R/results" SITE="$R/site" CACHE="$R/cache" PY="$V" DEVICE=cpu PROFILE=quick STAGES=rehearsal \
    BUDGET_S=${BUDGET_S:-240} SPEED_ITERS=3 bash tools/device_run.sh
csv="$R/results/out/rehearsal-results.csv"
for m in bicubic zssr-original; do
    grep -q ",$m,.*,psnr-y," "$csv" || { echo "rehearsal FAILED: no psnr-y row for $m in $csv" >&2; exit 1; }
done
for w in "$R"/cache/weights/*.source.json; do  # every weight came from the kit, none from a network source
    grep -q '"source": "local file' "$w" || { echo "rehearsal FAILED: $w was not taken from the kit" >&2; exit 1; }
done
ls -la "$R/results/out"
echo "rehearsal passed: kit $(du -sh "$R/kit" | cut -f1), results in $R/results/out"
