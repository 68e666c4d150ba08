"""Can a blind method tell a noisy LR image from a clean one by a simple noise estimate? A probe, not a method.

The estimate: the median absolute response of Immerkaer's 3 x 3 Laplacian-difference mask (its noise gain is 6),
over the LR image's R, G and B, as a Gaussian sigma in grey levels (median / 0.6745 / 6, averaged over channels).
It is printed per degradation for the LR images of a dataset at x2, with the drawn sigma and JPEG quality of
`realistic`, so that one can see whether any threshold separates "needs noise handling" from "clean".

    python tools/probe_noise_estimate.py --dataset bsd100 --degradations aniso-gaussian,realistic,bicubic

With --study-folder (a study's run folder of one dataset and degradation, e.g.
reports/studies/internal-vs-external/categories-realistic-seed0) it prints instead, from the committed results, per
image that a blind ZSSR ran on: the drawn noise sigma and JPEG quality, the estimate, and PSNR-Y of the preset
assuming bicubic, of it with KernelGAN's kernel and of it told the kernel and noise.

Used for docs/experiments/2026-12-07-blind-noise.md (run on BSD100, which the internal-vs-external study does not
use).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

# Immerkaer (1996), "Fast noise variance estimation": the difference of two Laplacians; white noise of sigma gives
# a response of standard deviation 6 sigma (the mask's L2 norm), smooth image content almost none
MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
MAD_TO_SIGMA = 0.6745
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))


def noise_sigma(lr: np.ndarray) -> float:
    """The estimated noise sigma (grey levels of 255) of an H x W (x C) uint8 image, averaged over channels."""
    sigmas = []
    for channel in (lr[..., None] if lr.ndim == 2 else lr).transpose(2, 0, 1):
        response = ndimage.convolve(channel.astype(np.float64), MASK, mode="reflect")[1:-1, 1:-1]
        sigmas.append(float(np.median(np.abs(response))) / MAD_TO_SIGMA / np.sqrt((MASK ** 2).sum()))
    return float(np.mean(sigmas))


def drawn_and_estimated(degradation, dataset, image, scale: int) -> tuple[float, int, float]:
    """(drawn noise sigma or 0, JPEG quality or 0, estimated sigma) of one image's LR input."""
    _, lr, real = degradation.make_pair(dataset.load(image), scale, name=image.name, y_only=False,
                                        image_id=image.content_id)
    return real.noise_sigma or 0.0, real.jpeg_quality or 0, noise_sigma(lr)


def study_table(folder: Path, preset: str, scale: int) -> None:
    """Per image of `folder` that <preset>+kernelgan ran on: what realistic drew, the estimate, the PSNR-Y of each
    kernel source (from the folder's results.csv files)."""
    import pandas as pd

    from bench.datasets import load_dataset
    from bench.degradations import parse

    rows = pd.concat([pd.read_csv(f) for f in sorted(folder.glob("*/results.csv"))])
    rows = rows[(rows["metric"] == "psnr-y") & (rows["status"] == "ok") & (rows["scale"] == scale)]
    blind = f"{preset}+kernelgan"
    images = set(rows[rows["method"] == blind]["image"])
    table = rows[rows["image"].isin(images)].pivot_table(index="image", columns="method", values="value",
                                                         aggfunc="last")
    dataset = load_dataset(str(rows["dataset"].iloc[0]))
    by_name = {im.name: im for im in dataset.images}
    # the spec the run was made with, as its run.json records it beside the versioned id of the rows
    run = json.loads((folder / blind / "run.json").read_text())
    degradation = parse(next(d["spec"] for d in run["degradations"] if d["id"] == rows["degradation"].iloc[0]))
    out = []
    for name, psnr in table.iterrows():
        out.append((*drawn_and_estimated(degradation, dataset, by_name[name], scale), name, psnr.get("bicubic"),
                    psnr[preset], psnr[blind], psnr.get(f"{preset}+true-kernel")))
    print(f"| image | drawn sigma | JPEG quality | estimated sigma | bicubic | {preset} | {blind} | told | "
          f"{blind} minus {preset} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, q, e, name, bic, base, kg, told in sorted(out):
        print(f"| {name} | {s:.1f} | {q} | {e:.2f} | {bic:.2f} | {base:.2f} | {kg:.2f} | {told:.2f} | "
              f"{kg - base:+.2f} |")


def main(argv: list[str] | None = None) -> int:
    from bench.datasets import load_dataset
    from bench.degradations import parse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="bsd100")
    ap.add_argument("--degradations", default="aniso-gaussian,realistic,bicubic")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--study-folder", type=Path, help="a study run folder: the per-image table of its blind ZSSR")
    ap.add_argument("--preset", default="zssr-fast", help="with --study-folder: the ZSSR preset")
    args = ap.parse_args(argv)
    if args.study_folder:
        study_table(args.study_folder, args.preset, args.scale)
        return 0
    dataset = load_dataset(args.dataset)
    for spec in args.degradations.split(","):
        degradation = parse(spec)
        rows = [drawn_and_estimated(degradation, dataset, image, args.scale) for image in dataset.images]
        est = np.array([r[2] for r in rows])
        print(f"{spec} x{args.scale}, {len(rows)} images: estimated sigma min {est.min():.2f}, median "
              f"{np.median(est):.2f}, max {est.max():.2f}")
        if any(r[0] for r in rows):
            true = np.array([r[0] for r in rows])
            print(f"  correlation with the drawn sigma: {np.corrcoef(true, est)[0, 1]:.2f}")
            for s, q, e in sorted(rows)[::max(1, len(rows) // 12)]:
                print(f"  drawn sigma {s:5.1f}, JPEG quality {q:3d}: estimated {e:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
