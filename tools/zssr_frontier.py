#!/usr/bin/env python
"""ZSSR's speed-quality frontier: PSNR-Y against seconds per image, per preset and precision, across budgets.

    python tools/zssr_frontier.py                                   # Set5 x2, the defaults below (hours on a CPU)
    python tools/zssr_frontier.py --images bird --budgets 50,100 --out /tmp/f.png   # a smoke run

Each point is one (preset, precision, iteration budget): every image's x2 LR (MATLAB bicubic, uint8, as the
harness makes it) through ZSSR.upscale with the preset's configuration and max_iters = budget (a cap for the
original's adaptive policy, the whole schedule's length for the fixed schedules), seed 0; the point is the mean
PSNR-Y (MATLAB Y, 2-pixel border, as bench.metrics) over images against the mean wall seconds per image. Points
are appended to the JSON lines file as they finish, and a rerun skips the ones already there (delete the file to
start over); the PNG is drawn from that file. Not a test: seconds depend on the machine and what else runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import psnr_y  # noqa: E402
from zssr import ZSSR, ZSSRConfig  # noqa: E402
from zssr.resize import imresize  # noqa: E402

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def load_pair(name: str, scale: int) -> tuple[np.ndarray, torch.Tensor]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_zssr_speed import load_set5

    hr, lr_u8 = load_set5(name, scale)
    return hr, torch.from_numpy(lr_u8).permute(2, 0, 1)[None].float() / 255.0


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return np.clip(np.round(t[0].permute(1, 2, 0).float().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)


def measure(preset: str, precision: str, budget: int, images, scale: int, device: torch.device) -> dict:
    cfg = ZSSRConfig.preset(preset).replace(precision=precision, max_iters=budget, seed=0, device=str(device))
    psnrs, seconds, iterations = [], [], []
    for name in images:
        hr, lr = load_pair(name, scale)
        t0 = time.perf_counter()
        z = ZSSR(cfg)
        sr = z.upscale(lr.to(device), scale)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - t0)
        psnrs.append(psnr_y(to_uint8(sr), hr, scale))
        iterations.append(z.last_stats["iterations"])
    return dict(preset=preset, precision=z.last_stats["precision"], budget=budget, scale=scale, images=list(images),
                psnr_y=float(np.mean(psnrs)), psnr_y_per_image=psnrs, seconds=float(np.mean(seconds)),
                seconds_per_image=seconds, iterations=iterations)


def bicubic_psnr(images, scale: int) -> float:
    values = []
    for name in images:
        hr, lr = load_pair(name, scale)
        values.append(psnr_y(to_uint8(imresize(lr, scale).clamp(0, 1)), hr, scale))
    return float(np.mean(values))


def plot(points: list[dict], bicubic: float | None, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    series: dict[tuple[str, str], list[dict]] = {}
    for p in points:
        series.setdefault((p["preset"], p["precision"]), []).append(p)
    colours = {"original": "#1f77b4", "modified": "#d62728", "fast": "#2ca02c"}
    for (preset, precision), ps in sorted(series.items()):
        ps = sorted(ps, key=lambda p: p["seconds"])
        ax.plot([p["seconds"] for p in ps], [p["psnr_y"] for p in ps], marker="o",
                linestyle="-" if precision == "bf16" else "--", color=colours.get(preset),
                label=f"zssr-{preset} ({precision})")
        for p in ps:
            ax.annotate(str(p["budget"]), (p["seconds"], p["psnr_y"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=7, color="#555")
    if bicubic is not None:
        ax.axhline(bicubic, color="#888", linewidth=1, linestyle=":", label="bicubic")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per image (log scale); labels: iteration budget")
    ax.set_ylabel("PSNR-Y (dB), mean over images")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=",".join(SET5), help="Set5 images (comma-separated)")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--presets", default="original,fast,modified", help="ZSSR presets (comma-separated)")
    ap.add_argument("--budgets", default="100,200,400,800,1600,3000", help="max_iters values (comma-separated)")
    ap.add_argument("--precisions", default="bf16,fp32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, default=Path("docs/zssr-frontier.jsonl"))
    ap.add_argument("--out", type=Path, default=Path("docs/zssr-frontier.png"))
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON lines file")
    args = ap.parse_args(argv)

    images = args.images.split(",")
    device = torch.device(args.device)
    done = [json.loads(line) for line in args.json.read_text().splitlines() if line.strip()] \
        if args.json.is_file() else []
    have = {(p["preset"], p["precision"], p["budget"], p["scale"], tuple(p["images"])) for p in done}
    if not args.plot_only:
        _, lr = load_pair(images[0], args.scale)  # warm-up: kernels chosen, caches filled, before any timing
        ZSSR(ZSSRConfig.preset("original").replace(max_iters=2, device=str(device))).upscale(lr.to(device), args.scale)
        for preset in args.presets.split(","):
            for precision in args.precisions.split(","):
                for budget in (int(b) for b in args.budgets.split(",")):
                    if (preset, precision, budget, args.scale, tuple(images)) in have:
                        continue
                    point = measure(preset, precision, budget, images, args.scale, device)
                    point.update(device=str(device), threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                                 load_average=os.getloadavg())
                    print(f"zssr-{preset} {point['precision']} budget {budget}: {point['psnr_y']:.3f} dB, "
                          f"{point['seconds']:.1f} s per image", flush=True)
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    with args.json.open("a") as fh:
                        fh.write(json.dumps(point) + "\n")
                    done.append(point)
    points = [p for p in done if p["scale"] == args.scale and tuple(p["images"]) == tuple(images)]
    where = f"{device.type} ({os.cpu_count()} cores)" if device.type == "cpu" else torch.cuda.get_device_name(device)
    plot(points, bicubic_psnr(images, args.scale), args.out,
         f"ZSSR speed vs quality, Set5 x{args.scale} ({len(images)} images), {where}")
    print(f"figure: {args.out} ({len(points)} points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
