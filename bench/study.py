"""Studies as data: `studies/<name>.toml` declares datasets, degradations, scales, methods, profile, seeds and
precision, and per method optional restrictions (scales, degradations, a stratified image subset) or cells to reuse
from an existing run folder. This module turns a study into run folders of the ordinary harness, estimates what is
left, runs it resumably and renders its document.

    python -m bench.study estimate <name>      # cells to run, done, reused, and estimated CPU hours; runs nothing
    python -m bench.study run <name>           # the estimate, then every pending cell, then the document
    python -m bench.study render <name>        # the document again, from the committed results alone

Layout: one ordinary run folder per dataset x degradation x seed x method,
`reports/studies/<name>/<dataset>-<degradation>-seed<k>/<method>/`, so that every folder's run.json describes
exactly the method whose cells it holds (a run.json records the methods of the call that wrote it last) and a
method's folder is resumed on its own. A reused method's cells stay in the folder they were computed in; the study
reads them from there and never recomputes them. `reports/studies/<name>/plan.json` records what the harness
planned per folder (cells, config ids, reuse checks), so that the document can say what is complete without
importing any model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

STUDY_KEYS = {"title", "question", "datasets", "degradations", "scales", "methods", "profile", "precision", "seeds",
              "protocol", "metrics", "method", "degradation"}
DEGRADATION_RULE_KEYS = {"scales"}
RULE_KEYS = {"scales", "degradations", "datasets", "categories", "per_category", "reuse", "precision"}
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PROFILES = ("quick", "paper")


@dataclass(frozen=True)
class MethodRule:
    """What a study asks of one method beyond the study's grid."""

    scales: tuple[int, ...] | None = None  # only these of the study's scales
    degradations: tuple[str, ...] | None = None  # only these of the study's degradations
    datasets: tuple[str, ...] | None = None  # only these of the study's datasets
    categories: tuple[str, ...] | None = None  # only images of these categories
    per_category: int | None = None  # a stratified subset: this many images per category (all where fewer)
    reuse: str | None = None  # a run folder (relative to the root) that already holds these cells: read, not run
    precision: str | None = None  # this method's precision instead of the study's (e.g. what reused cells ran at)


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    root: Path  # the checkout: reports/studies/<name>/ and docs/studies/ are under it
    title: str
    question: str
    datasets: tuple[str, ...]
    degradations: tuple[str, ...]
    scales: tuple[int, ...]
    methods: tuple[str, ...]
    profile: str
    precision: str
    seeds: tuple[int, ...]
    protocol: str = "rgb"
    metrics: tuple[str, ...] = ()  # empty: the harness's defaults
    rules: dict[str, MethodRule] = field(default_factory=dict)
    # per degradation (as the study writes it): only these of the study's scales, for every method
    degradation_scales: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # where this run's unit folders go instead of reports/studies/<name>/ (`run --out-root`: another machine's run)
    results_dir: Path | None = None

    @property
    def out_root(self) -> Path:
        return self.results_dir or self.home

    @property
    def home(self) -> Path:
        """reports/studies/<name>/: the committed results the document is rendered from."""
        return self.root / "reports" / "studies" / self.name

    @property
    def machines_dir(self) -> Path:
        """reports/studies/<name>/machines/<label>/: the same study run on other machines (a lent GPU), whose costs
        the document shows beside this machine's (their quality numbers are not mixed in)."""
        return self.home / "machines"

    @property
    def doc_path(self) -> Path:
        return self.root / "docs" / "studies" / f"{self.name}.md"

    def rule(self, method: str) -> MethodRule:
        return self.rules.get(method, MethodRule())


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(text)).strip("-") or "x"


