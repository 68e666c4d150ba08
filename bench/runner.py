"""The driver of a run: session -> plan -> pending work -> executor -> results -> report, holding the output
folder's lock throughout so that one run at a time writes it."""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.executors import run_items
from bench.options import DEFAULT_METHODS, NOT_IN_IDENTITY, RunOptions  # noqa: F401 (DEFAULT_METHODS re-exported)
from bench.plan import find_renames, make_plan, pending_work
from bench.results import (END_METRIC, ResultsWriter, cell_states, check_same_dataset, exclusive, read_results,
                           set_aside)
from bench.runinfo import write_run_json
from bench.session import build_session, check_out_folder, default_out

log = logging.getLogger("bench")


@dataclass
class RunSummary:
    out: Path
    n_cells: int
    n_done_before: int
    n_run: int  # work items run this session (or recorded as failed)
    n_left: int = 0  # items not started because the time budget ran out (run the same command again to continue)
    n_metrics_only: int = 0  # of n_run: finished cells that only lacked a metric (computed from the saved output)
    failures: list[dict] = field(default_factory=list)  # cells (or metrics of cells) that raised, this session
    unavailable: list[dict] = field(default_factory=list)  # cells of methods that cannot run here
    explicit_unavailable: list[str] = field(default_factory=list)  # of those, methods the user named
    notices: list[str] = field(default_factory=list)  # one-line remarks (differing options, skipped files, ...)
    report: dict[str, Path] = field(default_factory=dict)
    timing: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.explicit_unavailable


def run(options: RunOptions, render: bool = True) -> RunSummary:
    began = time.perf_counter()  # the wall time counts set-up too (a weight download, a slow network)
    session = build_session(options)
    out = check_out_folder(options.out or default_out(session), force=options.force_out)
    _configure_logging(out)
    notices = list(session.notices) + list(session.dataset.notes)
    if session.dataset.skipped:
        notices.append(f"skipped {len(session.dataset.skipped)} file(s) of {session.dataset.name} (hidden or not an "
                       f"image): {', '.join(session.dataset.skipped[:10])}"
                       + (" ..." if len(session.dataset.skipped) > 10 else ""))

    def waiting(holder: str) -> None:
        message = f"{out} is being written by another run ({holder}); waiting for it to finish"
        log.warning(message)
        print(message, file=sys.stderr, flush=True)

    with exclusive(out, wait=options.wait, on_wait=waiting):
        return _run_locked(session, out, render, notices, began)


def _run_locked(session, out: Path, render: bool, notices: list[str], began: float | None = None) -> RunSummary:
    options = session.options
    results_path = out / "results.csv"
    if not options.resume:
        moved = [(p.name, aside.name) for p in (results_path, out / "superseded.csv") if (aside := set_aside(p))]
        if moved:
            notices.append("--no-resume: the previous results were moved aside, not deleted: "
                           + "; ".join(f"{a} -> {b}" for a, b in moved))
    notices += _option_differences(out / "run.json", options)
    writer = ResultsWriter(results_path)
    if writer.duplicates_removed:
        notices.append(f"{results_path.name} held {writer.duplicates_removed} row(s) of cells written twice; each "
                       "cell counts once (its last block): the file was rewritten without the repeats")
    check_same_dataset(read_results(results_path), session.dataset.name, results_path)
    plan = make_plan(session)
    images = session.all_images or session.dataset.images
    renames = find_renames(cell_states(read_results(results_path)), session.dataset.name, images)
    if renames:
        writer.rename_images(renames)
        pairs = sorted({(old[1], new[0]) for old, new in renames.items()})
        notices.append(f"{len(pairs)} image(s) were renamed since they ran (same content): their {len(renames)} "
                       "cell(s) are kept under the new name, not computed again: "
                       + ", ".join(f"{a} -> {b}" for a, b in pairs[:5]) + (" ..." if len(pairs) > 5 else ""))
    pending = pending_work(plan, cell_states(read_results(results_path)), out, images)
    if pending.superseded:
        n = writer.move_out(pending.superseded, out / "superseded.csv")
        notices.append(f"{len(pending.superseded)} cell(s) of images whose content changed, or that are no longer in "
                       f"the dataset, were moved to superseded.csv ({n} rows); they no longer count")
    writer.drop_cells(pending.retry)
    for line in dict.fromkeys(notices):
        log.warning(line)
    log.info("%s: %d cells, %d already done, %d to run on %s (profile %s, degradations %s)", session.dataset.name,
             len(plan), pending.n_done, len(pending.todo), session.device, session.profile,
             ", ".join(d.id for d in session.degradations))
    write_run_json(out, session, finished=False)

    start = time.perf_counter()
    ran = run_items(session, pending.todo, writer, out)
    n_run = len(ran)
    cells_seconds = time.perf_counter() - start
    mine = read_results(results_path)
    mine = mine[mine["session"] == session.id]
    failures, unavailable = _problems(mine)
    # a non-blind method beside the degradation none ran on the synthetic ones; its none cells are unavailable
    # by design (bench.session.check_as_is), which does not fail the run
    as_is = {d.id for d in session.degradations if not d.has_reference}
    explicit = sorted({r["method"] for r in unavailable
                       if not (r["degradation"] in as_is and getattr(session.methods.get(r["method"]), "told", ()))}
                      & session.explicit)
    summary = RunSummary(out=out, n_cells=len(plan), n_done_before=pending.n_done, n_run=n_run,
                         n_left=len(pending.todo) - n_run,
                         n_metrics_only=sum(1 for i in ran if i.action == "metrics"),
                         failures=failures, unavailable=unavailable, explicit_unavailable=explicit, notices=notices)
    if render:
        from bench.report import render_report

        summary.report = render_report(out)
    summary.timing = _timing(mine, n_run, cells_seconds, time.perf_counter() - (start if began is None else began))
    write_run_json(out, session, finished=True, timing=summary.timing)
    return summary


