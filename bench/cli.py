"""Command line: `python -m bench run|list|report|weights` (the Makefile's targets call these)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description="Super-resolution benchmark: ZSSR vs pretrained networks")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run methods over a dataset, write results.csv, run.json and the report")
    run.add_argument("--dataset", default="builtin", help="dataset name (see `list`) or a folder of images whose subfolders are categories")
    run.add_argument("--images", type=_nonempty_csv, default=(),
                     help="comma-separated image names: only these images of the dataset (default: all); the cells "
                          "are the ones a run over the whole dataset makes, so a later full run into the same "
                          "folder resumes them")
    run.add_argument("--methods", type=_nonempty_csv, default=(), help="comma-separated method names (default: the profile's defaults)")
    run.add_argument("--scales", type=_scales, default=(), help="comma-separated integer scales (default: the dataset's)")
    run.add_argument("--protocol", choices=["rgb", "y-only"], default="rgb",
                     help="rgb: methods upscale RGB, evaluated on Y; y-only: the classic bicubic-table protocol")
    run.add_argument("--profile", choices=["auto", "quick", "paper"], default="auto",
                     help="paper: published configurations; quick: reduced ZSSR for CPUs; auto: paper on GPU, quick on CPU")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                     help="network precision: auto = bf16 where the hardware has native bf16 units (ZSSR always, "
                          "pretrained networks measured safe in bf16), else fp32; fp16 is CUDA only")
    run.add_argument("--executor", default="local", help="local (default), local-gpus or ray")
    run.add_argument("--workers", type=int, default=None, help="worker count for multi-worker executors")
    run.add_argument("--batch", default="auto", help="train up to K cells of one ZSSR method together (an integer, "
                     "or auto: 1 on a CPU, memory-bounded on CUDA); does not change a cell's identity")
    run.add_argument("--out", type=_out_folder, default=None, help="output folder (default reports/<dataset>/<profile>-<protocol>)")
    run.add_argument("--no-resume", action="store_true", help="start over instead of resuming the output folder "
                     "(the previous results.csv and superseded.csv are moved aside with a timestamp)")
    run.add_argument("--force-out", action="store_true", help="write into an --out folder that is not empty and is "
                     "not a run folder of this suite (refused otherwise)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--metrics", type=_nonempty_csv, default=("psnr-y", "ssim-y", "psnr-rgb", "lpips-alex"),
                     help="comma-separated quality metrics; added to a finished folder, only they are computed")
    run.add_argument("--degradation", type=_nonempty_csv, default=("bicubic",),
                     help="comma-separated degradations, each steps joined with + (bicubic, aniso-gaussian, "
                          "kernel:<file.mat>, noise[:sigma], jpeg[:quality]); the plan runs once per degradation")
    run.add_argument("--kernel", default=None, help="a .mat blur kernel (variable `Kernel`): the degradation "
                     "kernel:<file>, replacing bicubic")
    run.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                     help="start no cell after this many seconds (local executor); the same command resumes")
    run.add_argument("--no-images", action="store_true", help="do not save SR outputs (reports then have no crops)")
    run.add_argument("--no-report", action="store_true", help="skip rendering the report")
    run.add_argument("--no-wait", action="store_true",
                     help="stop (instead of waiting) when another run is writing the same output folder")

    sub.add_parser("list", help="list datasets and methods")
    rep = sub.add_parser("report", help="render the report of a run folder again")
    rep.add_argument("run_dir", type=Path)
    w = sub.add_parser("weights", help="fetch the pretrained weights the methods need into the cache")
    w.add_argument("--methods", type=_csv, default=())
    return ap


def cmd_run(args) -> int:
    from bench.options import RunOptions
    from bench.runner import run

    options = RunOptions(dataset=args.dataset, images=args.images, methods=args.methods, scales=args.scales,
                         protocol=args.protocol, profile=args.profile, device=args.device, out=args.out, resume=not args.no_resume,
                         seed=args.seed, metrics=args.metrics, executor=args.executor, workers=args.workers,
                         save_images=not args.no_images, kernel=args.kernel, degradations=args.degradation,
                         precision=args.precision, time_budget=args.time_budget, wait=not args.no_wait,
                         batch=args.batch, force_out=args.force_out)
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
        print(f"note: {Path(args.run_dir) / 'results.csv'} holds no cells (only its header); the report is empty",
              file=sys.stderr)
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
