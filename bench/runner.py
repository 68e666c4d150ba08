"""The plan of cells (image x scale x method) and their execution, appending results as each cell finishes."""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from bench import datasets as ds
from bench.degrade import make_pair
from bench.images import save_image
from bench.results import CELL_KEY, ERROR_METRIC, Cell, ResultsWriter, finished_cells, read_results

log = logging.getLogger("bench")

# What `make bench` runs when METHODS is not given. The quick profile keeps the default run to minutes on a CPU.
DEFAULT_METHODS = {
    "paper": ["bicubic", "lanczos", "zssr-original", "zssr-modified", "zssr-gradual", "realesrgan-x4plus",
              "dat-light", "esrgan", "rrdb-psnr"],
    "quick": ["bicubic", "lanczos", "zssr-original", "zssr-modified", "realesrgan-x4plus", "dat-light", "esrgan",
              "rrdb-psnr"],
}


@dataclass(frozen=True)
class RunOptions:
    dataset: str = "builtin"
    methods: tuple[str, ...] = ()
    scales: tuple[int, ...] = ()
    protocol: str = "rgb"  # "rgb" | "y-only"
    profile: str = "auto"  # "auto" | "quick" | "paper"
    device: str = "auto"
    out: Path | None = None
    resume: bool = True
    seed: int = 0
    metrics: tuple[str, ...] = ("psnr-y", "ssim-y", "psnr-rgb", "lpips-alex")
    executor: str = "local"
    workers: int | None = None
    save_images: bool = True
    kernel: str | None = None  # a .mat blur kernel replacing bicubic as the degradation
    precision: str = "auto"  # "auto" | "fp32" | "bf16" | "fp16" (CUDA) for every network (zssr.precision)
    time_budget: float | None = None  # seconds: no cell starts after this long (local executor); resume continues


@dataclass
class PlannedCell:
    cell: Cell
    image: ds.DatasetImage
    supported: bool = True


@dataclass
class RunSummary:
    out: Path
    n_cells: int
    n_done_before: int
    n_run: int
    n_left: int = 0  # cells not started because the time budget ran out (run the same command again to continue)
    failures: list[dict] = field(default_factory=list)  # cells that raised
    unavailable: list[dict] = field(default_factory=list)  # cells of methods that cannot run here (reported, not failed)
    report: dict[str, Path] = field(default_factory=dict)
    timing: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def config_id(method_name: str, config: dict, profile: str, protocol: str, seed: int) -> str:
    blob = json.dumps({"m": method_name, "c": config, "p": profile, "proto": protocol, "s": seed}, sort_keys=True,
                      default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def cell_seed(base: int, cell: Cell) -> int:
    """Seed per cell, so that a result does not depend on which worker ran it or what ran before."""
    digest = hashlib.sha1(f"{base}|{cell.dataset}|{cell.image}|{cell.scale}|{cell.method}".encode()).hexdigest()
    return int(digest[:8], 16)


def image_to_tensor(img: np.ndarray, device):
    import torch

    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)
    return t.to(device)


def tensor_to_image(sr, gray: bool) -> np.ndarray:
    arr = sr[0].detach().float().clamp(0, 1).mul(255.0).permute(1, 2, 0).cpu().numpy()
    if gray:
        arr = arr.mean(axis=2)
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


