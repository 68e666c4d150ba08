"""The `run` command line is built from RunOptions (bench/options.py): every field is an option, declared once."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from bench.cli import add_run_options, build_parser, run_options
from bench.options import RunOptions, option

ROOT = Path(__file__).resolve().parent.parent
# every spelling the Makefile, README, tests and tools/device_run.sh use (the command line before it was generated)
FLAGS = ["--dataset", "--images", "--methods", "--scales", "--protocol", "--profile", "--device", "--precision",
         "--executor", "--workers", "--batch", "--out", "--no-resume", "--seed", "--metrics", "--degradation",
         "--kernel", "--time-budget", "--no-images", "--no-report", "--no-wait"]


def _run(*argv: str) -> RunOptions:
    return run_options(build_parser().parse_args(["run", *argv]))


def test_every_flag_parses_into_its_field():
    opts = _run("--dataset", "set5", "--images", "a,b,a", "--methods", "bicubic, zssr-original", "--scales", "2,4",
                "--protocol", "y-only", "--profile", "quick", "--device", "cpu", "--precision", "bf16",
                "--executor", "local-gpus", "--workers", "3", "--batch", "2", "--out", "/tmp/o", "--no-resume",
                "--seed", "7", "--metrics", "psnr-y", "--degradation", "bicubic,noise:5", "--kernel", "k.mat",
                "--time-budget", "12.5", "--no-images", "--no-wait")
    assert opts == RunOptions(dataset="set5", images=("a", "b"), methods=("bicubic", "zssr-original"),
                              scales=(2, 4), protocol="y-only", profile="quick", device="cpu", precision="bf16",
                              executor="local-gpus", workers=3, batch="2", out=Path("/tmp/o"), resume=False, seed=7,
                              metrics=("psnr-y",), degradations=("bicubic", "noise:5"), kernel="k.mat",
                              time_budget=12.5, save_images=False, wait=False)
    assert _run() == RunOptions()  # the defaults are the dataclass's
    assert build_parser().parse_args(["run", "--no-report"]).no_report


def test_help_lists_every_option_with_its_help():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    text = run.format_help()
    for flag in FLAGS:
        assert re.search(rf"{flag}\b", text), flag
    for f in fields(RunOptions):
        assert f.metadata["help"][:30] in " ".join(text.split()), f.name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--precision", "fp8"])  # choices come from the field too
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--scales", "2,x"])


def test_a_new_option_is_one_field():
    @dataclass(frozen=True)
    class WithExtra(RunOptions):
        repeats: int = option(1, "how many times to run each cell")

    import argparse

    parser = argparse.ArgumentParser()
    add_run_options(parser, WithExtra)
    args = parser.parse_args(["--repeats", "3", "--no-wait"])
    assert args.repeats == 3 and args.wait is False
    assert "how many times to run each cell" in parser.format_help()


def test_the_precision_choices_are_zssrs():
    from bench.options import PRECISIONS
    from zssr.precision import PRECISIONS as ZSSR_PRECISIONS

    assert PRECISIONS == ZSSR_PRECISIONS


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_makefile_maps_its_variables_to_existing_flags():
    makefile = (ROOT / "Makefile").read_text()
    variables = re.search(r"RUN_VARIABLES := ((?:[A-Z_ \t]|\\\n)+)", makefile).group(1).replace("\\\n", " ").split()
    assert {"DATASET", "METHODS", "TIME_BUDGET", "OUT"} <= set(variables)
    assigned = [f"{v}=x{i}" for i, v in enumerate(variables)]
    out = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "bench", "STAMP=", "RESUME=0", *assigned],
                         capture_output=True, text=True, check=True).stdout
    for i, v in enumerate(variables):
        flag = "--" + v.lower().replace("_", "-")
        assert f"{flag} 'x{i}'" in out and flag in FLAGS, v
    assert "--no-resume" in out
    empty = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "bench", "STAMP="], capture_output=True,
                           text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert "--" not in empty.split("bench run", 1)[1]  # nothing given: the CLI's defaults
