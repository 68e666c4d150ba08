"""Summary statistics (mean and 95 % t-interval over images) and the table model both renderers share."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bench.report.load import FLOPS_METRIC, FLOPS_UNIT, MEMORY_METRIC, TIME_METRIC, RunData

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
    """Fixed formatting per metric (the metric table's format), so that a table reads evenly."""
    from bench.metrics import METRIC_TABLE

    if not np.isfinite(value):
        return "n/a"
    spec = METRIC_TABLE.get(metric)
    fmt = spec.fmt if spec else ".4g"
    if fmt == ".0f" and abs(value) < 10:
        fmt = ".1f"
    if fmt == ".3g" and abs(value) >= 1000:
        fmt = ".0f"
    return format(value, fmt)


def exclusions(values: pd.Series, images: pd.Series) -> str:
    """What a mean leaves out, said in words: e.g. "1 inf (baby)"; "" when every value is finite."""
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    names = list(images)
    parts = []
    for label, mask in (("inf", np.isinf(arr)), ("n/a", np.isnan(arr))):
        if mask.any():
            listed = [names[i] for i in np.flatnonzero(mask)]
            parts.append(f"{int(mask.sum())} {label} ({', '.join(listed[:5])}{', ...' if len(listed) > 5 else ''})")
    return "; ".join(parts)


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
    if metric == FLOPS_METRIC:
        return f"TFLOP / image {arrow(data, metric)}"
    if metric == MEMORY_METRIC:  # on the CPU the process's resident set (it includes the process's baseline)
        what = "peak RSS" if (data.run.get("device") or {}).get("type") == "cpu" else "peak"
        return f"{what} {unit or 'MiB'} {arrow(data, metric)}"
    return f"{metric} {arrow(data, metric)}" + (f" ({unit})" if unit else "")


def table_metrics(data: RunData, df: pd.DataFrame) -> list[str]:
    present = set(df["metric"])
    out = [m for m in data.quality_metrics if m in present]
    return out + [m for m in (TIME_METRIC, FLOPS_METRIC, MEMORY_METRIC) if m in present]


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
    notes: list[str] = []
    undefined = undefined_metrics(df, metrics)
    for reason in dict.fromkeys(undefined.values()):
        notes.append(f"{', '.join(m for m, r in undefined.items() if r == reason)}: n/a for every image here: "
                     f"{reason}.")
    for method in data.methods_in(df):
        sub = df[df["method"] == method]
        n_images = int(sub["image"].nunique())
        cells = [Cell(text=data.family(method))]
        for metric in metrics:
            picked = sub[sub["metric"] == metric]
            values = picked["value"]
            if metric == MEMORY_METRIC:  # the largest; a non-positive reading is no reading
                finite = pd.to_numeric(values, errors="coerce")
                finite = finite[np.isfinite(finite) & (finite > 0)]
                mean, ci, n = (float(finite.max()) if len(finite) else math.nan), math.nan, int(len(finite))
                text = decimals(metric, mean)
            else:
                if metric == FLOPS_METRIC:  # TFLOP per image
                    values = pd.to_numeric(values, errors="coerce") / FLOPS_UNIT
                mean, ci, n = mean_ci(values)
                text = decimals(metric, mean)
                if np.isfinite(ci):
                    text += f" ± {decimals(metric, ci)}"
                left_out = exclusions(values, picked["image"])
                if left_out and metric not in undefined:  # said once for the table instead
                    text += f" (n={n})"
                    notes.append(f"{method}, {metric}: the mean is over {n} of {len(picked)} images; left out: "
                                 f"{left_out}.")
            cells.append(Cell(text=text, mean=mean, ci=ci, n=n, metric=metric))
        cells.append(Cell(text=str(n_images), mean=float(n_images), n=n_images, metric="n"))
        rows.append(Row(method=method, label=method_label(data, method, df), family=data.family(method),
                        cells=cells, n_images=n_images))
    for j, metric in enumerate(metrics, start=1):
        if metric in (MEMORY_METRIC, FLOPS_METRIC):  # costs to read, not contests (interpolation's 0 FLOPs would
            continue                                 # always win; CPU memory figures include a baseline)
        means = [r.cells[j].mean for r in rows if np.isfinite(r.cells[j].mean)]
        if len(means) < 2:
            continue
        best = max(means) if data.higher_is_better(metric) else min(means)
        for r in rows:
            if np.isfinite(r.cells[j].mean) and decimals(metric, r.cells[j].mean) == decimals(metric, best):
                r.cells[j].bold = True
    reused = pd.to_numeric(df.loc[df["metric"] == "kernel-reused", "value"], errors="coerce")
    if len(reused):
        notes.append(f"KernelGAN estimates are computed once per LR image, KernelGAN configuration and seed and shared "
                     f"by the methods that use them ({int((reused > 0).sum())} of {len(reused)} such cells here reused "
                     "one); every cell is charged the estimate's full seconds and FLOPs, so its s / image and "
                     "TFLOP / image do not depend on which cell computed it.")
    if any(r.n_images < 2 for r in rows) or (rows and max(r.n_images for r in rows) < 2):
        notes.append("One image only: the mean is shown without a confidence interval.")
    return Table(title=title, anchor=anchor, columns=columns, rows=rows, notes=notes)


def undefined_metrics(df: pd.DataFrame, metrics: list[str]) -> dict[str, str]:
    """{metric: reason} for the metrics that are n/a for every row of `df` (e.g. the reference metrics under the
    degradation none, which has no HR image): their columns say n/a, and the reason is said once."""
    out = {}
    for metric in metrics:
        picked = df[df["metric"] == metric]
        if len(picked) and (picked["status"] == "n/a").all():
            reasons = sorted({str(n) for n in picked.get("note", pd.Series(dtype=str)) if str(n)})
            out[metric] = "; ".join(reasons) or "undefined for these images"
    return out


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
