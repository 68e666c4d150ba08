"""Reading a run folder (results.csv + run.json) into one object the report modules share.

Nothing here imports torch or any model code: a report needs the run folder alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.metrics import COST_METRICS, METRIC_TABLE
from bench.results import CELL_KEY, END_METRIC, read_results

FAMILY_ORDER = ["interpolation", "internal", "external"]
TIME_METRIC = "seconds-total"
MEMORY_METRIC = "peak-memory-mb"
FLOPS_METRIC = "flops"  # shown in TFLOP per image (FLOPS_UNIT)
FLOPS_UNIT = 1e12


def _as_bool(value) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return None


@dataclass
class RunData:
    """A run folder, read once: rows (without errors), error rows, run.json, method order and metric specs."""

    run_dir: Path
    run: dict
    rows: pd.DataFrame          # metric rows of finished cells: status ok, or n/a (NaN value, the reason in `note`)
    errors: pd.DataFrame        # one row per failed or unavailable cell, and per failed metric
    cells: pd.DataFrame         # the end rows of finished cells (their `output`: the saved SR image)
    methods: list[str]          # display order: interpolation, internal, external, then anything else
    families: dict[str, str]
    metric_specs: dict[str, dict]
    quality_metrics: list[str]  # quality metrics present in the rows, in spec order
    non_native: pd.DataFrame = field(default_factory=pd.DataFrame)
    variants: dict[str, str] = field(default_factory=dict)  # label of a configuration variant -> its method  # (dataset, method, scale, n) at a non-native scale

    @property
    def profile(self) -> str:
        return str(self.run.get("profile") or _first(self.rows, "profile") or "unknown")

    @property
    def protocol(self) -> str:
        return str(self.run.get("protocol") or _first(self.rows, "protocol") or "unknown")

    def methods_in(self, df: pd.DataFrame) -> list[str]:
        present = set(df["method"])
        return [m for m in self.methods if m in present]

    def family(self, method: str) -> str:
        return self.families.get(method, "other")

    def reduced(self, method: str) -> bool:
        """True for a method whose schedule the quick profile cut (run.json records the overrides it applied): its
        numbers are not what the method reaches, and every sentence about it must say so."""
        info = (self.run.get("methods", {}) or {}).get(self.variants.get(method, method)) or {}
        return bool((info.get("config") or {}).get("quick_overrides"))

    def higher_is_better(self, metric: str) -> bool:
        return bool(self.metric_specs.get(metric, {}).get("higher_is_better", True))

    def unit(self, metric: str) -> str:
        return str(self.metric_specs.get(metric, {}).get("unit", "") or "")


def _first(df: pd.DataFrame, column: str):
    if column in df and len(df):
        values = [v for v in df[column] if str(v)]
        return values[0] if values else None
    return None


def _label_variants(df: pd.DataFrame, run: dict) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rows of one method from several configurations (say an fp32 and a bf16 run into one folder) are never
    averaged together: each configuration becomes its own method, labelled with its precision (run.json's
    config_ids), or with its config id where the precision does not tell them apart. Returns the relabelled
    rows and {label: method}."""
    if not len(df) or "config_id" not in df:
        return df, {}
    per_method = df.groupby("method")["config_id"].unique()
    known = run.get("config_ids", {}) or {}
    labels: dict[tuple[str, str], str] = {}
    for method, ids in per_method.items():
        if len(ids) < 2:
            continue
        precisions = [(known.get(cid) or {}).get("precision") for cid in ids]
        by_precision = all(precisions) and len(set(precisions)) == len(ids)
        for cid, precision in zip(ids, precisions):
            labels[(method, cid)] = f"{method} [{precision if by_precision else cid}]"
    if not labels:
        return df, {}
    df = df.copy()
    df["method"] = [labels.get((m, c), m) for m, c in zip(df["method"], df["config_id"])]
    return df, {label: method for (method, _), label in labels.items()}


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    results_path = run_dir / "results.csv"
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path}: no results table; is {run_dir} a run folder written by the harness?")
    run_json = run_dir / "run.json"
    run: dict = {}
    if run_json.is_file():
        try:
            run = json.loads(run_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{run_json}: not valid JSON ({exc}); re-run or repair the file") from exc
    df = read_results(results_path)
    if len(df):
        df["category"] = df["category"].where(df["category"] != "", "uncategorised")
        df["native"] = df["native_scale"].map(_as_bool) if "native_scale" in df else None
    else:
        df["native"] = pd.Series(dtype=object)

    df["method_id"] = df["method"]  # the registered name (file paths), before variants get labels
    df, variants = _label_variants(df, run)
    is_end = df["metric"] == END_METRIC
    is_error = (is_end & (df["status"] != "ok")) | (~is_end & (df["status"] == "error"))
    errors = df[is_error].copy()
    cells = df[is_end & (df["status"] == "ok")].drop_duplicates(subset=CELL_KEY)  # a cell with added metrics has
    # one end row per block
    rows = df[~is_end & ~is_error].copy()

    methods_info = run.get("methods", {}) or {}
    families = {m: str((v or {}).get("info", {}).get("family", "other") or "other") for m, v in methods_info.items()}
    families.update({label: families.get(base, "other") for label, base in variants.items()})
    run_order = list(methods_info)
    all_methods = list(dict.fromkeys(list(df["method"]) + run_order))

    def sort_key(m: str):
        fam = families.get(m, "other")
        fam_rank = FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else len(FAMILY_ORDER)
        return (fam_rank, run_order.index(m) if m in run_order else len(run_order), m)

    methods = sorted(all_methods, key=sort_key)
    for m in methods:
        families.setdefault(m, "other")

    specs = {k: v.to_json() for k, v in METRIC_TABLE.items()}
    specs.update(run.get("metrics", {}) or {})
    present = set(rows["metric"])
    ordered = list(specs) + sorted(present - set(specs))
    quality = [m for m in ordered if m in present and m not in COST_METRICS]

    non_native = pd.DataFrame(columns=["dataset", "method", "scale", "n"])
    if len(rows):
        nn = rows[rows["native"] == False]  # noqa: E712 (None means unknown, not False)
        if len(nn):
            non_native = (nn.groupby(["dataset", "method", "scale"])["image"].nunique()
                          .reset_index(name="n"))
    return RunData(run_dir=run_dir, run=run, rows=rows, errors=errors, cells=cells, methods=methods, families=families,
                   metric_specs=specs, quality_metrics=quality, non_native=non_native, variants=variants)
