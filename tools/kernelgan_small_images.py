"""Does KernelGAN's crop size or schedule help on small images? (issue 40, item 3)

KernelGAN alone (no ZSSR): on centre crops of BSD100 images that are *not* the held-out crops of
tools/blind_kernel_table.py (the same spread of names, shifted by half a step), each crop blurred with an
`aniso-gaussian` x2 kernel (the degradation's own recipe, drawn from the image's name) and subsampled, KernelGAN runs
once per variant (`--degradation bicubic`: MATLAB bicubic instead, the truth then the bicubic kernel); per image and variant: the estimate's kernel error against the true kernel (zssr.kernel_math),
whether it passes the shape checks (zssr.kernel_checks, as the decision sees it), and the seconds.

    python tools/kernelgan_small_images.py --n 6 --size 192 --variants quick,quick-crop48,quick-crop32 \\
        --out docs/experiments/kernelgan-small-images.md

A variant is a KernelGAN preset ("quick", "paper") with optional "-crop<N>" (crop_size) and "-it<N>" (max_iters,
the preset's schedule compressed to fit) suffixes, or "release" (optionally "-it<N>"): the authors' released
KernelGAN (its defaults: 3000 iterations, its schedule unchanged) from a checkout of github.com/sefibk/KernelGAN named
by --release (nothing of it is in this repository), run on the CPU in this process through a few stand-ins that stay
for the rest of the process (`.cuda()` a no-op, no TensorFlow for the ZSSR it does not run here, numpy's removed
aliases), on the same LR image written to a PNG; seeded with --seed (numpy and torch).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # blind_kernel_table, when imported rather than run


def variant_config(name: str, seed: int):
    """The KernelGANConfig a variant name stands for."""
    from zssr.kernelgan import KernelGANConfig

    m = re.fullmatch(r"(quick|paper)((?:-(?:crop|it)\d+)*)", name)
    if m is None:
        raise ValueError(f"variant {name!r}: expected quick|paper with optional -crop<N> and -it<N> suffixes")
    cfg = KernelGANConfig.preset(m.group(1)).replace(seed=seed, precision="fp32")
    for key, value in re.findall(r"-(crop|it)(\d+)", m.group(2)):
        if key == "crop":
            cfg = cfg.replace(crop_size=int(value))
        else:  # the schedule scaled with the iterations, as the quick preset scales the paper's
            ratio = int(value) / cfg.max_iters
            cfg = cfg.replace(max_iters=int(value), lr_drop_every=max(1, round(cfg.lr_drop_every * ratio)),
                              lambda_update_every=max(1, round(cfg.lambda_update_every * ratio)))
    return cfg


HELD_OUT_N = 8  # the held-out crops: blind_kernel_table.py crops --dataset bsd100 --n 8


def tuning_crops(n: int, size: int) -> list[tuple[str, np.ndarray]]:
    """(name, HR crop) of n BSD100 images midway between the picks of an n-image spread, none of them a held-out one
    (blind_kernel_table.make_crops)."""
    from bench.datasets import load_dataset
    from blind_kernel_table import centre_crops, spread

    n_images = len(load_dataset("bsd100").images)
    overlap = set(spread(n_images, HELD_OUT_N)) & set(spread(n_images, n, offset=0.5))
    if overlap:
        raise RuntimeError(f"tuning images {sorted(overlap)} overlap the held-out ones")
    return [(im.name, crop) for im, crop in centre_crops("bsd100", n, size, offset=0.5)]


def release_iters(variant: str) -> int | None:
    """None: not a release variant; else its --max_iters (0: the release's default)."""
    m = re.fullmatch(r"release(?:-it(\d+))?", variant)
    return None if m is None else int(m.group(1) or 0)


def release_estimate(checkout: Path, lr: np.ndarray, seed: int, max_iters: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(final x2 kernel, G's kernel before post-processing) of the authors' KernelGAN on an RGB uint8 LR image."""
    import importlib.machinery
    import tempfile
    import types

    import cv2
    import scipy.io as sio
    import torch

    if not (checkout / "kernelGAN.py").is_file():
        raise SystemExit(f"--release {checkout}: not a checkout of github.com/sefibk/KernelGAN (no kernelGAN.py)")
    torch.Tensor.cuda = lambda self, *a, **k: self  # the release allocates everything with .cuda()
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.set_device = lambda *a, **k: None
    torch.FloatTensor = torch.Tensor
    np.int, np.float = int, float  # removed from numpy 1.24; the release uses them
    if "tensorflow" not in sys.modules:  # its util imports its TF1 ZSSR, which is not run here
        tf = types.ModuleType("tensorflow")
        tf.__spec__ = importlib.machinery.ModuleSpec("tensorflow", None)
        sys.modules["tensorflow"] = tf
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    import configs
    from data import DataGenerator
    from kernelGAN import KernelGAN
    from learner import Learner

    configs.Config.set_gpu_device = lambda self: None
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "lr.png"
        cv2.imwrite(str(png), cv2.cvtColor(lr, cv2.COLOR_RGB2BGR))
        torch.manual_seed(seed)
        np.random.seed(seed)
        conf = configs.Config().parse(["--input_image_path", str(png), "--output_dir_path", str(Path(tmp) / "out")]
                                      + (["--max_iters", str(max_iters)] if max_iters else []))
        gan, learner = KernelGAN(conf), Learner()
        data = DataGenerator(conf, gan)
        for it in range(conf.max_iters):  # the release's train(), keeping the GAN to read its raw kernel
            g_in, d_in = data.__getitem__(it)
            gan.train(g_in, d_in)
            learner.update(it, gan)
        gan.finish()
        final = sio.loadmat(str(Path(conf.output_dir_path) / f"{conf.img_name}_kernel_x2.mat"))["Kernel"]
        return np.asarray(final, dtype=np.float64), gan.curr_k.detach().cpu().numpy().astype(np.float64)


def measure(n: int, size: int, variants: list[str], seed: int = 0, degradation: str = "aniso-gaussian",
            images: list[str] | None = None, release: Path | None = None) -> list[dict]:
    import torch

    from bench.degradations import parse
    from zssr.kernel_checks import KernelLimits, check_kernel
    from zssr.kernel_math import bicubic_kernel, kernel_error
    from zssr.kernelgan import estimate_kernel, kept_kernel

    degradation, limits, rows = parse(degradation), KernelLimits(), []
    crops = tuning_crops(n, size)
    unknown = sorted(set(images or ()) - {name for name, _ in crops})
    if unknown:
        raise SystemExit(f"--images {','.join(unknown)}: not among the {n} tuning crops ({', '.join(c for c, _ in crops)})")
    for name, hr in crops:
        if images and name not in images:
            continue
        _, lr, real = degradation.make_pair(hr, 2, name=name, y_only=False, image_id=name)
        truth = bicubic_kernel(2) if real.kernel is None else real.kernel  # None: MATLAB bicubic downscaling
        frame = torch.from_numpy(lr.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        for variant in variants:
            start = time.perf_counter()
            if release_iters(variant) is not None:
                kernel_x2, raw = release_estimate(release, lr, seed, release_iters(variant))
                n_filtering = 40  # the release's default
            else:
                cfg = variant_config(variant, seed)
                est = estimate_kernel(frame, cfg)
                kernel_x2, raw, n_filtering = est.kernel_x2, est.raw_kernel, cfg.n_filtering
            seconds = time.perf_counter() - start
            verdict = check_kernel(kept_kernel(raw, n_filtering), limits)
            rows.append(dict(image=name, variant=variant, error=kernel_error(kernel_x2, truth),
                             bicubic_error=kernel_error(bicubic_kernel(2), truth), passes=verdict.ok,
                             width=_width(kernel_x2), true_width=_width(truth),
                             seconds=seconds))
            print(f"{name} {variant}: kernel error {rows[-1]['error']:.3f} (bicubic {rows[-1]['bicubic_error']:.3f}),"
                  f" width {rows[-1]['width']:.2f} (truth {rows[-1]['true_width']:.2f}),"
                  f" checks {'pass' if verdict.ok else 'fail: ' + verdict.summary()}, {seconds:.0f} s", flush=True)
    return rows


def _width(kernel: np.ndarray) -> float:
    """A kernel's width: the sum of its second-moment variances (px^2). The paper-profile losses of issue 40 were
    estimates wider than a narrow truth, so whether the estimated width follows the true one is the question."""
    from zssr.kernel_checks import measure_kernel

    m = measure_kernel(kernel)
    return m["variance_min"] + m["variance_max"]


def to_markdown(rows: list[dict], variants: list[str]) -> str:
    images = list(dict.fromkeys(r["image"] for r in rows))
    by = {(r["image"], r["variant"]): r for r in rows}
    head = ("| image | bicubic kernel | true width | " + " | ".join(f"{v} (width)" for v in variants) + " |\n|---|---:|---:|"
            + "---:|" * len(variants) + "\n")
    lines = []
    for im in images:
        cells = [by.get((im, v)) for v in variants]
        first = next(c for c in cells if c is not None)
        lines.append(f"| {im} | {first['bicubic_error']:.3f} | {first['true_width']:.2f} | " + " | ".join(
            "-" if c is None else f"{c['error']:.3f} ({c['width']:.2f}){'' if c['passes'] else ' (rejected)'}"
            for c in cells) + " |")
    means = []
    for v in variants:
        got = [by[(im, v)] for im in images if (im, v) in by]
        means.append(f"{np.mean([g['error'] for g in got]):.3f}, {sum(g['passes'] for g in got)}/{len(got)} pass, "
                     f"{np.mean([g['seconds'] for g in got]):.0f} s, width r = {_correlation(got)}" if got else "-")
    return (head + "\n".join(lines) + "\n| mean error, passing, seconds, width correlation | | | " + " | ".join(means)
            + " |\n\nError: kernel error against the truth (zssr.kernel_math.kernel_error); width: sum of the second-moment"
            " variances, px^2; r: Pearson correlation of estimated and true width over the images.\n")


def _correlation(rows: list[dict]) -> str:
    if len(rows) < 3:
        return "n/a"
    est, true = np.array([r["width"] for r in rows]), np.array([r["true_width"] for r in rows])
    if est.std() == 0 or true.std() == 0:
        return "n/a"
    return f"{np.corrcoef(est, true)[0, 1]:+.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--variants", default="quick,quick-crop48,quick-crop32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--degradation", default="aniso-gaussian",
                    help="how the LR crops are made (bicubic: does KernelGAN find a narrow kernel when there is one?)")
    ap.add_argument("--images", help="only these of the tuning crops (comma-separated names)")
    ap.add_argument("--release", type=Path, help="a checkout of github.com/sefibk/KernelGAN (for the variant release)")
    ap.add_argument("--out", type=Path, help="write the markdown table here (default: print it)")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:  # a bad name fails before any KernelGAN run
        if release_iters(v) is not None:
            if args.release is None:
                ap.error("the variant release needs --release <checkout of github.com/sefibk/KernelGAN>")
        else:
            variant_config(v, args.seed)
    images = [i for i in (args.images or "").split(",") if i] or None
    table = to_markdown(measure(args.n, args.size, variants, args.seed, args.degradation, images, args.release),
                        variants)
    if args.out:
        args.out.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
