"""What a user asks of a run (the command line's options), before anything is resolved."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from bench.metrics import DEFAULT_METRICS

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


@dataclass(frozen=True)
class RunOptions:
    dataset: str = "builtin"
    images: tuple[str, ...] = ()  # only these images of the dataset (by name); empty: all
    methods: tuple[str, ...] = ()
    scales: tuple[int, ...] = ()
    protocol: str = "rgb"  # "rgb" | "y-only"
    profile: str = "auto"  # "auto" | "quick" | "paper"
    device: str = "auto"
    out: Path | None = None
    resume: bool = True
    seed: int = 0
    metrics: tuple[str, ...] = DEFAULT_METRICS
    executor: str = "local"
    workers: int | None = None
    save_images: bool = True
    degradations: tuple[str, ...] = ("bicubic",)  # bench.degradations specs; the plan runs once per degradation
    kernel: str | None = None  # a .mat blur kernel: shorthand for the degradation kernel:<file> (replaces bicubic)
    precision: str = "auto"  # "auto" | "fp32" | "bf16" | "fp16" (CUDA) for every network (zssr.precision)
    time_budget: float | None = None  # seconds: no cell starts after this long (local executor); resume continues
    wait: bool = True  # another run holds the output folder: wait for it (False: stop with a message)
    # cells of one batchable method (ZSSR) trained together, up to this many: "auto" or an integer >= 1
    batch: str = "auto"
    # write into an --out folder that exists, is not empty and is not a run folder of this suite (else refused)
    force_out: bool = False

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
