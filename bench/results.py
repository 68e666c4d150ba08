"""The results store of a run folder: one tidy table (results.csv, a row per cell and metric), one writer at a time.

A cell is (dataset, image and its content checksum, degradation, scale, method, config_id); config_id covers the
method's resolved configuration, profile, protocol, precision and seed (bench.session.config_id). A cell's rows
are written as one block in one append: its metric rows, then an end row (metric "cell") whose status is ok,
error or unavailable. Only blocks with their end row count; a killed run leaves at most a cut block at the end,
which readers ignore and the next writer removes. Metrics are per row: adding a metric to a finished cell appends
a block with just that metric (computed from the saved SR output) and its own end row.

Every column is read as text (then `scale` as an integer and `value` as a float), so a dataset called "2024" or
an image called "007" keeps its name. A line that does not parse stops the reader with the file and line number.
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

from bench.pathnames import safe_component

COLUMNS = [
    "dataset", "category", "image", "image_sha", "degradation", "scale", "method", "config_id", "protocol", "profile",
    "metric", "value", "status", "native_scale", "device", "session", "output", "note",
]
CELL_KEY = ["dataset", "image", "image_sha", "degradation", "scale", "method", "config_id"]
END_METRIC = "cell"  # the end row of a block: its status is the cell's, its value the number of metric rows
CELL_STATUSES = ("ok", "error", "unavailable")
METRIC_STATUSES = ("ok", "n/a", "error")  # n/a: undefined for this input (NaN with the reason in `note`)
UNAVAILABLE_PREFIX = "MethodUnavailable:"


class ResultsError(ValueError):
    """results.csv cannot be read as this version writes it; the message names the file and line."""


@dataclass(frozen=True)
class Cell:
    dataset: str
    category: str
    image: str
    image_sha: str
    degradation: str
    scale: int
    method: str
    config_id: str

    @property
    def key(self) -> tuple:
        return (self.dataset, self.image, self.image_sha, self.degradation, int(self.scale), self.method,
                self.config_id)

    @property
    def slug(self) -> str:
        extra = "" if self.degradation == "bicubic" else f"__{self.degradation}"
        return f"{self.method}__{self.image}__x{self.scale}{extra}"  # for messages only; paths use cell_stem

    def row(self, **fields) -> dict:
        return dict(dataset=self.dataset, category=self.category, image=self.image, image_sha=self.image_sha,
                    degradation=self.degradation, scale=self.scale, method=self.method, config_id=self.config_id,
                    **fields)


# -- the run folder's side files (paths relative to it) ----------------------------------------------------------

# Every name in these paths goes through bench.paths.safe_component: a method called checkpoint:../../x.pth or an
# image called ../../x stays inside the run folder, and two names never share a file.

def cell_stem(cell: Cell) -> str:
    """The file name (without suffix) of a cell's side files: unique per image content and scale."""
    return f"{safe_component(cell.image)}-{safe_component(cell.image_sha[:8])}_x{int(cell.scale)}"


def _method_dir(cell: Cell) -> str:
    return f"{safe_component(cell.method)}/{safe_component(cell.config_id)}/{safe_component(cell.degradation)}"


def sr_path(cell: Cell) -> str:
    """Where a cell's SR output goes, relative to the run folder: one folder per method configuration and
    degradation, so that no two cells share a file."""
    return f"sr/{_method_dir(cell)}/{cell_stem(cell)}.png"


def input_paths(cell: Cell) -> tuple[str, str]:
    """(HR, LR) copies of a cell's inputs, relative to the run folder."""
    stem = f"inputs/{safe_component(cell.degradation)}/{cell_stem(cell)}"
    return f"{stem}_hr.png", f"{stem}_lr.png"


def kernel_path(cell: Cell) -> str:
    """The true blur kernel an image got at a scale (aniso-gaussian draws one per image and scale)."""
    return f"kernels/{safe_component(cell.degradation)}/{cell_stem(cell)}.mat"


