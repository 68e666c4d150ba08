"""The interactive comparison of a real-photo section (degradation none): per image, the input and every method's
output, for the HTML report's viewer (a before/after slider between any two of them, zoom and pan synchronised
across all of them, keyboard access; plain inline JS and CSS in templates/viewer.html.j2, nothing fetched).

Numbers only here: which files to show, at what size, with which caption; the files are the run folder's own
(sr/ and inputs/), referenced by relative paths."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from PIL import Image

from bench.pathnames import safe_component
from bench.report.load import RunData
from bench.results import Cell, input_paths

# what a pane's caption shows, with its format: the no-reference metrics (there is no HR image)
CAPTION_METRICS = (("niqe", "NIQE {:.2f}"), ("lr-psnr-y", "LR-PSNR {:.2f} dB"), ("lr-psnr-y-kernel",
                                                                               "LR-PSNR (own kernel) {:.2f} dB"))
INPUT_LABEL = "input"


def _size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size
    except OSError:
        return None


def _caption(df: pd.DataFrame, method: str) -> str:
    values = {m: v for m, v in zip(df.loc[df["method"] == method, "metric"], df.loc[df["method"] == method, "value"])}
    parts = [fmt.format(values[m]) for m, fmt in CAPTION_METRICS
             if m in values and isinstance(values[m], float) and math.isfinite(values[m])]
    return " · ".join(parts)


def viewers(data: RunData, rows: pd.DataFrame, dataset: str, degradation: str, scale: int, key: str) -> list[dict]:
    """One viewer per image of a (dataset, degradation none, scale) section that has its input and at least one
    output on disk: {id, image, scale, width, height (the outputs' size), panes: [{label, path, caption}]}, the
    input first (shown enlarged nearest-neighbour to the outputs' size)."""
    root = data.run_dir
    outputs = {(r.method, r.image): r.output for r in data.cells.itertuples()
               if r.output and r.dataset == dataset and r.degradation == degradation and int(r.scale) == scale}
    out = []
    for image in sorted(set(rows["image"])):
        df = rows[rows["image"] == image]
        _, lr_rel = input_paths(Cell(dataset, "", image, df["image_sha"].iloc[0], degradation, scale, "", ""))
        lr_size = _size(root / lr_rel)
        if lr_size is None:
            continue
        width, height = lr_size[0] * scale, lr_size[1] * scale
        panes = [{"label": f"{INPUT_LABEL} (nearest ×{scale})", "path": lr_rel, "caption": "no HR image exists"}]
        for method in data.methods_in(df):
            rel = outputs.get((method, image))
            if rel and _size(root / rel) == (width, height):
                panes.append({"label": method, "path": rel, "caption": _caption(df, method)})
        if len(panes) < 2:
            continue
        out.append({"id": f"viewer-{key}-{safe_component(image)}", "image": image, "scale": scale, "width": width,
                    "height": height, "panes": panes})
    return out
