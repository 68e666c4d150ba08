"""Writing synthetic results tables in the store's format (tests only)."""
from __future__ import annotations

import math
from pathlib import Path

from bench.results import CELL_KEY, END_METRIC, UNAVAILABLE_PREFIX, ResultsWriter

IMAGE_SHA = "0123456789abcdef"


def _full(row: dict) -> dict:
    row = {"image_sha": IMAGE_SHA, "degradation": "bicubic", "session": "test", "output": "", "status": "ok",
           "category": "", "protocol": "rgb", "profile": "paper", "native_scale": "", "device": "cpu", "note": "",
           **row}
    value = row.get("value", "")
    row["value"] = math.nan if value in ("", None) else float(value)
    return row


def write_results(path: Path, rows: list[dict], outputs: dict | None = None) -> None:
    """Rows as a test thinks of them (one per metric; metric "error" for a failed cell, its note the message)
    grouped into cell blocks with end rows. `outputs`: {(method, image, scale): SR path} for the end rows."""
    outputs = outputs or {}
    blocks: dict[tuple, list[dict]] = {}
    for row in map(_full, rows):
        blocks.setdefault(tuple(row[c] for c in CELL_KEY), []).append(row)
    path = Path(path)
    path.unlink(missing_ok=True)
    writer = ResultsWriter(path)
    for block in blocks.values():
        failed = [r for r in block if r["metric"] == "error"]
        metrics = [dict(r, status="ok" if math.isfinite(r["value"]) or math.isinf(r["value"]) else "n/a")
                   for r in block if r["metric"] != "error"]
        first = block[0]
        if failed:
            note = failed[0]["note"]
            status = "unavailable" if note.startswith(UNAVAILABLE_PREFIX) else "error"
            end = dict(first, metric=END_METRIC, value=0.0, status=status, note=note)
        else:
            end = dict(first, metric=END_METRIC, value=float(len(metrics)), status="ok", note="",
                       output=outputs.get((first["method"], first["image"], int(first["scale"])), ""))
        writer.append(metrics + [end])