def _strings(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: give a list of names, e.g. [\"bicubic\"] (got {value!r})")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _ints(value, where: str, minimum: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                              for v in value) or not value:
        raise ValueError(f"{where}: give a list of integers >= {minimum} (got {value!r})")
    return tuple(dict.fromkeys(value))


def study_file(name_or_path: str, root: Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    path = root / "studies" / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "studies").glob("*.toml"))
        raise ValueError(f"no study {name_or_path!r}: {path} does not exist; known studies: "
                         f"{', '.join(known) or 'none'} (or give a path to a .toml file)")
    return path


def load_study(name_or_path: str, root: Path | None = None) -> Study:
    """The study declared in studies/<name>.toml (or a .toml path); every wrong key or value is an error naming the
    file and the key."""
    root = Path(root or Path.cwd()).resolve()
    path = study_file(name_or_path, root)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    unknown = set(spec) - STUDY_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(STUDY_KEYS))}")
    for key in ("datasets", "degradations", "scales", "methods", "profile"):
        if key not in spec:
            raise ValueError(f"{path}: `{key}` is missing; a study declares datasets, degradations, scales, methods "
                             "and profile")
    profile = spec["profile"]
    if profile not in PROFILES:
        raise ValueError(f"{path}: profile {profile!r}: a study names its profile, one of {', '.join(PROFILES)}")
    methods = _strings(spec["methods"], f"{path}: methods")
    degradations = _strings(spec["degradations"], f"{path}: degradations")
    scales = _ints(spec["scales"], f"{path}: scales", 2)
    datasets = _strings(spec["datasets"], f"{path}: datasets")
    rules = {}
    for method, rule in (spec.get("method") or {}).items():
        where = f"{path}: [method.\"{method}\"]"
        if method not in methods:
            raise ValueError(f"{where}: {method!r} is not one of the study's methods ({', '.join(methods)})")
        bad = set(rule) - RULE_KEYS
        if bad:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(RULE_KEYS))}")
        parsed = MethodRule(
            scales=_ints(rule["scales"], f"{where} scales", 2) if "scales" in rule else None,
            degradations=_strings(rule["degradations"], f"{where} degradations") if "degradations" in rule else None,
            datasets=_strings(rule["datasets"], f"{where} datasets") if "datasets" in rule else None,
            categories=_strings(rule["categories"], f"{where} categories") if "categories" in rule else None,
            per_category=_ints(rule["per_category"], f"{where} per_category", 1)[0] if "per_category" in rule else None,
            reuse=str(rule["reuse"]) if "reuse" in rule else None,
            precision=str(rule["precision"]) if "precision" in rule else None)
        if parsed.precision is not None and parsed.precision not in PRECISIONS:
            raise ValueError(f"{where}: precision {parsed.precision!r}: use {', '.join(PRECISIONS)}")
        for what, mine, study_values in (("scales", parsed.scales, scales), ("degradations", parsed.degradations,
                                         degradations), ("datasets", parsed.datasets, datasets)):
            outside = [v for v in (mine or ()) if v not in study_values]
            if outside:
                raise ValueError(f"{where}: {what} {outside} are not among the study's {what} {list(study_values)}")
        if parsed.reuse and not (root / parsed.reuse / "results.csv").is_file():
            raise ValueError(f"{where}: reuse {parsed.reuse!r}: no results.csv there (relative to {root})")
        rules[method] = parsed
    degradation_scales = {}
    for degradation, rule in (spec.get("degradation") or {}).items():
        where = f"{path}: [degradation.\"{degradation}\"]"
        if degradation not in degradations:
            raise ValueError(f"{where}: {degradation!r} is not one of the study's degradations "
                             f"({', '.join(degradations)})")
        bad = set(rule) - DEGRADATION_RULE_KEYS
        if bad or "scales" not in rule:
            raise ValueError(f"{where}: a degradation rule declares `scales` only (found {', '.join(sorted(rule))})")
        chosen = _ints(rule["scales"], f"{where} scales", 2)
        outside = [v for v in chosen if v not in scales]
        if outside:
            raise ValueError(f"{where}: scales {outside} are not among the study's scales {list(scales)}")
        degradation_scales[degradation] = chosen
    precision = spec.get("precision", "auto")
    if precision not in PRECISIONS:
        raise ValueError(f"{path}: precision {precision!r}: use {', '.join(PRECISIONS)}")
    protocol = spec.get("protocol", "rgb")
    if protocol not in ("rgb", "y-only"):
        raise ValueError(f"{path}: protocol {protocol!r}: use rgb or y-only")
    return Study(name=path.stem, path=path, root=root, title=str(spec.get("title", path.stem)),
                 question=str(spec.get("question", "")), datasets=datasets, degradations=degradations, scales=scales,
                 methods=methods, profile=profile, precision=precision,
                 seeds=_ints(spec.get("seeds", [0]), f"{path}: seeds", 0), protocol=protocol,
                 metrics=_strings(spec["metrics"], f"{path}: metrics") if "metrics" in spec else (), rules=rules,
                 degradation_scales=degradation_scales)


