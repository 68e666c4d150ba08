"""What a user asks of a run (the command line's options), before anything is resolved."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bench.metrics import DEFAULT_METRICS

# zssr.precision.PRECISIONS, spelled out so that building the command line imports no torch (a test checks they agree)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# What `make bench` runs when METHODS is not given. The quick profile keeps the default run to minutes on a CPU.
DEFAULT_METHODS = {
    "paper": ["bicubic", "lanczos", "zssr-original", "zssr-modified", "zssr-gradual", "realesrgan-x4plus",
              "dat-light", "esrgan", "rrdb-psnr"],
    "quick": ["bicubic", "lanczos", "zssr-original", "zssr-modified", "realesrgan-x4plus", "dat-light", "esrgan",
              "rrdb-psnr"],
}

# Options that do not change a cell's numbers: a resumed run may differ in them (it says so in one line).
# `images` too: a selection runs the same cells as the whole dataset would (bench.datasets.select_images).
NOT_IN_IDENTITY = ("device", "executor", "workers", "save_images", "time_budget", "batch", "images", "force_out")


def option(default, help: str, **cli) -> Any:
    """A RunOptions field with what `python -m bench run` needs to offer it (bench.cli builds the parser from
    these): `help`, and optionally `flag` (the option's spelling when it is not --<name>, e.g. "--no-images" for a
    switch that turns a True default off), `choices`, `metavar`."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class RunOptions:
    """Each field is one command-line option (bench.cli): its type, default and help are declared here only."""

    dataset: str = option("builtin", "dataset name (see `list`) or a folder of images whose subfolders are categories")
    images: tuple[str, ...] = option((), "comma-separated image names: only these images of the dataset (default: "
                                     "all); the cells are the ones a run over the whole dataset makes, so a later "
                                     "full run into the same folder resumes them")
    methods: tuple[str, ...] = option((), "comma-separated method names (default: the profile's defaults)")
    scales: tuple[int, ...] = option((), "comma-separated integer scales (default: the dataset's)")
    protocol: str = option("rgb", "rgb: methods upscale RGB, evaluated on Y; y-only: the classic bicubic-table "
                           "protocol", choices=("rgb", "y-only"))
    profile: str = option("auto", "paper: published configurations; quick: reduced ZSSR for CPUs; auto: paper on "
                          "GPU, quick on CPU", choices=("auto", "quick", "paper"))
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    out: Path | None = option(None, "output folder (default reports/<dataset>/<profile>-<protocol>)")
    resume: bool = option(True, "start over instead of resuming the output folder (the previous results.csv and "
                          "superseded.csv are moved aside with a timestamp)", flag="--no-resume")
    seed: int = option(0, "the run's seed, from which every cell's own is derived")
    metrics: tuple[str, ...] = option(DEFAULT_METRICS, "comma-separated quality metrics; added to a finished "
                                      "folder, only they are computed")
    executor: str = option("local", "local (default), local-gpus or ray")
    workers: int | None = option(None, "worker count for multi-worker executors")
    save_images: bool = option(True, "do not save SR outputs (reports then have no crops)", flag="--no-images")
    # bench.degradations specs; the plan runs once per degradation
    degradations: tuple[str, ...] = option(("bicubic",), "comma-separated degradations, each steps joined with + "
                                           "(bicubic, aniso-gaussian, realistic, kernel:<file.mat>, gauss-{var,sigma}-{direct,bicubic}:<v>, noise[:sigma], "
                                           "jpeg[:quality]; none: the images are the LR inputs as they are, real photos without an HR "
                                           "original); the plan runs once per degradation",
                                           flag="--degradation")
    kernel: str | None = option(None, "a .mat blur kernel (variable `Kernel`): the degradation kernel:<file>, "
                                "replacing bicubic")
    # for every network (zssr.precision)
    precision: str = option("auto", "network precision: auto = bf16 where the hardware has native bf16 units "
                            "(ZSSR always, pretrained networks measured safe in bf16), else fp32; fp16 is CUDA only",
                            choices=PRECISIONS)
    time_budget: float | None = option(None, "start no cell after this many seconds (local executor); the same "
                                       "command resumes", metavar="SECONDS")
    wait: bool = option(True, "stop (instead of waiting) when another run is writing the same output folder",
                        flag="--no-wait")
    batch: str = option("auto", "train up to K cells of one ZSSR method together (an integer, or auto: 1 on a CPU, "
                        "memory-bounded on CUDA); does not change a cell's identity")
    force_out: bool = option(False, "write into an --out folder that is not empty and is not a run folder of this "
                             "suite (refused otherwise)")

    def __post_init__(self) -> None:
        # a request naming a scale, method or metric twice means it once
        for name in ("images", "methods", "scales", "metrics", "degradations"):
            object.__setattr__(self, name, tuple(dict.fromkeys(getattr(self, name))))
        self.validate()

    def validate(self) -> None:
        """What can be checked without resolving anything: ValueError naming the option and what to give."""
        if self.time_budget is not None and not (isinstance(self.time_budget, (int, float))
                                                 and math.isfinite(self.time_budget)):
            raise ValueError(f"time budget {self.time_budget!r}: give a finite number of seconds")
        if self.out is not None:
            text = str(self.out)
            if not text.strip():
                raise ValueError("--out is empty; give a folder for the run's results (or leave --out out for "
                                 "reports/<dataset>/<profile>-<protocol>)")
            path = Path(text).expanduser()
            if path.resolve() == Path(path.resolve().anchor):
                raise ValueError(f"--out {text}: the file system's root cannot be a run folder; give a folder "
                                 "of its own")

    def degradation_specs(self) -> tuple[str, ...]:
        specs = list(self.degradations) or ["bicubic"]
        if self.kernel:
            specs = [f"kernel:{self.kernel}"] + [s for s in specs if s != "bicubic"]
        return tuple(dict.fromkeys(specs))

    def replace(self, **changes) -> "RunOptions":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v) for f in fields(self)}
