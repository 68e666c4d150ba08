"""Executors: how the work items of a plan are spread over devices and processes.

- `local`: this process, one device (the default).
- `local-gpus`: one worker process per visible GPU (or WORKERS CPU workers sharing the cores), items handed out
  as workers free up.
- `ray`: Ray actors, one per GPU (or per CPU slot on CPU-only clusters); `RAY_ADDRESS` when set, else a local
  Ray instance. Ray is optional (`pip install .[ray]`) and imported only here.

Workers only compute: each builds its own session from the options (bench.session.build_session, as the driver
did) and sends every finished item's block of rows back; the driver alone appends them to the results file, so
resuming and the exactly-once guarantee hold for every executor. A worker that dies has its item retried
(MAX_ATTEMPTS in all), then recorded as failed.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.cellwork import CellRunner, end_row
from bench.plan import WorkItem
from bench.results import ResultsWriter

log = logging.getLogger("bench")
MAX_ATTEMPTS = 3


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="cell", disable=not sys.stderr.isatty(), dynamic_ncols=True)


def _died(item: WorkItem, session, detail: str) -> list[dict]:
    return [end_row(item.cell, session, "error", 0, note=f"RuntimeError: worker died {MAX_ATTEMPTS} times running "
                    f"this cell ({detail})")]


def run_local(session, todo: list[WorkItem], writer: ResultsWriter, out: Path,
              clock: Callable[[], float] | None = None) -> int:
    """Items in order, each block appended when it finishes. Returns how many items ran (the time budget may stop
    it early: no item starts after the budget)."""
    clock = clock or time.monotonic
    runner = CellRunner(session, out)
    budget = session.options.time_budget
    deadline = clock() + budget if budget else None
    n = 0
    with _progress_bar(len(todo), session.dataset.name) as bar:
        for item in todo:
            if deadline is not None and clock() >= deadline:
                log.info("time budget of %.0f s reached: the remaining cells are left for a resumed run", budget)
                break
            writer.append(runner.run(item))
            n += 1
            bar.set_postfix_str(item.cell.slug, refresh=False)
            bar.update(1)
    return n


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its own session (methods and dataset are rebuilt, not pickled)."""

    options: object
    device: str
    threads: int | None
    out: str
    session_id: str


def _build_runner(spec: WorkerSpec) -> CellRunner:
    from bench.session import build_session

    session = build_session(spec.options, device=spec.device, threads=spec.threads, session_id=spec.session_id)
    return CellRunner(session, Path(spec.out))


def _worker_main(spec: WorkerSpec, inbox, outbox, worker_id: int) -> None:
    runner = _build_runner(spec)
    outbox.send(("ready", worker_id, None))
    while True:
        item = inbox.get()
        if item is None:
            return
        outbox.send(("done", worker_id, runner.run(item)))


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