class CellRunner:
    """Runs cells in one process on one device: loads images and methods once, measures, computes metrics."""

    def __init__(self, options: RunOptions, dataset: ds.Dataset, methods: dict, profile: str, device, out: Path):
        self.options, self.dataset, self.methods, self.profile, self.device, self.out = (
            options, dataset, methods, profile, device, out)
        self._ready: dict[str, float | Exception] = {}
        self._hr: dict[str, np.ndarray] = {}
        self._kernel = None
        if options.kernel:
            from zssr.kernels import load_kernel

            self._kernel = load_kernel(options.kernel)

    def _setup(self, name: str) -> float:
        """Set a method up once; returns its load seconds, re-raises its failure for every cell."""
        if name not in self._ready:
            from bench.device import timed

            method, times = self.methods[name], {}
            try:
                with timed(self.device, times, "load"):
                    method.setup(self.device)
                    if method.info.family == "external":  # warm-up: kernels selected, caches filled
                        warm = image_to_tensor(np.zeros((16, 16, 3), np.uint8), self.device)
                        method.upscale(warm, method.scales[0] if method.scales else 2)
                self._ready[name] = times["load"]
            except Exception as exc:  # recorded for each of its cells
                self._ready[name] = exc
        state = self._ready[name]
        if isinstance(state, Exception):
            raise state
        return state

    def pair(self, image: ds.DatasetImage, scale: int) -> tuple[np.ndarray, np.ndarray]:
        if image.name not in self._hr:
            self._hr = {image.name: self.dataset.load(image)}  # one image at a time: cells are image-major
        return make_pair(self._hr[image.name], scale, name=f"{self.dataset.name}/{image.file}",
                         kernel=self._kernel, y_only=self.options.protocol == "y-only")

    def run(self, planned: PlannedCell, first_of_method: bool) -> list[dict]:
        from bench.device import PeakMemory, device_name, timed
        from bench.metrics import compute

        cell = planned.cell
        method = self.methods[cell.method]
        base = dict(dataset=cell.dataset, category=cell.category, image=cell.image, scale=cell.scale,
                    method=cell.method, config_id=cell.config_id, protocol=self.options.protocol,
                    profile=self.profile, native_scale=method.native_scale(cell.scale),
                    device=device_name(self.device))
        load_seconds = self._setup(cell.method)
        hr, lr = self.pair(planned.image, cell.scale)
        method.set_seed(cell_seed(self.options.seed, cell))
        method.last_stats = {}
        times: dict[str, float] = {}
        lr_t = image_to_tensor(lr, self.device)
        with _training_bar(method, cell), PeakMemory(self.device) as mem, timed(self.device, times, "total"):
            sr_t = method.upscale(lr_t, cell.scale)
        sr = tensor_to_image(sr_t, gray=hr.ndim == 2)
        if sr.shape != hr.shape:
            raise RuntimeError(f"{cell.method} returned {sr.shape[:2]} for x{cell.scale} of {lr.shape[:2]}; "
                               f"expected {hr.shape[:2]}")
        values = compute(self.options.metrics, sr, hr, border=cell.scale, device=str(self.device))
        train = float(method.last_stats.get("seconds-train", 0.0))
        values.update({"seconds-train": train, "seconds-infer": max(0.0, times["total"] - train),
                       "seconds-total": times["total"]})
        if first_of_method:
            values["seconds-load"] = load_seconds
        if mem.mb is not None:
            values["peak-memory-mb"] = mem.mb
        if "iterations" in method.last_stats:
            values["iterations"] = float(method.last_stats["iterations"])
        self._save_side_files(cell, hr, lr, sr, method.last_stats.get("curve"))
        return [dict(base, metric=k, value=repr(float(v)), note="") for k, v in values.items()]

    def _save_side_files(self, cell: Cell, hr, lr, sr, curve) -> None:
        if self.options.save_images:
            save_image(self.out / "sr" / cell.method / f"{cell.image}_x{cell.scale}.png", sr)
            hr_path = self.out / "inputs" / f"{cell.image}_x{cell.scale}_hr.png"
            if not hr_path.exists():
                save_image(hr_path, hr)
                save_image(self.out / "inputs" / f"{cell.image}_x{cell.scale}_lr.png", lr)
        if curve:
            import pandas as pd

            path = self.out / "curves" / f"{cell.slug}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(curve).to_csv(path, index=False)


@contextmanager
def _training_bar(method, cell: Cell):
    """A progress bar over the test-time training iterations of internal methods (only on a terminal)."""
    if method.info.family != "internal" or not sys.stderr.isatty():
        yield
        return
    from tqdm import tqdm

    bar = tqdm(desc=f"  train {cell.slug}", unit="it", leave=False, dynamic_ncols=True)

    last = [-1]

    def update(iteration: int) -> None:  # iterations restart at 0 on each scale step of gradual variants
        bar.update(iteration - last[0] if iteration > last[0] else iteration + 1)
        last[0] = iteration

    method.on_progress = update
    try:
        yield
    finally:
        method.on_progress = None
        bar.close()


