"""The small fixed interface every super-resolution method implements."""
from __future__ import annotations

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


@dataclass
class BatchRequest:
    """One cell of a batched call: the LR image (1 x 3 x H x W on the method's device), the scale, the cell's seed
    and what the method is told of the cell's degradation (the keyword arguments of set_degradation)."""

    lr: torch.Tensor
    scale: int
    seed: int
    told: dict[str, Any] = field(default_factory=dict)


class MethodUnavailable(RuntimeError):
    """The method cannot run here (weights missing, dependency absent); the message says why and what to do."""


class Method:
    """Base class. Subclasses set `name`, `info`, `scales` and implement `upscale`.

    Images are float tensors N x 3 x H x W in [0, 1] on the method's device. ZSSR trains inside `upscale`,
    so its time includes training; it reports the training share in `last_stats["seconds-train"]`.
    """

    name: str = ""
    # bump when a change to the method changes its numbers: it is part of every cell's identity, so the cells
    # computed before are then computed again instead of being reused
    version: str = "1"
    info: MethodInfo = MethodInfo(family="interpolation", training_data="none", degradation="none")
    scales: tuple[int, ...] | None = None  # None: any integer scale >= 2
    # What a non-blind method is told of each cell's true degradation ("kernel", "noise"), through
    # set_degradation() before every upscale; blind methods (the default) see the LR image only.
    told: tuple[str, ...] = ()
    # True: upscale_batch computes several cells in one call (the harness's BATCH groups cells for it)
    batchable: bool = False

    def __init__(self, profile: str = "paper", precision: str = "auto") -> None:
        # "paper": the published configuration; "quick": a cheaper one for CPUs (labelled as such in reports)
        self.profile = profile
        # the requested precision ("auto", "fp32", "bf16", "fp16"); `precision` is the one in force once
        # choose_precision(device) resolved it, None for methods that run no network
        self.precision_request = check_precision(precision)
        self.precision: str | None = None
        self.device = torch.device("cpu")
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
        raise NotImplementedError

    def upscale_batch(self, requests: list[BatchRequest]) -> list[tuple[torch.Tensor, dict[str, Any]] | Exception]:
        """Several cells in one call: per request (output, stats as last_stats) or the exception it raised. Stats
        of a batched cell carry "seconds-total" (its share of the call), "batch-size" and "seconds-batch". This
        default runs them one after the other."""
        results: list[tuple[torch.Tensor, dict[str, Any]] | Exception] = []
        for req in requests:
            try:
                self.set_seed(req.seed)
                if self.told:
                    self.set_degradation(**req.told)
                self.last_stats = {}
                sr = self.upscale(req.lr, req.scale)
                results.append((sr, dict(self.last_stats)))
            except Exception as exc:
                results.append(exc)
        return results

    def config(self) -> dict[str, Any]:
        """The full configuration after prepare(), written to run.json and hashed into each cell's identity (must
        be JSON-serialisable; weight files by their verified content checksum)."""
        return {}

    def set_degradation(self, kernel=None, noise=None) -> None:
        """For methods with `told`: the cell's true blur kernel (None: bicubic) and noise sigma in grey levels
        (None: no noise)."""

    def set_seed(self, seed: int) -> None:
        """Called before every cell so that a cell's result does not depend on what ran before."""


@dataclass
class MethodSpec:
    """A registered method name with the settings it was made from (profile-dependent)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
