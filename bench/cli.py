"""Command line: `python -m bench run|list|report|weights` (the Makefile's targets call these)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from bench.options import RunOptions


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _nonempty_csv(text: str) -> tuple[str, ...]:
    """A list the user gave must name something: `--methods ','` is a mistake, not "the defaults"."""
    names = _csv(text)
    if not names:
        raise argparse.ArgumentTypeError(f"an empty list ({text!r}); name at least one, or leave the option out for "
                                         "the defaults")
    return names


def _out_folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty folder name; give a folder, or leave --out out for the default")
    return Path(text)


def _scales(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in _nonempty_csv(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales are integers separated by commas, e.g. 2,3,4 (got {text!r})")


def _parse_for(annotation: str) -> Callable[[str], Any]:
    """The argument parser of a RunOptions field's type (its annotation, as written)."""
    parsers = {"tuple[str, ...]": _nonempty_csv, "tuple[int, ...]": _scales, "int": int, "int | None": int,
               "float | None": float, "Path | None": _out_folder, "str": str, "str | None": str}
    if annotation not in parsers:  # a new field's type: say where to teach it
        raise TypeError(f"RunOptions field of type {annotation!r}: add its parser to bench.cli._parse_for")
    return parsers[annotation]


def add_run_options(parser: argparse.ArgumentParser, options_type: type | None = None) -> None:
    """One option per RunOptions field (name, type, default and help from the field; bench/options.py)."""
    from bench.options import RunOptions

    for f in fields(options_type or RunOptions):
        meta = f.metadata
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if f.type == "bool":  # a switch: its flag turns the default off (or on)
            parser.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true",
                                help=meta["help"])
            continue
        extra = {k: meta[k] for k in ("choices", "metavar") if k in meta}
        if not extra:  # named after the flag, not the field (--degradation DEGRADATION)
            extra["metavar"] = flag[2:].upper().replace("-", "_")
        parser.add_argument(flag, dest=f.name, type=_parse_for(f.type), default=f.default, help=meta["help"], **extra)


def run_options(args: argparse.Namespace) -> RunOptions:
    """The RunOptions of parsed `run` arguments."""
    from bench.options import RunOptions

    return RunOptions(**{f.name: getattr(args, f.name) for f in fields(RunOptions)})


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description="Super-resolution benchmark: ZSSR vs pretrained networks")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run methods over a dataset, write results.csv, run.json and the report")
    add_run_options(run)
    run.add_argument("--no-report", action="store_true", help="skip rendering the report")

    sub.add_parser("list", help="list datasets and methods")
    rep = sub.add_parser("report", help="render the report of a run folder again")
    rep.add_argument("run_dir", type=Path)
    w = sub.add_parser("weights", help="fetch the pretrained weights the methods need into the cache")
    w.add_argument("--methods", type=_csv, default=())
    return ap


def cmd_run(args) -> int:
    from bench.runner import run

    options = run_options(args)
    summary = run(options, render=not args.no_report)
    for line in summary.notices:
        print(f"note: {line}", file=sys.stderr)
    added = f", {summary.n_metrics_only} of them only for missing metrics" if summary.n_metrics_only else ""
    print(f"{summary.n_cells} cells ({summary.n_done_before} already done, {summary.n_run} run{added}); results: "
          f"{summary.out / 'results.csv'}")
    if summary.n_left:
        print(f"time budget reached: {summary.n_left} cell(s) left; run the same command again to continue")
    t = summary.timing
    if not summary.n_run:
        print("nothing to run: every cell was already done")
    elif t.get("wall_seconds") and t.get("outside_methods_share") is not None and args.executor == "local":
        print(f"wall {t['wall_seconds']:.1f} s, of which in the methods {t['method_seconds']:.1f} s "
              f"({100 * t['outside_methods_share']:.1f}% outside: set-up and downloads, data, metrics, writing, report)")
    for path in summary.report.values():
        print(f"report: {path}")
    if summary.unavailable:
        by_method = {}
        for row in summary.unavailable:
            by_method.setdefault(row["method"], row["note"])
        print(f"{len(summary.unavailable)} cell(s) of {len(by_method)} unavailable method(s) were not run:",
              file=sys.stderr)
        for method, note in by_method.items():
            asked = " (named in --methods: the run fails)" if method in summary.explicit_unavailable else ""
            print(f"  {method}{asked}: {note}", file=sys.stderr)
    if summary.failures:
        print(f"{len(summary.failures)} cell(s) failed:", file=sys.stderr)
        for f in summary.failures:
            what = "" if f["metric"] == "cell" else f" (metric {f['metric']})"
            print(f"  {f['method']} {f['image']} x{f['scale']}{what}: {f['note']}", file=sys.stderr)
    return 0 if summary.ok else 1


def cmd_list(_args) -> int:
    from baselines.methods import METHODS
    from bench.datasets import available, load_dataset
    from bench.options import DEFAULT_METHODS

    print("datasets:")
    for name in available():
        d = load_dataset(name)
        print(f"  {name:<12} v{d.version}  {len(d.images):>3} images  scales {','.join(map(str, d.default_scales))}  {d.description}")
    print("  <folder>     any folder of images; its subfolders are categories")
    print("methods:")
    for name in METHODS.names():
        tags = [p for p, names in DEFAULT_METHODS.items() if name in names]
        print(f"  {name:<24} {'default: ' + ','.join(tags) if tags else ''}")
    print("  checkpoint:<path>        any .pth/.safetensors checkpoint spandrel recognises")
    return 0


def cmd_report(args) -> int:
    from bench.report import render_report
    from bench.results import read_results

    results = Path(args.run_dir) / "results.csv"
    if results.is_file() and not len(read_results(results)):
        print(f"note: {results} holds no cells (only its header); the report is empty", file=sys.stderr)
    for path in render_report(args.run_dir).values():
        print(f"report: {path}")
    return 0


def cmd_weights(args) -> int:
    from baselines.methods import create_method
    from baselines.api import MethodUnavailable
    from bench.options import DEFAULT_METHODS

    status = 0
    for name in args.methods or DEFAULT_METHODS["paper"]:
        method = create_method(name)
        try:
            method.setup(__import__("torch").device("cpu"))
            print(f"{name}: ready")
        except MethodUnavailable as exc:
            print(f"{name}: unavailable: {exc}", file=sys.stderr)
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "list": cmd_list, "report": cmd_report, "weights": cmd_weights}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a path that cannot be read or written: one line naming it
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
