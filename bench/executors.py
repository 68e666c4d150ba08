"""Executors: how the cells of a plan are spread over devices and processes.

- `local`: this process, one device (the default).
- `local-gpus`: one worker process per visible GPU (or WORKERS CPU workers sharing the cores), cells handed out
  as workers free up.
- `ray`: Ray actors, one per GPU (or per CPU slot on CPU-only clusters); `RAY_ADDRESS` when set, else a local
  Ray instance. Ray is optional (`pip install .[ray]`) and imported only here.

Workers only compute; they send each finished cell's rows back, and the driver alone appends them to the results
file, so resuming and the exactly-once guarantee hold for every executor. A worker that dies has its cell
retried (MAX_ATTEMPTS in all), then recorded as failed.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import sys
from dataclasses import dataclass

from bench.runner import CellRunner, PlannedCell, error_rows, execute

log = logging.getLogger("bench")
MAX_ATTEMPTS = 3


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="cell", disable=not sys.stderr.isatty(), dynamic_ncols=True)


def run_local(options, todo, dataset, methods, profile, device, out, writer) -> list[dict]:
    runner = CellRunner(options, dataset, methods, profile, device, out)
    with _progress_bar(len(todo), dataset.name) as bar:
        def progress(planned):
            bar.set_postfix_str(planned.cell.slug, refresh=False)
            bar.update(1)

        return execute(todo, runner, writer, options, profile, progress)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its own runner (methods and dataset are rebuilt, not pickled)."""

    options: object
    profile: str
    device: str
    threads: int | None
    out: str
    method_names: tuple[str, ...]


def _build_runner(spec: WorkerSpec) -> CellRunner:
    from pathlib import Path

    from bench.datasets import load_dataset
    from bench.device import configure_threads, select_device
    from bench.runner import _create

    from baselines.methods import load_plugins

    load_plugins()
    configure_threads(spec.threads)
    dataset = load_dataset(spec.options.dataset)
    device = select_device(spec.device)
    methods = {n: _create(n, spec.profile, spec.options.precision, device) for n in spec.method_names}
    return CellRunner(spec.options, dataset, methods, spec.profile, device, Path(spec.out))


def _run_one(runner: CellRunner, seen: set, planned: PlannedCell, spec: WorkerSpec) -> list[dict]:
    first = planned.cell.method not in seen
    seen.add(planned.cell.method)
    try:
        return runner.run(planned, first_of_method=first)
    except Exception as exc:  # same isolation as the local executor
        log.error("cell %s failed: %s", planned.cell.slug, exc)
        return error_rows(planned, spec.options, spec.profile, exc)


def _worker_main(spec: WorkerSpec, inbox, outbox, worker_id: int) -> None:
    runner, seen = _build_runner(spec), set()
    outbox.put(("ready", worker_id, None, None))
    while True:
        planned = inbox.get()
        if planned is None:
            return
        outbox.put(("done", worker_id, planned.cell.key, _run_one(runner, seen, planned, spec)))


