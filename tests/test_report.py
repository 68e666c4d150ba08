"""bench.report: rendering report.md and index.html from a synthetic run folder (fast, CPU, tmp_path only)."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.report import render_report

COLUMNS = ["dataset", "category", "image", "scale", "method", "config_id", "protocol", "profile", "metric", "value",
           "native_scale", "device", "note"]
METHODS = {
    "bicubic": "interpolation",
    "zssr-original": "internal",
    "zssr-modified": "internal",
    "realesrgan-x4plus": "external",
    "dat-x4": "external",
}
CATEGORIES = {"faces": ["face1", "face2"], "text": ["text1", "text2", "text3"], "solo": ["lonely"]}
FAILURE = ("zssr-modified", "text2", 4, "CUDA out of memory | tried to allocate 2 GiB")
QUALITY = ["psnr-y", "ssim-y", "psnr-rgb", "lpips-alex", "niqe"]
HR_SIZE = 48


def _spec():
    from bench.results import METRIC_SPECS

    return METRIC_SPECS


def make_run(root: Path, profile: str = "quick", protocol: str = "rgb") -> Path:
    """A small run folder: 6 images in 3 categories (one with a single image), x2 and x4, 5 methods,
    one failed cell, one NaN value, dat-x4 absent at x2, realesrgan at a non-native scale at x2,
    ZSSR curves for some images, one missing SR output."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    yy, xx = np.mgrid[0:HR_SIZE, 0:HR_SIZE]
    for category, images in CATEGORIES.items():
        for k, image in enumerate(images):
            base = (128 + 60 * np.sin(xx / (3 + k)) * np.cos(yy / 5)).clip(0, 255)
            hr = np.stack([base, base[::-1], base.T], axis=-1).astype(np.uint8)
            for scale in (2, 4):
                (root / "inputs").mkdir(exist_ok=True)
                Image.fromarray(hr).save(root / "inputs" / f"{image}_x{scale}_hr.png")
                Image.fromarray(hr[::scale, ::scale]).save(root / "inputs" / f"{image}_x{scale}_lr.png")
                for j, (method, family) in enumerate(METHODS.items()):
                    if method == "dat-x4" and scale == 2:
                        continue
                    common = {"dataset": "synth", "category": category, "image": image, "scale": scale,
                              "method": method, "config_id": f"{method}-cfg", "protocol": protocol,
                              "profile": profile, "device": "cpu", "note": "",
                              "native_scale": "False" if (method == "realesrgan-x4plus" and scale == 2) else "True"}
                    if (method, image, scale) == FAILURE[:3]:
                        rows.append({**common, "metric": "error", "value": "", "note": FAILURE[3]})
                        continue
                    noise = rng.normal(0, 4 + 3 * j, size=hr.shape)
                    noise[10:26, 10:26] *= 1 + 2 * j  # a region where the methods differ most
                    sr = np.clip(hr + noise, 0, 255).astype(np.uint8)
                    if not (method == "dat-x4" and image == "face2"):
                        (root / "sr" / method).mkdir(parents=True, exist_ok=True)
                        Image.fromarray(sr).save(root / "sr" / method / f"{image}_x{scale}.png")
                    values = {
                        "psnr-y": 30 - 2 * math.log2(scale) + rng.normal(0, 1) + (1.5 if family == "internal" else 0),
                        "ssim-y": 0.9 - 0.02 * j + rng.normal(0, 0.01),
                        "psnr-rgb": 29 - 2 * math.log2(scale) + rng.normal(0, 1),
                        "lpips-alex": 0.2 + 0.03 * j + rng.normal(0, 0.02),
                        "niqe": float("nan") if (method == "bicubic" and image == "text3") else 5 + rng.normal(0, 1),
                        "seconds-total": (0.01 if family == "interpolation" else 30 if family == "internal" else 2)
                                         * (1 + rng.uniform(0, 0.5)),
                        "peak-memory-mb": 100 + 50 * j + rng.uniform(0, 20),
                    }
                    if family == "internal":
                        values["iterations"] = 500
                        values["seconds-train"] = values["seconds-total"] * 0.9
                    for metric, value in values.items():
                        rows.append({**common, "metric": metric, "value": "" if math.isnan(value) else repr(value)})
                    if family == "internal" and category != "text":
                        it = np.arange(0, 500, 10)
                        curve = pd.DataFrame({"iteration": it, "loss": 0.1 * np.exp(-it / 150) + 0.01,
                                              "lr": np.where(it < 300, 1e-3, 1e-4),
                                              "rec_error": 0.05 * np.exp(-it / 200) + 0.005})
                        (root / "curves").mkdir(exist_ok=True)
                        curve.to_csv(root / "curves" / f"{method}__{image}__x{scale}.csv", index=False)
    with open(root / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    run = {
        "git_revision": "abc1234", "packages": {"numpy": np.__version__, "pandas": pd.__version__},
        "device": {"type": "cpu", "name": "synthetic CPU"},
        "dataset": {"name": "synth", "version": "1", "n_images": 6, "source": "generated in tests"},
        "profile": profile, "protocol": protocol,
        "protocol_text": "HR mod-cropped to a multiple of the scale, downscaled with MATLAB bicubic, rounded to uint8.",
        "seed": 0, "scales": [2, 4],
        "methods": {m: {"config": {"name": m}, "info": {"family": f, "training_data": f"{m}-data",
                                                        "degradation": "bicubic", "licence": "MIT",
                                                        "parameters": 1234567, "paper": "Someone 2020",
                                                        "notes": ""}}
                    for m, f in reversed(list(METHODS.items()))},  # reversed: the report must reorder by family
        "metrics": _spec(), "started": "2024-01-01T00:00:00", "finished": "2024-01-01T01:00:00",
        "command": "zssr-bench run --dataset synth",
    }
    (root / "run.json").write_text(json.dumps(run, indent=1))
    return root


if __name__ == "__main__":  # render a demo folder: python tests/test_report.py OUT_DIR
    out = make_run(Path(sys.argv[1]), profile=sys.argv[2] if len(sys.argv) > 2 else "quick")
    print(render_report(out))