def estimated_kernel_path(cell: Cell) -> str:
    """The kernel a blind method estimated for a cell (ZSSR's .mat format), beside its SR output's folder layout."""
    return f"kernels-estimated/{_method_dir(cell)}/{cell_stem(cell)}.mat"


def curve_path(sr_rel: str) -> str:
    return "curves/" + sr_rel[len("sr/"):-len(".png")] + ".csv"



def _line(row: dict) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_text(row.get(c, "")) for c in COLUMNS])
    return buf.getvalue()


def _text(value) -> str:
    if isinstance(value, float):  # numpy's floats too, written as Python's (numpy 2's repr is "np.float64(...)")
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


# -- reading -------------------------------------------------------------------------------------------------------

UTF8_BOM = b"\xef\xbb\xbf"  # spreadsheet programs save CSV with one; it is not part of the first column's name


def _read_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every complete line; a last line without its newline (a cut write) is dropped."""
    data = path.read_bytes()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    text = data.decode("utf-8", errors="strict")
    out = []
    reader = csv.reader(io.StringIO(text))
    for fields in reader:
        out.append((reader.line_num, fields))
    return out


def _header_problem(path: Path, header: list[str]) -> str:
    """Why a header is not this suite's, in words a user can act on."""
    found = ",".join(header)[:200]
    if "status" not in header and {"dataset", "image", "method", "metric", "value"} <= set(header):
        return (f"{path}: line 1: columns {found}: it was written by an earlier version of the suite (no status "
                "column): render it with that version, or move it away to start this folder again")
    missing = [c for c in COLUMNS if c not in header]
    extra = [c for c in header if c not in COLUMNS]
    detail = (f"missing {', '.join(missing)}" if missing else "") + ("; " if missing and extra else "") + \
             (f"unknown {', '.join(map(repr, extra))}" if extra else "") or "the same columns in another order"
    return (f"{path}: line 1: not a results table of this suite ({detail}; expected {','.join(COLUMNS)}); it "
            "belongs to something else: give another --out, or use --no-resume to move it aside")


@dataclass
class Parsed:
    """A results file as read: the rows that count, and the line numbers of rows that do not (cut blocks at the
    end of a killed run; blocks repeated by a later block of the same cell)."""

    rows: list[dict]
    cut: list[int]
    duplicates: list[int]


def _parse(path: Path) -> Parsed:
    """All rows of complete blocks, one block per cell and metric: a later complete block of a cell replaces the
    earlier rows of the metrics it gives again (a block appended twice, or a cell written again, counts once), and
    an earlier block left with no rows of its own is dropped whole with its end row."""
    try:
        lines = _read_lines(path)
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not a text file ({exc}); move it away or use --no-resume") from exc
    except csv.Error as exc:
        raise ResultsError(f"{path}: not a CSV file ({exc}); move it away or use --no-resume") from exc
    if not lines:
        return Parsed([], [], [])
    header = lines[0][1]
    if header != COLUMNS:
        raise ResultsError(_header_problem(path, header))
    blocks: list[list[dict]] = []
    pending: list[dict] = []
    cut: list[int] = []
    for lineno, fields in lines[1:]:
        if not fields:
            continue
        if len(fields) != len(COLUMNS):
            raise ResultsError(f"{path}: line {lineno}: {len(fields)} fields, expected {len(COLUMNS)}; fix or "
                               "delete that line (a cell whose rows are removed is computed again)")
        row = dict(zip(COLUMNS, fields))
        try:
            row["scale"] = int(row["scale"])
            row["value"] = float(row["value"]) if row["value"] != "" else math.nan
        except ValueError as exc:
            raise ResultsError(f"{path}: line {lineno}: {exc}; fix or delete that line") from exc
        allowed = CELL_STATUSES if row["metric"] == END_METRIC else METRIC_STATUSES
        if row["status"] not in allowed or not row["metric"]:
            raise ResultsError(f"{path}: line {lineno}: status {row['status']!r} for metric {row['metric']!r}; fix "
                               "or delete that line")
        row["_line"] = lineno
        if pending and _key(pending[-1]) != _key(row):
            cut += [r["_line"] for r in pending]
            pending = []
        pending.append(row)
        if row["metric"] == END_METRIC:
            blocks.append(pending)
            pending = []
    cut += [r["_line"] for r in pending]
    rows, duplicates = _one_block_per_cell(blocks)
    return Parsed(rows, cut, duplicates)


