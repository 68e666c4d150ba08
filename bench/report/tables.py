"""Summary statistics (mean and 95 % t-interval over images) and the table model both renderers share."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.load import MEMORY_METRIC, TIME_METRIC, RunData

CI_LEVEL = 0.95


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the two-sided 95 % t-interval, n) over the finite values; NaN where undefined."""
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan, n
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    return mean, float(stats.t.ppf(0.5 + CI_LEVEL / 2, n - 1)) * sem, n


def decimals(metric: str, value: float) -> str:
    """Fixed formatting per metric, so that a table reads evenly."""
    if not np.isfinite(value):
        return "n/a"
    if metric.startswith("psnr"):
        return f"{value:.2f}"
    if metric.startswith("ssim") or metric.startswith("lpips"):
        return f"{value:.4f}"
    if metric == "niqe":
        return f"{value:.3f}"
    if metric == MEMORY_METRIC or metric == "iterations":
        return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"
    if metric.startswith("seconds"):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{value:.4g}"


@dataclass
class Cell:
    text: str
    mean: float = math.nan
    ci: float = math.nan
    n: int = 0
    bold: bool = False
    metric: str = ""


@dataclass
class Column:
    key: str       # metric name, or "n"
    header: str
    tooltip: str = ""


@dataclass
class Row:
    method: str
    label: str
    family: str
    cells: list[Cell]
    n_images: int


@dataclass
class Table:
    title: str
    anchor: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def arrow(data: RunData, metric: str) -> str:
    return "↑" if data.higher_is_better(metric) else "↓"


def _header(data: RunData, metric: str) -> str:
    unit = data.unit(metric)
    if metric == TIME_METRIC:
        return f"s / image {arrow(data, metric)}"
    if metric == MEMORY_METRIC:
        return f"peak {unit or 'MiB'} {arrow(data, metric)}"
    return f"{metric} {arrow(data, metric)}" + (f" ({unit})" if unit else "")


def table_metrics(data: RunData, df: pd.DataFrame) -> list[str]:
    present = set(df["metric"])
    out = [m for m in data.quality_metrics if m in present]
    return out + [m for m in (TIME_METRIC, MEMORY_METRIC) if m in present]


def method_label(data: RunData, method: str, df: pd.DataFrame) -> str:
    """Method name, marked with a dagger where any of its rows here ran at a non-native scale."""
    sub = df[df["method"] == method]
    nonnative = bool((sub["native"] == False).any()) if "native" in sub else False  # noqa: E712
    configs = sorted(set(sub["config_id"])) if "config_id" in sub else []
    label = method + (f" [{', '.join(c for c in configs if c)}]" if len(configs) > 1 else "")
    return label + (" †" if nonnative else "")


def summary_table(data: RunData, df: pd.DataFrame, title: str, anchor: str) -> Table:
    """Methods x metrics: mean ± 95 % CI over images (peak memory: the maximum), best in bold."""
    metrics = table_metrics(data, df)
    columns = [Column("family", "family")]
    columns += [Column(m, _header(data, m), str(data.metric_specs.get(m, {}).get("description", ""))) for m in metrics]
    columns.append(Column("n", "images", "images with results for this method"))
    rows: list[Row] = []
    for method in data.methods_in(df):
        sub = df[df["method"] == method]
        cells = [Cell(text=data.family(method))]
        for metric in metrics:
            values = sub.loc[sub["metric"] == metric, "value"]
            if metric == MEMORY_METRIC:
                finite = pd.to_numeric(values, errors="coerce").dropna()
                mean, ci, n = (float(finite.max()) if len(finite) else math.nan), math.nan, int(len(finite))
                text = decimals(metric, mean)
            else:
                mean, ci, n = mean_ci(values)
                text = decimals(metric, mean)
                if np.isfinite(ci):
                    text += f" ± {decimals(metric, ci)}"
            cells.append(Cell(text=text, mean=mean, ci=ci, n=n, metric=metric))
        n_images = int(sub["image"].nunique())
        cells.append(Cell(text=str(n_images), mean=float(n_images), n=n_images, metric="n"))
        rows.append(Row(method=method, label=method_label(data, method, df), family=data.family(method),
                        cells=cells, n_images=n_images))
    for j, metric in enumerate(metrics, start=1):
        means = [r.cells[j].mean for r in rows if np.isfinite(r.cells[j].mean)]
        if len(means) < 2:
            continue
        best = max(means) if data.higher_is_better(metric) else min(means)
        for r in rows:
            if np.isfinite(r.cells[j].mean) and decimals(metric, r.cells[j].mean) == decimals(metric, best):
                r.cells[j].bold = True
    notes = []
    if any(r.n_images < 2 for r in rows) or (rows and max(r.n_images for r in rows) < 2):
        notes.append("One image only: the mean is shown without a confidence interval.")
    return Table(title=title, anchor=anchor, columns=columns, rows=rows, notes=notes)


@dataclass
class PairedRow:
    internal: str
    external: str
    metric: str
    n: int
    wins: int
    losses: int
    ties: int
    mean_diff: float
    ci: float
    better_images: list[str]


def paired_differences(data: RunData, df: pd.DataFrame, internal: str, external: str, metric: str) -> pd.Series:
    """Per-image internal minus external, signed so that a positive value means the internal method is better."""
    sub = df[df["metric"] == metric]
    a = sub[sub["method"] == internal].groupby("image")["value"].mean()
    b = sub[sub["method"] == external].groupby("image")["value"].mean()
    diff = (a - b).dropna()
    if not data.higher_is_better(metric):
        diff = -diff
    return diff.sort_values()


def paired_table(data: RunData, df: pd.DataFrame, metrics: list[str]) -> list[PairedRow]:
    methods = data.methods_in(df)
    internal = [m for m in methods if data.family(m) == "internal"]
    external = [m for m in methods if data.family(m) == "external"]
    out = []
    for metric in metrics:
        if metric not in set(df["metric"]):
            continue
        for i in internal:
            for e in external:
                diff = paired_differences(data, df, i, e, metric)
                mean, ci, n = mean_ci(diff.values)
                out.append(PairedRow(i, e, metric, n, int((diff > 0).sum()), int((diff < 0).sum()),
                                     int((diff == 0).sum()), mean, ci, list(diff[diff > 0].sort_values(ascending=False).index)))
    return out
