#!/usr/bin/env python
"""ZSSR's speed-quality frontier: PSNR-Y against seconds per image, per preset and precision, across budgets.

    python tools/zssr_frontier.py                                   # Set5 x2, the defaults below (hours on a CPU)
    python tools/zssr_frontier.py --images bird --budgets 50,100 --fixed-budgets 50 --precisions bf16 \
        --json /tmp/f.jsonl --out /tmp/f.png                      # a smoke run

Each point is one (preset, precision, iteration budget): every image's x2 LR (MATLAB bicubic, uint8, as the
harness makes it) through ZSSR.upscale with the preset's configuration and max_iters = budget, seed 0; the point is
the mean PSNR-Y (MATLAB Y, 2-pixel border, as bench.metrics) over images against the mean wall seconds per image.

Presets with a fixed schedule (`fast`, `modified`: the rate follows max_iters) run once per budget
(`--fixed-budgets`). For the original's adaptive policy max_iters is only a cap: the augmentation plan is drawn
iteration by iteration and nothing else reads max_iters, so a run capped at N is the first N iterations of a longer
run. One run per image at the largest budget therefore gives every `--budgets` point: at iteration N the callback
takes the final test of the network as it is (`Snapshots`; the same output as a run with max_iters = N, tested bit
for bit in tests/test_zssr_frontier.py), and the point's seconds are the run's up to there plus that test, less the
earlier snapshots' tests. A budget above the iterations the policy ran is the run's final output.

Points are appended to the JSON lines file as they finish, and a rerun skips the ones already there (delete the
file to start over); the PNG is drawn from that file. Not a test: seconds depend on the machine and what else runs.
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
from zssr.precision import resolve_precision  # noqa: E402
from zssr.resize import imresize  # noqa: E402
from zssr.problem import sync as _sync  # noqa: E402  (the trainer's own device sync, for timing)

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def load_pair(name: str, scale: int) -> tuple[np.ndarray, torch.Tensor]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_zssr_speed import load_set5

    hr, lr_u8 = load_set5(name, scale)
    return hr, torch.from_numpy(lr_u8).permute(2, 0, 1)[None].float() / 255.0


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return np.clip(np.round(t[0].permute(1, 2, 0).float().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)


def snapshot_able(cfg: ZSSRConfig, scale: int) -> bool:
    """Whether a run capped at N iterations is the first N iterations of a longer run (see the module docstring):
    the adaptive policy, one scale step, and no restart or retry (both read max_iters)."""
    return (cfg.lr_schedule == "original-policy" and len(cfg.steps_for(scale)) == 1 and cfg.restart_if_stuck == 0
            and not cfg.retry_dead_steps and not cfg.kernel_paths)


class Snapshots:
    """ZSSR.upscale callback: at each of `at` iterations, the output that a run with max_iters = that count gives
    (the final test of the one-step run on the network as it is now) and the seconds that run would take.

    Uses the run's own final test (zssr.problem.ProblemRun.final_test) so that the output is the same computation."""

    def __init__(self, z: ZSSR, lr: torch.Tensor, scale: int, at) -> None:
        self.z, self.at, self.scale = z, {int(n) for n in at}, scale
        x = lr.detach().to(dtype=torch.float32)
        self.gray = x.shape[1] == 1
        self.inp = (x.expand(-1, 3, -1, -1) if self.gray else x).clamp(0.0, 1.0).contiguous()
        self.taken: dict[int, tuple[torch.Tensor, float]] = {}  # iterations -> (output, seconds)
        self.spent = 0.0  # seconds of snapshot tests so far: not part of any later point's time
        self.t0 = time.perf_counter()  # made just before the run starts: its time counts from here

    def __call__(self, iteration: int, loss, lr_now, rec) -> None:
        n = iteration + 1
        if n not in self.at:
            return
        _sync(self.inp.device)
        t1 = time.perf_counter()
        out = self.z.run.final_test()
        if self.gray:
            out = out.mean(dim=1, keepdim=True)
        _sync(self.inp.device)
        t2 = time.perf_counter()
        self.taken[n] = (out, t1 - self.t0 - self.spent + (t2 - t1))
        self.spent += t2 - t1

    def finished(self, total_seconds: float) -> float:
        """The seconds of the whole run without the snapshots' tests."""
        return total_seconds - self.spent


