"""Everything a report shows, computed once from the run folder; both templates render this same context."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.report import crops as crops_mod
from bench.report import kernels as kernels_mod
from bench.report import findings as findings_mod
from bench.report.study_links import study_answers
from bench.report import plots
from bench.report import viewer as viewer_mod
from bench.degradations import is_as_is
from bench.metrics import COST_METRICS, METRIC_TABLE
from bench.report.load import RunData
from bench.report.tables import decimals, paired_table, summary_table
from bench.results import UNAVAILABLE_PREFIX

PAIRED_METRICS = ["psnr-y", "lpips-alex"]
NO_REFERENCE_CAUTION = (
    "No-reference metrics agree only loosely with human judgement. NIQE scores how natural an image's statistics "
    "look, not whether its detail is true to the scene (a hallucinated texture can score well); LR consistency "
    "scores whether the output, downscaled, gives back its input, which plain interpolation does well and "
    "sharpening a little less. Judge the methods by the pictures; read these numbers as hints.")


NO_REFERENCE_METRICS = {name for name, spec in METRIC_TABLE.items() if spec.kind == "quality"
                        and not spec.needs_reference}


def _rel(path: Path | None, root: Path) -> str | None:
    return None if path is None else path.relative_to(root).as_posix()


def _fmt_signed(metric: str, value: float) -> str:
    text = decimals(metric, value)
    return text if text == "n/a" or text.startswith("-") else "+" + text


def _kernel_context(fig, root: Path) -> dict | None:
    if fig is None:
        return None
    return {"path": _rel(fig.path, root), "errors": [{"method": m, "mean": f"{e:.3f}", "n": n}
                                                    for m, (e, n) in fig.errors.items()],
            "decisions": fig.decisions,
            "decision_counts": [{"method": m, "use": c.get("use", 0), "re_estimate": c.get("re-estimate", 0),
                                 "bicubic": c.get("bicubic", 0)} for m, c in sorted(fig.decision_counts.items())]}


@dataclass(frozen=True)
class Group:
    """The rows of one (dataset, degradation, scale): one section of the report."""

    dataset: str
    degradation: str
    scale: int
    rows: pd.DataFrame

    @property
    def tag(self) -> str:
        return "" if self.degradation == "bicubic" else f" [{self.degradation}]"

    @property
    def key(self) -> str:  # file names and anchors
        return (f"{plots.slug(self.dataset)}-x{self.scale}"
                + ("" if self.degradation == "bicubic" else f"-{plots.slug(self.degradation)}"))

    @property
    def title(self) -> str:
        return f"{self.dataset} ×{self.scale}{self.tag}"


def groups_of(rows: pd.DataFrame) -> list[Group]:
    if not len(rows):
        return []
    return [Group(dataset, degradation, scale, rows[(rows["dataset"] == dataset) & (rows["degradation"] == degradation)
                                                    & (rows["scale"] == scale)])
            for dataset, degradation, scale in sorted(rows.groupby(["dataset", "degradation", "scale"]).groups)]


def build_context(data: RunData) -> dict:
    """The templates' context: the run summarised (tables, findings, failures; summary.csv written beside) and its
    figures drawn (into figures/ and crops/)."""
    root = data.run_dir
    groups = groups_of(data.rows)
    figures = draw_figures(data, groups)
    sections, summary_records = [], []
    for group in groups:
        section, records = summarise_group(data, group)
        section.update(figures.for_group(group, root))
        section["as_is"] = is_as_is(group.degradation)  # real photos: pictures first, then the numbers
        section["viewers"] = (viewer_mod.viewers(data, group.rows, group.dataset, group.degradation,
                                                 int(group.scale), group.key) if section["as_is"] else [])
        sections.append(section)
        summary_records += records
    pd.DataFrame(summary_records, columns=SUMMARY_COLUMNS).to_csv(root / "summary.csv", index=False)
    found = findings_mod.findings(data)
    failures, unavailable = _failures(data.errors)
    return {
        **_run_facts(data),
        "sections": sections,
        "findings": findings_mod.as_records(found),
        "headline": findings_mod.headline(found),
        "study_answers": study_answers({(str(d), str(g)) for d, g in data.rows[["dataset", "degradation"]]
                                        .drop_duplicates().itertuples(index=False)} if len(data.rows) else set(),
                                       root),
        "heatmaps": [{"title": sec["title"], "path": sec["figures"]["heatmap"]} for sec in sections
                     if sec["figures"]["heatmap"]],
        "curves": [{"method": m, "scale": s, "path": _rel(p, root)} for m, s, p in figures.curves],
        "failures": failures,
        "unavailable": unavailable,
        "methods": _methods(data),
        "metric_defs": _metric_defs(data),
        "non_native": [{"dataset": r.dataset, "method": r.method, "scale": int(r.scale), "n": int(r.n)}
                       for r in data.non_native.itertuples()],
        "batched": _batched(data.rows),
        "n_rows": int(len(data.rows)),
        "n_cells": int(len(data.cells) + len(data.errors)),  # finished, failed or unavailable: 0 for a header-only file
        # one-line remarks about the inputs (alpha dropped, folders skipped or followed), said once in bench.log too
        "notes": list((data.run.get("dataset", {}) or {}).get("notes") or []),
        "method_order": data.methods,
        "has_viewers": any(sec["viewers"] for sec in sections),
        "no_reference_present": bool(set(data.rows["metric"]) & NO_REFERENCE_METRICS) if len(data.rows) else False,
        "no_reference_caution": NO_REFERENCE_CAUTION,
    }


# --- summarise: numbers only, nothing drawn or written ---------------------------------------------------------
SUMMARY_COLUMNS = ["dataset", "degradation", "scale", "category", "method", "metric", "statistic", "n", "mean",
                   "ci95"]


def summarise_group(data: RunData, group: Group) -> tuple[dict, list[dict]]:
    """A section's tables (all images, per category, paired internal vs external) and its summary.csv records."""
    df, key, tag = group.rows, group.key, group.tag
    dataset, degradation, scale = group.dataset, group.degradation, group.scale
    overall = summary_table(data, df, f"{dataset} ×{scale}{tag}: all images", f"table-{key}")
    categories = []
    for cat in sorted(set(df["category"])):
        cdf = df[df["category"] == cat]
        n = cdf["image"].nunique()
        categories.append(summary_table(data, cdf, f"{dataset} ×{scale}{tag}, category “{cat}” "
                                        f"({n} image{'s' if n != 1 else ''})",
                                        f"table-{key}-{plots.slug(cat)}"))
    records = []
    for cat, table in [("all", overall)] + list(zip(sorted(set(df["category"])), categories)):
        for r in table.rows:
            for col, cell in zip(table.columns, r.cells):
                if col.key in ("family", "n"):
                    continue
                records.append({"dataset": dataset, "degradation": degradation, "scale": scale, "category": cat,
                                "method": r.method, "metric": col.key, "n": cell.n, "mean": cell.mean,
                                "ci95": cell.ci, "statistic": "max" if col.key == "peak-memory-mb" else "mean"})
    paired_rows = [{
        "internal": p.internal, "external": p.external, "metric": p.metric, "n": p.n,
        "wins": p.wins, "losses": p.losses, "ties": p.ties,
        "mean_diff": _fmt_signed(p.metric, p.mean_diff),
        "ci": decimals(p.metric, p.ci) if math.isfinite(p.ci) else "n/a",
        "better_images": ", ".join(p.better_images) if p.better_images else "none",
    } for p in paired_table(data, df, PAIRED_METRICS)]
    section = {
        "dataset": dataset, "scale": int(scale), "degradation": degradation, "title": group.title,
        "anchor": f"results-{key}", "overall": overall, "categories": categories if len(categories) > 1 else [],
        "paired": paired_rows, "n_images": int(df["image"].nunique()),
    }
    return section, records


