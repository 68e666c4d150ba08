"""Side-by-side zoomed crops: HR, then every method, the same window, labelled with PSNR and LPIPS.

The window is the one where the methods' outputs differ most: the box maximising the summed per-pixel variance
(over methods) of the luminance. Under the degradation none (real photos) there is no HR image: the first panel is
the input itself (enlarged nearest-neighbour to the output's size), each image gets its two most disputed windows,
and each window is shown at full size (1:1) above its nearest-neighbour zoom.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from bench.degradations import is_as_is
from bench.pathnames import safe_component, unique_names
from bench.results import Cell, input_paths
from bench.report.load import RunData

PANEL = 200          # displayed panel size in pixels
MAX_PER_ROW = 5
MAX_IMAGES = 20      # above this many images per (dataset, scale), only the most instructive ones get crops
LABEL_H = 38


@dataclass
class CropFigure:
    dataset: str
    image: str
    scale: int
    path: Path
    window: tuple[int, int, int]  # top, left, size (HR pixels)
    panels: list[str]
    missing: list[str]
    degradation: str = "bicubic"
    windows: list[tuple[int, int, int]] | None = None  # degradation none: every window shown (the first is `window`)


def _font(size: int):
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (OSError, ImportError, ValueError):
        return ImageFont.load_default()


def _read(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB") if im.mode not in ("RGB", "L") else im)
    except OSError:
        return None
    return np.stack([arr] * 3, axis=-1) if arr.ndim == 2 else arr[..., :3]


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def best_window(images: list[np.ndarray], size: int) -> tuple[int, int]:
    """Top-left of the size x size window with the largest summed variance across the images (same shape)."""
    stack = np.stack([_luma(im) for im in images])
    var = stack.var(axis=0)
    h, w = var.shape
    integral = np.pad(var.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def disputed_windows(images: list[np.ndarray], size: int, count: int = 2) -> list[tuple[int, int]]:
    """Top-lefts of up to `count` non-overlapping size x size windows where the images disagree most, best first:
    best_window, then the best window outside the ones already taken."""
    stack = np.stack([_luma(im) for im in images])
    var = stack.var(axis=0)
    windows: list[tuple[int, int]] = []
    for _ in range(count):
        if windows and not np.isfinite(var).any():
            break
        integral = np.pad(np.nan_to_num(var, nan=0.0).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
        for top, left in windows:  # no window may overlap one already taken
            sums[max(0, top - size + 1):top + size, max(0, left - size + 1):left + size] = -np.inf
        if not np.isfinite(sums).any():
            break
        top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
        windows.append((int(top), int(left)))
    return windows


def _values(df: pd.DataFrame, method: str, image: str, scale: int) -> dict[str, float]:
    sub = df[(df["method"] == method) & (df["image"] == image) & (df["scale"] == scale)]
    return {m: float(v) for m, v in zip(sub["metric"], sub["value"]) if pd.notna(v)}


def _label(method: str, vals: dict[str, float]) -> str:
    parts = []
    if "psnr-y" in vals:
        parts.append(f"{vals['psnr-y']:.2f} dB")
    if "lpips-alex" in vals:
        parts.append(f"LPIPS {vals['lpips-alex']:.3f}")
    if not parts:  # no reference (degradation none): the no-reference metrics instead
        if "niqe" in vals:
            parts.append(f"NIQE {vals['niqe']:.2f}")
        if "lr-psnr-y" in vals:
            parts.append(f"LR {vals['lr-psnr-y']:.1f} dB")
    return method + "\n" + (" · ".join(parts) if parts else "no metrics")


def compose_full_and_zoom(panels: list[tuple[str, np.ndarray]], windows: list[tuple[int, int, int]]) -> Image.Image:
    """One row per window and panel set: each panel's crop at full size (1:1, what a viewer sees at 100 %), with its
    nearest-neighbour zoom beside it; the label under both."""
    size = windows[0][2]
    zoom = max(2, round(PANEL / size))
    side, gap = size * zoom, 6
    cell_w = size + gap + side
    cols = min(3, len(panels))  # a 1:1 crop and its zoom side by side: three pairs fit a page
    rows_per_window = math.ceil(len(panels) / cols)
    row_h = side + LABEL_H + gap
    head = 18
    canvas = Image.new("RGB", (cols * (cell_w + 2 * gap) + gap,
                               len(windows) * (rows_per_window * row_h + head) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    y_base = gap
    for w, (top, left, wsize) in enumerate(windows):
        draw.text((gap, y_base), f"window {w + 1}: {wsize}×{wsize} px at ({left}, {top}); left 1:1, right "
                  f"nearest-neighbour ×{zoom}", fill="black", font=font)
        y_base += head
        for k, (label, img) in enumerate(panels):
            r, c = divmod(k, cols)
            x0, y0 = gap + c * (cell_w + 2 * gap), y_base + r * row_h
            crop = Image.fromarray(np.ascontiguousarray(img[top:top + wsize, left:left + wsize]))
            canvas.paste(crop, (x0, y0))
            canvas.paste(crop.resize((side, side), Image.NEAREST), (x0 + size + gap, y0))
            draw.multiline_text((x0 + 2, y0 + side + 3), label, fill="black", font=font, spacing=2)
        y_base += rows_per_window * row_h
    return canvas


def compose(panels: list[tuple[str, np.ndarray]], window: tuple[int, int, int]) -> Image.Image:
    top, left, size = window
    zoom = max(1, round(PANEL / size))
    side = size * zoom
    cols = min(MAX_PER_ROW, len(panels))
    rows = math.ceil(len(panels) / cols)
    gap = 6
    canvas = Image.new("RGB", (cols * (side + gap) + gap, rows * (side + LABEL_H + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    for k, (label, img) in enumerate(panels):
        r, c = divmod(k, cols)
        x0, y0 = gap + c * (side + gap), gap + r * (side + LABEL_H + gap)
        crop = Image.fromarray(np.ascontiguousarray(img[top:top + size, left:left + size]))
        canvas.paste(crop.resize((side, side), Image.NEAREST), (x0, y0))
        draw.multiline_text((x0 + 2, y0 + side + 3), label, fill="black", font=font, spacing=2)
    return canvas


def _instructive(df: pd.DataFrame, data: RunData, scale_df: pd.DataFrame, limit: int) -> list[str]:
    """Images where methods disagree most in psnr-y (largest spread), falling back to any metric present."""
    images = sorted(set(scale_df["image"]))
    if len(images) <= limit:
        return images
    finite = scale_df[np.isfinite(pd.to_numeric(scale_df["value"], errors="coerce"))]
    present = set(finite["metric"])
    metric = "psnr-y" if "psnr-y" in present else next((m for m in data.quality_metrics if m in present), None)
    if metric is None:
        return images[:limit]
    spread = scale_df[scale_df["metric"] == metric].groupby("image")["value"].agg(lambda v: v.max() - v.min())
    return list(spread.sort_values(ascending=False).index[:limit])


def render_crops(data: RunData, out_dir: Path, max_images: int = MAX_IMAGES) -> list[CropFigure]:
    figures: list[CropFigure] = []
    rows = data.rows
    if not len(rows):
        return figures
    outputs_of = {(r.dataset, r.degradation, int(r.scale), r.method, r.image): r.output
                  for r in data.cells.itertuples() if r.output}
    file_names = crop_file_names(rows)
    for (dataset, degradation, scale), scale_df in rows.groupby(["dataset", "degradation", "scale"], sort=True):
        scale = int(scale)
        methods = data.methods_in(scale_df)
        for image in _instructive(rows, data, scale_df, max_images):
            first = scale_df[scale_df["image"] == image].iloc[0]
            hr_rel, lr_rel = input_paths(Cell(dataset, "", image, first["image_sha"], degradation, scale, "", ""))
            as_is = is_as_is(degradation)
            hr = _read(data.run_dir / hr_rel) if not as_is else None
            lr = _read(data.run_dir / lr_rel) if as_is else None
            outputs, missing = [], []
            for m in methods:
                rel = outputs_of.get((dataset, degradation, scale, m, image))
                sr = _read(data.run_dir / rel) if rel else None
                (outputs.append((m, sr)) if sr is not None else missing.append(m))
            if not outputs:
                continue
            if lr is not None:  # the input, enlarged nearest-neighbour to the outputs' size: the before picture
                hr = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
            arrays = ([hr] if hr is not None else []) + [a for _, a in outputs]
            h = min(a.shape[0] for a in arrays)
            w = min(a.shape[1] for a in arrays)
            size = int(min(h, w, max(24, min(h, w) // 4), 96))
            if size < 4:
                continue
            sr_arrays = [a[:h, :w] for _, a in outputs]
            top, left = best_window(sr_arrays, size) if len(sr_arrays) > 1 else ((h - size) // 2, (w - size) // 2)
            panels = []
            if lr is not None:
                panels.append((f"input (no HR image)\nnearest ×{scale}", hr[:h, :w]))
            elif hr is not None:
                panels.append((f"HR (ground truth)\ncrop {size}×{size} at ({left}, {top})", hr[:h, :w]))
            for (m, _), arr in zip(outputs, sr_arrays):
                cell = scale_df[(scale_df["method"] == m) & (scale_df["image"] == image)]
                nonnative = bool((cell["native"] == False).any()) if "native" in cell else False  # noqa: E712
                panels.append((_label(m + (" †" if nonnative else ""), _values(scale_df, m, image, scale)), arr))
            path = out_dir / file_names[(dataset, degradation, scale, image)]
            path.parent.mkdir(parents=True, exist_ok=True)
            windows = None
            if as_is:  # pictures first: the two most disputed windows, each at 1:1 and zoomed
                spots = disputed_windows(sr_arrays, size) if len(sr_arrays) > 1 else [(top, left)]
                windows = [(t, l, size) for t, l in spots]
                top, left = spots[0]
                compose_full_and_zoom(panels, windows).save(path, optimize=True)
            else:
                compose(panels, (top, left, size)).save(path, optimize=True)
            figures.append(CropFigure(dataset, image, scale, path, (top, left, size),
                                      [m for m, _ in outputs], missing, degradation, windows))
    return figures


def crop_file_names(rows: pd.DataFrame) -> dict[tuple, str]:
    """{(dataset, degradation, scale, image): file name}, one distinct file per figure: names are made safe
    (bench.paths.safe_component: `a b` and `a-b` stay apart), and names that still meet once joined are
    disambiguated (bench.paths.unique_names)."""
    keys = sorted({(d, g, int(s), i) for d, g, s, i in zip(rows["dataset"], rows["degradation"], rows["scale"],
                                                            rows["image"])})

    def name(key: tuple) -> str:
        dataset, degradation, scale, image = key
        tag = "" if degradation == "bicubic" else f"_{safe_component(degradation)}"
        return f"{safe_component(dataset)}_{safe_component(image)}_x{scale}{tag}.png"

    return unique_names(keys, name)
