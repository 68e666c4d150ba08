"""Measure PSNR-Y / SSIM-Y and seconds per image of baselines on Set5 (classic protocol), on this machine.

    ZSSR_BENCH_DATA=../shared/datasets .venv/bin/python tools/measure_pretrained.py --scale 4 \
        --methods bicubic,lanczos,realesrgan-x4plus,dat-light

HR mod-cropped to the scale; LR = MATLAB bicubic (basicsr port) of the RGB HR by 1/scale, rounded to uint8; SR rounded
to uint8; Y = MATLAB rgb2ycbcr Y rounded; `scale` border pixels cropped (bench.metrics definitions).
Also prints Laplacian sharpness (mean |Laplacian| of Y) next to the metrics.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from baselines.api import MethodUnavailable  # noqa: E402
from baselines.interpolation import matlab_bicubic  # noqa: E402
from baselines.methods import create_method  # noqa: E402


def y_channel(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64) / 255.0
    return np.round(16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2])


def sharpness(rgb: np.ndarray) -> float:
    y = y_channel(rgb)
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.abs(lap).mean())


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[:2]
    hr = hr[: h - h % scale, : w - w % scale]
    t = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].float() / 255
    lr = matlab_bicubic(t, 1 / scale)
    return hr, (lr.clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy().astype(np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round()[0].permute(1, 2, 0).cpu().numpy().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--methods", default="bicubic,lanczos,realesrgan-x4plus,realesrgan-x4plus-anime,"
                                         "realesr-animevideov3,dat-light,esrgan,rrdb-psnr")
    ap.add_argument("--images", default="", help="comma-separated stems (default: all of Set5)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precisions", default="fp32",
                    help="comma-separated: fp32, bf16, fp16 (CUDA), auto; with several, per-image PSNR-Y "
                         "differences against the first are printed")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from bench.metrics import psnr_y, ssim_y

    from baselines.settings import data_root

    data = (data_root() or Path("../shared/datasets")) / "set5" / "HR"
    files = sorted(data.glob("*.png"))
    if args.images:
        files = [f for f in files if f.stem in args.images.split(",")]
    pairs = [make_lr(np.array(Image.open(f).convert("RGB")), args.scale) for f in files]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Set5 x{args.scale}, {len(files)} images")
    device = torch.device(args.device)
    print(f"{'method':26s} {'prec':>5s} {'PSNR-Y':>7s} {'SSIM-Y':>7s} {'sharp':>6s} {'s/img':>7s} {'load s':>6s} native")
    for name in args.methods.split(","):
        first: list[float] | None = None
        for precision in args.precisions.split(","):
            method = create_method(name, precision=precision)
            t0 = time.perf_counter()
            try:
                method.setup(device)
            except MethodUnavailable as exc:
                print(f"{name:26s} {precision:>5s} unavailable: {str(exc).splitlines()[0]}")
                continue
            load = time.perf_counter() - t0
            method.upscale(to_tensor(pairs[0][1][:16, :16]).to(device), args.scale)  # warm-up
            ps, ss, sh, secs = [], [], [], []
            for hr, lr in pairs:
                t0 = time.perf_counter()
                sr = to_uint8(method.upscale(to_tensor(lr).to(device), args.scale))
                secs.append(time.perf_counter() - t0)
                ps.append(psnr_y(sr, hr, args.scale))
                ss.append(ssim_y(sr, hr, args.scale))
                sh.append(sharpness(sr))
            line = (f"{name:26s} {str(method.precision):>5s} {np.mean(ps):7.3f} {np.mean(ss):7.4f} {np.mean(sh):6.2f} "
                    f"{np.mean(secs):7.2f} {load:6.2f} {method.native_scale(args.scale)}  per-image PSNR "
                    + " ".join(f"{p:.3f}" for p in ps))
            if first is None:
                first = ps
            else:
                diff = np.array(ps) - np.array(first)
                line += f"  diff vs first: mean {diff.mean():+.4f} dB, max |.| {np.abs(diff).max():.4f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