def run_local_gpus(session, todo: list[WorkItem], writer: ResultsWriter, out: Path) -> int:
    """Each worker has its own inbox and its own result pipe: a worker that dies (even in the middle of sending)
    can break only its own channel, never the others' (a shared queue's write lock would die with it)."""
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    slots = _worker_devices(session.device, session.options.workers)
    pending = list(todo)
    attempts: dict[tuple, int] = {}
    in_flight: dict[int, WorkItem] = {}
    workers: dict[int, tuple] = {}  # wid -> (process, inbox, result reader, slot)
    next_id = 0

    def start(slot):
        nonlocal next_id
        wid, next_id = next_id, next_id + 1
        spec = WorkerSpec(session.options, slot[0], slot[1], str(out), session.id)
        inbox = ctx.Queue()
        reader, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker_main, args=(spec, inbox, sender, wid), daemon=True)
        proc.start()
        sender.close()  # the worker holds the only writing end: EOF here when it dies
        workers[wid] = (proc, inbox, reader, slot)

    def hand_out(wid):
        if pending:
            item = pending.pop(0)
            attempts[item.cell.key] = attempts.get(item.cell.key, 0) + 1
            in_flight[wid] = item
            workers[wid][1].put(item)

    for slot in slots:
        start(slot)
    remaining, idle_deaths = len(todo), 0

    def receive(reader) -> bool:
        """Handle one message from a worker; False at the end of its pipe (it exited)."""
        nonlocal remaining
        try:
            kind, wid, rows = reader.recv()
        except (EOFError, OSError):
            return False
        if kind == "ready":
            hand_out(wid)
        elif kind == "done":
            in_flight.pop(wid, None)
            writer.append(rows)
            remaining -= 1
            bar.update(1)
            hand_out(wid)
        return True

    with _progress_bar(len(todo), f"{session.dataset.name} ({len(slots)} workers)") as bar:
        while remaining:
            for reader in wait([w[2] for w in workers.values()], timeout=1.0):
                receive(reader)
            for wid, (proc, inbox, reader, slot) in list(workers.items()):
                if proc.is_alive():
                    continue
                while reader.poll() and receive(reader):  # what it sent before it exited
                    pass
                del workers[wid]
                reader.close()
                lost = in_flight.pop(wid, None)
                if lost is None:
                    idle_deaths += 1
                    if idle_deaths > 2 * len(slots):
                        raise RuntimeError(f"workers keep exiting before taking a cell (exit code {proc.exitcode}); "
                                           "see bench.log, or use EXECUTOR=local")
                elif attempts[lost.cell.key] < MAX_ATTEMPTS:
                    log.warning("worker %d died (exit %s) during %s; retrying", wid, proc.exitcode, lost.cell.slug)
                    pending.insert(0, lost)
                else:
                    writer.append(_died(lost, session, f"last exit code {proc.exitcode}"))
                    remaining -= 1
                    bar.update(1)
                if pending:
                    start(slot)
            if not workers and remaining:
                raise RuntimeError("all workers exited before the plan finished")
    for proc, inbox, _, _ in workers.values():
        inbox.put(None)
    for proc, _, _, _ in workers.values():
        proc.join(timeout=30)
    return len(todo)


def run_ray(session, todo: list[WorkItem], writer: ResultsWriter, out: Path) -> int:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("EXECUTOR=ray needs Ray: pip install '.[ray]'") from exc

    options = session.options
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")  # Ray's own variable, read by Ray's users everywhere
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
        actor_opts, device_str, threads = {"num_cpus": cpus_per}, "cpu", cpus_per

    @ray.remote(max_restarts=0)
    class CellWorker:
        def __init__(self, spec):
            self.runner = _build_runner(spec)

        def run(self, item):
            return self.runner.run(item)

    spec = WorkerSpec(options, device_str, threads, str(out), session.id)
    pending = list(todo)
    attempts: dict[tuple, int] = {}
    actors = [CellWorker.options(**actor_opts).remote(spec) for _ in range(n)]
    running: dict = {}

    def submit(actor):
        if pending:
            item = pending.pop(0)
            attempts[item.cell.key] = attempts.get(item.cell.key, 0) + 1
            running[actor.run.remote(item)] = (actor, item)

    for actor in actors:
        submit(actor)
    with _progress_bar(len(todo), f"{session.dataset.name} (ray, {n} actors)") as bar:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, item = running.pop(ready[0])
            try:
                rows = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                actor = CellWorker.options(**actor_opts).remote(spec)
                if attempts[item.cell.key] < MAX_ATTEMPTS:
                    log.warning("ray actor died during %s; retrying", item.cell.slug)
                    pending.insert(0, item)
                    submit(actor)
                    continue
                rows = _died(item, session, str(exc))
            writer.append(rows)
            bar.update(1)
            submit(actor)
    return len(todo)


EXECUTORS = {"local": run_local, "local-gpus": run_local_gpus, "ray": run_ray}


def run_items(session, todo: list[WorkItem], writer: ResultsWriter, out: Path) -> int:
    """Run the items with the session's executor; returns how many were run (or recorded as failed)."""
    if not todo:
        return 0
    return EXECUTORS[session.options.executor](session, todo, writer, out)
