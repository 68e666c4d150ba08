"""Does a shorter ZSSR schedule keep blind ZSSR from fitting KernelGAN's errors at the paper profile? (issue 40)

At the paper profile `zssr-kernelgan` lost up to 1.5 dB against `zssr-original` on 192-pixel crops where the true
kernel is narrow: KernelGAN's estimate is about equally wide on every such image, and ZSSR's full schedule (up to
3000 iterations per step) learns to undo blur that is not there; the quick profile's 150 iterations did not
(docs/experiments/2026-12-06-blind-kernel-decision.md). This tool measures, per crop, ZSSR with one KernelGAN
estimate (paper profile, shared by every variant) under several ZSSR schedules, against `zssr-original` at the
paper profile, on crops that are not the held-out ones:

    python tools/blind_schedule.py --crops tuning --n 6 --variants paper,quick,quick-x3 --out runs/schedule.jsonl

Variants: "paper" (the preset's schedule as published), "quick" (the preset's quick-profile reduction,
baselines.zssr_presets.quick_reduction, applied to ZSSR only: KernelGAN keeps its 3000 paper iterations),
"quick-x<N>" (that reduction with its iteration counts times N), "true-kernel" (zssr-true-kernel, paper: the
ceiling). The baseline, zssr-original at the paper profile, runs once per crop. Every cell runs with ZSSR seed 0
and the same random numbers; KernelGAN's seed is drawn from the crop's name. Rows are appended to --out as they
come (a JSON object per line); a rerun skips the (crop, variant) pairs already there, and the estimates are kept
in --cache, so a stopped run resumes. Prints the table (gain over zssr-original per crop and variant).

`--preset fast` measures zssr-fast and zssr-fast+kernelgan the same way (KernelGAN's estimates shared with the
original's through --cache). Crop sets: "tuning" (tools/kernelgan_small_images.tuning_crops: midway between the held-out picks), "held-out"
(tools/blind_kernel_table.py's eight), "fresh" (a quarter of the way between the held-out picks: disjoint from
both, for checking a choice made on the tuning crops).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ITERATION_FIELDS = ("max_iters", "min_iters", "lr_slope_range", "run_test_every", "lr_check_every")
OFFSETS = {"held-out": 0.0, "tuning": 0.5, "fresh": 0.25}
# how many crops each set has as measured (the held-out eight of blind_kernel_table.py, the six tuning crops, eight
# fresh ones): another set's picks are checked against these
SET_SIZES = {"held-out": 8, "tuning": 6, "fresh": 8}


def variant_overrides(variant: str, preset: str = "original") -> dict | None:
    """The ZSSRConfig overrides of a schedule variant (None: the preset's paper schedule)."""
    from baselines.zssr_presets import quick_reduction

    m = re.fullmatch(r"paper|quick(?:-x(\d+))?", variant)
    if m is None:
        raise ValueError(f"variant {variant!r}: expected paper, quick, quick-x<N> or true-kernel")
    if variant == "paper":
        return None
    out = quick_reduction(preset)
    factor = int(m.group(1) or 1)
    return {k: (v * factor if k in ITERATION_FIELDS else v) for k, v in out.items()}


def crops(which: str, n: int, size: int) -> list[tuple[str, np.ndarray]]:
    from bench.datasets import load_dataset
    from blind_kernel_table import centre_crops, spread

    if which not in OFFSETS:
        raise SystemExit(f"--crops {which!r}: expected one of {sorted(OFFSETS)}")
    n_images = len(load_dataset("bsd100").images)
    picks = set(spread(n_images, n, offset=OFFSETS[which]))
    for other, offset in OFFSETS.items():
        if other != which and picks & set(spread(n_images, SET_SIZES[other], offset=offset)):
            raise SystemExit(f"--crops {which} --n {n}: overlaps the {other} crops; use another --n")
    return [(im.name, crop) for im, crop in centre_crops("bsd100", n, size, offset=OFFSETS[which])]


def _method(name: str, cache, **overrides):
    import torch

    from baselines.methods import create_method

    method = create_method(name, profile="paper", precision="fp32", **overrides)
    device = torch.device("cpu")
    method.choose_precision(device)
    method.prepare()
    method.setup(device)
    if cache is not None:
        method.estimate_cache = cache
    return method


def run_cell(method, lr: np.ndarray, hr: np.ndarray, kernelgan_seed: int, told: dict) -> dict:
    import torch

    from baselines.api import Request
    from bench.cellwork import tensor_to_image
    from bench.metrics import psnr_y

    frame = torch.from_numpy(lr.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    (result,) = method.run([Request(frame, 2, seed=0, told=told, seeds={"kernelgan": kernelgan_seed})])
    if isinstance(result, Exception):
        raise result
    sr = tensor_to_image(result.sr, gray=False)
    stats = result.stats
    return {"psnr_y": psnr_y(sr, hr, 2), "seconds": float(stats.get("seconds-total", float("nan"))),
            "iterations": float(np.sum(stats.get("iterations", 0))),
            "decision": stats.get("kernel-decision")}


def measure(which: str, n: int, size: int, variants: list[str], out: Path, cache_dir: Path,
            preset: str = "original") -> list[dict]:
    from baselines.zssr_presets import kernel_source_name
    from baselines.kernel_estimates import EstimateCache
    from bench.cellwork import told_values
    from bench.degradations import parse

    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    have = {(r["image"], r["variant"]) for r in done if r.get("preset", "original") == preset}
    cache, degradation = EstimateCache(cache_dir), parse("aniso-gaussian")
    for name, crop in crops(which, n, size):
        hr, lr, real = degradation.make_pair(crop, 2, name=name, y_only=False, image_id=name)
        seed = zlib.crc32(name.encode()) & 0x7FFFFFFF
        for variant in ["baseline", *variants]:
            if (name, variant) in have:
                continue
            if variant == "baseline":
                method = _method(kernel_source_name(preset, "bicubic"), None)
            elif variant == "true-kernel":
                method = _method(kernel_source_name(preset, "true-kernel"), None)
            else:
                method = _method(kernel_source_name(preset, "kernelgan"), cache,
                                 **(variant_overrides(variant, preset) or {}))
            row = {"crops": which, "preset": preset, "image": name, "variant": variant,
                   **run_cell(method, lr, hr, seed, told_values(method, real))}
            done.append(row)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return done


def to_markdown(rows: list[dict], variants: list[str], preset: str = "original") -> str:
    rows = [r for r in rows if r.get("preset", "original") == preset]
    by = {(r["image"], r["variant"]): r for r in rows}
    images = list(dict.fromkeys(r["image"] for r in rows))
    lines = [f"| image | zssr-{preset} PSNR-Y | " + " | ".join(f"{v}: gain (dB)" for v in variants) + " |",
             "|---|---:|" + "---:|" * len(variants)]
    gains: dict[str, list[float]] = {v: [] for v in variants}
    for im in images:
        base = by.get((im, "baseline"))
        cells = []
        for v in variants:
            r = by.get((im, v))
            if base is None or r is None:
                cells.append("-")
                continue
            gains[v].append(r["psnr_y"] - base["psnr_y"])
            cells.append(f"{gains[v][-1]:+.2f} ({r['seconds']:.0f} s)")
        lines.append(f"| {im} | {'-' if base is None else format(base['psnr_y'], '.2f')} | " + " | ".join(cells) + " |")
    lines.append("| mean (worst) | | " + " | ".join(
        f"{np.mean(g):+.2f} ({min(g):+.2f})" if g else "-" for g in gains.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crops", default="tuning", choices=sorted(OFFSETS))
    ap.add_argument("--preset", default="original", help="the ZSSR preset (its bicubic, kernelgan and true-kernel "
                    "methods; KernelGAN's estimates are shared across presets through --cache)")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--variants", default="paper,quick,quick-x3")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, appended (a rerun resumes)")
    ap.add_argument("--cache", type=Path, help="where KernelGAN's estimates are kept (default: beside --out)")
    ap.add_argument("--table-only", action="store_true", help="print the table of --out, run nothing")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v != "true-kernel":
            variant_overrides(v, args.preset)  # a bad name fails before anything runs
    if args.table_only:
        rows = [json.loads(line) for line in args.out.read_text().splitlines()]
    else:
        rows = measure(args.crops, args.n, args.size, variants, args.out,
                       args.cache or args.out.with_suffix(".estimates"), args.preset)
    print(to_markdown(rows, variants, args.preset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