# -- units: one run folder (or reused folder) per dataset x degradation x seed x method -------------------------

@dataclass(frozen=True)
class Unit:
    dataset: str
    degradation: str  # the spec as the study writes it
    seed: int
    method: str
    scales: tuple[int, ...]
    images: tuple[str, ...]  # the declared subset ("" = every image of the dataset)
    out: Path  # the run folder whose results hold these cells
    reused: bool = False
    subset_rule: str = ""  # how the subset was chosen, for the document
    precision: str | None = None  # the method's own precision rule (None: the study's)

    @property
    def label(self) -> str:
        return f"{self.method} on {self.dataset} [{self.degradation}] x{','.join(map(str, self.scales))} seed {self.seed}"

    def options(self, study: Study, device: str = "auto", batch: str = "auto"):
        from bench.options import RunOptions

        extra = {"metrics": study.metrics} if study.metrics else {}
        return RunOptions(dataset=self.dataset, images=self.images, methods=(self.method,), scales=self.scales,
                          protocol=study.protocol, profile=study.profile, device=device, out=self.out, seed=self.seed,
                          degradations=(self.degradation,), precision=self.precision or study.precision,
                          batch=batch, **extra)


def stratified_subset(dataset: str, per_category: int | None,
                      categories: tuple[str, ...] | None = None) -> tuple[tuple[str, ...], str]:
    """`per_category` images of every category (all of a smaller one; None: all), the first ones by content
    checksum: a choice that depends on the images alone, not on their names or order in the declaration.
    `categories`: only those categories (each must exist)."""
    from bench.datasets import load_dataset

    images = load_dataset(dataset).images
    known = sorted({im.category for im in images})
    unknown = [c for c in categories or () if c not in known]
    if unknown:
        raise ValueError(f"dataset {dataset!r} has no categor{'y' if len(unknown) == 1 else 'ies'} "
                         f"{', '.join(unknown)}; its categories: {', '.join(known)}")
    chosen = []
    for category in categories or known:
        members = sorted((im for im in images if im.category == category), key=lambda im: (im.content_id, im.name))
        chosen += [im.name for im in members[:per_category or len(members)]]
    parts = ([f"categories {', '.join(categories)}"] if categories else []) + (
        [f"{per_category} image(s) per category, the first by pixel checksum (sha256 of the decoded pixels)"]
        if per_category else [])
    return tuple(sorted(chosen)), f"{'; '.join(parts)}: {len(chosen)} of {len(images)} images"