def _one_block_per_cell(blocks: list[list[dict]]) -> tuple[list[dict], list[int]]:
    """The rows that count, in file order, and the line numbers of those that a later block of the same cell
    replaces (going backwards: the last block of a cell keeps all its rows; an earlier one keeps only metrics no
    later block gives, and its end row only while it keeps a metric row, or has none and is the cell's last)."""
    given: dict[tuple, set[str]] = {}
    has_later_block: set[tuple] = set()
    keep: list[list[dict]] = []
    dropped: list[int] = []
    for block in reversed(blocks):
        key = _key(block[-1])
        seen = given.setdefault(key, set())
        metric_rows = [r for r in block if r["metric"] != END_METRIC]
        kept = [r for r in metric_rows if r["metric"] not in seen]
        if kept or key not in has_later_block:
            keep.append(kept + [block[-1]])
        else:
            kept = []
            dropped.append(block[-1]["_line"])
        dropped += [r["_line"] for r in metric_rows if not kept or r["metric"] in seen]
        seen.update(r["metric"] for r in metric_rows)
        has_later_block.add(key)
    rows = [r for block in reversed(keep) for r in block]
    return rows, sorted(dropped)


def _key(row: dict) -> tuple:
    return tuple(row[c] for c in CELL_KEY)


def read_results(path: Path) -> pd.DataFrame:
    """Every row of the complete blocks (metric rows and end rows), text columns as text."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame(_parse(path).rows, columns=COLUMNS)
    if len(df):
        df["scale"] = df["scale"].astype(int)
        df["value"] = df["value"].astype(float)
    return df


@dataclass
class CellState:
    """What the store holds for one cell: its latest status, the metrics it has, where its SR output is."""

    status: str
    metrics: set[str] = field(default_factory=set)
    output: str = ""
    note: str = ""


def cell_states(df: pd.DataFrame) -> dict[tuple, CellState]:
    """Per cell key, from complete blocks: the last end row's status, and the metrics computed (ok or n/a; an
    errored metric counts as missing, so it is tried again)."""
    states: dict[tuple, CellState] = {}
    if not len(df):
        return states
    for row in df.to_dict("records"):
        key = _key(row)
        if row["metric"] == END_METRIC:
            state = states.setdefault(key, CellState(status=row["status"]))
            state.status, state.note = row["status"], row["note"]
            if row["output"]:
                state.output = row["output"]
        elif row["status"] != "error":
            states.setdefault(key, CellState(status="ok")).metrics.add(row["metric"])
    return states


# -- writing ---------------------------------------------------------------------------------------------------

class FolderBusy(RuntimeError):
    pass


@contextmanager
def exclusive(folder: Path, wait: bool = True, on_wait=None) -> Iterator[None]:
    """One writer per run folder: an fcntl lock on `<folder>/.lock`, released when the process ends however it
    ends. A second run waits for the first (`on_wait` is told once), or with wait=False stops with FolderBusy."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / ".lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            if not wait:
                raise FolderBusy(f"{folder} is being written by another run ({holder}); wait for it to finish or "
                                 "give this run another --out") from None
            if on_wait:
                on_wait(holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


class ResultsWriter:
    """Appends whole cell blocks to results.csv; use it only while holding `exclusive(folder)`.

    Opening it repairs the file: a cut block (a killed run) is removed, and so are blocks that a later block of
    the same cell repeats (`duplicates_removed` rows; the caller says so)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.duplicates_removed = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_text(",".join(COLUMNS) + "\n")
        else:
            parsed = _parse(self.path)  # also validates the whole file before anything is appended
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                cut_line = fh.read(1) != b"\n"
                fh.seek(0)
                bom = fh.read(len(UTF8_BOM)) == UTF8_BOM
            if parsed.cut or parsed.duplicates or cut_line or bom:
                self._rewrite(lambda row: True, parsed.rows)  # only the rows that count, one block per cell
                self.duplicates_removed = len(parsed.duplicates)

    def append(self, rows: Iterable[dict]) -> None:
        """One cell's block: its metric rows and its end row, in one write."""
        rows = list(rows)
        if not rows or rows[-1].get("metric") != END_METRIC:
            raise ValueError("a block ends with its cell's end row")
        text = "".join(_line(r) for r in rows)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def drop_cells(self, keys: set[tuple]) -> int:
        """Rewrite the file without the given cells (a failed cell is tried again; a cell to recompute whole),
        atomically. Returns the number of rows removed."""
        if not keys:
            return 0
        return self._rewrite(lambda row: _key(row) not in keys)

    def move_out(self, keys: set[tuple], dest: Path) -> int:
        """Move the given cells' rows to `dest` (appended, same columns): rows of an image whose content changed,
        or that is no longer in the dataset, are kept for the record but no longer count. Returns the number of
        rows moved."""
        if not keys:
            return 0
        rows = _parse(self.path).rows
        moved = [r for r in rows if _key(r) in keys]
        new = not dest.exists()
        with open(dest, "a", encoding="utf-8") as fh:
            fh.write((",".join(COLUMNS) + "\n") if new else "")
            fh.write("".join(_line(r) for r in moved))
        return self._rewrite(lambda row: _key(row) not in keys, rows)

    def rename_images(self, renames: dict[tuple, tuple[str, str]]) -> int:
        """Give cells of a renamed image their new (image, category), numbers unchanged: a cell is its image's
        content (image_sha), not its file name. `renames`: old cell key -> (new image name, new category).
        Returns the number of rows rewritten."""
        if not renames:
            return 0
        rows = _parse(self.path).rows
        n = 0
        for row in rows:
            new = renames.get(_key(row))
            if new is not None:
                row["image"], row["category"] = new
                n += 1
        self._rewrite(lambda row: True, rows)
        return n

    def _rewrite(self, keep, rows: list[dict] | None = None) -> int:
        rows = _parse(self.path).rows if rows is None else rows
        kept = [r for r in rows if keep(r)]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(",".join(COLUMNS) + "\n")
            fh.write("".join(_line(r) for r in kept))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        return len(rows) - len(kept)


def set_aside(path: Path, stamp: str | None = None) -> Path | None:
    """Move a file out of the way as `<name>.<timestamp>.bak` beside it (never deleted); returns the new path, or
    None when there was no file."""
    path = Path(path)
    if not path.exists():
        return None
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    dest = path.with_name(f"{path.name}.{stamp}.bak")
    k = 1
    while dest.exists():
        k += 1
        dest = path.with_name(f"{path.name}.{stamp}-{k}.bak")
    os.replace(path, dest)
    return dest


def check_same_dataset(df: pd.DataFrame, dataset: str, path: Path) -> None:
    """A run folder holds one dataset's cells: rows of another dataset mean the folder belongs to another run (its
    rows would be merged into this run's report)."""
    if not len(df):
        return
    others = sorted(set(df["dataset"]) - {dataset})
    if others:
        raise ResultsError(f"{path} belongs to another run: it holds cells of dataset {', '.join(map(repr, others))}, "
                           f"not {dataset!r}; give this run another --out, or use --no-resume to move that file aside")
