"""Executors: how the work items of a plan are spread over devices and processes.

- `local`: this process, one device (the default).
- `local-gpus`: one worker process per visible GPU (or WORKERS CPU workers sharing the cores), items handed out
  as workers free up.
- `ray`: Ray actors, one per GPU (or per CPU slot on CPU-only clusters); `RAY_ADDRESS` when set, else a local
  Ray instance. Ray is optional (`pip install .[ray]`) and imported only here.

The unit handed to a worker is a batch (bench.plan.WorkBatch): one work item, or with BATCH=K up to K cells of one
batchable method trained in one call. Workers only compute: each builds its own session from the options
(bench.session.build_session, as the driver did) and sends a finished batch's blocks of rows (one per cell) back;
the driver alone appends them to the results file, so resuming and the exactly-once guarantee hold for every
executor. A worker that dies has its batch retried whole (MAX_ATTEMPTS in all), then its cells recorded as failed.
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
from bench.plan import WorkBatch, WorkItem, make_batches
from bench.results import END_METRIC, ResultsWriter

log = logging.getLogger("bench")
MAX_ATTEMPTS = 3


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="cell", disable=not sys.stderr.isatty(), dynamic_ncols=True)


def _died(batch: WorkBatch, session, detail: str) -> list[list[dict]]:
    return [[end_row(item.cell, session, "error", 0, note=f"RuntimeError: worker died {MAX_ATTEMPTS} times running "
                     f"this cell ({detail})")] for item in batch.items]


def _cells(batches: list[WorkBatch]) -> int:
    return sum(len(b) for b in batches)


def _write(writer: ResultsWriter, blocks: list[list[dict]]) -> None:
    for block in blocks:
        writer.append(block)
        log.info("%s", _cell_line(block))


def _cell_line(block: list[dict]) -> str:
    """bench.log's line for one finished cell: which, how it ended, its time and PSNR-Y where measured."""
    values = {row["metric"]: row["value"] for row in block}
    end = next((row for row in block if row["metric"] == END_METRIC), block[-1])
    line = f"cell {end['image']} x{end['scale']} {end['degradation']} {end['method']}: {end['status']}"
    for metric, unit in (("seconds-total", " s"), ("psnr-y", " dB")):
        if isinstance(values.get(metric), (int, float)):
            line += f", {metric} {values[metric]:.3f}{unit}"
    return line + (f" ({end['note'][:200]})" if end.get("note") and end["status"] != "ok" else "")


def run_local(session, todo: list[WorkBatch], writer: ResultsWriter, out: Path,
              clock: Callable[[], float] | None = None) -> list[WorkBatch]:
    """Batches in order, each cell's block appended when its batch finishes. Returns the batches that ran (the time
    budget may stop it early: no batch starts after the budget)."""
    clock = clock or time.monotonic
    runner = CellRunner(session, out)
    budget = session.options.time_budget
    deadline = clock() + budget if budget else None
    done = []
    with _progress_bar(_cells(todo), session.dataset.name) as bar:
        for batch in todo:
            if deadline is not None and clock() >= deadline:
                log.info("time budget of %.0f s reached: the remaining cells are left for a resumed run", budget)
                break
            _write(writer, runner.run(batch))
            done.append(batch)
            bar.set_postfix_str(batch.slug, refresh=False)
            bar.update(len(batch))
    return done


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


def die_with_parent() -> None:
    """Make this worker process end when its driver does, however the driver ends (SIGKILL included): on Linux the
    kernel sends SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG); everywhere, a thread watches the parent's
    sentinel (a pipe that closes when the parent exits) and exits. A worker blocked reading its inbox would never
    see the driver go otherwise: it holds both ends of that queue's pipe itself."""
    import threading

    parent = mp.parent_process()
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher thread below still applies
    if parent is None:
        return
    if not parent.is_alive():  # the driver died before the signal was armed
        os._exit(1)

    def watch() -> None:
        from multiprocessing.connection import wait

        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="die-with-driver", daemon=True).start()


def _worker_main(spec: WorkerSpec, inbox, outbox, worker_id: int) -> None:
    die_with_parent()
    runner = _build_runner(spec)
    try:
        outbox.send(("ready", worker_id, None))
        while True:
            batch = inbox.get()
            if batch is None:
                return
            outbox.send(("done", worker_id, runner.run(batch)))
    except (BrokenPipeError, EOFError, ConnectionResetError):  # the driver is gone: nobody to work for
        os._exit(1)


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


