"""A study's document (docs/studies/<name>.md, .html and <name>/frontier.png), rendered from its run folders'
results.csv and run.json and its plan.json alone: no model is imported, nothing depends on the clock, so the same
results give the same bytes.

It answers first: one table, per category x degradation x scale, of the best method on PSNR-Y and on LPIPS, its
family, the best method of the other family (internal against external), their paired mean difference with its 95 %
t-interval, wins out of images, and cost (seconds, and TFLOP where `flops` rows exist). Then generated sentences on
where internal learning wins and loses, what each ZSSR kernel source (told, or KernelGAN's blind estimate) does
against the same preset assuming bicubic, the per-category detail, the frontier, and the caveats. Crops of the largest
disagreements need the SR images, which are not committed: `render_crops()` writes them to a separate, uncommitted page.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.load import FAMILY_ORDER, TIME_METRIC, RunData, load_run
from bench.report.tables import decimals, mean_ci, paired_differences, summary_table

FLOPS_METRIC = "flops"  # a per-cell cost row (multiply-adds x 2), where the harness records it
CONTEST_METRICS = ("psnr-y", "lpips-alex")
CONTRAST = {"internal": "external", "external": "internal"}  # the other family a best method is set against


# -- the study's rows, from its units' folders --------------------------------------------------------------------

@dataclass
class StudyData:
    study: object  # bench.study.Study
    data: RunData  # every unit's rows together (families from each folder's run.json)
    runs: list[tuple[object, dict]]  # (unit, run.json) of each unit with results
    plan: dict | None  # plan.json, as the last `run` recorded it
    degradation_order: list[str]  # degradation ids in the study's order
    # cells in a unit's folder whose configuration is not the one the plan records (computed before a method's
    # version or options changed): never shown as the unit's results, and named in the caveats
    other_configs: list[dict] = field(default_factory=list)


def _degradation_id(run: dict, spec: str) -> str:
    for d in run.get("degradations", []) or []:
        if d.get("spec") == spec or d.get("id") == spec:
            return d.get("id", spec)
    return spec


def _planned_config_ids(plan: dict | None) -> dict[tuple[str, str], str]:
    """(folder relative to the study's root, method) -> the config_id the last `run` planned for that unit."""
    return {(u["folder"], u["method"]): u["config_id"] for u in (plan or {}).get("units", []) if u.get("config_id")}


def load_study_data(study) -> StudyData:
    from bench.study import study_units

    plan_path = study.out_root / "plan.json"
    plan = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.is_file() else None
    planned = _planned_config_ids(plan)
    frames, cells, errors, runs, other_configs = [], [], [], [], []
    families: dict[str, str] = {}
    specs: dict[str, dict] = {}
    order: list[str] = []
    for unit in study_units(study):
        if not (unit.out / "results.csv").is_file():
            continue
        data = load_run(unit.out)
        deg = _degradation_id(data.run, unit.degradation)
        order.append(deg)

        config_id = planned.get((_rel(unit.out, study.root), unit.method))

        def mine(df: pd.DataFrame, current: bool = True) -> pd.DataFrame:
            keep = (df["method_id"] == unit.method) & (df["degradation"] == deg) & (df["scale"].isin(unit.scales))
            if unit.images:
                keep &= df["image"].isin(unit.images)
            if config_id and "config_id" in df:
                keep &= (df["config_id"] == config_id) if current else (df["config_id"] != config_id)
            elif not current:
                keep &= False
            out = df[keep].copy()
            if config_id and current and "method_id" in out:
                out["method"] = out["method_id"]  # one configuration left: no variant label (load_run's) needed
            out["folder"] = str(unit.out)
            return out

        stale = mine(data.cells, current=False)
        if len(stale):
            other_configs.append({"method": unit.method, "degradation": unit.degradation, "folder": unit.out,
                                  "cells": len(stale[["image", "scale", "config_id"]].drop_duplicates()),
                                  "config_ids": sorted(set(stale["config_id"])), "planned": config_id})
        frames.append(mine(data.rows))
        cells.append(mine(data.cells))
        errors.append(mine(data.errors))
        runs.append((unit, data.run))
        families.update({m: f for m, f in data.families.items() if m == unit.method or m.startswith(unit.method + " [")})
        specs.update(data.metric_specs)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["method", "metric", "value"])
    rank = {m: i for i, m in enumerate(study.methods)}
    methods = sorted(set(rows["method"]) if len(rows) else set(),
                     key=lambda m: (FAMILY_ORDER.index(families[m]) if families.get(m) in FAMILY_ORDER else 9,
                                    rank.get(m.split(" [")[0], 99), m))
    quality = [m for m in specs if len(rows) and m in set(rows["metric"]) and specs[m].get("kind") != "cost"
               and m != FLOPS_METRIC]
    first_run = runs[0][1] if runs else {}
    data = RunData(run_dir=study.doc_path.parent, run=first_run, rows=rows,
                   errors=pd.concat(errors, ignore_index=True) if errors else pd.DataFrame(),
                   cells=pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(), methods=methods,
                   families={m: families.get(m, "other") for m in methods}, metric_specs=specs,
                   quality_metrics=quality)
    return StudyData(study, data, runs, plan, list(dict.fromkeys(order)), other_configs)


