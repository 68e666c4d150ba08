"""Restart a network that is stuck: a fixed-schedule run can leave it dead (every ReLU of a layer off everywhere,
so the output is the interpolated input and no gradient moves it again); the original's adaptive policy never
showed this, zssr-fast's He init at its peak rate did (1 image of 19 on Set5 + Set14 x2).

Measured on zssr-fast's curves (Set5 + Set14 x2, seed 0): the reconstruction error at iterations 100-200 is at
most 0.905 of its first measurement on every live run and 0.99-1.00 on the dead one (foreman); hence the 0.97.
"""
from __future__ import annotations

import torch

STUCK_REC_RATIO = 0.97


class StuckWatch:
    """Fed every reconstruction-error measurement of one scale step; `stuck` answers True (once) when the first
    measurement at or after restart_if_stuck x max_iters is above STUCK_REC_RATIO x the step's first one."""

    def __init__(self, restart_if_stuck: float, max_iters: int, enabled: bool = True) -> None:
        self.at = int(restart_if_stuck * max_iters)
        self.active = enabled and restart_if_stuck > 0
        self.first: torch.Tensor | float | None = None
        self.ratio: float | None = None

    def stuck(self, iteration: int, rec: torch.Tensor | float) -> bool:
        if not self.active:
            return False
        if self.first is None:
            self.first = rec
            return False
        if iteration < self.at:
            return False
        self.active = False  # one decision per step (a device sync, once)
        self.ratio = float(rec) / max(float(self.first), 1e-12)
        return self.ratio > STUCK_REC_RATIO

    def restart_entry(self, step: int, iterations: int) -> dict:
        """What stats["restarts"] records of the restart this watch decided (the trainers add it, then start over)."""
        return dict(step=step, iteration=iterations, rec_ratio=self.ratio)


__all__ = ["StuckWatch", "STUCK_REC_RATIO"]