def _problems(rows) -> tuple[list[dict], list[dict]]:
    """This session's failed cells and failed metrics, and its unavailable cells."""
    ends = rows[rows["metric"] == END_METRIC]
    failed_metrics = rows[(rows["metric"] != END_METRIC) & (rows["status"] == "error")]
    failures = ends[ends["status"] == "error"].to_dict("records") + failed_metrics.to_dict("records")
    return failures, ends[ends["status"] == "unavailable"].to_dict("records")


def _timing(rows, n_run: int, cells_seconds: float, wall_seconds: float) -> dict:
    """How this session's wall time (from the start of set-up: a weight download counts) splits between the
    methods (load + upscale calls, this session's rows only) and everything else (set-up, data, LR synthesis,
    metrics, writing, report). Worker executors overlap cells, so their
    share is not comparable. Nothing run: no split."""
    timing = {"wall_seconds": round(wall_seconds, 3), "cells_seconds": round(cells_seconds, 3), "items_run": n_run}
    if n_run == 0:
        return timing
    in_methods = float(rows[rows["metric"].isin(["seconds-total", "seconds-load"])]["value"].sum())
    # a cell that reused a kernel estimate made by another cell is charged its seconds but did not spend them here
    keys = ["image", "degradation", "scale", "method"]
    reused = rows[(rows["metric"] == "kernel-reused") & (rows["value"] > 0)][keys]
    kernel = rows[rows["metric"] == "seconds-kernel"].merge(reused, on=keys)
    in_methods -= float(kernel["value"].sum())
    timing.update({"method_seconds": round(in_methods, 3),
                   "outside_methods_share": round(1 - in_methods / wall_seconds, 4) if wall_seconds > 0 else None})
    return timing


def _option_differences(run_json: Path, options: RunOptions) -> list[str]:
    """One line when options that are not part of a cell's identity differ from the folder's previous run."""
    try:
        previous = json.loads(run_json.read_text()).get("options", {})
    except (OSError, ValueError):
        return []
    now = json.loads(json.dumps(options.as_dict()))  # as the folder's run.json holds them: tuples as lists
    diffs = [f"{k} {previous.get(k)!r} -> {now.get(k)!r}" for k in NOT_IN_IDENTITY
             if k in previous and previous.get(k) != now.get(k)]
    if not diffs:
        return []
    return ["options differ from this folder's previous run (" + "; ".join(diffs) + "); they do not change a "
            "cell's numbers, so the cells already done are kept"]


def _configure_logging(out: Path) -> None:
    handler = logging.FileHandler(out / "bench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("bench")
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