def told_methods(sd: StudyData) -> set[str]:
    """The study's non-blind methods: told the degradation's true kernel (and noise) as each unit's run.json records
    (bench/runinfo.py words their `methods_told` entry "... (non-blind)")."""
    return {m for _, run in sd.runs for m, what in (run.get("methods_told") or {}).items()
            if str(what).endswith("(non-blind)")}


# -- contests: best method against the best of the other family ---------------------------------------------------

@dataclass
class Contest:
    metric: str
    best: str
    family: str
    other: str | None  # the best method of the contrasting family (None: no such method here)
    other_family: str
    n: int  # images both have
    wins: int  # images on which `best` is better
    margin: float  # mean paired difference, > 0: `best` is better
    ci: float  # half-width of its 95 % t-interval (NaN below 2 images)
    best_images: int


def _means(data: RunData, df: pd.DataFrame, metric: str) -> pd.Series:
    """Methods ranked best first by their mean paired gain over a reference method that has every image (the
    method with the most images, interpolation first): a method run on a declared subset is then ranked on how much
    it gains on its own images, not on whether its images happen to be easy. Ties broken by name, so that the
    order does not depend on how the rows were read."""
    sub = df[df["metric"] == metric]
    per_image = sub.pivot_table(index="image", columns="method", values="value", aggfunc="mean")
    per_image = per_image.replace([np.inf, -np.inf], np.nan)
    if per_image.empty:
        return pd.Series(dtype=float)
    counts = per_image.notna().sum()
    family_rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    reference = sorted(per_image.columns, key=lambda m: (-counts[m], family_rank.get(data.family(m), 9), m))[0]
    gains = per_image.sub(per_image[reference], axis=0).mean()
    frame = pd.DataFrame({"method": gains.index, "gain": gains.values}).dropna()
    frame["key"] = -frame["gain"] if data.higher_is_better(metric) else frame["gain"]
    ranked = frame.sort_values(["key", "method"]).set_index("method")["gain"]
    ranked.attrs["reference"] = reference
    ranked.attrs["reference_mean"] = float(per_image[reference].mean())
    return ranked


def contest(data: RunData, df: pd.DataFrame, metric: str) -> Contest | None:
    means = _means(data, df, metric)
    if not len(means):
        return None
    best = means.index[0]
    family = data.family(best)
    wanted = CONTRAST.get(family)
    others = [m for m in means.index[1:] if (data.family(m) == wanted if wanted else data.family(m) != family)]
    n_best = int(df[(df["metric"] == metric) & (df["method"] == best)]["image"].nunique())
    if not others:
        return Contest(metric, best, family, None, wanted or "other", 0, 0, math.nan, math.nan, n_best)
    other = others[0]
    diff = paired_differences(data, df, best, other, metric)
    diff = diff[np.isfinite(diff.values)]
    margin, ci, n = mean_ci(diff.values)
    return Contest(metric, best, family, other, data.family(other), n, int((diff > 0).sum()), margin, ci, n_best)


def family_contest(data: RunData, df: pd.DataFrame, metric: str) -> Contest | None:
    """The best internal method against the best external one (positive margin: internal is better)."""
    means = _means(data, df, metric)
    internal = [m for m in means.index if data.family(m) == "internal"]
    external = [m for m in means.index if data.family(m) == "external"]
    if not internal or not external:
        return None
    diff = paired_differences(data, df, internal[0], external[0], metric)
    diff = diff[np.isfinite(diff.values)]
    margin, ci, n = mean_ci(diff.values)
    return Contest(metric, internal[0], "internal", external[0], "external", n, int((diff > 0).sum()), margin, ci,
                   int(df[(df["metric"] == metric) & (df["method"] == internal[0])]["image"].nunique()))


def cost(df: pd.DataFrame, method: str | None) -> tuple[float, float]:
    """(mean seconds per image, mean TFLOP per image or NaN where no flops rows exist) of a method in df."""
    if method is None:
        return math.nan, math.nan
    sub = df[df["method"] == method]
    seconds = mean_ci(sub[sub["metric"] == TIME_METRIC]["value"])[0]
    flops = sub[sub["metric"] == FLOPS_METRIC]["value"]
    return seconds, (mean_ci(flops)[0] / 1e12 if len(flops) else math.nan)


def main_device(rows: pd.DataFrame) -> str | None:
    """The machine that measured most of the seconds rows: the one the document's seconds are read against."""
    devices = rows[rows["metric"] == TIME_METRIC]["device"].dropna()
    devices = devices[devices != ""]
    if not len(devices):
        return None
    counts = devices.value_counts()
    return sorted(counts.index[counts == counts.max()])[0]


OTHER_MACHINE = "‡"  # marks seconds measured (partly) on another machine than main_device's


def seconds_mark(df: pd.DataFrame, method: str | None, main: str | None) -> str:
    """OTHER_MACHINE where some of a method's seconds rows in df come from a machine other than `main`: seconds
    of two CPUs are not comparable (the TFLOP column is)."""
    if method is None or main is None:
        return ""
    devices = set(df[(df["method"] == method) & (df["metric"] == TIME_METRIC)]["device"].dropna()) - {""}
    return OTHER_MACHINE if devices - {main} else ""


