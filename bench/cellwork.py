"""One cell's work in one process on one device: the LR image, the method's call (timed), the metrics, the side
files, and the block of rows that records it."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.images import load_image, save_image
from bench.plan import WorkBatch, WorkItem
from bench.results import (END_METRIC, UNAVAILABLE_PREFIX, Cell, curve_path, estimated_kernel_path, input_paths,
                           kernel_path, sr_path)

log = logging.getLogger("bench")
SHARED_ESTIMATES = "kernels-estimated/shared"  # KernelGAN estimates shared by the cells (and runs) that ask for them


@dataclass(frozen=True)
class CellInput:
    """A cell ready for its method: the work item, the HR image, the LR image made from it and what the
    degradation drew (its kernel and noise: the truth a non-blind method is told)."""

    item: WorkItem
    hr: np.ndarray
    lr: np.ndarray
    drawn: Any


@dataclass(frozen=True)
class CallCosts:
    """What one method call measured, which its cells share: its wall seconds, how many cells it was made for and
    how many reached the method, and its peak memory."""

    seconds: float
    n_cells: int
    n_requests: int
    memory: Any  # bench.device.PeakMemory

    def costs(self, stats: dict[str, Any], load_seconds: float | None) -> dict[str, float]:
        """One cell's cost rows, in the order they are written. Its total: the call's clock when the call held it
        alone, else the share the method reports ("seconds-total"); batch-size and seconds-batch only for a batch
        of several cells."""
        total = self.seconds if self.n_requests == 1 else float(stats["seconds-total"])
        if stats.get("kernel-reused") and self.n_requests == 1:
            # a reused kernel estimate is charged at its original cost (the method's seconds-train includes it; the
            # batched shares include it already), so that a cell's total does not depend on which cell ran first
            total += float(stats.get("seconds-kernel", 0.0))
        train = float(stats.get("seconds-train", 0.0))
        costs = {"seconds-train": train, "seconds-infer": max(0.0, total - train), "seconds-total": total}
        if self.n_cells > 1:
            costs.update({"batch-size": float(self.n_cells), "seconds-batch": self.seconds})
        if load_seconds is not None:
            costs["seconds-load"] = load_seconds
        if self.memory.mb is not None:
            costs["peak-memory-mb"] = self.memory.mb
        if self.memory.baseline_mb is not None and self.memory.mb is not None:
            costs["memory-baseline-mb"] = self.memory.baseline_mb
        for stat in ("iterations", "seconds-kernel", "kernel-reused", "kernel-decision"):  # reported beyond the clock
            if stat in stats:
                costs[stat] = float(stats[stat])
        if isinstance(stats.get("restarts"), list):  # ZSSR: steps started again from fresh weights
            costs["restarts"] = float(len(stats["restarts"]))
        return costs


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


def end_row(cell: Cell, session, status: str, n_rows: int, output: str = "", note: str = "", device: str = "",
            native: str = "") -> dict:
    return cell.row(protocol=session.options.protocol, profile=session.profile, metric=END_METRIC,
                    value=float(n_rows), status=status, native_scale=native, device=device, session=session.id,
                    output=output, note=note.replace("\n", " ")[:2000])


def error_block(item: WorkItem, session, exc: BaseException) -> list[dict]:
    from baselines.api import MethodUnavailable

    status = "unavailable" if isinstance(exc, MethodUnavailable) else "error"
    prefix = UNAVAILABLE_PREFIX if status == "unavailable" else f"{type(exc).__name__}:"
    return [end_row(item.cell, session, status, 0, note=f"{prefix} {exc}")]


class CellRunner:
    """Runs work items of one session: loads images and methods once, measures, computes metrics."""

    def __init__(self, session, out: Path):
        self.session, self.out = session, Path(out)
        self._ready: dict[str, float | Exception] = {}
        self._hr: dict[str, np.ndarray] = {}
        self._seen: set[str] = set()
        from baselines.kernel_estimates import EstimateCache

        self._estimates = EstimateCache(self.out / SHARED_ESTIMATES)

    def _setup(self, name: str) -> float | Exception:
        """Set a method up once; returns its load seconds, or its failure (logged once, recorded for every cell)."""
        if name not in self._ready:
            from baselines.api import MethodUnavailable
            from bench.device import timed

            method, times = self.session.methods[name], {}
            if hasattr(method, "estimate_cache"):  # KernelGAN estimates shared by methods, cells and runs
                method.estimate_cache = self._estimates
            try:
                if method.unavailable:
                    raise MethodUnavailable(method.unavailable)
                with timed(self.session.device, times, "load"):
                    method.setup(self.session.device)
                    if method.info.family == "external":  # warm-up: kernels selected, caches filled
                        from baselines.api import Request

                        warm = image_to_tensor(np.zeros((16, 16, 3), np.uint8), self.session.device)
                        (result,) = method.run([Request(warm, method.scales[0] if method.scales else 2)])
                        if isinstance(result, Exception):
                            raise result
                self._ready[name] = times["load"]
            except Exception as exc:  # recorded for each of its cells
                if not isinstance(exc, MethodUnavailable):
                    log.error("%s: set-up failed: %s", name, exc, exc_info=True)
                self._ready[name] = exc
        return self._ready[name]

    def pair(self, item: WorkItem):
        """(HR, LR, what the degradation drew) for a work item."""
        image, dataset = item.image, self.session.dataset
        if image.name not in self._hr:
            self._hr = {image.name: dataset.load(image)}  # one image at a time: cells are image-major
        degradation = self.session.degradation(item.cell.degradation)
        if hasattr(degradation, "given_pair"):  # a paired dataset: the LR image is given
            return degradation.given_pair(dataset, image, item.cell.scale, self.session.options.protocol == "y-only")
        return degradation.make_pair(
            self._hr[image.name], item.cell.scale, name=f"{dataset.name}/{image.file}",
            y_only=self.session.options.protocol == "y-only", image_id=image.content_id)

    def run(self, batch: WorkBatch) -> list[list[dict]]:
        """The blocks of rows (one per cell) of a batch of work; a failure becomes the cell's error row (the run
        goes on)."""
        item = batch.items[0]
        if item.action == "metrics":  # always alone in its batch (bench.plan.make_batches)
            try:
                return [self._metrics_only(item)]
            except Exception as exc:  # isolate the cell: record and go on
                return [self._failed(item, exc)]
        return self._run_method(batch.items)

    def _failed(self, item: WorkItem, exc: BaseException) -> list[dict]:
        log.error("cell %s failed: %s", item.cell.slug, exc, exc_info=not isinstance(exc, ValueError))
        return error_block(item, self.session, exc)

    def _run_method(self, items: tuple[WorkItem, ...]) -> list[list[dict]]:
        """Cells of one method in one call (Method.run; a single cell is a call of one); each cell's rows from its
        own result."""
        from baselines.api import Request
        from bench.device import PeakMemory, timed
        from bench.session import cell_seed

        session = self.session
        name = items[0].cell.method
        method = session.methods[name]
        first = name not in self._seen
        self._seen.add(name)
        load_seconds = self._setup(name)
        if isinstance(load_seconds, Exception):
            return [error_block(item, session, load_seconds) for item in items]
        blocks: list[list[dict] | None] = [None] * len(items)
        inputs: list[tuple[int, CellInput]] = []
        requests: list[Request] = []
        for j, item in enumerate(items):
            if getattr(method, "told", ()) and not session.degradation(item.cell.degradation).has_reference:
                blocks[j] = error_block(item, session, not_told_as_is(method, item.cell.degradation))
                continue
            try:
                hr, lr, drawn = self.pair(item)
                seed = cell_seed(session.options.seed, item.cell, getattr(method, "seed_as", None))
                seeds = {key: cell_seed(session.options.seed, item.cell, seed_as)
                         for key, seed_as in (getattr(method, "named_seeds", None) or {}).items()}
                requests.append(Request(image_to_tensor(lr, session.device), item.cell.scale, seed,
                                        told_values(method, drawn), seeds))
                inputs.append((j, CellInput(item, hr, lr, drawn)))
            except Exception as exc:
                blocks[j] = self._failed(item, exc)
        times: dict[str, float] = {}
        bar = _training_bar(method, items[0].cell) if len(items) == 1 else nullcontext()
        mem = PeakMemory(session.device)
        try:
            with bar, mem, timed(session.device, times, "call"):
                results = method.run(requests) if requests else []
            if len(results) != len(requests):
                raise RuntimeError(f"{name}: run() returned {len(results)} results for {len(requests)} requests")
        except Exception as exc:  # the call as a whole: every cell it held fails (they run again on resume)
            results = [exc] * len(requests)
        call = CallCosts(seconds=times.get("call", 0.0), n_cells=len(items), n_requests=len(requests), memory=mem)
        for (j, cell_input), request, result in zip(inputs, requests, results):
            try:
                if isinstance(result, Exception):
                    raise result
                costs = call.costs(result.stats, load_seconds if first and j == inputs[0][0] else None)
                costs.update(counted_costs(method, request, result.stats))
                blocks[j] = self._record(cell_input, result, costs)
            except Exception as exc:
                blocks[j] = self._failed(items[j], exc)
        return [b for b in blocks if b is not None]

    def _record(self, cell_input: CellInput, result, costs: dict[str, float]) -> list[dict]:
        """A finished cell's block of rows: output checked and saved, metrics, costs, side files, end row."""
        from bench.device import device_name

        session, item, hr, lr = self.session, cell_input.item, cell_input.hr, cell_input.lr
        cell, stats = item.cell, result.stats
        method = session.methods[cell.method]
        want = sr_shape(hr, lr, cell.scale)
        sr = tensor_to_image(result.sr, gray=len(want) == 2)
        if sr.shape != want:
            raise RuntimeError(f"{cell.method} returned {sr.shape[:2]} for x{cell.scale} of {lr.shape[:2]}; "
                               f"expected {want[:2]}")
        output = self._save_side_files(cell, hr, lr, sr, stats.get("curve"), cell_input.drawn.kernel)
        rejected = _fell_back(stats.get("kernel-decision"))
        if stats.get("kernel") is not None:  # a blind method's estimate, shown beside the true one
            _save_kernel(self.out / estimated_kernel_path(cell), stats["kernel"], overwrite=True, rejected=rejected)
        native = str(method.native_scale(cell.scale))
        device = device_name(session.device)
        rows = self._metric_rows(cell, item.metrics, sr, hr, native, device, lr, stats.get("kernel"), rejected)
        notes = stats.get("notes") or {}  # a statistic's reason, e.g. kernel-decision's (baselines.api.Method.run)
        rows += [self._row(cell, k, float(v), "ok", str(notes.get(k, "")), native, device) for k, v in costs.items()]
        return rows + [end_row(cell, session, "ok", len(rows), output, native=native, device=device)]

    def _metrics_only(self, item: WorkItem) -> list[dict]:
        """Metrics a finished cell lacks, from its saved SR output (the method is not run again)."""
        cell = item.cell
        hr, lr, _ = self.pair(item)
        sr = load_image(self.out / item.output)
        want = sr_shape(hr, lr, cell.scale)
        if sr.shape != want:
            raise RuntimeError(f"{item.output}: saved SR output is {sr.shape}, expected {want} (x{cell.scale} of the "
                               f"input {lr.shape})")
        estimate = self.out / estimated_kernel_path(cell)
        kernel, rejected = _load_estimate(estimate) if estimate.is_file() else (None, False)
        rows = self._metric_rows(cell, item.metrics, sr, hr, "", "", lr, kernel, rejected)
        return rows + [end_row(cell, self.session, "ok", len(rows), item.output,
                               note=f"added {', '.join(item.metrics)} from the saved output")]

    def _metric_rows(self, cell: Cell, names, sr, hr, native: str, device: str, lr=None, kernel=None,
                     kernel_rejected: bool = False) -> list[dict]:
        from bench.metrics import MetricValue, compute

        # a rejected estimate (kernel-decision bicubic) is saved for the reports, but the cell ran without it: its
        # LR consistency "under the method's own kernel" is n/a then, never measured with a kernel it did not use
        values = compute(names, sr, hr, border=cell.scale, device=str(self.session.device), lr=lr,
                         scale=cell.scale, kernel=None if kernel_rejected else kernel)
        if kernel_rejected and "lr-psnr-y-kernel" in values:
            values["lr-psnr-y-kernel"] = MetricValue(float("nan"), "n/a", REJECTED_KERNEL_NOTE)
        for name, v in values.items():
            if v.status == "error":
                log.error("cell %s: metric %s failed: %s", cell.slug, name, v.note)
        return [self._row(cell, name, v.value, v.status, v.note, native, device) for name, v in values.items()]

    def _row(self, cell: Cell, metric: str, value: float, status: str, note: str, native: str, device: str) -> dict:
        return cell.row(protocol=self.session.options.protocol, profile=self.session.profile, metric=metric,
                        value=value, status=status, native_scale=native, device=device, session=self.session.id,
                        output="", note=note)

    def _save_side_files(self, cell: Cell, hr, lr, sr, curve, kernel) -> str:
        """The SR output, the inputs, the true kernel and the training curve; returns the SR output's path ("" when
        not saved)."""
        output = ""
        if kernel is not None:  # the drawn (or given) kernel, for audit and reuse (ZSSR's .mat format)
            _save_kernel(self.out / kernel_path(cell), kernel, overwrite=False)
        if self.session.options.save_images:
            output = sr_path(cell)
            save_image(self.out / output, sr)
            hr_rel, lr_rel = input_paths(cell)
            if hr is not None:  # degradation none: the image is the input, there is no HR image
                save_image(self.out / hr_rel, hr)
            save_image(self.out / lr_rel, lr)
        if curve:
            import pandas as pd

            path = self.out / curve_path(sr_path(cell))
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(curve).to_csv(path, index=False)
        return output


