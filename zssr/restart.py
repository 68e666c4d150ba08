"""Train a dead network again. Dead: every ReLU of a layer off everywhere, so the output is the interpolated input
and no gradient moves it again. Two places it happens, two remedies:

- StuckWatch (restart_if_stuck): zssr-fast's He init at its peak rate killed 1 network of 19 on Set5 + Set14 x2
  within its first quarter; the step starts again from fresh weights.
- DeadStepGuard (retry_dead_steps): the gradual increments of the released algorithm, where the trained network
  meets the rate's jump back to 1e-3 (Set5 bird x2); the increment is trained again from its starting weights.

Measured on zssr-fast's curves (Set5 + Set14 x2, seed 0): the reconstruction error at iterations 100-200 is at
most 0.905 of its first measurement on every live run and 0.99-1.00 on the dead one (foreman); hence STUCK_REC_RATIO.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

STUCK_REC_RATIO = 0.97
# A step whose final reconstruction error is above this fraction of the interpolation's own has learned nothing
# (a dead network outputs the interpolation, plus a constant where the layers have biases).
DEAD_REC_RATIO = 0.97
# The retry's rate is warmed up over this fraction of max_iters (200 of the paper's 3000 iterations).
RETRY_WARMUP_FRACTION = 1 / 15


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
        return dict(step=step, kind="stuck", iteration=iterations, rec_ratio=self.ratio)


class DeadStepGuard:
    """Retry a scale step that ended dead, from the weights it started with.

    In a gradual run the same network and Adam state go on from one increment to the next, as in the released code;
    the rate jumps from 1e-5 back to 1e-3 while Adam's second moments still average the converged phase's tiny
    gradients, and on Set5 bird x2 (the harness seed, fp32 as bf16) the last hidden layer's ReLUs all went off within
    50 iterations of the second increment: 2.9 dB lost. The guard keeps the step's starting weights; a step that ends
    above DEAD_REC_RATIO x the interpolation's reconstruction error is trained once more from them with a fresh
    optimizer and its rate warmed up over RETRY_WARMUP_FRACTION of max_iters, and whichever attempt ends with the
    lower error is kept (weights and optimizer state; the step's curve is the retry's). Bird's second increment,
    500 iterations from the same weights and crops: carried-over Adam dead (last hidden layer 0 % alive), a fresh
    Adam at 1e-3 barely alive (11 %, and dead again in the harness with the next crops), fresh Adam with the warm-up
    92 % alive and the lowest error. A run where no step dies is unchanged bit for bit."""

    def __init__(self, enabled: bool, weights: dict[str, torch.Tensor], step: int) -> None:
        self.start = copy.deepcopy(weights) if enabled else None
        self.step = step
        self.first: tuple[dict, Any, float] | None = None  # the dead attempt: weights, optimizer state, final error
        self.entry: dict[str, Any] | None = None

    @property
    def watching(self) -> bool:
        """Whether the attempt now ending is a first attempt this guard may retry."""
        return self.start is not None and self.first is None

    def dead(self, final_rec: float | None, interp_rec: float) -> bool:
        """True (once per step) when the attempt that just ended should be retried."""
        if not self.watching or final_rec is None:
            return False
        ratio = final_rec / max(interp_rec, 1e-12)
        if ratio <= DEAD_REC_RATIO:
            return False
        self.entry = dict(step=self.step, kind="dead", rec_ratio=ratio, rec_error=final_rec)
        return True

    @staticmethod
    def warmup_iters(max_iters: int) -> int:
        return max(1, round(RETRY_WARMUP_FRACTION * max_iters))

    def hold(self, weights: dict[str, torch.Tensor], opt_state: Any, final_rec: float, iterations: int) -> dict:
        """Keep the dead attempt (in case the retry does no better); returns the weights to retry from."""
        self.first = (copy.deepcopy(weights), copy.deepcopy(opt_state), final_rec)
        self.entry["iteration"] = iterations
        return self.start

    def settle(self, final_rec: float | None) -> tuple[dict, Any] | None:
        """After the retry: None to keep it, else the first attempt's (weights, optimizer state) to restore."""
        if self.first is None:
            return None
        weights, opt_state, first_rec = self.first
        keep_first = final_rec is None or first_rec <= final_rec
        self.entry.update(kept="first" if keep_first else "retry", retry_rec_error=final_rec)
        self.first = None
        self.start = None
        return (weights, opt_state) if keep_first else None


__all__ = ["StuckWatch", "STUCK_REC_RATIO", "DeadStepGuard", "DEAD_REC_RATIO", "RETRY_WARMUP_FRACTION"]