def error_rows(planned: PlannedCell, options: RunOptions, profile: str, exc: BaseException) -> list[dict]:
    cell = planned.cell
    message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:2000]
    return [dict(dataset=cell.dataset, category=cell.category, image=cell.image, scale=cell.scale,
                 method=cell.method, config_id=cell.config_id, protocol=options.protocol, profile=profile,
                 metric=ERROR_METRIC, value="", native_scale="", device="", note=message)]


def make_plan(dataset: ds.Dataset, methods: dict, scales: Iterable[int], config_ids: dict[str, str]) -> list[PlannedCell]:
    """Image-major order, so each image is loaded once; unsupported (method, scale) pairs are left out."""
    plan = []
    for image in dataset.images:
        for scale in scales:
            for name, method in methods.items():
                if method.supports(scale):
                    plan.append(PlannedCell(Cell(dataset.name, image.category, image.name, int(scale), name,
                                                 config_ids[name]), image))
    return plan


def execute(plan: list[PlannedCell], runner: CellRunner, writer: ResultsWriter, options: RunOptions, profile: str,
            progress: Callable[[PlannedCell], None] | None = None) -> list[dict]:
    """The local executor: cells in order, each appended to the results file when it finishes."""
    failures, seen_methods = [], set()
    deadline = time.monotonic() + options.time_budget if options.time_budget else None
    for planned in plan:
        if deadline is not None and time.monotonic() >= deadline:
            log.info("time budget of %.0f s reached: the remaining cells are left for a resumed run",
                     options.time_budget)
            break
        first = planned.cell.method not in seen_methods
        seen_methods.add(planned.cell.method)
        try:
            rows = runner.run(planned, first_of_method=first)
        except Exception as exc:  # isolate the cell: record and go on
            log.error("cell %s failed: %s\n%s", planned.cell.slug, exc, traceback.format_exc())
            rows = error_rows(planned, options, profile, exc)
            failures.append(rows[0])
        writer.append(rows)
        if progress:
            progress(planned)
    return failures


def resolve_profile(profile: str, device) -> str:
    if profile == "auto":
        return "paper" if device.type == "cuda" else "quick"
    if profile not in ("quick", "paper"):
        raise ValueError(f"unknown profile {profile!r}; use auto, quick or paper")
    return profile


def default_out(dataset: ds.Dataset, profile: str, protocol: str) -> Path:
    from bench.paths import reports_root

    return reports_root() / dataset.name / f"{profile}-{protocol}"


def run(options: RunOptions, render: bool = True) -> RunSummary:
    from bench.device import configure_threads, select_device
    from bench.runinfo import write_run_json

    from baselines.methods import load_plugins

    load_plugins()
    if options.protocol not in ("rgb", "y-only"):
        raise ValueError(f"unknown protocol {options.protocol!r}; use rgb or y-only")
    if options.time_budget is not None and (options.time_budget <= 0 or options.executor != "local"):
        raise ValueError("a time budget must be > 0 seconds and needs the local executor")
    configure_threads()
    device = select_device(options.device)
    profile = resolve_profile(options.profile, device)
    dataset = ds.load_dataset(options.dataset)
    scales = tuple(options.scales) or dataset.default_scales
    for s in scales:
        if int(s) != s or s < 2:
            raise ValueError(f"scale {s!r}: scales are integers >= 2 (e.g. SCALES=2,3,4)")
    from zssr.precision import resolve_precision

    resolve_precision(options.precision, device)  # an unknown name, or fp16 on a CPU: an error before any cell
    names = list(options.methods) or DEFAULT_METHODS[profile]
    methods = {name: _create(name, profile, options.precision, device) for name in names}
    ids = {n: config_id(n, m.config(), profile, options.protocol, options.seed) for n, m in methods.items()}
    out = Path(options.out) if options.out else default_out(dataset, profile, options.protocol)
    out.mkdir(parents=True, exist_ok=True)
    _configure_logging(out)

    results_path = out / "results.csv"
    if not options.resume and results_path.exists():
        results_path.unlink()
    writer = ResultsWriter(results_path)
    done, failed = finished_cells(read_results(results_path))
    writer.drop_cells(failed)  # failed cells are tried again
    plan = make_plan(dataset, methods, scales, ids)
    todo = [p for p in plan if p.cell.key not in done]
    log.info("%s: %d cells, %d already done, %d to run on %s (profile %s)", dataset.name, len(plan),
             len(plan) - len(todo), len(todo), device, profile)
    write_run_json(out, options, dataset, methods, profile, device, scales, finished=False, config_ids=ids)

    from bench.executors import run_cells

    start = time.perf_counter()
    run_cells(options, todo, dataset, methods, profile, device, out, writer)
    cells_seconds = time.perf_counter() - start
    errors = _all_errors(results_path)
    now_done, now_failed = finished_cells(read_results(results_path))
    n_run = sum(1 for p in todo if p.cell.key in now_done or p.cell.key in now_failed)
    summary = RunSummary(out=out, n_cells=len(plan), n_done_before=len(plan) - len(todo), n_run=n_run,
                         n_left=len(todo) - n_run,
                         failures=[e for e in errors if not is_unavailable(e)],
                         unavailable=[e for e in errors if is_unavailable(e)])
    if render:
        from bench.report import render_report

        summary.report = render_report(out)
    summary.timing = _timing(results_path, {p.cell.key for p in todo}, cells_seconds, time.perf_counter() - start)
    write_run_json(out, options, dataset, methods, profile, device, scales, finished=True, timing=summary.timing,
                   config_ids=ids)
    return summary