def _worker_devices(device, workers: int | None) -> list[tuple[str, int | None]]:
    """(device, threads) per worker: one per visible GPU, or `workers` CPU workers dividing the cores."""
    import torch

    if device.type == "cuda":
        n = torch.cuda.device_count()
        ids = list(range(n))[: workers or n]
        return [(f"cuda:{i}", None) for i in ids]
    n = workers or 2
    threads = max(1, (os.cpu_count() or 1) // n)
    return [("cpu", threads)] * n


def run_local_gpus(options, todo, dataset, methods, profile, device, out, writer) -> list[dict]:
    ctx = mp.get_context("spawn")
    outbox = ctx.Queue()
    slots = _worker_devices(device, options.workers)
    pending = list(todo)
    attempts: dict[tuple, int] = {}
    in_flight: dict[int, PlannedCell] = {}
    failures: list[dict] = []
    workers: dict[int, tuple] = {}
    next_id = 0

    def start(slot):
        nonlocal next_id
        wid, next_id = next_id, next_id + 1
        spec = WorkerSpec(options, profile, slot[0], slot[1], str(out), tuple(methods))
        inbox = ctx.Queue()
        proc = ctx.Process(target=_worker_main, args=(spec, inbox, outbox, wid), daemon=True)
        proc.start()
        workers[wid] = (proc, inbox, slot)

    def hand_out(wid):
        if pending:
            planned = pending.pop(0)
            attempts[planned.cell.key] = attempts.get(planned.cell.key, 0) + 1
            in_flight[wid] = planned
            workers[wid][1].put(planned)

    for slot in slots:
        start(slot)
    remaining, idle_deaths = len(todo), 0
    with _progress_bar(len(todo), f"{dataset.name} ({len(slots)} workers)") as bar:
        while remaining:
            try:
                kind, wid, key, rows = outbox.get(timeout=1.0)
            except queue.Empty:
                kind = None
            if kind == "ready":
                hand_out(wid)
            elif kind == "done":
                in_flight.pop(wid, None)
                writer.append(rows)
                if rows and rows[0]["metric"] == "error":
                    failures.append(rows[0])
                remaining -= 1
                bar.update(1)
                hand_out(wid)
            for wid, (proc, inbox, slot) in list(workers.items()):
                if proc.is_alive():
                    continue
                del workers[wid]
                lost = in_flight.pop(wid, None)
                if lost is None:
                    idle_deaths += 1
                    if idle_deaths > 2 * len(slots):
                        raise RuntimeError(f"workers keep exiting before taking a cell (exit code {proc.exitcode}); "
                                           "see bench.log, or use EXECUTOR=local")
                else:
                    if attempts[lost.cell.key] < MAX_ATTEMPTS:
                        log.warning("worker %d died (exit %s) during %s; retrying", wid, proc.exitcode, lost.cell.slug)
                        pending.insert(0, lost)
                    else:
                        rows = error_rows(lost, options, profile, RuntimeError(
                            f"worker died {MAX_ATTEMPTS} times running this cell (last exit code {proc.exitcode})"))
                        writer.append(rows)
                        failures.append(rows[0])
                        remaining -= 1
                        bar.update(1)
                if pending:
                    start(slot)
            if not workers and remaining:
                raise RuntimeError("all workers exited before the plan finished")
    for proc, inbox, _ in workers.values():
        inbox.put(None)
    for proc, _, _ in workers.values():
        proc.join(timeout=30)
    return failures


def run_ray(options, todo, dataset, methods, profile, device, out, writer) -> list[dict]:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("EXECUTOR=ray needs Ray: pip install '.[ray]'") from exc

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=options.workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        n, actor_opts, device_str, threads = options.workers or gpus, {"num_gpus": 1}, "cuda", None
    else:
        n = options.workers or int(resources.get("CPU", 1))
        cpus_per = max(1, int(resources.get("CPU", 1)) // n)
        n, actor_opts, device_str, threads = n, {"num_cpus": cpus_per}, "cpu", cpus_per

    @ray.remote(max_restarts=0)
    class CellWorker:
        def __init__(self, spec):
            self.spec, self.runner, self.seen = spec, _build_runner(spec), set()

        def run(self, planned):
            return _run_one(self.runner, self.seen, planned, self.spec)

    spec = WorkerSpec(options, profile, device_str, threads, str(out), tuple(methods))
    pending = list(todo)
    attempts: dict[tuple, int] = {}
    failures: list[dict] = []
    actors = [CellWorker.options(**actor_opts).remote(spec) for _ in range(n)]
    running: dict = {}

    def submit(actor):
        if pending:
            planned = pending.pop(0)
            attempts[planned.cell.key] = attempts.get(planned.cell.key, 0) + 1
            running[actor.run.remote(planned)] = (actor, planned)

    for actor in actors:
        submit(actor)
    with _progress_bar(len(todo), f"{dataset.name} (ray, {n} actors)") as bar:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, planned = running.pop(ready[0])
            try:
                rows = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                if attempts[planned.cell.key] < MAX_ATTEMPTS:
                    log.warning("ray actor died during %s; retrying", planned.cell.slug)
                    pending.insert(0, planned)
                    actor = CellWorker.options(**actor_opts).remote(spec)
                    submit(actor)
                    continue
                rows = error_rows(planned, options, profile, RuntimeError(f"worker died {MAX_ATTEMPTS} times: {exc}"))
                actor = CellWorker.options(**actor_opts).remote(spec)
            writer.append(rows)
            if rows and rows[0]["metric"] == "error":
                failures.append(rows[0])
            bar.update(1)
            submit(actor)
    return failures


EXECUTORS = {"local": run_local, "local-gpus": run_local_gpus, "ray": run_ray}


def run_cells(options, todo, dataset, methods, profile, device, out, writer) -> list[dict]:
    if options.executor not in EXECUTORS:
        raise ValueError(f"unknown executor {options.executor!r}; available: {', '.join(EXECUTORS)}")
    if not todo:
        return []
    return EXECUTORS[options.executor](options, todo, dataset, methods, profile, device, out, writer)
