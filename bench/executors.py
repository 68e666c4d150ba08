"""Executors: how the cells of a plan are spread. `local` runs them in this process on one device."""
from __future__ import annotations

import sys

from bench.runner import CellRunner, execute


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


EXECUTORS = {"local": run_local}


def run_cells(options, todo, dataset, methods, profile, device, out, writer) -> list[dict]:
    if options.executor not in EXECUTORS:
        raise ValueError(f"unknown executor {options.executor!r}; available: {', '.join(EXECUTORS)}")
    return EXECUTORS[options.executor](options, todo, dataset, methods, profile, device, out, writer)