class RetryQueue:
    """The batches waiting to be handed out, and how many times each was: a batch lost with its worker goes back to
    the front until it has been tried MAX_ATTEMPTS times (shared by the multi-worker executors)."""

    def __init__(self, batches: list[WorkBatch]) -> None:
        self.pending = list(batches)
        self.attempts: dict[tuple, int] = {}

    def __bool__(self) -> bool:
        return bool(self.pending)

    def take(self) -> WorkBatch | None:
        """The next batch (counted as one more attempt), None when none is waiting."""
        if not self.pending:
            return None
        batch = self.pending.pop(0)
        self.attempts[batch.key] = self.attempts.get(batch.key, 0) + 1
        return batch

    def retry(self, batch: WorkBatch) -> bool:
        """A batch whose worker died: True when it is queued again, False when its attempts are spent (the caller
        records its cells as failed)."""
        if self.attempts.get(batch.key, 0) >= MAX_ATTEMPTS:
            return False
        self.pending.insert(0, batch)
        return True


def run_local_gpus(session, todo: list[WorkBatch], writer: ResultsWriter, out: Path) -> list[WorkBatch]:
    """Each worker has its own inbox and its own result pipe: a worker that dies (even in the middle of sending)
    can break only its own channel, never the others' (a shared queue's write lock would die with it)."""
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    slots = _worker_devices(session.device, session.options.workers)
    pending = RetryQueue(todo)
    in_flight: dict[int, WorkBatch] = {}
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
        batch = pending.take()
        if batch is not None:
            in_flight[wid] = batch
            workers[wid][1].put(batch)

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
            done = in_flight.pop(wid, None)
            _write(writer, rows)
            remaining -= 1
            bar.update(len(done) if done is not None else 1)
            hand_out(wid)
        return True

    with _progress_bar(_cells(todo), f"{session.dataset.name} ({len(slots)} workers)") as bar:
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
                elif pending.retry(lost):
                    log.warning("worker %d died (exit %s) during %s; retrying", wid, proc.exitcode, lost.slug)
                else:
                    _write(writer, _died(lost, session, f"last exit code {proc.exitcode}"))
                    remaining -= 1
                    bar.update(len(lost))
                if pending:
                    start(slot)
            if not workers and remaining:
                raise RuntimeError("all workers exited before the plan finished")
    for proc, inbox, _, _ in workers.values():
        inbox.put(None)
    for proc, _, _, _ in workers.values():
        proc.join(timeout=30)
    return list(todo)


def run_ray(session, todo: list[WorkBatch], writer: ResultsWriter, out: Path) -> list[WorkBatch]:
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
            # an actor belongs to the driver's job: Ray ends it when the driver dies (the owner is gone); and if
            # the local Ray processes that started it die with the driver, it goes with them
            die_with_parent()
            self.runner = _build_runner(spec)

        def run(self, batch):
            return self.runner.run(batch)

    spec = WorkerSpec(options, device_str, threads, str(out), session.id)
    pending = RetryQueue(todo)
    actors = [CellWorker.options(**actor_opts).remote(spec) for _ in range(n)]
    running: dict = {}

    def submit(actor):
        batch = pending.take()
        if batch is not None:
            running[actor.run.remote(batch)] = (actor, batch)

    for actor in actors:
        submit(actor)
    with _progress_bar(_cells(todo), f"{session.dataset.name} (ray, {n} actors)") as bar:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, batch = running.pop(ready[0])
            try:
                blocks = ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                actor = CellWorker.options(**actor_opts).remote(spec)
                if pending.retry(batch):
                    log.warning("ray actor died during %s; retrying", batch.slug)
                    submit(actor)
                    continue
                blocks = _died(batch, session, str(exc))
            _write(writer, blocks)
            bar.update(len(batch))
            submit(actor)
    return list(todo)


EXECUTORS = {"local": run_local, "local-gpus": run_local_gpus, "ray": run_ray}


def run_items(session, todo: list[WorkItem], writer: ResultsWriter, out: Path) -> list[WorkItem]:
    """Run the items, batched by the session's batch size, with its executor; returns the items that were run (or
    recorded as failed)."""
    if not todo:
        return []
    batchable = {name for name, m in session.methods.items() if getattr(m, "batchable", False)}
    batches = make_batches(todo, session.batch_size, batchable)
    if session.batch_size > 1:
        log.info("batch size %d: %d cells in %d units of work", session.batch_size, len(todo), len(batches))
    done = EXECUTORS[session.options.executor](session, batches, writer, out)
    return [item for batch in done for item in batch.items]
