"""Learning-rate policies: the original ZSSR's adaptive rule, and fixed warm-up schedules (the "modified" ZSSR).

The reconstruction error (MSE between the input and the network's reconstruction of it from its own downscaled
version) is measured every `run_test_every` iterations. When (iteration + 1) % lr_check_every == 0 and more than
`min_iters` iterations passed since the last change, a line is fitted to the last lr_slope_range // run_test_every
measurements; if -lr_change_ratio * slope < std(slope) (the error no longer falls clearly), the rate is divided by
lr_decay_factor. Training stops once the rate is below min_learning_rate.

Measurements are kept as (device) tensors; they are read back to the host only when the policy is evaluated.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from zssr.config import ZSSRConfig


def slope_and_std(steps: Sequence[float], values: Sequence[float], dof: int = 4) -> tuple[float, float]:
    """Least-squares line through (steps, values): its slope and the slope's standard deviation.

    The covariance is scaled by residuals / (n - dof): dof=4 is numpy.polyfit(cov=True) before numpy 1.16 (what the
    original ran with), dof=2 is numpy >= 1.16. The denominator is kept >= 1.
    """
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise ValueError("need at least two measurements to fit a slope")
    a = np.stack([x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = float(np.sum((a @ coef - y) ** 2))
    unscaled = np.linalg.inv(a.T @ a)
    var = unscaled[0, 0] * resid / max(x.size - dof, 1)
    return float(coef[0]), float(np.sqrt(max(var, 0.0)))


class OriginalLRPolicy:
    def __init__(self, cfg: ZSSRConfig) -> None:
        self.cfg = cfg
        self.lr = cfg.learning_rate
        self.change_iters: list[int] = [0]
        self.steps: list[int] = []
        self.errors: list[torch.Tensor | float] = []
        self.fits: list[dict] = []  # (iteration, slope, std, changed) of every evaluation

    def should_measure(self, iteration: int) -> bool:
        return iteration % self.cfg.run_test_every == 0

    def record(self, iteration: int, rec_error: torch.Tensor | float) -> None:
        self.steps.append(iteration)
        self.errors.append(rec_error.detach() if isinstance(rec_error, torch.Tensor) else float(rec_error))

    def due(self, iteration: int) -> bool:
        cfg = self.cfg
        return ((iteration + 1) % cfg.lr_check_every == 0
                and iteration - self.change_iters[-1] > cfg.min_iters
                and len(self.errors) >= 2)

    def update(self, iteration: int) -> bool:
        """Evaluate the policy after `iteration`; True when the rate changed. Syncs only when it is due."""
        if not self.due(iteration):
            return False
        n = self.cfg.measurements_per_fit
        values = [float(v) for v in self.errors[-n:]]  # the only host sync of the loop
        slope, std = slope_and_std(self.steps[-n:], values, self.cfg.lr_fit_dof)
        changed = -self.cfg.lr_change_ratio * slope < std
        if changed:
            self.lr /= self.cfg.lr_decay_factor
            self.change_iters.append(iteration)
        self.fits.append(dict(iteration=iteration, slope=slope, std=std, changed=changed, lr=self.lr))
        return changed

    @property
    def finished(self) -> bool:
        return self.lr < self.cfg.min_learning_rate


def scheduled_lr(cfg: ZSSRConfig, iteration: int) -> float:
    """The rate for `iteration` (0-based) of a fixed schedule ("warmup-cosine" or "warmup-step")."""
    total = cfg.max_iters
    peak = cfg.learning_rate
    warmup = int(round(cfg.lr_warmup_fraction * total))
    if iteration < warmup:
        return peak * (iteration + 1) / (warmup + 1)
    if cfg.lr_schedule == "warmup-cosine":
        span = max(total - 1 - warmup, 1)
        t = min(max(iteration - warmup, 0) / span, 1.0)
        floor = cfg.lr_final_fraction
        return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))
    if cfg.lr_schedule == "warmup-step":
        drops = sum(iteration >= int(round(m * total)) for m in cfg.lr_step_milestones)
        return peak / cfg.lr_decay_factor ** drops
    raise NotImplementedError(f"lr_schedule {cfg.lr_schedule!r} is not a fixed schedule")


class ScheduledLR:
    """A fixed schedule with the policy's interface: `lr` is the rate of the next iteration, `update(it)` moves it
    on (always True, so the trainer writes it into the optimizer), and training runs all max_iters. The
    reconstruction error is still measured (for the curve), never used."""

    def __init__(self, cfg: ZSSRConfig) -> None:
        self.cfg = cfg
        self.lr = scheduled_lr(cfg, 0)
        self.change_iters: list[int] = [0]
        self.steps: list[int] = []
        self.errors: list[torch.Tensor | float] = []
        self.fits: list[dict] = []

    def should_measure(self, iteration: int) -> bool:
        return iteration % self.cfg.run_test_every == 0

    def record(self, iteration: int, rec_error: torch.Tensor | float) -> None:
        self.steps.append(iteration)
        self.errors.append(rec_error.detach() if isinstance(rec_error, torch.Tensor) else float(rec_error))

    def update(self, iteration: int) -> bool:
        self.lr = scheduled_lr(self.cfg, iteration + 1)
        return True

    @property
    def finished(self) -> bool:
        return False


class WarmedUp:
    """Another policy with its rate ramped linearly from 1/(iters+1) of it to all of it over the first `iters`
    iterations (the dead-step retry's: zssr/restart.py). The wrapped policy decides, measures and stops as before."""

    def __init__(self, policy: OriginalLRPolicy | ScheduledLR, iters: int) -> None:
        self.policy, self.iters, self.done_iters = policy, iters, 0

    @property
    def lr(self) -> float:
        return self.policy.lr * min(1.0, (self.done_iters + 1) / (self.iters + 1))

    def should_measure(self, iteration: int) -> bool:
        return self.policy.should_measure(iteration)

    def record(self, iteration: int, rec_error: torch.Tensor | float) -> None:
        self.policy.record(iteration, rec_error)

    def update(self, iteration: int) -> bool:
        changed = self.policy.update(iteration)
        self.done_iters = iteration + 1
        return changed or self.done_iters <= self.iters

    @property
    def finished(self) -> bool:
        return self.policy.finished

    @property
    def change_iters(self) -> list[int]:
        return self.policy.change_iters

    @property
    def fits(self) -> list[dict]:
        return self.policy.fits


def make_policy(cfg: ZSSRConfig, warmup_iters: int = 0) -> OriginalLRPolicy | ScheduledLR | WarmedUp:
    if cfg.lr_schedule == "original-policy":
        policy: OriginalLRPolicy | ScheduledLR = OriginalLRPolicy(cfg)
    elif cfg.lr_schedule in ("warmup-cosine", "warmup-step"):
        policy = ScheduledLR(cfg)
    else:
        raise NotImplementedError(f"lr_schedule {cfg.lr_schedule!r} is not implemented")
    return WarmedUp(policy, warmup_iters) if warmup_iters > 0 else policy


__all__ = ["OriginalLRPolicy", "ScheduledLR", "WarmedUp", "make_policy", "scheduled_lr", "slope_and_std"]
