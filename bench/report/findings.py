"""Findings: who wins where, by how much, at what cost. For each (dataset, degradation, scale) and category, on
PSNR-Y and on LPIPS: the best method (and its family) against the runner-up, the paired win count and a 95 %
t-interval of the paired per-image difference (within noise where it crosses zero), and the winner's seconds per
image. Computed from the rows alone, like every other part of a report."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.report.load import TIME_METRIC, RunData
from bench.report.tables import decimals, mean_ci

FINDING_METRICS = ("psnr-y", "lpips-alex")


@dataclass
class Finding:
    dataset: str
    degradation: str
    scale: int
    category: str
    metric: str
    winner: str
    family: str
    runner_up: str
    runner_up_family: str
    n: int  # images both have
    wins: int  # images where the winner is better
    margin: float  # mean paired difference, signed so that > 0 means the winner is better
    ci: float  # half-width of its 95 % interval (NaN with fewer than 2 images)
    seconds: float  # the winner's mean seconds per image
    runner_up_seconds: float
    winner_reduced: bool = False  # cut by the quick profile (RunData.reduced)
    runner_up_reduced: bool = False

    @property
    def within_noise(self) -> bool:
        return not (math.isfinite(self.ci) and self.margin - self.ci > 0)

    def verdict(self) -> str:
        if self.n < 2:
            return "one image: no interval"
        return "within noise" if self.within_noise else "clear"


def _means(data: RunData, df: pd.DataFrame, metric: str) -> pd.Series:
    values = df[df["metric"] == metric]
    means = values.groupby("method")["value"].agg(lambda v: mean_ci(v)[0]).dropna()
    return means.sort_values(ascending=not data.higher_is_better(metric))


def _finding(data: RunData, df: pd.DataFrame, key: tuple, category: str, metric: str) -> Finding | None:
    means = _means(data, df, metric)
    if len(means) < 2:
        return None
    winner, runner_up = means.index[0], means.index[1]
    per_image = df[df["metric"] == metric].pivot_table(index="image", columns="method", values="value",
                                                       aggfunc="mean")
    both = per_image[[winner, runner_up]].dropna()
    both = both[both.map(math.isfinite).all(axis=1)]
    diff = both[winner] - both[runner_up]
    if not data.higher_is_better(metric):
        diff = -diff
    margin, ci, n = mean_ci(diff.values)
    seconds = df[df["metric"] == TIME_METRIC].groupby("method")["value"].mean()
    return Finding(*key, category, metric, winner, data.family(winner), runner_up, data.family(runner_up), n,
                   int((diff > 0).sum()), margin, ci, float(seconds.get(winner, math.nan)),
                   float(seconds.get(runner_up, math.nan)), data.reduced(winner), data.reduced(runner_up))


def findings(data: RunData) -> list[Finding]:
    rows = data.rows
    out: list[Finding] = []
    if not len(rows):
        return out
    groups = rows.groupby(["dataset", "degradation", "scale"])
    for key, df in sorted(groups, key=lambda kv: (kv[0][0], kv[0][1] != "bicubic", kv[0][1], kv[0][2])):
        categories = ["all"] + (sorted(set(df["category"])) if df["category"].nunique() > 1 else [])
        for category in categories:
            sub = df if category == "all" else df[df["category"] == category]
            for metric in FINDING_METRICS:
                found = _finding(data, sub, (key[0], key[1], int(key[2])), category, metric)
                if found:
                    out.append(found)
    return out


REDUCED = "reduced by the quick profile"


def _who(method: str, family: str, reduced: bool) -> str:
    """A method as a finding names it: its family, and whether the quick profile cut it (said in the line itself,
    so that a quoted line cannot pass for the method's real result)."""
    return f"{method} ({family}{', ' + REDUCED if reduced else ''})"


def _seconds(value: float) -> str:
    return decimals(TIME_METRIC, value) + " s" if math.isfinite(value) else "n/a"


def as_records(found: list[Finding]) -> list[dict]:
    """The findings as the templates show them (one row each)."""
    records = []
    for f in found:
        ci = f"± {decimals(f.metric, f.ci)}" if math.isfinite(f.ci) else ""
        records.append({
            "where": f"{f.dataset} ×{f.scale}" + ("" if f.degradation == "bicubic" else f" [{f.degradation}]"),
            "degradation": f.degradation, "category": f.category, "metric": f.metric,
            "winner": f.winner + (f" ({REDUCED})" if f.winner_reduced else ""), "family": f.family,
            "runner_up": _who(f.runner_up, f.runner_up_family, f.runner_up_reduced),
            "margin": f"{decimals(f.metric, f.margin)} {ci}".strip(), "wins": f"{f.wins}/{f.n}",
            "verdict": f.verdict(), "cost": f"{_seconds(f.seconds)} vs {_seconds(f.runner_up_seconds)}",
        })
    return records


def headline(found: list[Finding]) -> list[str]:
    """One sentence per (dataset, degradation, scale) and metric over all images: the line a reader needs first."""
    lines = []
    for f in found:
        if f.category != "all":
            continue
        where = f"{f.dataset} ×{f.scale}" + ("" if f.degradation == "bicubic" else f" under {f.degradation}")
        winner = _who(f.winner, f.family, f.winner_reduced)
        runner_up = _who(f.runner_up, f.runner_up_family, f.runner_up_reduced)
        by = f"{decimals(f.metric, f.margin)}{' dB' if f.metric.startswith('psnr') else ''}"
        if f.n < 2:
            claim = f"{winner} is ahead of {runner_up} on its one image, by {by}"
        elif f.within_noise:
            claim = f"{winner} and {runner_up} are within noise of each other ({f.winner} by {by} on average"
            claim += f", better on {f.wins} of {f.n} images)"
        else:
            claim = f"{winner} is ahead of {runner_up} by {by} on average, better on {f.wins} of {f.n} images"
        lines.append(f"{where}, {f.metric}: {claim}, at {_seconds(f.seconds)} per image against "
                     f"{_seconds(f.runner_up_seconds)}.")
    return lines