# -- formatting -----------------------------------------------------------------------------------------------------

def _unit(metric: str) -> str:
    return " dB" if metric.startswith("psnr") else ""


def fmt_interval(metric: str, c: Contest) -> str:
    if c.other is None or c.n == 0:
        return "n/a"
    return fmt_margin(metric, c.margin, c.ci)


def fmt_margin(metric: str, margin: float, ci: float) -> str:
    """A signed paired mean difference with its 95 % interval ("+1.49 [1.02, 1.95]"; no interval where ci is NaN)."""
    text = ("+" if margin >= 0 else "") + decimals(metric, margin)
    if math.isfinite(ci):
        text += f" [{decimals(metric, margin - ci)}, {decimals(metric, margin + ci)}]"
    return text


def fmt_seconds(value: float) -> str:
    return decimals(TIME_METRIC, value) if math.isfinite(value) else "n/a"


def fmt_tflop(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "n/a"


def _clear(c: Contest) -> bool:
    return c.n >= 2 and math.isfinite(c.ci) and abs(c.margin) - c.ci > 0


def _groups(sd: StudyData):
    """(degradation, scale, rows) in the study's order."""
    rows = sd.data.rows
    if not len(rows):
        return []
    keys = sorted(set(zip(rows["degradation"], rows["scale"])),
                  key=lambda k: (sd.degradation_order.index(k[0]) if k[0] in sd.degradation_order else 99, k[0], k[1]))
    return [(d, int(s), rows[(rows["degradation"] == d) & (rows["scale"] == s)]) for d, s in keys]


def _categories(df: pd.DataFrame) -> list[str]:
    return ["all"] + sorted(set(df["category"]))


def answer_rows(sd: StudyData) -> list[dict]:
    out = []
    told = told_methods(sd)
    main = main_device(sd.data.rows)

    def name(method: str) -> str:
        return method + (" (told)" if method in told else "")

    for degradation, scale, df in _groups(sd):
        for category in _categories(df):
            sub = df if category == "all" else df[df["category"] == category]
            record = {"degradation": degradation, "scale": scale, "category": category,
                      "images": int(sub["image"].nunique())}
            for metric in CONTEST_METRICS:
                c = contest(sd.data, sub, metric)
                key = "psnr" if metric == "psnr-y" else "lpips"
                if c is None:
                    record[key] = None
                    continue
                seconds, tflop = cost(sub, c.best)
                subset = f" (n={c.best_images})" if c.best_images < record["images"] else ""
                record[key] = {"best": name(c.best) + subset, "family": c.family,
                               "other": name(c.other) if c.other else f"no {c.other_family} method",
                               "diff": fmt_interval(metric, c), "wins": f"{c.wins}/{c.n}" if c.other else "n/a",
                               "seconds": fmt_seconds(seconds) + seconds_mark(sub, c.best, main),
                               "tflop": fmt_tflop(tflop)}
            out.append(record)
    return out


def _list(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def wins_and_losses(sd: StudyData) -> list[str]:
    """Generated sentences: per degradation x scale and metric, on how many categories the best internal method is
    ahead of the best external one, clearly (the 95 % interval excludes zero) or not, by how much, and over all
    images."""
    lines = []
    told = told_methods(sd)
    for row in overall_contests(sd):
        df, metric, overall = row["rows"], row["metric"], row["contest"]
        where = f"Under {row['degradation']} ×{row['scale']}, on {metric}"
        if overall is None:
            lines.append(f"{where}: no comparison (it needs results of an internal and an external method).")
            continue
        ahead, behind, clear_ahead, clear_behind, margins = [], [], [], [], []
        leaders: dict[str, int] = {}
        categories = sorted(set(df["category"]))
        for category in categories:
            c = family_contest(sd.data, df[df["category"] == category], metric)
            if c is None or c.n == 0:
                continue
            (ahead if c.margin > 0 else behind).append(category)
            if _clear(c):
                (clear_ahead if c.margin > 0 else clear_behind).append(category)
            margins.append((c.margin, category))
            leader = c.best if c.margin > 0 else c.other
            leaders[leader] = leaders.get(leader, 0) + 1
        n = len(ahead) + len(behind)
        unit = _unit(metric)
        def span(group: list[str]) -> str:
            low, high = (_signed(metric, f(m for m, c in margins if c in group)) for f in (min, max))
            return (low if low == high else f"{low} to {high}") + unit

        parts = [f"{where}, internal learning is ahead of every external network on {len(ahead)} of {n} "
                 f"categor{'y' if n == 1 else 'ies'}"]
        if ahead:
            parts[-1] += (f" (by {span(ahead)}; clearly, the 95 % interval above zero, on {len(clear_ahead)}"
                          + (f": {_list(clear_ahead)}" if clear_ahead else "") + ")")
        if behind:
            parts.append(f"behind on {len(behind)} (by {span(behind)}; clearly on {len(clear_behind)}"
                         + (f": {_list(clear_behind)}" if clear_behind else "") + ")")
        sentence = "; ".join(parts) + "."
        (o_seconds, _), (x_seconds, _) = row["cost"]["internal"], row["cost"]["external"]
        sentence += (f" Over all images {overall.best} against {overall.other}: "
                     f"{fmt_interval(metric, overall)}{unit}"
                     + (" (95 % interval)" if math.isfinite(overall.ci) else " (one image pair: no interval)")
                     + f", better on {overall.wins} of "
                     f"{overall.n} images, at {fmt_seconds(o_seconds)}{row['marks']['internal']} s "
                     f"against {fmt_seconds(x_seconds)}{row['marks']['external']} s per image.")
        if leaders:
            top = sorted(leaders.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            sentence += f" The category winner most often: {top[0]} ({top[1]} of {n})."
        sentence += _told_and_blind(sd, df, metric, overall, told)
        lines.append(sentence)
    return lines


def _told_and_blind(sd: StudyData, df: pd.DataFrame, metric: str, overall: Contest, told: set[str]) -> str:
    """The same contest within equal knowledge, where the study has non-blind methods here: the best internal
    method told the kernel against the best external one told it, and the same for methods told nothing (the
    choice a user makes depends on whether the kernel is known); a pair that is the overall one is not repeated.
    `told`: the study's non-blind methods (told_methods)."""
    told = told & set(df["method"])
    if not told:
        return ""
    parts = []
    for label, keep in (("told the kernel", told), ("told nothing", set(df["method"]) - told)):
        c = family_contest(sd.data, df[df["method"].isin(keep)], metric)
        if c is not None and c.n and (c.best, c.other) != (overall.best, overall.other):
            parts.append(f"{label}, {c.best} against {c.other}: {fmt_interval(metric, c)}{_unit(metric)}, better on "
                         f"{c.wins} of {c.n} images")
    return (" Within equal knowledge: " + "; ".join(parts) + ".") if parts else ""


KERNEL_EFFECT_METRIC = "psnr-y"


def _kernel_source_base(method: str) -> tuple[str, str] | None:
    """(source, the same preset assuming bicubic) of a ZSSR kernel-source method ("zssr-fast+kernelgan" ->
    ("kernelgan", "zssr-fast")); None for every other method."""
    from baselines.zssr_presets import kernel_source_name, parse_kernel_source

    try:
        preset, source = parse_kernel_source(method)
    except KeyError:
        return None
    return None if source == "bicubic" else (source, kernel_source_name(preset, "bicubic"))


def kernel_source_effects(sd: StudyData) -> list[str]:
    """Per degradation x scale, what a ZSSR preset gains from its kernel source: each "<preset>+<source>" method
    against the same preset assuming bicubic, paired over the images both have (mean with its 95 % interval, images
    better, the worst image), and for a blind estimate how many cells used it rather than falling back to bicubic.
    The test of a blind method is that it never does much harm where it cannot help."""
    from baselines.kernel_decision import DECISION_CODES

    lines, metric = [], KERNEL_EFFECT_METRIC
    for degradation, scale, df in _groups(sd):
        parts = []
        for method in sd.data.methods_in(df[df["metric"] == metric]):
            pair = _kernel_source_base(method)
            if pair is None or not (df["method"] == pair[1]).any():
                continue
            diff = paired_differences(sd.data, df, method, pair[1], metric)
            diff = diff[np.isfinite(diff.values)]
            if not len(diff):
                continue
            margin, ci, n = mean_ci(diff.values)
            text = (f"{method} against {pair[1]}: {fmt_margin(metric, margin, ci)}{_unit(metric)}, better on "
                    f"{int((diff > 0).sum())} of {n} images, worst {_signed(metric, float(diff.iloc[0]))}"
                    f"{_unit(metric)} ({diff.index[0]})")
            decisions = df[(df["method"] == method) & (df["metric"] == "kernel-decision")]["value"]
            if len(decisions):
                counts = {name: int((decisions == code).sum()) for name, code in DECISION_CODES.items()}
                text += (f"; the estimate used on {counts['use']} of {len(decisions)} cells"
                         + (f", re-estimated on {counts['re-estimate']}" if counts["re-estimate"] else "")
                         + (f", bicubic on {counts['bicubic']}" if counts["bicubic"] else ""))
            parts.append(text)
        if parts:
            lines.append(f"Under {degradation} ×{scale}, {metric}: " + "; ".join(parts) + ".")
    return lines


def overall_contests(sd: StudyData) -> list[dict]:
    """Per degradation x scale and contest metric, over all images: the best internal method against the best
    external one (family_contest; None without both families), with each one's seconds and TFLOP per image, each
    one's seconds mark (seconds_mark: "" or OTHER_MACHINE) and the group's rows. The document's sentences and the
    README's answer table are both read from these."""
    out = []
    main = main_device(sd.data.rows)
    for degradation, scale, df in _groups(sd):
        for metric in CONTEST_METRICS:
            if metric not in set(df["metric"]):
                continue
            c = family_contest(sd.data, df, metric)
            methods = {"internal": c.best if c else None, "external": c.other if c else None}
            costs = {side: cost(df, m) for side, m in methods.items()}
            marks = {side: seconds_mark(df, m, main) for side, m in methods.items()}
            out.append({"degradation": degradation, "scale": scale, "metric": metric, "contest": c, "cost": costs,
                        "marks": marks, "rows": df})
    return out


def _signed(metric: str, value: float) -> str:
    text = decimals(metric, value)
    return text if text.startswith("-") or text == "n/a" else "+" + text


def category_matrix(sd: StudyData, df: pd.DataFrame, metric: str) -> dict:
    """Categories x methods: mean of `metric` (images in brackets where a method has fewer than the category)."""
    methods = sd.data.methods_in(df[df["metric"] == metric])
    rows = []
    for category in _categories(df):
        sub = df[(df["metric"] == metric) & ((df["category"] == category) if category != "all" else True)]
        n_all = int(sub["image"].nunique())
        means = {m: mean_ci(sub[sub["method"] == m]["value"]) for m in methods}
        finite = [v[0] for v in means.values() if math.isfinite(v[0])]
        best = (max(finite) if sd.data.higher_is_better(metric) else min(finite)) if finite else math.nan
        cells = []
        for m in methods:
            mean, _, n = means[m]
            text = decimals(metric, mean) + (f" ({n})" if 0 < n < n_all else "")
            cells.append({"text": text, "best": math.isfinite(mean) and decimals(metric, mean) == decimals(metric, best)})
        rows.append({"category": category, "images": n_all, "cells": cells})
    return {"metric": metric, "methods": methods, "rows": rows}


# -- caveats --------------------------------------------------------------------------------------------------------

def caveats(sd: StudyData) -> list[str]:
    study = sd.study
    lines = [f"Profile `{study.profile}`, precision requested `{study.precision}`, seed(s) "
             f"{', '.join(map(str, study.seeds))}: one run per cell, so an interval is over images, not over seeds."]
    devices, revisions, precisions = set(), set(), {}
    for unit, run in sd.runs:
        devices.add((run.get("device") or {}).get("name", "unknown"))
        revisions.add(str(run.get("git_revision", "unknown"))[:12])
        entry = (run.get("methods") or {}).get(unit.method) or {}
        if entry.get("precision"):
            precisions.setdefault(unit.method, set()).add(entry["precision"])
    if devices:
        lines.append(f"Machine(s): {', '.join(sorted(devices))}; seconds are wall time of the method's call on it "
                     "(threads and load vary between runs by about 15 % here).")
    lines += _machine_split(sd.data.rows)
    if precisions:
        lines.append("Precision in force: " + "; ".join(f"{m} {'/'.join(sorted(p))}" for m, p in precisions.items()) + ".")
    if revisions:
        lines.append(f"Code revision(s) of the runs: {', '.join(sorted(revisions))}.")
    for unit, _ in sd.runs:
        if unit.reused:
            lines.append(f"{unit.method} ({unit.degradation} ×{','.join(map(str, unit.scales))}) is read from "
                         f"`{_rel(unit.out, study.root)}`, computed before this study and not recomputed.")
        if unit.subset_rule:
            lines.append(f"{unit.method} ({unit.degradation}) ran on a declared subset: {unit.subset_rule} "
                         f"({', '.join(unit.images)}); its means are over those images and its paired differences "
                         "over the images both methods have.")
    for o in sd.other_configs:
        lines.append(f"Not shown: {o['cells']} cell(s) of {o['method']} [{o['degradation']}] in "
                     f"`{_rel(o['folder'], study.root)}` computed under another configuration "
                     f"({', '.join(o['config_ids'])}) than the study's ({o['planned']}): another method version, "
                     "precision, profile or option; `make study` computes the study's own.")
    lines += _completeness(sd)
    rows = sd.data.rows
    if FLOPS_METRIC not in set(rows["metric"]) if len(rows) else True:
        lines.append("No `flops` rows in these results: TFLOP per image is n/a and the frontier is against seconds "
                     "only.")
    else:
        counted = set(rows.loc[rows["metric"] == FLOPS_METRIC, "method"])
        uncounted = [m for m in sd.data.methods if m not in counted and sd.data.family(m) != "interpolation"]
        if uncounted:
            lines.append(f"No `flops` rows for {', '.join(uncounted)} (cells computed before the suite counted "
                         "FLOPs, or a method that does not report them): TFLOP per image is n/a for "
                         + ("it and it is" if len(uncounted) == 1 else "them and they are")
                         + " missing from the frontier's TFLOP panels.")
    return lines


def _machine_split(rows: pd.DataFrame) -> list[str]:
    """Where the study's own cells were timed on more than one machine: which method, degradation and scales each
    other machine timed, so that no one reads two CPUs' seconds as one."""
    main = main_device(rows)
    timed = rows[(rows["metric"] == TIME_METRIC) & rows["device"].notna() & (rows["device"] != "")]
    others = sorted(set(timed["device"]) - {main}) if main else []
    if not others:
        return []
    lines = [f"Seconds come from {len(others) + 1} machines and compare only within one: most were measured on "
             f"{main}; a value marked {OTHER_MACHINE} was measured, at least in part, on another (the TFLOP column "
             "does not depend on the machine)."
             + (" \"CPU (x86_64, N cores)\" is how rows were labelled before the CPU model was recorded."
                if any(d.startswith("CPU (x86_64,") for d in set(timed["device"])) else "")]
    for device in others:
        sub = timed[timed["device"] == device]
        units = [f"{method} [{degradation} ×{','.join(str(int(s)) for s in sorted(set(g['scale'])))}]"
                 for (method, degradation), g in sub.groupby(["method", "degradation"], sort=True)]
        lines.append(f"Timed on {device}: {'; '.join(units)} ({len(sub)} cell(s)).")
    return lines


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _cells_found(sd: StudyData, unit: dict) -> int:
    """How many of a planned unit's cells have results (of the configuration the plan records)."""
    found = sd.data.cells
    if not len(found):
        return 0
    sub = found[(found["method_id"] == unit["method"]) & (found["scale"].isin(unit["scales"]))
                & (found["folder"].map(lambda f: _rel(Path(f), sd.study.root)) == unit["folder"])]
    return len(sub[["image", "scale", "degradation"]].drop_duplicates())


def cell_counts(sd: StudyData) -> tuple[int, int] | None:
    """(cells with results, cells planned) over the plan's runnable units; None before the first `run`."""
    if sd.plan is None:
        return None
    ready = [u for u in sd.plan.get("units", []) if u["status"] == "ready"]
    return sum(min(_cells_found(sd, u), u["cells"]) for u in ready), sum(u["cells"] for u in ready)


def _completeness(sd: StudyData) -> list[str]:
    if sd.plan is None:
        return ["No plan.json: the study has not been run with `run`, so completeness is not known."]
    lines = []
    for u in sd.plan.get("units", []):
        if u["status"] != "ready":
            lines.append(f"Not run: {u['method']} on {u['dataset']} [{u['degradation']}]: {u['message']}.")
            continue
        have = _cells_found(sd, u)
        if have < u["cells"]:
            lines.append(f"Incomplete: {u['method']} on {u['dataset']} [{u['degradation']}]: {have} of {u['cells']} "
                         "planned cells have results.")
        if u.get("reuse_problems"):
            lines.append(f"Reused cells of {u['method']} differ from what the study would compute "
                         f"({len(u['reuse_problems'])}, e.g. {u['reuse_problems'][0]}).")
    if not lines:
        lines.append("Complete: every planned cell has results.")
    return lines


# -- the frontier ----------------------------------------------------------------------------------------------------

def frontier(sd: StudyData, path: Path) -> Path | None:
    """Quality (PSNR-Y, LPIPS; means over all images) against seconds per image and, where flops rows exist, TFLOP
    per image, log axes; one row of panels per degradation x scale, the non-dominated methods joined."""
    from bench.report import plots

    groups = _groups(sd)
    if not groups:
        return None
    plt = plots.plt
    has_flops = FLOPS_METRIC in set(sd.data.rows["metric"])
    costs = [(TIME_METRIC, "seconds per image")] + ([(FLOPS_METRIC, "TFLOP per image")] if has_flops else [])
    metrics = [m for m in CONTEST_METRICS if m in set(sd.data.rows["metric"])]
    ncols = len(costs) * len(metrics)
    fig, axes = plt.subplots(len(groups), ncols, figsize=(4.2 * ncols, 3.3 * len(groups) + 0.8), squeeze=False)
    style = plots._method_style(sd.data, sd.data.methods)
    main = main_device(sd.data.rows)
    for r, (degradation, scale, df) in enumerate(groups):
        col = 0
        for cost_metric, cost_label in costs:
            for metric in metrics:
                ax = axes[r, col]
                col += 1
                points = []
                # quality as the reference's mean over all images plus the method's paired gain over it: a method
                # run on a declared subset is placed by what it gains on its own images (full coverage: its mean)
                gains = _means(sd.data, df, metric)
                for m in sd.data.methods_in(df):
                    sub = df[df["method"] == m]
                    x = mean_ci(sub[sub["metric"] == cost_metric]["value"])[0]
                    y = gains.attrs.get("reference_mean", math.nan) + float(gains.get(m, math.nan))
                    if cost_metric == FLOPS_METRIC:
                        x = x / 1e12
                    if math.isfinite(x) and x > 0 and math.isfinite(y):
                        points.append((x, y, m))
                        ax.plot([x], [y], style[m]["marker"], color=style[m]["color"], label=m, markersize=7)
                        if cost_metric == TIME_METRIC and seconds_mark(df, m, main):
                            ax.annotate(OTHER_MACHINE, (x, y), textcoords="offset points", xytext=(5, 3), fontsize=9)
                better = (lambda a, b: a >= b) if sd.data.higher_is_better(metric) else (lambda a, b: a <= b)
                front = [p for p in points if not any(q[0] <= p[0] and better(q[1], p[1]) and q != p
                                                      and (q[0] < p[0] or q[1] != p[1]) for q in points)]
                front.sort()
                if len(front) > 1:
                    ax.plot([p[0] for p in front], [p[1] for p in front], "-", color="#888", linewidth=0.8, zorder=0)
                ax.set_xscale("log")
                plots._plain_log(ax.xaxis)
                ax.set_xlabel(f"{cost_label} (log)")
                ax.set_ylabel(f"{metric} ({'↑' if sd.data.higher_is_better(metric) else '↓'})")
                ax.set_title(f"{degradation} ×{scale}", fontsize=9)
                ax.grid(True, alpha=0.3)
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    labels = list(handles)
    fig.suptitle(f"{sd.study.name}: quality against cost", fontsize=10)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    fig.legend([handles[k] for k in labels], labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=8,
               frameon=False)
    return plots._save(fig, path)


# -- the same study on other machines: costs only ---------------------------------------------------------------

def _machine_seconds(study) -> pd.DataFrame:
    """seconds-total rows of every unit the study ran itself (reused folders are the home machine's), with the
    unit's method, degradation spec and scale, and the cell's PSNR-Y (NaN without one): columns method,
    degradation, scale, image, value, psnr, device."""
    from bench.study import study_units

    frames = []
    for unit in study_units(study):
        if unit.reused or not (unit.out / "results.csv").is_file():
            continue
        rows = load_run(unit.out).rows
        mine = rows[(rows["method_id"] == unit.method) & rows["scale"].isin(unit.scales)]
        sub = mine[mine["metric"] == TIME_METRIC][["image", "scale", "value", "device"]].copy()
        psnr = mine[mine["metric"] == "psnr-y"][["image", "scale", "value"]].rename(columns={"value": "psnr"})
        sub = sub.merge(psnr.drop_duplicates(["image", "scale"], keep="last"), on=["image", "scale"], how="left")
        sub["method"], sub["degradation"] = unit.method, unit.degradation
        frames.append(sub)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["image", "scale", "value", "psnr", "device", "method", "degradation"])


def _psnr_change(both: pd.DataFrame) -> str:
    """PSNR-Y there minus here over the images both machines ran: mean and the largest change (a training method's
    float arithmetic differs between CPUs, so the same fp32 cell need not give the same number)."""
    diff = (both["psnr_there"] - both["psnr_here"]).dropna()
    if not len(diff):
        return "n/a"
    return f"{diff.mean():+.2f} ({diff.abs().max():.2f})"


def machine_costs(sd: StudyData) -> dict | None:
    """Seconds per image on this machine and on each machine under reports/studies/<name>/machines/<label>/ (the
    same declared cells run elsewhere, e.g. on a lent GPU): per method, degradation and scale, the mean over the
    images both have, and the speed-up. None when no other machine's results are committed."""
    import dataclasses

    study = sd.study
    folders = sorted(p for p in study.machines_dir.glob("*") if p.is_dir()) if study.machines_dir.is_dir() else []
    if not folders:
        return None
    home = _machine_seconds(study)
    home_devices: set[str] = set()  # of the home rows compared (the study's own cells may span machines)
    machines = []
    for folder in folders:
        other = _machine_seconds(dataclasses.replace(study, results_dir=folder))
        if not len(other):
            continue
        rows = []
        for (method, degradation, scale), theirs in other.groupby(["method", "degradation", "scale"], sort=False):
            mine = home[(home["method"] == method) & (home["degradation"] == degradation) & (home["scale"] == scale)]
            both = theirs.merge(mine, on="image", suffixes=("_there", "_here"))
            home_devices.update(both["device_here"])
            here, there = (both["value_here"].mean(), both["value_there"].mean()) if len(both) else (math.nan,
                                                                                                       math.nan)
            rows.append({"method": method, "degradation": degradation, "scale": int(scale), "images": len(both),
                         "here": fmt_seconds(here), "there": fmt_seconds(there), "psnr": _psnr_change(both),
                         "speedup": f"{here / there:.1f}×" if len(both) and there > 0 else "n/a"})
        order = {m: i for i, m in enumerate(study.methods)}
        rows.sort(key=lambda r: (study.degradations.index(r["degradation"]) if r["degradation"] in
                                 study.degradations else 99, r["scale"], order.get(r["method"], 99)))
        machines.append({"label": folder.name, "device": ", ".join(sorted(set(other["device"]))), "rows": rows})
    return {"home": ", ".join(sorted(home_devices)) or "this machine", "machines": machines} if machines else None


# -- rendering ------------------------------------------------------------------------------------------------------

def build_context(sd: StudyData, frontier_rel: str | None) -> dict:
    from bench.report.render import md_table

    details = []
    for degradation, scale, df in _groups(sd):
        anchor = f"{degradation}-x{scale}"
        table = summary_table(sd.data, df, f"{degradation} ×{scale}: all images", f"table-{anchor}")
        details.append({"degradation": degradation, "scale": scale, "summary": table, "summary_md": md_table(table),
                        "matrices": [category_matrix(sd, df, m) for m in CONTEST_METRICS
                                     if m in set(df["metric"])]})
    study = sd.study
    return {"name": study.name, "title": study.title, "question": study.question,
            "declared": {"datasets": ", ".join(study.datasets), "degradations": ", ".join(study.degradations),
                         "scales": ", ".join(f"×{s}" for s in study.scales) + "".join(
                             f" ({d}: {', '.join(f'×{s}' for s in only)} only)"
                             for d, only in study.degradation_scales.items()), "methods": ", ".join(study.methods),
                         "profile": study.profile, "precision": study.precision,
                         "seeds": ", ".join(map(str, study.seeds))},
            "families": {m: sd.data.family(m) for m in sd.data.methods},
            "answer": answer_rows(sd), "wins_losses": wins_and_losses(sd), "details": details,
            "kernel_effects": kernel_source_effects(sd),
            "frontier": frontier_rel, "caveats": caveats(sd), "machines": machine_costs(sd),
            "command": f"make study STUDY={study.name} RENDER_ONLY=1"}


def render_study(study, crops: bool = True) -> dict[str, Path]:
    """Write docs/studies/<name>.md, <name>.html and <name>/frontier.png, and where the SR images are at hand the
    uncommitted crops page reports/studies/<name>/crops/index.html; returns their paths."""
    from bench.report.render import _env

    sd = load_study_data(study)
    doc = study.doc_path
    figure = frontier(sd, doc.parent / study.name / "frontier.png")
    rel = figure.relative_to(doc.parent).as_posix() if figure else None
    context = build_context(sd, rel)
    md = _env(autoescape=False).get_template("study.md.j2").render(**context)
    while "\n\n\n" in md:
        md = md.replace("\n\n\n", "\n\n")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(md, encoding="utf-8")
    html_path = doc.with_suffix(".html")
    html_path.write_text(_env(autoescape=True).get_template("study.html.j2").render(**context), encoding="utf-8")
    out = {"markdown": doc, "html": html_path}
    if figure:
        out["frontier"] = figure
    if crops:  # not part of the document: the SR images it needs are not committed
        page = render_crops(sd, study.out_root / "crops")
        if page:
            out["crops (not committed)"] = page
    return out


# -- crops of the largest disagreements: an uncommitted extra (the SR images are not in the repository) -------------

def render_crops(sd: StudyData, out_dir: Path, per_group: int = 3) -> Path | None:
    """For each degradation x scale, the images on which the best internal and the best external method differ most
    in PSNR-Y: HR, interpolation, both methods, the same window. Written to out_dir/index.html where the run folders
    still hold their SR outputs; None where none does."""
    import html

    from bench.report import crops as crops_mod
    from bench.results import Cell, input_paths

    cells = sd.data.cells
    if not len(cells) or "output" not in cells:
        return None
    outputs = {(r.method, r.image, int(r.scale), r.degradation): Path(r.folder) / r.output
               for r in cells.itertuples() if r.output}
    figures = []
    for degradation, scale, df in _groups(sd):
        c = family_contest(sd.data, df, "psnr-y")
        if c is None:
            continue
        diff = paired_differences(sd.data, df, c.best, c.other, "psnr-y")
        interpolation = [m for m in sd.data.methods_in(df) if sd.data.family(m) == "interpolation"][:1]
        for image in diff.abs().sort_values(ascending=False, kind="stable").index[:per_group]:
            methods = interpolation + [c.best, c.other]
            arrays = [(m, crops_mod._read(outputs[(m, image, scale, degradation)]))
                      for m in methods if (m, image, scale, degradation) in outputs]
            arrays = [(m, a) for m, a in arrays if a is not None]
            if len(arrays) < 2:
                continue
            first = df[df["image"] == image].iloc[0]
            hr_rel, _ = input_paths(Cell(first["dataset"], "", image, first["image_sha"], degradation, scale, "", ""))
            hr = crops_mod._read(Path(first["folder"]) / hr_rel)
            h = min(a.shape[0] for _, a in arrays)
            w = min(a.shape[1] for _, a in arrays)
            size = int(min(h, w, max(24, min(h, w) // 4), 96))
            top, left = crops_mod.best_window([a[:h, :w] for _, a in arrays], size)
            panels = ([("HR (ground truth)", hr[:h, :w])] if hr is not None else []) + [
                (crops_mod._label(m, crops_mod._values(df, m, image, scale)), a[:h, :w]) for m, a in arrays]
            path = out_dir / f"{slug_text(degradation)}_x{scale}_{slug_text(image)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            crops_mod.compose(panels, (top, left, size)).save(path)
            figures.append((path.name, f"{degradation} ×{scale}, {image}: {c.best} − {c.other} = "
                                       f"{diff[image]:+.2f} dB PSNR-Y"))
    if not figures:
        return None
    body = "\n".join(f'<figure><img src="{html.escape(name)}"><figcaption>{html.escape(text)}</figcaption></figure>'
                     for name, text in figures)
    index = out_dir / "index.html"
    index.write_text(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(sd.study.name)}"
                     f": largest disagreements</title></head><body><h1>{html.escape(sd.study.name)}: the largest "
                     "disagreements between internal and external learning</h1>\n" + body + "\n</body></html>\n",
                     encoding="utf-8")
    return index


def slug_text(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in str(text))