def study_units(study: Study) -> list[Unit]:
    units = []
    subsets: dict[tuple, tuple[tuple[str, ...], str]] = {}
    for dataset in study.datasets:
        for degradation in study.degradations:
            for seed in study.seeds:
                folder = study.out_root / f"{slug(Path(dataset).name)}-{slug(degradation)}-seed{seed}"  # a folder: its name
                for method in study.methods:
                    rule = study.rule(method)
                    if (rule.datasets and dataset not in rule.datasets) or \
                            (rule.degradations and degradation not in rule.degradations):
                        continue
                    only = study.degradation_scales.get(degradation)
                    scales = tuple(s for s in study.scales if (not rule.scales or s in rule.scales)
                                   and (not only or s in only))
                    if not scales:
                        continue
                    images, subset_rule = (), ""
                    if rule.per_category or rule.categories:
                        key = (dataset, rule.per_category, rule.categories)
                        if key not in subsets:
                            subsets[key] = stratified_subset(dataset, rule.per_category, rule.categories)
                        images, subset_rule = subsets[key]
                    out = (study.root / rule.reuse) if rule.reuse else folder / slug(method)
                    units.append(Unit(dataset, degradation, seed, method, scales, images, out, bool(rule.reuse),
                                      subset_rule, rule.precision))
    return units


# -- what each unit needs, from the harness's own plan ----------------------------------------------------------

@dataclass
class UnitState:
    unit: Unit
    status: str  # ready | unknown-method | unknown-degradation | cannot-run
    message: str = ""
    n_cells: int = 0
    n_done: int = 0
    todo: list = field(default_factory=list)  # bench.plan.WorkItem
    config_id: str = ""
    problems: list[str] = field(default_factory=list)  # reused cells that are missing or differ
    lr_megapixels: dict = field(default_factory=dict)  # image -> HR megapixels (for the estimate)

    @property
    def n_todo(self) -> int:
        return 0 if self.unit.reused else len(self.todo)


def _declared_cells(unit: Unit) -> int:
    """Cells a unit declares when the harness cannot plan it (its method or degradation does not exist yet)."""
    from bench.datasets import load_dataset

    try:
        n_images = len(unit.images) or len(load_dataset(unit.dataset).images)
    except Exception:  # noqa: BLE001 (an unknown dataset: said elsewhere; count nothing)
        n_images = 0
    return n_images * len(unit.scales)


def unit_state(study: Study, unit: Unit, device: str = "cpu") -> UnitState:
    """Plan one unit as the harness would and compare it with its folder's results; unknown methods and
    degradations (not registered yet) are states, not errors, so that a study can be declared ahead of its methods."""
    from baselines.methods import CHECKPOINT_PREFIX, METHODS, load_plugins
    from bench.degradations import parse
    from bench.plan import make_plan, pending_work
    from bench.results import cell_states, read_results
    from bench.session import build_session

    load_plugins()
    if not unit.method.startswith(CHECKPOINT_PREFIX) and unit.method not in METHODS:
        return UnitState(unit, "unknown-method", f"unknown method {unit.method} (not registered yet)",
                         n_cells=_declared_cells(unit))
    try:
        parse(unit.degradation)
    except ValueError as exc:
        status = "unknown-degradation" if "unknown step" in str(exc) else "cannot-run"
        message = (f"unknown degradation {unit.degradation} (not registered yet)" if status == "unknown-degradation"
                   else str(exc))
        return UnitState(unit, status, message, n_cells=_declared_cells(unit))
    try:
        session = build_session(unit.options(study, device=device))
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        return UnitState(unit, "cannot-run", f"{unit.method} cannot run here: {exc}", n_cells=_declared_cells(unit))
    plan = make_plan(session)
    results = read_results(unit.out / "results.csv")
    states = cell_states(results)
    pending = pending_work(plan, states, unit.out)
    state = UnitState(unit, "ready", n_cells=len(plan), n_done=pending.n_done, todo=pending.todo,
                      config_id=session.config_ids.get(unit.method, ""))
    if unit.reused:
        state.problems = reused_problems(plan, states, results)
    return state


