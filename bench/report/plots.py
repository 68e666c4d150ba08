"""Figures (matplotlib, Agg backend, PNG) under <run>/figures/. Every function returns the paths it wrote."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.report.load import FLOPS_METRIC, FLOPS_UNIT, TIME_METRIC, RunData  # noqa: E402
from bench.report.tables import mean_ci, paired_differences  # noqa: E402

FAMILY_COLOURS = {"interpolation": "#7f7f7f", "internal": "#d62728", "external": "#1f77b4", "other": "#2ca02c"}
# Shades per family, so that methods of one family stay distinguishable (grey / reds / blues / greens).
FAMILY_SHADES = {
    "interpolation": ["#7f7f7f", "#b0b0b0", "#4d4d4d"],
    "internal": ["#d62728", "#f4a09c", "#8c1c13", "#e8665f", "#5c0f0a"],
    "external": ["#1f77b4", "#9ecae1", "#0b3d66", "#4f9bd1", "#6a51a3", "#bcbddc"],
    "other": ["#2ca02c", "#98df8a", "#145214"],
}
MARKERS = "osD^vP*Xh<>"
DPI = 100


def slug(text: str) -> str:
    from bench.pathnames import safe_component  # the one way a name becomes part of a path

    return safe_component(text)


def _plain_log(axis) -> None:
    """Log-axis labels as plain numbers (0.01, 0.1, 2, 5): easier to read than 10^k, and no mathtext to lay out.
    Minor ticks are labelled (some or all) when the axis spans about a decade or less."""
    axis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1.3, 0.5)))
    axis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1.3, 0.5)))


def _save(fig, path: Path) -> Path:
    # Layouts are fitted with tight_layout; bbox_inches="tight" would draw every figure twice.
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _method_style(data: RunData, methods: list[str]) -> dict[str, dict]:
    per_family: dict[str, int] = {}
    style = {}
    for m in methods:
        fam = data.family(m)
        k = per_family.get(fam, 0)
        per_family[fam] = k + 1
        shades = FAMILY_SHADES.get(fam, FAMILY_SHADES["other"])
        style[m] = {"color": shades[k % len(shades)], "marker": MARKERS[k % len(MARKERS)]}
    return style


# the trade-off plots' cost axes: metric, unit divisor, axis label
COST_AXES = {"seconds": (TIME_METRIC, 1.0, "mean seconds per image (log)"),
             "tflop": (FLOPS_METRIC, FLOPS_UNIT, "mean TFLOP per image (log; 0-FLOP interpolation not shown)")}


def tradeoff(data: RunData, df: pd.DataFrame, out: Path, title: str, cost: str = "seconds") -> Path | None:
    """Quality (one panel per quality metric) against a mean cost per image (COST_AXES: seconds, or TFLOP), log
    cost axis; methods without a positive cost (interpolation's 0 FLOPs) are left out."""
    cost_metric, unit, xlabel = COST_AXES[cost]
    metrics = [m for m in data.quality_metrics if m in set(df.loc[df["value"].notna(), "metric"])]  # not all n/a
    methods = data.methods_in(df)
    if not metrics or cost_metric not in set(df["metric"]):
        return None
    style = _method_style(data, methods)
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics):
        for m in methods:
            sub = df[df["method"] == m]
            t, _, nt = mean_ci(pd.to_numeric(sub.loc[sub["metric"] == cost_metric, "value"], errors="coerce") / unit)
            q, qci, nq = mean_ci(sub.loc[sub["metric"] == metric, "value"])
            if nt == 0 or nq == 0 or not (t > 0):
                continue
            ax.errorbar([t], [q], yerr=[qci] if np.isfinite(qci) else None, fmt=style[m]["marker"],
                        color=style[m]["color"], capsize=3, label=m, markersize=7)
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
        ax.set_xlabel(xlabel)
        arrow = "↑ better" if data.higher_is_better(metric) else "↓ better"
        ax.set_ylabel(f"{metric} ({arrow})")
        ax.grid(True, alpha=0.3)
    # one legend under the panels instead of a label beside each point: labels of methods with similar time and
    # quality overlapped
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncol = min(4, max(1, len(labels)))
    fig.suptitle(title + "  (grey: interpolation, red: internal, blue: external)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.045 * math.ceil(len(labels) / ncol), 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    return _save(fig, out)


def gain_heatmap(data: RunData, df: pd.DataFrame, out: Path, title: str, metric: str = "psnr-y",
                 baseline: str = "bicubic") -> Path | None:
    """Categories x methods: the mean per-image gain over `baseline` (signed so that > 0 is better)."""
    sub = df[(df["metric"] == metric) & df["value"].notna()]  # n/a rows (no HR image under none) have no gain
    if baseline not in set(sub["method"]) or sub["method"].nunique() < 2:
        return None
    table = sub.pivot_table(index=["category", "image"], columns="method", values="value", aggfunc="mean")
    table = table.replace([np.inf, -np.inf], np.nan)
    gain = table.sub(table[baseline], axis=0).drop(columns=baseline)
    if not data.higher_is_better(metric):
        gain = -gain
    methods = [m for m in data.methods_in(sub) if m in gain.columns]
    per_cat = gain.groupby(level="category").mean()[methods]
    per_cat.loc["all images"] = gain[methods].mean()
    values = per_cat.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(methods) + 2.5, 0.42 * len(per_cat) + 1.8))
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) > 0.6 * limit else "black")
    ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(per_cat)), list(per_cat.index), fontsize=8)
    fig.colorbar(image, ax=ax, label=f"{metric} gain over {baseline}" + (" (dB)" if metric.startswith("psnr") else ""))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def category_bars(data: RunData, df: pd.DataFrame, out: Path, title: str) -> Path | None:
    """Grouped bars: categories x methods, one panel per quality metric, 95 % CI whiskers."""
    metrics = [m for m in data.quality_metrics if m in set(df.loc[df["value"].notna(), "metric"])]  # not all n/a
    methods = data.methods_in(df)
    categories = sorted(set(df["category"]))
    if not metrics or not methods:
        return None
    style = _method_style(data, methods)
    width = 0.8 / max(len(methods), 1)
    ncols = 2 if len(metrics) > 2 and len(categories) * len(methods) <= 40 else 1
    nrows = math.ceil(len(metrics) / ncols)
    panel_w = max(5.5, 0.25 * len(categories) * len(methods) + 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols, 2.7 * nrows + 0.8), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    x = np.arange(len(categories))
    for ax, metric in zip(axes.flat, metrics):
        lows = []
        for k, m in enumerate(methods):
            means, cis = [], []
            for c in categories:
                vals = df[(df["method"] == m) & (df["category"] == c) & (df["metric"] == metric)]["value"]
                mean, ci, _ = mean_ci(vals)
                means.append(mean)
                cis.append(ci if np.isfinite(ci) else 0.0)
                if np.isfinite(mean):
                    lows.append(mean - (ci if np.isfinite(ci) else 0.0))
            ax.bar(x + (k - (len(methods) - 1) / 2) * width, means, width, yerr=cis, capsize=2,
                   color=style[m]["color"], label=m, edgecolor="black", linewidth=0.4,
                   error_kw={"elinewidth": 0.8})
        if metric.startswith("psnr") and lows:
            ax.set_ylim(bottom=max(0.0, math.floor(min(lows)) - 1))
        elif lows:
            ax.set_ylim(bottom=0.0)
        ax.set_xticks(x, categories, fontsize=8)
        ax.set_ylabel(f"{metric} ({'↑' if data.higher_is_better(metric) else '↓'})")
        ax.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle(title, fontsize=10)
    height = fig.get_figheight()
    fig.legend(handles, labels, fontsize=8, ncol=min(len(methods), 6), loc="upper center", frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.3 / height))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / height))
    return _save(fig, out)


