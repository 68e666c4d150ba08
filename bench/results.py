"""The tidy results table: one row per (cell, metric), appended as each cell finishes.

A cell is (dataset, image, scale, method, config_id). Its rows are written in one append of whole lines and
flushed, so a killed run leaves at most one partial trailing line, which `read_results` drops.
A failed cell is one row with metric "error", an empty value and the message in `note`.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

COLUMNS = [
    "dataset", "category", "image", "scale", "method", "config_id", "protocol", "profile",
    "metric", "value", "native_scale", "device", "note",
]
CELL_KEY = ["dataset", "image", "scale", "method", "config_id"]
ERROR_METRIC = "error"

# Metric descriptions copied into run.json, so that reports need nothing but the run folder.
METRIC_SPECS: dict[str, dict] = {
    "psnr-y": {"higher_is_better": True, "unit": "dB", "description": "PSNR on MATLAB Y (rgb2ycbcr, rounded to uint8), `scale`-pixel border crop, uint8 SR; grayscale images on their single channel"},
    "ssim-y": {"higher_is_better": True, "unit": "", "description": "SSIM (Wang et al. ssim.m: 11x11 Gaussian, sigma 1.5) on the same Y and crop as psnr-y"},
    "psnr-rgb": {"higher_is_better": True, "unit": "dB", "description": "PSNR over R, G, B (uint8), `scale`-pixel border crop"},
    "lpips-alex": {"higher_is_better": False, "unit": "", "description": "LPIPS v0.1, AlexNet (ImageNet) backbone, inputs in [-1, 1], on RGB, `scale`-pixel border crop"},
    "niqe": {"higher_is_better": False, "unit": "", "description": "NIQE (no reference; basicsr, MATLAB-compatible), on Y, `scale`-pixel border crop"},
    "seconds-load": {"higher_is_better": False, "unit": "s", "description": "method set-up (weights to device), once per method and run, repeated on its first cell"},
    "seconds-train": {"higher_is_better": False, "unit": "s", "description": "test-time training (ZSSR), device-synchronised"},
    "seconds-infer": {"higher_is_better": False, "unit": "s", "description": "inference (total minus training), device-synchronised"},
    "seconds-total": {"higher_is_better": False, "unit": "s", "description": "wall time of the method's upscale call, device-synchronised"},
    "peak-memory-mb": {"higher_is_better": False, "unit": "MiB", "description": "peak device memory during the cell (CUDA allocator; process RSS growth on the CPU)"},
    "iterations": {"higher_is_better": False, "unit": "", "description": "ZSSR training iterations"},
}


@dataclass(frozen=True)
class Cell:
    dataset: str
    category: str
    image: str
    scale: int
    method: str
    config_id: str

    @property
    def key(self) -> tuple:
        return (self.dataset, self.image, int(self.scale), self.method, self.config_id)

    @property
    def slug(self) -> str:
        return f"{self.method}__{self.image}__x{self.scale}"


def _line(row: dict) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row.get(c, "") for c in COLUMNS])
    return buf.getvalue()


class ResultsWriter:
    """Appends whole cells to results.csv; the only writer of that file in a run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_text(",".join(COLUMNS) + "\n")
        else:
            self._drop_partial_tail()

    def _drop_partial_tail(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def append(self, rows: Iterable[dict]) -> None:
        text = "".join(_line(r) for r in rows)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def drop_cells(self, keys: set[tuple]) -> None:
        """Rewrite the file without the given cells (used to retry failed cells on resume), atomically."""
        if not keys:
            return
        df = read_results(self.path)
        keep = [tuple(k) not in keys for k in df[CELL_KEY].itertuples(index=False, name=None)]
        tmp = self.path.with_suffix(".csv.tmp")
        df[keep].to_csv(tmp, index=False, columns=COLUMNS)
        os.replace(tmp, self.path)


def read_results(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.read_csv(path, dtype={"image": str, "category": str, "note": str, "config_id": str}, keep_default_na=False,
                     na_values={"value": [""]})
    if len(df):
        df["scale"] = df["scale"].astype(int)
        df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


def finished_cells(df: pd.DataFrame) -> tuple[set[tuple], set[tuple]]:
    """(successful cell keys, failed cell keys) present in a results table."""
    if not len(df):
        return set(), set()
    keys = [tuple(k) for k in df[CELL_KEY].itertuples(index=False, name=None)]
    failed = {k for k, m in zip(keys, df["metric"]) if m == ERROR_METRIC}
    return set(keys) - failed, failed
