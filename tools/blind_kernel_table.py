"""Blind ZSSR against ZSSR assuming bicubic, per image, with each cell's kernel decision (issue 40).

Held-out crops (never used to tune the checks), then the run, then the table:

    python tools/blind_kernel_table.py crops --dataset bsd100 --n 8 --size 192 --out /tmp/bsd100-crops
    python -m bench run --dataset /tmp/bsd100-crops --scales 2 --degradation aniso-gaussian --profile quick \\
        --methods zssr-original,zssr-kernelgan,zssr-fast,zssr-fast+kernelgan,zssr-true-kernel \\
        --out reports/blind-bsd100-quick
    python tools/blind_kernel_table.py table reports/blind-bsd100-quick --out blind-bsd100-quick.md \\
        --pair zssr-kernelgan:zssr-original --pair zssr-fast+kernelgan:zssr-fast

(`--profile paper` for the paper profile; Set14: `--dataset set14` and no crops.) `table` writes, per pair of a
blind method and its bicubic baseline and per (degradation, scale): each image's PSNR-Y of both, the gain, the
decision (use / re-estimate / bicubic) and its reason, the estimate's kernel error and the bicubic kernel's where the
run saved a true kernel; then the mean gain, the worst image and the issue's two criteria (no image more than
0.3 dB below the baseline, a mean gain of at least 1.0 dB), each said to hold or not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the acceptance criteria, in dB of PSNR-Y against the bicubic baseline
WORST_ALLOWED = -0.3
MEAN_WANTED = 1.0


def spread(n_images: int, n: int, offset: float = 0.0) -> list[int]:
    """Indices of n images spread evenly over n_images sorted names (the first and last included); `offset` shifts
    every pick by that fraction of the spacing (0.5: midway between the picks of offset 0), wrapping at the end."""
    if not 1 <= n <= n_images:
        raise ValueError(f"--n {n}: the dataset has {n_images} images; ask for 1 to {n_images}")
    step = (n_images - 1) / max(n - 1, 1)
    return [int(i) % n_images for i in np.round(np.linspace(0, n_images - 1, n) + offset * step)]


def centre_crops(dataset: str, n: int, size: int, offset: float = 0.0):
    """(image, size x size centre crop of its HR) for the images `spread(..., n, offset)` picks."""
    from bench.datasets import load_dataset

    ds = load_dataset(dataset)
    images = sorted(ds.images, key=lambda im: im.name)
    for i in spread(len(images), n, offset):
        hr = ds.load(images[i])
        h, w = hr.shape[:2]
        if min(h, w) < size:
            raise ValueError(f"{dataset}/{images[i].name} is {w} x {h}, smaller than the crop of {size}; use a "
                             "smaller --size")
        top, left = (h - size) // 2, (w - size) // 2
        yield images[i], hr[top:top + size, left:left + size]


def make_crops(dataset: str, n: int, size: int, out: Path, offset: float = 0.0) -> list[str]:
    """Centre crops (size x size) of n images spread evenly over the dataset's sorted names (shifted by `offset` of
    the spacing, see spread), written as PNG files into `out` (a folder dataset). Returns the names cropped."""
    from bench.images import save_image

    crops = list(centre_crops(dataset, n, size, offset))
    out.mkdir(parents=True, exist_ok=True)
    for im, crop in crops:
        save_image(out / f"{im.name}.png", crop)
    return [im.name for im, _ in crops]


def measure(run_dir: Path, blind: str, baseline: str) -> list[dict]:
    """One row per image, degradation and scale where both methods have a PSNR-Y."""
    from bench.report.kernels import read_kernel
    from bench.report.load import load_run
    from bench.results import Cell, estimated_kernel_path, kernel_path
    from baselines.kernel_decision import DECISION_CODES
    from zssr.kernel_math import bicubic_kernel, kernel_error

    names = {code: name for name, code in DECISION_CODES.items()}
    data = load_run(run_dir)
    rows = data.rows
    psnr = rows[rows["metric"] == "psnr-y"].set_index(["degradation", "scale", "image", "method"])["value"]
    decision_rows = rows[(rows["metric"] == "kernel-decision") & (rows["method"] == blind)]
    decisions = {(r.degradation, int(r.scale), r.image): (names.get(int(r.value), "unknown"), str(r.note))
                 for r in decision_rows.itertuples()}
    out = []
    for r in data.cells[data.cells["method"] == blind].itertuples():
        key = (r.degradation, int(r.scale), r.image)
        if (*key, blind) not in psnr.index or (*key, baseline) not in psnr.index:
            continue
        # files are named by the registered method (method_id), not by its label when a folder holds two versions
        cell = Cell(r.dataset, r.category, r.image, r.image_sha, r.degradation, int(r.scale), r.method_id,
                    r.config_id)
        est, true = read_kernel(run_dir / estimated_kernel_path(cell)), read_kernel(run_dir / kernel_path(cell))
        decision, note = decisions.get(key, ("none", ""))
        reason = note[len(decision) + 2:] if note.startswith(decision + ": ") else note
        out.append(dict(degradation=r.degradation, scale=int(r.scale), image=r.image,
                        psnr_blind=float(psnr[(*key, blind)]), psnr_baseline=float(psnr[(*key, baseline)]),
                        decision=decision, reason=reason,
                        err_est=kernel_error(est, true) if est is not None and true is not None else float("nan"),
                        err_bicubic=kernel_error(bicubic_kernel(int(r.scale)), true) if true is not None
                        else float("nan")))
    for row in out:
        row["gain"] = row["psnr_blind"] - row["psnr_baseline"]
    return sorted(out, key=lambda d: (d["degradation"], d["scale"], d["image"]))


def to_markdown(rows: list[dict], blind: str, baseline: str) -> str:
    parts = []
    groups = sorted({(r["degradation"], r["scale"]) for r in rows})
    for degradation, scale in groups:
        group = [r for r in rows if (r["degradation"], r["scale"]) == (degradation, scale)]
        lines = [f"### {blind} against {baseline}, x{scale} [{degradation}]", "",
                 f"| image | {baseline} PSNR-Y | {blind} PSNR-Y | gain (dB) | decision | kernel error: estimate | "
                 "kernel error: bicubic | reason |", "|---|---:|---:|---:|---|---:|---:|---|"]
        for r in group:
            lines.append(f"| {r['image']} | {r['psnr_baseline']:.2f} | {r['psnr_blind']:.2f} | {r['gain']:+.2f} | "
                         f"{r['decision']} | {r['err_est']:.3f} | {r['err_bicubic']:.3f} | "
                         f"{r['reason'].replace('|', '/')} |")
        gains = np.array([r["gain"] for r in group])
        worst = group[int(np.argmin(gains))]
        counts = {d: sum(r["decision"] == d for r in group) for d in ("use", "re-estimate", "bicubic")}
        below = int(np.sum(gains < WORST_ALLOWED))
        lines += ["", f"Mean gain {gains.mean():+.2f} dB over {len(group)} images (worst {worst['image']}: "
                  f"{worst['gain']:+.2f} dB); decisions: {counts['use']} use, {counts['re-estimate']} re-estimate, "
                  f"{counts['bicubic']} bicubic.",
                  f"- no image more than {-WORST_ALLOWED:g} dB below {baseline}: "
                  f"{'holds' if below == 0 else f'does not hold ({below} images)'}",
                  f"- mean gain of at least {MEAN_WANTED:g} dB: "
                  f"{'holds' if gains.mean() >= MEAN_WANTED else 'does not hold'}", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    crops = sub.add_parser("crops", help="write held-out centre crops of a dataset as a folder dataset")
    crops.add_argument("--dataset", default="bsd100")
    crops.add_argument("--n", type=int, default=8)
    crops.add_argument("--size", type=int, default=192)
    crops.add_argument("--out", type=Path, required=True)
    crops.add_argument("--offset", type=float, default=0.0, help="shift the picks by this fraction of their spacing "
                       "(0.25: the fresh crops of tools/blind_schedule.py, disjoint from the held-out eight and the "
                       "tuning six)")
    table = sub.add_parser("table", help="the per-image table of a finished run folder")
    table.add_argument("run_dir", type=Path)
    table.add_argument("--pair", action="append", metavar="BLIND:BASELINE",
                       help="a blind method and its bicubic baseline (repeatable; default "
                       "zssr-kernelgan:zssr-original)")
    table.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args(argv)
    if args.command == "crops":
        names = make_crops(args.dataset, args.n, args.size, args.out, args.offset)
        print(f"{len(names)} crops of {args.size} x {args.size} from {args.dataset} in {args.out}: {', '.join(names)}")
        return 0
    texts = []
    for pair in args.pair or ["zssr-kernelgan:zssr-original"]:
        blind, sep, baseline = pair.partition(":")
        if not sep or not blind or not baseline:
            ap.error(f"--pair {pair!r}: write BLIND:BASELINE, e.g. zssr-kernelgan:zssr-original")
        rows = measure(args.run_dir, blind, baseline)
        if not rows:
            print(f"{args.run_dir}: no image with a psnr-y of both {blind} and {baseline}", file=sys.stderr)
            return 1
        texts.append(to_markdown(rows, blind, baseline))
    text = "\n".join(texts)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
