"""Kernel accuracy of a blind method's estimates in a finished run folder, against the true kernels.

    python tools/kernel_accuracy.py reports/<run> [--method zssr-kernelgan] [--out kernels.md]

Per image (cells whose degradation drew a true kernel and whose method saved an estimate):
- kernel error (zssr.kernels.kernel_error): ||k - k_true|| / ||k_true|| after centring both, for the estimate and
  for the bicubic kernel (what a method assuming bicubic uses);
- LR re-synthesis PSNR-Y: the saved HR input degraded with each kernel (centred as ZSSR centres a given kernel,
  rounded to uint8) against the cell's actual LR input; the true kernel's own figure shows what rounding and any
  added noise or JPEG leave.
Needs the run's saved inputs (the default; not with --no-save-images).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.protocol import kernel_downscale_uint8  # noqa: E402
from bench.images import load_image  # noqa: E402
from bench.metrics import psnr_y  # noqa: E402
from bench.report.kernels import read_kernel  # noqa: E402
from bench.report.load import load_run  # noqa: E402
from bench.results import Cell, estimated_kernel_path, input_paths, kernel_path  # noqa: E402
from zssr.kernels import bicubic_kernel, kernel_error  # noqa: E402


def measure(run_dir: Path, method: str) -> list[dict]:
    data = load_run(run_dir)
    out = []
    for r in data.cells[data.cells["method"] == method].itertuples():
        cell = Cell(r.dataset, r.category, r.image, r.image_sha, r.degradation, int(r.scale), r.method, r.config_id)
        est, true = read_kernel(run_dir / estimated_kernel_path(cell)), read_kernel(run_dir / kernel_path(cell))
        if est is None or true is None:
            continue
        hr_rel, lr_rel = input_paths(cell)
        hr, lr = load_image(run_dir / hr_rel), load_image(run_dir / lr_rel)
        bic = bicubic_kernel(cell.scale)
        row = dict(dataset=cell.dataset, degradation=cell.degradation, scale=cell.scale, image=cell.image,
                   err_est=kernel_error(est, true), err_bicubic=kernel_error(bic, true))
        for name, k in (("est", est), ("bicubic", bic), ("true", true)):
            row[f"lr_psnr_{name}"] = psnr_y(kernel_downscale_uint8(hr, k, cell.scale), lr, border=0)
        out.append(row)
    return out


def _db(value: float) -> str:
    return "exact" if value == float("inf") else f"{value:.2f}"


def to_markdown(rows: list[dict], method: str) -> str:
    head = ("| image | kernel error: estimate | kernel error: bicubic | LR PSNR-Y: estimate | LR PSNR-Y: bicubic | "
            "LR PSNR-Y: true |\n|---|---:|---:|---:|---:|---:|\n")
    lines = [f"| {r['image']} (x{r['scale']}, {r['degradation']}) | {r['err_est']:.3f} | {r['err_bicubic']:.3f} | "
             f"{_db(r['lr_psnr_est'])} | {_db(r['lr_psnr_bicubic'])} | {_db(r['lr_psnr_true'])} |" for r in rows]
    if rows:
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.startswith(("err", "lr_"))}
        better = sum(r["err_est"] < r["err_bicubic"] for r in rows)
        lines.append(f"| **mean of {len(rows)}** | **{mean['err_est']:.3f}** | {mean['err_bicubic']:.3f} | "
                     f"**{_db(mean['lr_psnr_est'])}** | {_db(mean['lr_psnr_bicubic'])} | {_db(mean['lr_psnr_true'])} |")
        lines.append(f"\n{method}'s kernel is closer to the true kernel than the bicubic kernel on {better} of "
                     f"{len(rows)} images.")
    return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--method", default="zssr-kernelgan")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    args = ap.parse_args(argv)
    rows = measure(args.run_dir, args.method)
    if not rows:
        print(f"{args.run_dir}: no {args.method} cell with both an estimated and a true kernel", file=sys.stderr)
        return 1
    text = to_markdown(rows, args.method)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