def reused_problems(plan, states: dict, results) -> list[str]:
    """Each planned cell must be in the reused folder with the same identity (dataset, image checksum, degradation,
    scale, method, config_id), finished and with every requested metric; anything else is named."""
    problems = []
    for item in plan:
        cell = item.cell
        state = states.get(cell.key)
        if state is not None and state.status == "ok" and all(m in state.metrics for m in item.metrics):
            continue
        if state is not None:
            missing = [m for m in item.metrics if m not in state.metrics]
            problems.append(f"{cell.slug}: status {state.status}" + (f", lacks {', '.join(missing)}" if missing else ""))
            continue
        same = results[(results["dataset"] == cell.dataset) & (results["image"] == cell.image)
                       & (results["method"] == cell.method) & (results["scale"] == cell.scale)
                       & (results["degradation"] == cell.degradation)]
        if not len(same):
            problems.append(f"{cell.slug}: not in the reused folder")
            continue
        found = same.iloc[0]
        diffs = [f"{column} {found[column]} there, {getattr(cell, column)} here" for column in ("image_sha", "config_id")
                 if str(found[column]) != str(getattr(cell, column))]
        problems.append(f"{cell.slug}: differs ({'; '.join(diffs)})")
    return problems


# -- the estimate ----------------------------------------------------------------------------------------------

def estimate_lines(study: Study, states: list[UnitState], model) -> tuple[list[str], float]:
    """The printed estimate: per method, cells declared, done, reused, to run and CPU hours (with their basis); then
    the units that cannot be planned yet. Returns (lines, total hours)."""
    per_method: dict[str, dict] = {}
    for st in states:
        row = per_method.setdefault(st.unit.method, {"cells": 0, "done": 0, "reused": 0, "todo": 0, "seconds": 0.0,
                                                     "bases": set(), "notes": set()})
        row["cells"] += st.n_cells
        if st.unit.reused:
            row["reused"] += st.n_cells - len(st.problems)
        else:
            row["done"] += st.n_done
        if st.status != "ready":
            row["notes"].add(st.message)
        costs = cell_costs(st, model, study.profile)
        row["todo"] += len(costs)
        for seconds, basis in costs:
            row["seconds"] += seconds
            row["bases"].add(basis)
        if st.unit.reused and st.problems:
            row["notes"].add(f"{len(st.problems)} reused cell(s) missing or different in {st.unit.out}, e.g. "
                             f"{st.problems[0]}; `run` refuses to go on until they match")
        if st.unit.subset_rule:
            row["notes"].add(f"subset: {st.unit.subset_rule}")
    lines = [f"study {study.name} ({study.path}): profile {study.profile}, precision {study.precision}, seeds "
             f"{', '.join(map(str, study.seeds))}; results under {study.out_root}",
             f"{'method':<26} {'cells':>6} {'done':>6} {'reused':>6} {'to run':>6} {'CPU h':>7}  basis"]
    total = 0.0
    for method, row in per_method.items():
        hours = row["seconds"] / 3600
        total += hours
        lines.append(f"{method:<26} {row['cells']:>6} {row['done']:>6} {row['reused']:>6} {row['todo']:>6} "
                     f"{hours:>7.2f}  {'; '.join(sorted(row['bases'])) or '-'}")
        for note in sorted(row["notes"]):
            lines.append(f"{'':<26} {note}")
    n = {k: sum(r[k] for r in per_method.values()) for k in ("cells", "done", "reused", "todo")}
    lines.append(f"{'total':<26} {n['cells']:>6} {n['done']:>6} {n['reused']:>6} {n['todo']:>6} {total:>7.2f}")
    lines.append(f"costs: {model.describe()}")
    return lines, total


def cell_costs(st: UnitState, model, profile: str) -> list[tuple[float, str]]:
    """(estimated seconds, basis) of each cell a unit has left to run; for a unit that cannot be planned yet (a method
    or degradation declared ahead of its code), of every cell it declares."""
    from bench.study_cost import cell_seconds

    if st.status != "ready":
        todo = [(image, scale) for image in (st.unit.images or _image_names(st.unit.dataset))
                for scale in st.unit.scales]
    else:
        todo = [] if st.unit.reused else [(i.cell.image, i.cell.scale) for i in st.todo]
    return [cell_seconds(model, st.unit.method, profile, scale, st.unit.dataset, image) for image, scale in todo]