def sr_shape(hr: np.ndarray | None, lr: np.ndarray, scale: int) -> tuple[int, ...]:
    """The shape a cell's SR output must have: the HR image's, or `scale` times the input's (degradation none)."""
    if hr is not None:
        return hr.shape
    return (lr.shape[0] * int(scale), lr.shape[1] * int(scale)) + lr.shape[2:]


def not_told_as_is(method, degradation: str):
    """Why a non-blind method has no cells under the degradation none (recorded as unavailable)."""
    from baselines.api import MethodUnavailable

    return MethodUnavailable(f"{method.name} is non-blind (told the degradation's true "
                             f"{' and '.join(method.told)}): under {degradation} the images are the LR inputs as "
                             "they are, with no HR image and no known kernel to tell it")


def _load_estimate(path: Path) -> tuple[np.ndarray, bool]:
    """A cell's saved kernel estimate, and whether its method rejected it (ran with bicubic instead)."""
    from scipy.io import loadmat

    saved = loadmat(path)
    return np.asarray(saved["Kernel"], dtype=np.float64), bool(saved.get("Rejected", np.zeros(1)).any())


def _save_kernel(path: Path, kernel, overwrite: bool, rejected: bool = False) -> None:
    """ZSSR's .mat format (variable Kernel); an estimate the method rejected is saved too (the reports show it),
    marked with Rejected = 1 so that nothing measures the cell with it."""
    if overwrite or not path.exists():
        from scipy.io import savemat

        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(path, {"Kernel": np.asarray(kernel, dtype=np.float64), **({"Rejected": 1} if rejected else {})})