def _timing(results_path: Path, keys: set, cells_seconds: float, wall_seconds: float) -> dict:
    """How this session's wall time splits between the methods (load + upscale calls) and everything else (data,
    LR synthesis, metrics, writing, report). Worker executors overlap cells, so their share is not comparable."""
    df = read_results(results_path)
    if len(df) and keys:
        mine = [tuple(k) in keys for k in df[CELL_KEY].itertuples(index=False, name=None)]
        df = df[mine]
    in_methods = float(df[df.metric.isin(["seconds-total", "seconds-load"])]["value"].sum()) if len(df) else 0.0
    return {"wall_seconds": round(wall_seconds, 3), "cells_seconds": round(cells_seconds, 3),
            "method_seconds": round(in_methods, 3),
            "outside_methods_share": round(1 - in_methods / wall_seconds, 4) if wall_seconds > 0 else None}


def _create(name: str, profile: str, precision: str = "auto", device=None):
    """A method instance with its precision resolved for `device` (before its config() is read: the precision in
    force is part of the cell's identity); one that cannot even be built (import error, bad checkpoint path)
    becomes a placeholder whose cells are recorded as failed with the reason. A name that is not registered is an
    error at once."""
    method = _instantiate(name, profile, precision)
    if device is not None:
        method.choose_precision(device)
    return method


def _instantiate(name: str, profile: str, precision: str):
    from baselines.api import Method, MethodInfo, MethodUnavailable
    from baselines.methods import CHECKPOINT_PREFIX, METHODS, create_method
    from baselines.registry import UnknownNameError

    if not name.startswith(CHECKPOINT_PREFIX) and name not in METHODS:
        METHODS.resolve(name)  # raises with a did-you-mean
    try:
        return create_method(name, profile=profile, precision=precision)
    except UnknownNameError:
        raise
    except Exception as exc:  # recorded per cell, the run goes on
        reason = f"{type(exc).__name__}: {exc}"

        class Unavailable(Method):
            info = MethodInfo(family="unknown", training_data="unknown", degradation="unknown", notes=reason)

            def setup(self, device):
                raise MethodUnavailable(f"{name} could not be created: {reason}")

            def config(self):
                return {"unavailable": reason}

        placeholder = Unavailable(profile=profile)
        placeholder.name = name
        return placeholder


def is_unavailable(error_row: dict) -> bool:
    """A method that cannot run in this environment (weights not obtainable offline, dependency missing): its cells
    are reported with the reason but do not make the run fail."""
    return str(error_row.get("note", "")).startswith("MethodUnavailable:")


def _all_errors(results_path: Path) -> list[dict]:
    df = read_results(results_path)
    return df[df["metric"] == ERROR_METRIC].to_dict("records") if len(df) else []


def _configure_logging(out: Path) -> None:
    handler = logging.FileHandler(out / "bench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("bench")
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