def paired(data: RunData, df: pd.DataFrame, metrics: list[str], out: Path, title: str) -> Path | None:
    """Per-image paired differences, internal minus external (signed so that > 0 means internal is better)."""
    methods = data.methods_in(df)
    internal = [m for m in methods if data.family(m) == "internal"]
    external = [m for m in methods if data.family(m) == "external"]
    metrics = [m for m in metrics if m in set(df["metric"])]
    pairs = [(i, e) for i in internal for e in external]
    if not pairs or not metrics:
        return None
    n_images = df["image"].nunique()
    fig, axes = plt.subplots(len(pairs), len(metrics), squeeze=False,
                             figsize=(max(4.5, 0.22 * n_images + 2) * len(metrics), 2.4 * len(pairs) + 0.6))
    for r, (i, e) in enumerate(pairs):
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            diff = paired_differences(data, df, i, e, metric)
            colours = ["#2ca02c" if v > 0 else "#d62728" if v < 0 else "#999999" for v in diff.values]
            ax.bar(range(len(diff)), diff.values, color=colours)
            ax.axhline(0, color="black", linewidth=0.7)
            ax.set_xticks(range(len(diff)), list(diff.index), rotation=90,
                          fontsize=6 if len(diff) > 30 else 7)
            unit = data.unit(metric)
            wins = int((diff > 0).sum())
            ax.set_title(f"{i} vs {e}, {metric}: internal better on {wins}/{len(diff)}", fontsize=8)
            sign = "" if data.higher_is_better(metric) else "−"
            ax.set_ylabel(f"{sign}Δ{metric} {unit}".strip(), fontsize=8)
            ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title + "\n(positive, green: the internal method is better on that image; "
                 "differences of lower-is-better metrics are negated)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def training_curves(data: RunData, out_dir: Path) -> list[tuple[str, int, Path]]:
    """One figure per (method, scale): loss and reconstruction error (log) and learning rate vs iteration."""
    from bench.results import Cell, curve_path, sr_path

    groups: dict[tuple[str, int], list[tuple[str, pd.DataFrame]]] = {}
    for r in data.cells.itertuples():
        cell = Cell(r.dataset, r.category, r.image, r.image_sha, r.degradation, int(r.scale), r.method_id, r.config_id)
        path = data.run_dir / curve_path(sr_path(cell))
        if not path.is_file():
            continue
        try:
            curve = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            continue
        if "iteration" not in curve or not len(curve):
            continue
        tag = "" if r.degradation == "bicubic" else f" [{r.degradation}]"
        groups.setdefault((r.method + tag, int(r.scale)), []).append((r.image, curve))
    written = []
    order = {m: k for k, m in enumerate(data.methods)}
    for (method, scale), curves in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 1e9), kv[0])):
        panels = [c for c in ("loss", "rec_error", "lr") if any(c in cv for _, cv in curves)]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
        alpha = 0.9 if len(curves) <= 10 else 0.4
        for ax, col in zip(axes[0], panels):
            for image, cv in curves:
                if col not in cv:
                    continue
                y = pd.to_numeric(cv[col], errors="coerce")
                ax.plot(cv["iteration"], y, linewidth=1, alpha=alpha, label=image,
                        drawstyle="steps-post" if col == "lr" else "default")
            if col in ("loss", "rec_error", "lr"):
                values = np.concatenate([pd.to_numeric(cv[col], errors="coerce").to_numpy(dtype=float)
                                         for _, cv in curves if col in cv])
                if np.isfinite(values).any() and np.nanmin(values) > 0:
                    ax.set_yscale("log")
                    _plain_log(ax.yaxis)
            ax.set_xlabel("iteration")
            ax.set_ylabel({"loss": "training loss", "rec_error": "reconstruction error", "lr": "learning rate"}[col])
            ax.grid(True, alpha=0.3)
        if len(curves) <= 10:
            axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{method}, ×{scale}: training curves ({len(curves)} images)", fontsize=10)
        fig.tight_layout()
        written.append((method, scale, _save(fig, out_dir / f"curves_{slug(method)}_x{scale}.png")))
    return written
