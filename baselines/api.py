"""The small fixed interface every super-resolution method implements."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from zssr.precision import check_precision


@dataclass(frozen=True)
class MethodInfo:
    """What a report needs to say about a method, beside its numbers."""

    family: str  # "interpolation" | "internal" (trained on the test image) | "external" (pretrained)
    training_data: str  # e.g. "none", "the test image itself", "DF2K (bicubic x4)"
    degradation: str  # the degradation the method assumes, e.g. "bicubic", "real-world synthetic"
    licence: str = "n/a"
    parameters: int | None = None
    paper: str = ""
    notes: str = ""


@dataclass(frozen=True)
class Request:
    """One cell for a method: the LR image (N x 3 x H x W on the method's device), the scale, the cell's seed,
    what the method is told of the cell's degradation (only the keys it names in `told`: "kernel", "noise"; with a
    kernel applied on another grid than ZSSR's, also "grid": "direct" or "bicubic", see zssr.kernels.GRIDS) and the
    further seeds it names in `named_seeds` (e.g. a KernelGAN seed shared with other methods)."""

    lr: torch.Tensor
    scale: int
    seed: int = 0
    told: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)


@dataclass
class Result:
    """What a method made of one request: the SR image and its stats (see Method.run)."""

    sr: torch.Tensor
    stats: dict[str, Any] = field(default_factory=dict)


class MethodUnavailable(RuntimeError):
    """The method cannot run here (weights missing, dependency absent); the message says why and what to do."""


class Method:
    """Base class. Subclasses set `name`, `info`, `scales` and implement `upscale(lr, scale)`, or `run(requests)`
    where cells are better computed together.

    `run` is the one call the harness makes: a list of requests (a single cell is a list of one) in, per request a
    Result or the exception that request raised out. The default runs the requests one after the other through
    `upscale`, calling the optional hooks `set_seed` and `set_degradation` before each, so a plugin that only
    implements `upscale(lr, scale)` works as it is.

    Images are float tensors N x 3 x H x W in [0, 1] on the method's device. ZSSR trains inside the call, so its time
    includes training; it reports the training share in its stats' "seconds-train".
    """

    name: str = ""
    # bump when a change to the method changes its numbers: it is part of every cell's identity, so the cells
    # computed before are then computed again instead of being reused
    version: str = "1"
    info: MethodInfo = MethodInfo(family="interpolation", training_data="none", degradation="none")
    scales: tuple[int, ...] | None = None  # None: any integer scale >= 2
    # What a non-blind method is told of each cell's true degradation ("kernel", "noise"), in each Request's `told`;
    # blind methods (the default) see the LR image only.
    told: tuple[str, ...] = ()
    # Further per-cell seeds, by name: each drawn as the cell seed of the method named (bench.session.cell_seed), so
    # that methods sharing a computation (a KernelGAN estimate) draw it with the same seed; in each Request's `seeds`
    named_seeds: dict[str, str] = {}
    # True: run() computes several cells in one call faster than one by one (the harness's BATCH groups cells for it)
    batchable: bool = False

    def __init__(self, profile: str = "paper", precision: str = "auto") -> None:
        # "paper": the published configuration; "quick": a cheaper one for CPUs (labelled as such in reports)
        self.profile = profile
        # the requested precision ("auto", "fp32", "bf16", "fp16"); `precision` is the one in force once
        # choose_precision(device) resolved it, None for methods that run no network
        self.precision_request = check_precision(precision)
        self.precision: str | None = None
        self.device = torch.device("cpu")
        # the stats of the last upscale() (methods written against upscale report through it; run() returns them)
        self.last_stats: dict[str, Any] = {}
        # why the method cannot run here, when prepare() found out (the harness records its cells as unavailable)
        self.unavailable: str | None = None
        # Set by the harness for methods that train at test time: called with the iteration number.
        self.on_progress: Callable[[int], None] | None = None

    def supports(self, scale: int) -> bool:
        return self.scales is None or scale in self.scales

    def native_scale(self, scale: int) -> bool:
        """False when the output is produced at another scale and resized (such rows are labelled)."""
        return True

    def choose_precision(self, device: torch.device) -> str | None:
        """Resolve the requested precision for `device` and return it (None: no network, precision does not apply).
        The harness calls this before config(), so that the precision in force is part of the cell's identity."""
        return None

    def prepare(self) -> None:
        """Resolve everything that decides the method's numbers without touching a device (fetch and verify weight
        files), so that config() is complete: the harness calls it before reading config() for the cells'
        identity. Raise MethodUnavailable when impossible (setup() will then raise it for every cell)."""

    def setup(self, device: torch.device) -> None:
        """Load weights and move to `device`; timed as the load phase. Raise MethodUnavailable if impossible."""
        self.device = device

    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__}: implement upscale(lr, scale) or run(requests)")

    def run(self, requests: list[Request]) -> list[Result | Exception]:
        """Per request, its Result or the exception it raised (one failing request does not stop the others).

        Stats a method may report (all optional): "seconds-train" (the part of the time spent training),
        "iterations", "restarts" (a list), "curve" (rows of a training curve), "seconds-kernel" and "kernel" (a
        blind kernel estimate), "kernel-reused", "kernel-decision" (what a blind method did with its estimate) and
        "notes" (a statistic's name -> the text its row's note carries, e.g. the decision's reason). When a call
        holds several requests each one's stats carry "seconds-total", its share of the call's time; for a call of
        one the harness's clock is the cell's time. This default runs the requests one after the other through
        upscale(), each timed alone."""
        results: list[Result | Exception] = []
        for req in requests:
            try:
                self.set_seed(req.seed)
                if self.told:
                    self.set_degradation(**req.told)
                self.last_stats = {}
                start = time.perf_counter()
                sr = self.upscale(req.lr, req.scale)
                _synchronize(self.device)
                stats = dict(self.last_stats)
                stats.setdefault("seconds-total", time.perf_counter() - start)
                results.append(Result(sr, stats))
            except Exception as exc:  # this request only
                results.append(exc)
        return results

    def config(self) -> dict[str, Any]:
        """The full configuration after prepare(), written to run.json and hashed into each cell's identity (must
        be JSON-serialisable; weight files by their verified content checksum)."""
        return {}

    # Optional hooks of methods written against upscale(): the default run() calls them before each request.
    def set_degradation(self, kernel=None, noise=None) -> None:
        """For methods with `told`: the cell's true blur kernel (None: bicubic) and noise sigma in grey levels
        (None: no noise)."""

    def set_seed(self, seed: int) -> None:
        """The cell's seed, so that a cell's result does not depend on what ran before."""


def _synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it measures the work (CUDA runs async)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class MethodSpec:
    """A registered method name with the settings it was made from (profile-dependent)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
