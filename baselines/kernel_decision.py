"""What a blind ZSSR cell trains with, decided from KernelGAN's estimates: use, (re-estimate,) or bicubic.

    decision = decide(seed, estimate, limits, n_filtering)  # estimate(seed): a kernel_estimates.SharedEstimate

1. KernelGAN's estimate with the cell's KernelGAN seed passes every check of zssr.kernel_checks: "use" it.
2. It fails: "bicubic": ZSSR runs as the preset without a kernel source (zssr-original for zssr-kernelgan), with
   the same random numbers, so a rejected estimate costs nothing against not estimating at all.
   With re_estimates=1 (policy 1, and an option) KernelGAN first runs once more with another seed (retry_seed) and
   a passing second estimate is used ("re-estimate"). Policy 2 (the default, RE_ESTIMATES) does not: an image on
   which KernelGAN's first run ends on a kernel no camera makes is one whose statistics do not pin the kernel down,
   and a second run that happens to end on a plausible shape is no evidence that it is right. Measured (issue 40,
   docs/experiments/2026-12-06-blind-kernel-decision.md): the one re-estimate among six tuning crops passed every
   check with the wrong orientation and cost 2.0 dB against bicubic (4.7 dB at the paper schedule).

The reason (what failed, or what passed) travels with the decision: the harness records it as the cell's
kernel-decision row (its value the code in DECISION_CODES, the reason in the note) and the reports show it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from zssr.kernel_checks import KernelLimits, check_kernel

# the value of a cell's kernel-decision row
DECISION_CODES: dict[str, int] = {"use": 0, "re-estimate": 1, "bicubic": 2}
# bump when what decide() does changes (a decision cached by an older policy is then made again, not reused);
# 2: no re-estimate by default
POLICY_VERSION = 2
# how many more KernelGAN seeds a rejected estimate gets before the cell falls back to bicubic (see the docstring)
RE_ESTIMATES = 0


@dataclass(frozen=True)
class KernelDecision:
    decision: str  # a key of DECISION_CODES
    reason: str
    kernel_x2: np.ndarray | None  # what ZSSR trains with (None: bicubic, the preset as it is)
    shown_x2: np.ndarray  # the last estimate looked at: the used one, or the second rejected one (reports show it)
    seeds: tuple[int, ...]  # the KernelGAN seeds that ran (or were reused), in order
    seconds: float  # KernelGAN's seconds for all of them: what the decision cost
    reused: bool  # True when none of its KernelGAN runs was computed for this caller

    @property
    def code(self) -> int:
        return DECISION_CODES[self.decision]

    def to_json(self) -> dict[str, Any]:
        return {"decision": self.decision, "reason": self.reason, "seeds": list(self.seeds), "seconds": self.seconds,
                "kernel_x2": None if self.kernel_x2 is None else self.kernel_x2.tolist(),
                "shown_x2": self.shown_x2.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any], reused: bool) -> "KernelDecision":
        if data["decision"] not in DECISION_CODES:
            raise ValueError(f"unknown kernel decision {data['decision']!r}")
        kernel = data["kernel_x2"]
        return cls(decision=data["decision"], reason=str(data["reason"]),
                   kernel_x2=None if kernel is None else np.asarray(kernel, dtype=np.float64),
                   shown_x2=np.asarray(data["shown_x2"], dtype=np.float64), seeds=tuple(int(s) for s in data["seeds"]),
                   seconds=float(data["seconds"]), reused=reused)


def retry_seed(seed: int) -> int:
    """The seed of the one re-estimate: another seed, derived from the first so that a cell's decision is repeatable
    (KernelGAN draws its crops and weights from it; neighbouring seeds give unrelated draws)."""
    return int(seed) + 1


def decide(seed: int, estimate: Callable[[int], Any], limits: KernelLimits, n_filtering: int,
           re_estimates: int = RE_ESTIMATES) -> KernelDecision:
    """Use, re-estimate (when re_estimates is 1) or fall back (see the module's docstring). `estimate(seed)` returns
    an object with kernel_x2, raw_kernel, seconds and reused (baselines.kernel_estimates.SharedEstimate); the checks
    look at the raw kernel as KernelGAN's post-processing keeps it, before re-centring (zssr.kernelgan.kept_kernel)."""
    from zssr.kernelgan import kept_kernel

    if re_estimates not in (0, 1):
        raise ValueError(f"re_estimates must be 0 or 1 (one retry seed), got {re_estimates}")
    seeds, seconds, reused, rejected = [], 0.0, True, []
    for s in (int(seed), retry_seed(seed))[:1 + re_estimates]:
        est = estimate(s)
        seeds.append(s)
        seconds += float(est.seconds)
        reused = reused and bool(est.reused)
        verdict = check_kernel(kept_kernel(est.raw_kernel, n_filtering), limits)
        if verdict.ok:
            decision = "use" if not rejected else "re-estimate"
            reason = "; ".join(rejected + [f"seed {s} passed: {verdict.summary()}"])
            return KernelDecision(decision, reason, est.kernel_x2, est.kernel_x2, tuple(seeds), seconds, reused)
        rejected.append(f"seed {s} rejected: {verdict.summary()}")
    reason = "; ".join(rejected + ["ZSSR assumes bicubic (the preset without a kernel source)"])
    return KernelDecision("bicubic", reason, None, est.kernel_x2, tuple(seeds), seconds, reused)


__all__ = ["DECISION_CODES", "POLICY_VERSION", "RE_ESTIMATES", "KernelDecision", "decide", "retry_seed"]