def _image_names(dataset: str) -> list[str]:
    from bench.datasets import load_dataset

    try:
        return [im.name for im in load_dataset(dataset).images]
    except Exception:  # noqa: BLE001 (an unknown dataset has no cells to estimate)
        return []


# -- plan.json: what the harness planned, for the document ---------------------------------------------------------

def plan_record(study: Study, states: list[UnitState]) -> dict:
    units = []
    for st in states:
        u = st.unit
        units.append({"dataset": u.dataset, "degradation": u.degradation, "seed": u.seed, "method": u.method,
                      "scales": list(u.scales), "images": list(u.images), "subset_rule": u.subset_rule,
                      "folder": u.out.relative_to(study.root).as_posix() if u.out.is_relative_to(study.root)
                      else str(u.out),
                      "reused": u.reused, "status": st.status, "message": st.message, "cells": st.n_cells,
                      "config_id": st.config_id, "reuse_problems": st.problems})
    return {"study": study.name, "profile": study.profile, "precision": study.precision, "seeds": list(study.seeds),
            "units": units}


def record_plan(study: Study, states: list[UnitState]) -> None:
    write_if_changed(study.out_root / "plan.json", json.dumps(plan_record(study, states), indent=1) + "\n")


def write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


# -- commands -----------------------------------------------------------------------------------------------------

def plan_study(study: Study, device: str) -> list[UnitState]:
    return [unit_state(study, unit, device) for unit in study_units(study)]


def _here(device: str) -> str:
    """This machine's device name as rows record it: the cost model prefers what cells cost here."""
    from bench.device import device_name, select_device

    return device_name(select_device(device))


def cmd_estimate(study: Study, args) -> int:
    from bench.study_cost import measured_costs

    states = plan_study(study, args.device)
    lines, _ = estimate_lines(study, states, measured_costs(study.root / "reports", here=_here(args.device)))
    print("\n".join(lines))
    return 0


def cmd_run(study: Study, args) -> int:
    from bench.runner import run
    from bench.study_cost import measured_costs

    states = plan_study(study, args.device)
    if args.methods:  # run only these now; the rest stay to do (the estimate below still shows the whole study)
        unknown = [m for m in args.methods if m not in study.methods]
        if unknown:
            raise ValueError(f"--methods {','.join(unknown)}: not among the study's methods ({', '.join(study.methods)})")
    model = measured_costs(study.root / "reports", here=_here(args.device))
    lines, _ = estimate_lines(study, states, model)
    print("\n".join(lines), flush=True)
    reuse_problems = [(st, p) for st in states if st.unit.reused for p in st.problems]
    if reuse_problems and args.accept_reuse_mismatch:
        print(f"note: {len(reuse_problems)} reused cell(s) differ from what the study would compute; used as they are "
              "(--accept-reuse-mismatch) and flagged in the document's caveats", file=sys.stderr)
    elif reuse_problems:
        shown = "\n".join(f"  {st.unit.out}: {p}" for st, p in reuse_problems[:20])
        raise ValueError(f"the reused cells do not match what the study would compute ({len(reuse_problems)} "
                         f"problem(s)); the study does not recompute reused cells:\n{shown}\nfix the declaration "
                         "(scales, degradations, profile, precision, seed) or the reused folder, or run with "
                         "--accept-reuse-mismatch to use them as they are, flagged in the document")
    # recorded before the first cell as well as after the last: a run stopped half-way (a session's end) still
    # leaves the document a plan to measure completeness against
    record_plan(study, states)
    status = 0
    deadline = None if args.time_budget is None else time.monotonic() + args.time_budget
    for st in cheapest_first(states, model, study.profile):
        if st.status != "ready":
            print(f"not run: {st.unit.label}: {st.message}", file=sys.stderr)
            status = 1
            continue
        if st.unit.reused or not st.todo or (args.methods and st.unit.method not in args.methods):
            continue
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < 1:
            print(f"time budget spent: {st.unit.label} and the units after it not started; the same command "
                  "resumes", flush=True)
            break
        print(f"running {st.unit.label}: {len(st.todo)} cell(s) into {st.unit.out}", flush=True)
        options = st.unit.options(study, device=args.device, batch=args.batch)
        if left is not None:
            options = dataclasses.replace(options, time_budget=left)
        summary = run(options, render=False)
        if not summary.ok:
            status = 1
            for failure in summary.failures:
                print(f"  failed: {failure['method']} {failure['image']} x{failure['scale']}: {failure['note']}",
                      file=sys.stderr)
    if not any(st.todo for st in states if st.status == "ready" and not st.unit.reused):
        print("nothing to run: every declared cell that can run here is done")
    else:
        states = plan_study(study, args.device)  # after the runs: the record says what is there now
    record_plan(study, states)
    if study.results_dir is None:
        _render(study)
    else:  # another machine's run: its costs join the document once its folder is under machines/
        print(f"results in {study.out_root}; the document is not rendered from them: copy the folder to "
              f"{study.machines_dir}/<machine>/ (without sr/ and inputs/) to add its costs to the document")
    return status


