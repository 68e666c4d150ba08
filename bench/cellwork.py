"""One cell's work in one process on one device: the LR image, the method's call (timed), the metrics, the side
files, and the block of rows that records it."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.images import load_image, save_image
from bench.plan import WorkBatch, WorkItem
from bench.results import (END_METRIC, UNAVAILABLE_PREFIX, Cell, curve_path, estimated_kernel_path, input_paths,
                           kernel_path, sr_path)

log = logging.getLogger("bench")


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

    def _setup(self, name: str) -> float | Exception:
        """Set a method up once; returns its load seconds, or its failure (logged once, recorded for every cell)."""
        if name not in self._ready:
            from baselines.api import MethodUnavailable
            from bench.device import timed

            method, times = self.session.methods[name], {}
            try:
                if method.unavailable:
                    raise MethodUnavailable(method.unavailable)
                with timed(self.session.device, times, "load"):
                    method.setup(self.session.device)
                    if method.info.family == "external":  # warm-up: kernels selected, caches filled
                        warm = image_to_tensor(np.zeros((16, 16, 3), np.uint8), self.session.device)
                        method.upscale(warm, method.scales[0] if method.scales else 2)
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
        return self.session.degradation(item.cell.degradation).make_pair(
            self._hr[image.name], item.cell.scale, name=f"{dataset.name}/{image.file}",
            y_only=self.session.options.protocol == "y-only", image_id=image.content_id)

    def run(self, batch: WorkBatch) -> list[list[dict]]:
        """The blocks of rows (one per cell) of a batch of work; a failure becomes the cell's error row (the run
        goes on)."""
        if len(batch) > 1:
            return self._run_batch(batch)
        return [self.run_item(batch.items[0])]

    def run_item(self, item: WorkItem) -> list[dict]:
        try:
            return self._metrics_only(item) if item.action == "metrics" else self._run_method(item)
        except Exception as exc:  # isolate the cell: record and go on
            return self._failed(item, exc)

    def _failed(self, item: WorkItem, exc: BaseException) -> list[dict]:
        log.error("cell %s failed: %s", item.cell.slug, exc, exc_info=not isinstance(exc, ValueError))
        return error_block(item, self.session, exc)

    def _run_method(self, item: WorkItem) -> list[dict]:
        from bench.device import PeakMemory, timed
        from bench.session import cell_seed

        session, cell = self.session, item.cell
        method = session.methods[cell.method]
        first = cell.method not in self._seen
        self._seen.add(cell.method)
        load_seconds = self._setup(cell.method)
        if isinstance(load_seconds, Exception):
            return error_block(item, session, load_seconds)
        hr, lr, drawn = self.pair(item)
        method.set_seed(cell_seed(session.options.seed, cell, getattr(method, "seed_as", None)))
        tell(method, drawn)
        method.last_stats = {}
        times: dict[str, float] = {}
        lr_t = image_to_tensor(lr, session.device)
        with _training_bar(method, cell), PeakMemory(session.device) as mem, timed(session.device, times, "total"):
            sr_t = method.upscale(lr_t, cell.scale)
        train = float(method.last_stats.get("seconds-train", 0.0))
        costs = {"seconds-train": train, "seconds-infer": max(0.0, times["total"] - train),
                 "seconds-total": times["total"]}
        return self._record(item, method, hr, lr, drawn, sr_t, method.last_stats, costs, mem,
                            load_seconds if first else None)

    def _run_batch(self, batch: WorkBatch) -> list[list[dict]]:
        """Cells of one method trained in one call (Method.upscale_batch); each cell's rows from its own result."""
        from baselines.api import BatchRequest
        from bench.device import PeakMemory, timed
        from bench.session import cell_seed

        session, items = self.session, batch.items
        name = items[0].cell.method
        method = session.methods[name]
        first = name not in self._seen
        self._seen.add(name)
        load_seconds = self._setup(name)
        if isinstance(load_seconds, Exception):
            return [error_block(item, session, load_seconds) for item in items]
        blocks: list[list[dict] | None] = [None] * len(items)
        staged, requests = [], []
        for j, item in enumerate(items):
            try:
                hr, lr, drawn = self.pair(item)
                seed = cell_seed(session.options.seed, item.cell, getattr(method, "seed_as", None))
                requests.append(BatchRequest(image_to_tensor(lr, session.device), item.cell.scale, seed,
                                             told_values(method, drawn)))
                staged.append((j, hr, lr, drawn))
            except Exception as exc:
                blocks[j] = self._failed(item, exc)
        times: dict[str, float] = {}
        try:
            with PeakMemory(session.device) as mem, timed(session.device, times, "batch"):
                outs = method.upscale_batch(requests) if requests else []
        except Exception as exc:  # the call as a whole: every cell it held fails (they run again on resume)
            outs = [exc] * len(requests)
        for (j, hr, lr, drawn), out in zip(staged, outs):
            item = items[j]
            try:
                if isinstance(out, Exception):
                    raise out
                sr_t, stats = out
                total = float(stats["seconds-total"])
                train = float(stats.get("seconds-train", 0.0))
                costs = {"seconds-train": train, "seconds-infer": max(0.0, total - train), "seconds-total": total,
                         "batch-size": float(len(items)), "seconds-batch": times["batch"]}
                blocks[j] = self._record(item, method, hr, lr, drawn, sr_t, stats, costs, mem,
                                         load_seconds if first and j == staged[0][0] else None)
            except Exception as exc:
                blocks[j] = self._failed(item, exc)
        return [b for b in blocks if b is not None]

    def _record(self, item: WorkItem, method, hr, lr, drawn, sr_t, stats: dict, costs: dict, mem,
                load_seconds: float | None) -> list[dict]:
        """A finished call's block of rows: output checked and saved, metrics, costs, side files, end row."""
        from bench.device import device_name

        session, cell = self.session, item.cell
        sr = tensor_to_image(sr_t, gray=hr.ndim == 2)
        if sr.shape != hr.shape:
            raise RuntimeError(f"{cell.method} returned {sr.shape[:2]} for x{cell.scale} of {lr.shape[:2]}; "
                               f"expected {hr.shape[:2]}")
        costs = dict(costs)
        if load_seconds is not None:
            costs["seconds-load"] = load_seconds
        if mem.mb is not None:
            costs["peak-memory-mb"] = mem.mb
        if mem.baseline_mb is not None and mem.mb is not None:
            costs["memory-baseline-mb"] = mem.baseline_mb
        for stat in ("iterations", "seconds-kernel"):  # what a method reports beyond the clock
            if stat in stats:
                costs[stat] = float(stats[stat])
        if isinstance(stats.get("restarts"), list):  # ZSSR: steps started again from fresh weights
            costs["restarts"] = float(len(stats["restarts"]))
        output = self._save_side_files(cell, hr, lr, sr, stats.get("curve"), drawn.kernel)
        if stats.get("kernel") is not None:  # a blind method's estimate, shown beside the true one
            _save_kernel(self.out / estimated_kernel_path(cell), stats["kernel"], overwrite=True)
        native = str(method.native_scale(cell.scale))
        device = device_name(session.device)
        rows = self._metric_rows(cell, item.metrics, sr, hr, native, device)
        rows += [self._row(cell, k, float(v), "ok", "", native, device) for k, v in costs.items()]
        return rows + [end_row(cell, session, "ok", len(rows), output, native=native, device=device)]

    def _metrics_only(self, item: WorkItem) -> list[dict]:
        """Metrics a finished cell lacks, from its saved SR output (the method is not run again)."""
        cell = item.cell
        hr, _, _ = self.pair(item)
        sr = load_image(self.out / item.output)
        if sr.shape != hr.shape:
            raise RuntimeError(f"{item.output}: saved SR output is {sr.shape}, the HR image {hr.shape}")
        rows = self._metric_rows(cell, item.metrics, sr, hr, "", "")
        return rows + [end_row(cell, self.session, "ok", len(rows), item.output,
                               note=f"added {', '.join(item.metrics)} from the saved output")]

    def _metric_rows(self, cell: Cell, names, sr, hr, native: str, device: str) -> list[dict]:
        from bench.metrics import compute

        values = compute(names, sr, hr, border=cell.scale, device=str(self.session.device))
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
            save_image(self.out / hr_rel, hr)
            save_image(self.out / lr_rel, lr)
        if curve:
            import pandas as pd

            path = self.out / curve_path(sr_path(cell))
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(curve).to_csv(path, index=False)
        return output


def _save_kernel(path: Path, kernel, overwrite: bool) -> None:
    if overwrite or not path.exists():
        from scipy.io import savemat

        path.parent.mkdir(parents=True, exist_ok=True)
        savemat(path, {"Kernel": np.asarray(kernel, dtype=np.float64)})


def told_values(method, drawn) -> dict:
    """What a non-blind method asks for (`told`) of the degradation's truth; nothing for blind methods."""
    known = {"kernel": drawn.kernel, "noise": drawn.noise_sigma}
    return {k: known.get(k) for k in tuple(getattr(method, "told", ()) or ())}


def tell(method, drawn) -> None:
    told = told_values(method, drawn)
    if told:
        method.set_degradation(**told)


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
