#!/usr/bin/env python
"""ZSSR speed: the full training loop vs the bare network step, and seconds per image end to end.

    python tools/bench_zssr_speed.py --device cpu --iters 100 --threads 2
    python tools/bench_zssr_speed.py --precisions fp32,bf16 --layouts contiguous,channels_last \
        --presets original,modified --no-e2e            # the step-rate matrix
    python tools/bench_zssr_speed.py --precisions bf16 --profile paper --e2e-images baby,bird,butterfly,head,woman
    python tools/bench_zssr_speed.py --batch 1,2,4,8,16 --stackings grouped,vmap   # batched training (zssr.batched)

1. bare step: forward + L1 loss + backward + Adam step of the ZSSR network on one fixed 128x128 crop;
2. full loop: ZSSR's training loop (augmentation via grid_sample, degradation and interpolation by resampling
   matrices, the step, the reconstruction-error measurement every 50 iterations, the lr policy), same crop size,
   trained on a Set5 LR image; timed from last_stats["seconds-train"] (the final ensemble excluded);
4. with --batch: K problems (Set5 LR images cycled, each with its own seed) trained together by
   zssr.batched.upscale_many for --iters iterations (no early stop, final test off): steps per second per problem
   and in total, against K = 1;
3. end to end: one Set5 image (HR from $ZSSR_BENCH_DATA/set5/HR, x2 LR by MATLAB bicubic, rounded to uint8),
   ZSSR.upscale with the chosen profile, wall-clock seconds and PSNR-Y against bicubic.
Not a test; numbers depend on what else runs on the machine.
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

from baselines.zssr_method import QUICK_OVERRIDES  # noqa: E402
from zssr import ZSSR, ZSSRConfig  # noqa: E402
from zssr.network import ZSSRNet  # noqa: E402
from zssr.precision import autocast, resolve_precision  # noqa: E402
from zssr.resize import imresize  # noqa: E402

QUICK = QUICK_OVERRIDES["original"]  # the harness's "quick" profile for zssr-original


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_set5(name: str, scale: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    from baselines.settings import data_root

    root = data_root()
    if not root:
        raise SystemExit("set ZSSR_BENCH_DATA to the datasets folder (e.g. ../shared/datasets)")
    path = Path(root) / "set5" / "HR" / f"{name}.png"
    if not path.is_file():
        raise SystemExit(f"Set5 image not found: {path}")
    hr = np.asarray(Image.open(path).convert("RGB"))
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    from basicsr.utils.matlab_functions import imresize as matlab_imresize

    lr = matlab_imresize(hr.astype(np.float64) / 255.0, 1.0 / scale)
    lr = np.clip(np.round(lr * 255.0), 0, 255).astype(np.uint8)
    return hr, lr


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    def y(img: np.ndarray) -> np.ndarray:
        f = img.astype(np.float64) / 255.0
        return np.round(16 + 65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2])

    a, b = y(sr)[border:-border, border:-border], y(hr)[border:-border, border:-border]
    return float(10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2)))


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return np.clip(np.round(t[0].permute(1, 2, 0).float().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)


def bare_step_rate(cfg: ZSSRConfig, device: torch.device, iters: int, warmup: int) -> tuple[float, float]:
    """(iterations per wall second, iterations per CPU second of this process) of the bare step."""
    torch.manual_seed(0)
    net = ZSSRNet(cfg)
    net.reset_parameters(torch.Generator().manual_seed(0))
    net.to(device)
    channels_last = cfg.channels_last
    if channels_last:
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate,
                           **({"fused": True} if device.type == "cuda" else {}))
    x = torch.rand(1, 3, cfg.crop_size, cfg.crop_size, device=device)
    target = torch.rand_like(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    precision = resolve_precision(cfg.precision, device)

    def step() -> None:
        with autocast(precision, device):
            y = net(x)
        loss = torch.nn.functional.l1_loss(y.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        step()
    sync(device)
    return iters / (time.perf_counter() - t0), iters / (time.process_time() - c0)


def loop_rate(cfg: ZSSRConfig, lr: torch.Tensor, iters: int, warmup: int) -> tuple[float, float]:
    """(iterations per wall second of seconds-train, iterations per CPU second) of ZSSR's training loop.

    The CPU rate is the difference between a run of warmup + iters and one of warmup iterations (same fixed costs:
    setup, one final forward; ensemble and back-projection off), so it isolates the per-iteration cost.
    """
    base = cfg.replace(back_projection_iters=(0,), ensemble=False)
    c0 = time.process_time()
    ZSSR(base.replace(max_iters=warmup)).upscale(lr, 2)
    c1 = time.process_time()
    z = ZSSR(base.replace(max_iters=warmup + iters))
    z.upscale(lr, 2)
    c2 = time.process_time()
    wall = z.last_stats["iterations"] / z.last_stats["seconds-train"]
    return wall, iters / max((c2 - c1) - (c1 - c0), 1e-9)


def batch_rates(cfg: ZSSRConfig, lrs: list[torch.Tensor], ks: list[int], iters: int, stackings: list[str],
                repeats: int, graphs: list[bool]) -> list[dict]:
    """Training steps per second of upscale_many for each batch size K (median of `repeats` runs)."""
    from zssr.batched import BatchConfig, Problem, upscale_many

    base = cfg.replace(max_iters=iters, min_learning_rate=0.0, back_projection_iters=(0,), ensemble=False)
    rows = []
    for stacking, graph in [(s, g) for s in stackings for g in graphs]:
        batch = BatchConfig(stacking=stacking, cuda_graph=graph)
        for k in ks:
            problems = [Problem(lrs[i % len(lrs)], 2, base.replace(seed=i)) for i in range(k)]
            upscale_many(problems[:1], batch)  # warm-up: kernels chosen, caches filled
            seconds = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                results = upscale_many(problems, batch)
                sync(lrs[0].device)
                infer = sum(r[1]["seconds-infer"] for r in results)
                seconds.append(time.perf_counter() - t0 - infer)
            t = float(np.median(seconds))
            rows.append(dict(stacking=stacking, cuda_graph=graph, batch=k, crop=cfg.crop_size,
                             precision=results[0][1]["precision"], steps_per_s_per_problem=iters / t,
                             steps_per_s_total=k * iters / t))
            print(f"{stacking:8s}{' graph' if graph else ''} K={k:3d}  {iters / t:8.2f} steps/s per problem  {k * iters / t:8.2f} in total "
                  f"({1000 * t / iters:.1f} ms per batched step)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--iters", type=int, default=100, help="timed iterations for the bare step and the loop")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="alternating bare/loop measurements (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--image", default="bird", help="Set5 image for the loop")
    ap.add_argument("--e2e-images", default="", help="Set5 images for the end-to-end runs (default: --image)")
    ap.add_argument("--profile", choices=("paper", "quick"), default="quick",
                    help=f"end-to-end configuration: the preset as published, or quick = {QUICK}")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run")
    ap.add_argument("--precisions", default="auto", help="comma-separated: auto, fp32, bf16, fp16 (CUDA)")
    ap.add_argument("--layouts", default="channels_last", help="comma-separated: contiguous, channels_last")
    ap.add_argument("--presets", default="original", help="comma-separated ZSSR presets (original, modified, ...)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--batch", default="", help="comma-separated batch sizes K for batched training (e.g. 1,2,4,8)")
    ap.add_argument("--stackings", default="grouped", help="with --batch: grouped, vmap (comma-separated)")
    ap.add_argument("--cuda-graph", choices=("off", "on", "both"), default="off",
                    help="with --batch on CUDA: capture the batched step as a CUDA graph (both: measure each)")
    ap.add_argument("--crop", type=int, default=0, help="HR father size (default: the preset's / profile's)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    hr, lr_u8 = load_set5(args.image, 2)
    lr = (torch.from_numpy(lr_u8).permute(2, 0, 1)[None].float() / 255.0).to(device)
    info = dict(device=str(device), device_name=torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"cpu ({os.cpu_count()} cores)", threads=torch.get_num_threads(), torch=torch.__version__,
                image=args.image, lr_size=list(lr_u8.shape[:2]), iters=args.iters, load_average=os.getloadavg())
    print(json.dumps(info))
    if args.batch:
        lrs = [(torch.from_numpy(load_set5(n, 2)[1]).permute(2, 0, 1)[None].float() / 255.0).to(device)
               for n in ("baby", "bird", "butterfly", "head", "woman")]
        batched = []
        for preset in args.presets.split(","):
            for precision in args.precisions.split(","):
                cfg = ZSSRConfig.preset(preset).replace(device=str(device), precision=precision)
                if args.profile == "quick":
                    cfg = cfg.replace(**QUICK_OVERRIDES[preset])
                if args.crop:
                    cfg = cfg.replace(crop_size=args.crop)
                print(f"batched training: preset {preset}, {args.profile} profile, crop {cfg.crop_size}, "
                      f"{args.iters} iterations", flush=True)
                graphs = {"off": [False], "on": [True], "both": [False, True]}[args.cuda_graph]
                if device.type != "cuda":
                    graphs = [False]
                for row in batch_rates(cfg, lrs, [int(k) for k in args.batch.split(",")], args.iters,
                                       args.stackings.split(","), args.repeats, graphs):
                    batched.append(dict(row, preset=preset, profile=args.profile))
        if args.json:
            args.json.write_text(json.dumps(dict(info, batched=batched, load_average_after=os.getloadavg()),
                                            indent=1))
        return 0
    rows = []
    print(f"{'preset':10s} {'precision':9s} {'layout':14s} {'bare it/s':>9s} {'ms/it':>6s} {'loop it/s':>9s} "
          f"{'ms/it':>6s} {'overhead':>8s}")
    for preset in args.presets.split(","):
        for precision in args.precisions.split(","):
            for layout in args.layouts.split(","):
                cfg = ZSSRConfig.preset(preset).replace(device=str(device), precision=precision,
                                                        channels_last=layout == "channels_last")
                # alternate the two measurements so that load from other processes hits both alike; medians
                bares, loops = [], []
                for _ in range(args.repeats):
                    bares.append(bare_step_rate(cfg, device, args.iters, args.warmup))
                    loops.append(loop_rate(cfg, lr, args.iters, args.warmup))
                bare, loop = float(np.median([b[0] for b in bares])), float(np.median([lp[0] for lp in loops]))
                row = dict(preset=preset, precision=resolve_precision(precision, device), layout=layout,
                           crop=cfg.crop_size, bare_step_it_per_s=bare, full_loop_it_per_s=loop,
                           loop_overhead_percent=100 * (bare / loop - 1))
                if device.type == "cpu":  # CPU time: less sensitive to other processes than wall time
                    bare_cpu = float(np.median([b[1] for b in bares]))
                    loop_cpu = float(np.median([lp[1] for lp in loops]))
                    row.update(bare_step_it_per_cpu_s=bare_cpu, full_loop_it_per_cpu_s=loop_cpu,
                               loop_overhead_cpu_percent=100 * (bare_cpu / loop_cpu - 1))
                rows.append(row)
                print(f"{preset:10s} {row['precision']:9s} {layout:14s} {bare:9.2f} {1000 / bare:6.1f} {loop:9.2f} "
                      f"{1000 / loop:6.1f} {row['loop_overhead_percent']:+7.1f}%", flush=True)
    e2e = []
    if not args.no_e2e:
        for preset in args.presets.split(","):
            for precision in args.precisions.split(","):
                cfg = ZSSRConfig.preset(preset).replace(device=str(device), precision=precision)
                if args.profile == "quick":
                    cfg = cfg.replace(**QUICK_OVERRIDES[preset])
                for name in (args.e2e_images or args.image).split(","):
                    e2e.append(end_to_end(cfg, name, device, args.profile))
    res = dict(info, steps=rows, end_to_end=e2e, load_average_after=os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


def end_to_end(cfg: ZSSRConfig, name: str, device: torch.device, profile: str) -> dict:
    """One Set5 image x2 through ZSSR.upscale: wall seconds, iterations, PSNR-Y (and bicubic's)."""
    hr, lr_u8 = load_set5(name, 2)
    lr = (torch.from_numpy(lr_u8).permute(2, 0, 1)[None].float() / 255.0).to(device)
    bicubic = to_uint8(imresize(lr, 2).clamp(0, 1))
    sync(device)
    t0 = time.perf_counter()
    z = ZSSR(cfg)
    sr = z.upscale(lr, 2)
    sync(device)
    seconds = time.perf_counter() - t0
    out = dict(image=name, profile=profile, precision=z.last_stats["precision"], seconds=seconds,
               iterations=z.last_stats["iterations"], seconds_train=z.last_stats["seconds-train"],
               psnr_y=psnr_y(to_uint8(sr), hr, 2), psnr_y_bicubic_rgb=psnr_y(bicubic, hr, 2))
    print(f"end to end ({profile}, {z.last_stats['precision']}, {name} x2): {seconds:.1f} s "
          f"({out['seconds_train']:.1f} s training, {out['iterations']} iterations), PSNR-Y {out['psnr_y']:.2f} dB "
          f"(bicubic on RGB {out['psnr_y_bicubic_rgb']:.2f} dB)", flush=True)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
