#!/usr/bin/env bash
# After a device call: unpack the returned <stage>-run.tar.gz files into .device-results/<stage>/, so that the next
# `bash tools/device_run.sh` call (carry .device-results) resumes those runs.
#   tools/device_collect.sh /work/.device/<files_at>
set -euo pipefail
src=${1:?usage: tools/device_collect.sh <folder with the returned files>}
cd "$(dirname "$0")/.."
for tarball in "$src"/*-run.tar.gz; do
    [ -e "$tarball" ] || { echo "no *-run.tar.gz in $src" >&2; exit 1; }
    stage=$(basename "$tarball" -run.tar.gz)
    mkdir -p ".device-results/$stage"
    tar -xzf "$tarball" -C ".device-results/$stage"
    # a stage is one run folder, or (study) one folder per unit: count the cells' rows in all of them
    rows=$(find ".device-results/$stage" -name results.csv -exec tail -q -n +2 {} + | wc -l)
    echo "$stage: $rows rows -> .device-results/$stage"
done