def _failures(errors: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Failed cells (one line each) and unavailable methods (one line per method, not per cell)."""
    failures, unavailable = [], {}
    for r in (errors.sort_values(["dataset", "scale", "method", "image"]).itertuples() if len(errors) else []):
        message = (r.note or "(no message)").strip()
        if r.status == "unavailable":  # the method cannot run here: one line per method, not per cell
            entry = unavailable.setdefault(r.method, {"method": r.method, "cells": 0,
                                                      "reason": message[len(UNAVAILABLE_PREFIX):].strip()})
            entry["cells"] += 1
            continue
        what = "" if r.metric == "cell" else f"metric {r.metric}: "
        failures.append({"method": r.method, "dataset": r.dataset, "image": r.image, "scale": int(r.scale),
                         "config_id": r.config_id, "message": what + message})
    return failures, list(unavailable.values())


def _methods(data: RunData) -> list[dict]:
    run, methods = data.run, []
    for m in data.methods:
        entry = (run.get("methods", {}) or {}).get(m, {}) or {}
        info = entry.get("info", {}) or {}
        config = entry.get("config", {})
        methods.append({
            "name": m, "family": data.family(m), "precision": entry.get("precision") or "n/a",
            "told": (run.get("methods_told") or {}).get(data.variants.get(m, m), "—"),
            "training_data": info.get("training_data") or "—", "degradation": info.get("degradation") or "—",
            "licence": info.get("licence") or "—", "parameters": _fmt_params(info.get("parameters")),
            "paper": info.get("paper") or "—", "notes": info.get("notes") or "",
            "config": json.dumps(config, sort_keys=True, default=str) if config else "",
        })
    return methods


def _metric_defs(data: RunData) -> list[dict]:
    rows = data.rows
    metrics_present = set(rows["metric"]) if len(rows) else set()
    return [{"name": name, "arrow": "↑" if spec.get("higher_is_better", True) else "↓",
             "unit": spec.get("unit", "") or "", "description": spec.get("description", ""),
             "kind": "cost" if name in COST_METRICS else "quality"}
            for name, spec in data.metric_specs.items() if name in metrics_present]


def _run_facts(data: RunData) -> dict:
    """What run.json and the rows say about the run as a whole (title, protocol, device, versions, ...)."""
    root, run, rows = data.run_dir, data.run, data.rows
    ds = run.get("dataset", {}) or {}
    profile, protocol = data.profile, data.protocol
    return {
        "title": f"Super-resolution benchmark: {ds.get('name') or ', '.join(sorted(set(rows['dataset']))) or 'run'}",
        "run_name": root.name,
        "profile": profile,
        "quick": profile == "quick",
        "protocol": protocol,
        "y_only": protocol == "y-only",
        "protocol_text": run.get("protocol_text") or "not recorded in run.json",
        "dataset": ds,
        "device": run.get("device", {}) or {},
        "devices_in_rows": sorted({d for d in rows.get("device", pd.Series(dtype=str)) if d}) if len(rows) else [],
        "precision": _precision_summary(run),
        "git_revision": run.get("git_revision") or "unknown",
        "packages": sorted((run.get("packages") or {}).items()),
        "seed": run.get("seed", "—"),
        "scales": run.get("scales") or (sorted({int(s) for s in rows["scale"]}) if len(rows) else []),
        "started": run.get("started") or "—",
        "finished": run.get("finished") or "—",
        "command": run.get("command") or "",
        "methods_told": run.get("methods_told") or {},
    }


# --- draw: the figures, written under the run folder --------------------------------------------------------------
@dataclass
class Figures:
    """Every figure of a report, drawn once: image crops, kernel figures, per-section plots, training curves."""

    crops: list = field(default_factory=list)
    kernels: dict = field(default_factory=dict)  # (dataset, degradation, scale) -> KernelFigure
    plots: dict = field(default_factory=dict)  # group key -> {"tradeoff": path, ...}
    curves: list = field(default_factory=list)  # (method, scale, path)

    def for_group(self, group: Group, root: Path) -> dict:
        """A section's figure entries (paths relative to the run folder)."""
        return {
            "figures": {name: _rel(path, root) for name, path in self.plots[group.key].items()},
            "crops": [{"image": c.image, "path": _rel(c.path, root), "window": c.window, "missing": c.missing,
                       "windows": c.windows}
                      for c in self.crops
                      if c.dataset == group.dataset and c.scale == group.scale and c.degradation == group.degradation],
            "kernels": _kernel_context(self.kernels.get((group.dataset, group.degradation, int(group.scale))), root),
        }


def draw_figures(data: RunData, groups: list[Group]) -> Figures:
    root = data.run_dir
    fig_dir, crop_dir = root / "figures", root / "crops"
    figures = Figures(crops=crops_mod.render_crops(data, crop_dir),
                      kernels={(k.dataset, k.degradation, k.scale): k
                               for k in kernels_mod.render_kernels(data, fig_dir)})
    for group in groups:
        df, key, title = group.rows, group.key, group.title
        figures.plots[key] = {
            "tradeoff": plots.tradeoff(data, df, fig_dir / f"tradeoff_{key}.png",
                                       f"{title}: quality vs time per image"),
            "tradeoff_flops": plots.tradeoff(data, df, fig_dir / f"tradeoff-tflop_{key}.png",
                                             f"{title}: quality vs TFLOP per image", cost="tflop"),
            "categories": plots.category_bars(data, df, fig_dir / f"categories_{key}.png",
                                              f"{title}: per-category means (95% CI)"),
            "paired": plots.paired(data, df, PAIRED_METRICS, fig_dir / f"paired_{key}.png",
                                   f"{title}: per-image differences, internal − external"),
            "heatmap": plots.gain_heatmap(data, df, fig_dir / f"gain_{key}.png",
                                          f"{title}: PSNR-Y gain over bicubic per category"),
        }
    figures.curves = plots.training_curves(data, fig_dir)
    return figures


def _batched(rows: pd.DataFrame) -> list[dict]:
    """Methods with cells trained in batches (batch-size rows): how many cells, the largest batch."""
    if not len(rows):
        return []
    sizes = rows[(rows["metric"] == "batch-size") & (rows["value"] > 1)]
    return [{"method": m, "cells": int(len(g)), "largest": int(g["value"].max())}
            for m, g in sizes.groupby("method", sort=True)]


def _precision_summary(run: dict) -> str:
    """One line: the requested precision and which methods ran in which (e.g. "auto requested: bf16 for a, b;
    fp32 for c"), from run.json's options and each method's recorded precision."""
    groups: dict[str, list[str]] = {}
    for method, entry in (run.get("methods") or {}).items():
        if (entry or {}).get("precision"):
            groups.setdefault(entry["precision"], []).append(method)
    if not groups:
        return "fp32 (not recorded in run.json)"
    requested = (run.get("options") or {}).get("precision", "auto")
    parts = [f"{p} for {', '.join(ms)}" for p, ms in sorted(groups.items())]
    return f"{requested} requested: " + "; ".join(parts) + " (methods without a network: n/a)"


def _fmt_params(value) -> str:
    if value in (None, ""):
        return "—"
    try:
        n = float(value)
    except (TypeError, ValueError):
        return str(value)
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return f"{n:.0f}"