def run_budgets(cfg: ZSSRConfig, lr: torch.Tensor, scale: int, budgets: list[int], device: torch.device
                ) -> dict[int, tuple[torch.Tensor, float, int]]:
    """budget -> (SR output, seconds, iterations run) for one image; one run per budget, or one run in all with
    snapshots where the preset allows (snapshot_able)."""
    if not snapshot_able(cfg, scale):
        results = {}
        for budget in budgets:
            z = ZSSR(cfg.replace(max_iters=budget))
            t0 = time.perf_counter()
            sr = z.upscale(lr.to(device), scale)
            _sync(device)
            results[budget] = (sr, time.perf_counter() - t0, z.last_stats["iterations"])
        return results
    z = ZSSR(cfg.replace(max_iters=max(budgets)))
    snaps = Snapshots(z, lr.to(device), scale, [b for b in budgets if b < max(budgets)])
    sr = z.upscale(lr.to(device), scale, callback=snaps)
    _sync(device)
    total = snaps.finished(time.perf_counter() - snaps.t0)
    ran = z.last_stats["iterations"]
    return {b: (snaps.taken[b][0], snaps.taken[b][1], b) if b in snaps.taken else (sr, total, ran) for b in budgets}


def parse_budgets(text: str, cfg: ZSSRConfig) -> list[int]:
    """"100,200,preset" -> sorted iteration counts; "preset" is the preset's own max_iters (its exact point)."""
    return sorted({cfg.max_iters if v.strip() == "preset" else int(v) for v in text.split(",") if v.strip()})


def measure(preset: str, precision: str, budgets: list[int], images, scale: int, device: torch.device
            ) -> list[dict]:
    """One point per budget: mean PSNR-Y and seconds per image over `images`."""
    cfg = ZSSRConfig.preset(preset).replace(precision=precision, seed=0, device=str(device))
    per_budget: dict[int, dict[str, list]] = {b: dict(psnrs=[], seconds=[], iterations=[]) for b in budgets}
    for name in images:
        hr, lr = load_pair(name, scale)
        for budget, (sr, seconds, iterations) in run_budgets(cfg, lr, scale, budgets, device).items():
            per_budget[budget]["psnrs"].append(psnr_y(to_uint8(sr), hr, scale))
            per_budget[budget]["seconds"].append(seconds)
            per_budget[budget]["iterations"].append(iterations)
    resolved = resolve_precision(precision, device)
    how = "snapshots of one run" if snapshot_able(cfg, scale) else "one run per budget"
    return [dict(preset=preset, precision=resolved, budget=b, scale=scale, images=list(images), measured_as=how,
                 psnr_y=float(np.mean(v["psnrs"])), psnr_y_per_image=v["psnrs"], seconds=float(np.mean(v["seconds"])),
                 seconds_per_image=v["seconds"], iterations=v["iterations"]) for b, v in per_budget.items()]


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
        own = ZSSRConfig.preset(preset).max_iters
        for i, p in enumerate(ps):
            if p["budget"] == own:  # the preset as shipped: the point a user of `zssr-<preset>` gets
                ax.plot(p["seconds"], p["psnr_y"], marker="*", markersize=14, color=colours.get(preset),
                        markeredgecolor="black", linestyle="none", zorder=3)
            # below right, or above left where the next point is close (the original's 1600 and 3000) and for the
            # fp32 series (whose points sit near the bf16 points of the other presets)
            crowded = precision != "bf16" or (i + 1 < len(ps) and ps[i + 1]["seconds"] < 1.25 * p["seconds"])
            ax.annotate(str(p["budget"]), (p["seconds"], p["psnr_y"]), textcoords="offset points",
                        xytext=(-4, 6) if crowded else (4, -10), ha="right" if crowded else "left",
                        fontsize=7, color="#555")
    if bicubic is not None:
        ax.axhline(bicubic, color="#888", linewidth=1, linestyle=":", label="bicubic")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("seconds per image (log scale); labels: iteration budget; star: the preset as shipped")
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
    ap.add_argument("--budgets", default="100,200,400,800,1600,preset",
                    help="max_iters values for the adaptive policy (original): snapshots of one run per image; "
                         "'preset': the preset's own max_iters")
    ap.add_argument("--fixed-budgets", default="160,325,650,1300,preset",
                    help="max_iters values for fixed schedules (fast, modified): one run per budget and image")
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
            cfg = ZSSRConfig.preset(preset)
            budgets = args.budgets if snapshot_able(cfg, args.scale) else args.fixed_budgets
            for precision in args.precisions.split(","):
                resolved = resolve_precision(precision, device)
                wanted = parse_budgets(budgets, cfg)
                todo = [b for b in wanted if (preset, resolved, b, args.scale, tuple(images)) not in have]
                if not todo:
                    continue
                for point in measure(preset, precision, todo, images, args.scale, device):
                    point.update(device=str(device), threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                                 load_average=os.getloadavg())
                    print(f"zssr-{preset} {point['precision']} budget {point['budget']}: {point['psnr_y']:.3f} dB, "
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
