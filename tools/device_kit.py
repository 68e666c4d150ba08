#!/usr/bin/env python
"""Build the device kit: what a lent GPU machine (no network; PyTorch, numpy, pandas, ... but not basicsr, lpips,
spandrel) needs to run this project's GPU checks and benchmarks in one call.

    .venv/bin/python tools/device_kit.py                       # -> .device-kit/ (git-ignored), at most 60 MiB
    .venv/bin/python tools/device_kit.py --python-version 3.11 --out /tmp/kit311   # the rehearsal's kit
    .venv/bin/python tools/device_kit.py --for study           # the study stage's kit (make device-kit KIT_FOR=study)

Contents:
  wheels/   the packages the GPU image lacks, for CPython <python-version> manylinux x86_64 (pip download, or a
            wheel built here for pure-Python sdists), at the versions this checkout's virtualenv has
  weights/  compact lossless copies of the weight files the run uses (the weight store's `kit_copy` sources:
            each tensor in the smallest dtype that holds it exactly, gzip; checked against the declared digests)
  data/     the datasets the run uses, copied from ZSSR_BENCH_DATA (<dataset>/<file>, as the harness expects)
  MANIFEST.json  every file with its size and sha256, the target Python, the versions
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Not in the GPU image (device tool's KINDS.md), needed at import time by basicsr, lpips, spandrel and yapf.
PACKAGES = ("basicsr-fixed", "lpips", "spandrel", "lmdb", "addict", "future", "yapf", "platformdirs")
# what each kind of call needs: the device kit's stages (the default), or the study stage (tools/device_run.sh
# STAGES=study): the categories set and the weights of its methods that fit beside it (ZSSR needs none), within the
# 64 MiB a call carries
KITS = {
    "kit": {"weights": ("lpips-alexnet-backbone", "realesrgan-x4plus", "dat-light-x2", "dat-light-x3", "dat-light-x4"),
            "datasets": ("set5", "set14")},
    "study": {"weights": ("lpips-alexnet-backbone", "dat-light-x2", "dat-light-x4"), "datasets": ("categories",)},
}
WEIGHTS, DATASETS = KITS["kit"]["weights"], KITS["kit"]["datasets"]
LIMIT_MIB = 60


def _pip(*args: str, quiet_errors: bool = False) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True,
                   stderr=subprocess.DEVNULL if quiet_errors else None)


def fetch_wheels(dest: Path, python_version: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)]
    platforms += ["--platform=manylinux2014_x86_64", "--platform=manylinux1_x86_64"]
    for name in PACKAGES:
        requirement = f"{name}=={metadata.version(name)}"
        try:
            _pip("download", "--no-deps", "--only-binary=:all:", f"--python-version={python_version}",
                 "--implementation=cp", *platforms, "-d", str(dest), requirement, quiet_errors=True)
        except subprocess.CalledProcessError:  # an sdist only (pure Python): build the wheel here
            _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(dest), requirement)
    # No wheel of this project: every device call carries the working tree, and tools/device_run.sh runs the
    # harness from it.


def compact_weights(dest: Path, names: tuple[str, ...] = WEIGHTS) -> None:
    import torch

    from baselines import weights as store

    for name in names:
        path = store.fetch(name)  # verified against the declared checksum
        decl = store.WEIGHTS[name]
        out = dest / (decl.filename + store.COMPACT_SUFFIX)
        state = torch.load(path, map_location="cpu", weights_only=True)
        store.write_compact(state, out)
        expected = next(s.checksum for s in decl.sources
                        if isinstance(s, store.LocalFile) and s.converter is store.expand_compact)
        if store.verify_state(store.expand_compact([out]), expected) is None:
            raise SystemExit(f"{out}: the compact copy does not expand to {expected}")


def copy_datasets(dest: Path, names: tuple[str, ...] = DATASETS) -> None:
    from baselines.settings import data_root

    root = data_root()
    if not root:
        raise SystemExit("set ZSSR_BENCH_DATA to the datasets folder (e.g. ../shared/datasets)")
    for name in names:
        src = Path(root) / name
        if not src.is_dir():
            raise SystemExit(f"{src}: dataset folder not found (ZSSR_BENCH_DATA={root})")
        shutil.copytree(src, dest / name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / ".device-kit")
    ap.add_argument("--python-version", default="3.12", help="the GPU image's Python (KINDS.md: 3.12)")
    ap.add_argument("--for", dest="kind", choices=sorted(KITS), default="kit",
                    help="kit: the device kit's stages (default); study: the study stage's data and weights")
    args = ap.parse_args(argv)
    contents = KITS[args.kind]
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    fetch_wheels(out / "wheels", args.python_version)
    compact_weights(out / "weights", contents["weights"])
    copy_datasets(out / "data", contents["datasets"])
    from baselines.weights import file_sha256

    files = sorted(p for p in out.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    manifest = {"python_version": args.python_version, "total_bytes": total,
                "packages": {n: metadata.version(n) for n in PACKAGES},
                "for": args.kind, "weights": list(contents["weights"]), "datasets": list(contents["datasets"]),
                "files": {str(p.relative_to(out)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files}}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    for part in ("wheels", "weights", "data"):
        size = sum(p.stat().st_size for p in (out / part).rglob("*") if p.is_file())
        print(f"{part:8s} {size / 2**20:6.1f} MiB")
    print(f"{'total':8s} {total / 2**20:6.1f} MiB in {len(files)} files: {out}")
    if total > LIMIT_MIB * 2**20:
        print(f"error: the kit is over {LIMIT_MIB} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