def cheapest_first(states: list[UnitState], model, profile: str = "paper") -> list[UnitState]:
    """The units in the order to run them: cheapest first, so that a study stopped after a few hours (a session's
    end) holds every cheap method's answer rather than a fraction of one expensive method's; ties keep the declared
    order."""
    return sorted(states, key=lambda st: sum(c[0] for c in cell_costs(st, model, profile))
                  if st.status == "ready" else 0.0)


def _render(study: Study) -> None:
    from bench.report.study import render_study

    for path in render_study(study).values():
        print(f"wrote {path}")


def cmd_render(study: Study, _args) -> int:
    _render(study)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.study", description="declared studies: estimate, run, render")
    ap.add_argument("command", choices=["estimate", "run", "render"])
    ap.add_argument("study", help="a study name (studies/<name>.toml) or a path to a .toml file")
    ap.add_argument("--root", type=Path, default=None, help="the checkout holding studies/, reports/ and docs/ "
                    "(default: the current folder)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (as for `bench run`)")
    ap.add_argument("--batch", default="auto", help="ZSSR cells trained together (as for `bench run`)")
    ap.add_argument("--accept-reuse-mismatch", action="store_true",
                    help="with run: use reused cells whose identity differs from the study's (flagged in the "
                         "document) instead of stopping")
    ap.add_argument("--dry-run", "--estimate", dest="dry_run", action="store_true",
                    help="with run: print the estimate and stop")
    ap.add_argument("--out-root", type=Path, default=None,
                    help="with run: write the unit folders here instead of reports/studies/<name>/ (another "
                         "machine's run of the same study; the document is not rendered)")
    ap.add_argument("--methods", type=lambda text: tuple(m.strip() for m in text.split(",") if m.strip()),
                    default=(), help="with run: run only these of the study's methods now (comma-separated)")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="with run: start no cell after this many seconds (a lent machine's limit); resumable")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        study = load_study(args.study, args.root)
        if args.out_root is not None:
            study = dataclasses.replace(study, results_dir=args.out_root.resolve())
        if args.time_budget is not None and args.time_budget <= 0:
            raise ValueError(f"--time-budget {args.time_budget:g}: give a number of seconds > 0")
        if args.command == "run" and args.dry_run:
            return cmd_estimate(study, args)
        return {"estimate": cmd_estimate, "run": cmd_run, "render": cmd_render}[args.command](study, args)
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