def counted_costs(method, request, stats: dict) -> dict[str, float]:
    """FLOPs and parameters of a finished cell, counted after its timed call (so the counting is not in its
    seconds): what the method counts itself from its run (`counted_costs(stats)`: ZSSR's training and test), else
    one forward of its network at the cell's LR size (baselines.flops.forward_cost), else 0 for interpolation (no
    network; resizes are not counted) and nothing for a method that exposes no network. A count that fails is
    logged and left out; the cell stands."""
    from baselines.flops import forward_cost

    try:
        if hasattr(method, "counted_costs"):
            counted = method.counted_costs(stats)
        elif hasattr(method, "counted_network"):
            counted = forward_cost(method, tuple(request.lr.shape), request.scale)
        elif method.info.family == "interpolation":
            counted = {"flops": 0, "parameters": 0}
        else:
            counted = {}
    except Exception as exc:  # noqa: BLE001 - a cost row is not worth a cell
        log.warning("%s: FLOPs not counted: %s", method.name, exc)
        counted = {}
    return {k: float(v) for k, v in counted.items()}


def told_values(method, drawn) -> dict:
    """What a non-blind method asks for (`told`) of the degradation's truth; nothing for blind methods."""
    known = {"kernel": drawn.kernel, "noise": drawn.noise_sigma}
    told = {k: known.get(k) for k in tuple(getattr(method, "told", ()) or ())}
    grid = getattr(drawn, "grid", "zssr")  # the kernel's subsampling grid is part of it; "zssr" goes unsaid
    if "kernel" in told and drawn.kernel is not None and grid != "zssr":
        told["grid"] = grid
    return told


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


# lr-psnr-y-kernel's note for a cell that ran with bicubic after rejecting its estimate
REJECTED_KERNEL_NOTE = ("the KernelGAN estimate was rejected (kernel-decision bicubic) and the cell ran with the "
                        "bicubic kernel: see lr-psnr-y")


def _fell_back(decision) -> bool:
    """Whether a blind cell's kernel-decision (None: not a blind cell) was to run with bicubic."""
    from baselines.kernel_decision import DECISION_CODES

    return decision is not None and int(decision) == DECISION_CODES["bicubic"]
