"""How a requested scale is reached: the scale steps, the passes and the base changes, as one value.

ZSSRConfig states the choice in flat fields (they are part of every stored cell's identity, so they stay as they
are): one jump to the target by default, or exactly one of scale_factors, gradual_increments (with
gradual_reference_scale), pass_factor, pass_factors; plus base_change_sfs. `ScaleSchedule` reads them as one value
with a `kind` (`ZSSRConfig.scale_schedule`), computes the steps for a target scale, and writes them back as fields for
the presets:

    ScaleSchedule.gradual(PAPER_GRADUAL_X2).fields()  ->  {"gradual_increments": ..., "gradual_reference_scale": 2.0}
    ScaleSchedule.passes(2.0).fields()                ->  {"pass_factor": 2.0}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Pair = tuple[float, float]

# The paper's six gradual increments for a x2 target and their back-projection iteration counts.
PAPER_GRADUAL_X2: tuple[Pair, ...] = ((1.0, 1.5), (1.5, 1.0), (1.5, 1.5), (1.5, 2.0), (2.0, 1.5), (2.0, 2.0))
PAPER_GRADUAL_X2_BP: tuple[int, ...] = (6, 6, 8, 10, 10, 12)
KINDS = ("jump", "steps", "gradual", "passes")


def pair(value: Any) -> Pair:
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    sy, sx = value
    return (float(sy), float(sx))


def _close(a: Pair, b: Pair, tol: float = 1e-6) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


@dataclass(frozen=True)
class ScaleSchedule:
    """One way to reach the target (sy, sx):

    - "jump": one step to the target;
    - "steps": explicit absolute steps (sy, sx) w.r.t. the input, the last one the target (`factors`);
    - "gradual": increments written for a target of `reference_scale` (the paper's are for x2), each multiplied by
      target / reference_scale (`factors`);
    - "passes" ("gradual SR"): each pass's output is the next pass's input; passes of `pass_factor` (x8 = x2, x2, x2;
      a remainder pass ends it, x6 = x2, x2, x1.5), or explicit relative factors (`factors`) whose product is the
      target. Every pass but the last ends in a base change.
    base_changes (not for passes): absolute steps after which the output becomes the new input."""

    kind: str = "jump"
    factors: tuple[Pair, ...] = ()
    pass_factor: float = 0.0
    reference_scale: float = 2.0
    base_changes: tuple[Pair, ...] = ()

    # --- the ways to state one -----------------------------------------------------------------------------------
    @classmethod
    def steps(cls, factors, base_changes=()) -> "ScaleSchedule":
        return cls("steps", tuple(pair(f) for f in factors), base_changes=tuple(pair(b) for b in base_changes))

    @classmethod
    def gradual(cls, increments, reference_scale: float = 2.0, base_changes=()) -> "ScaleSchedule":
        return cls("gradual", tuple(pair(f) for f in increments), reference_scale=float(reference_scale),
                   base_changes=tuple(pair(b) for b in base_changes))

    @classmethod
    def passes(cls, factor: float = 0.0, factors=()) -> "ScaleSchedule":
        return cls("passes", tuple(pair(f) for f in factors), pass_factor=float(factor))

    # --- as ZSSRConfig fields ------------------------------------------------------------------------------------
    @classmethod
    def of(cls, cfg: Any) -> "ScaleSchedule":
        """The schedule a ZSSRConfig states (which check_fields has found consistent)."""
        if cfg.pass_factor or cfg.pass_factors:
            return cls.passes(cfg.pass_factor, cfg.pass_factors)
        if cfg.scale_factors:
            return cls.steps(cfg.scale_factors, cfg.base_change_sfs)
        if cfg.gradual_increments:
            return cls.gradual(cfg.gradual_increments, cfg.gradual_reference_scale, cfg.base_change_sfs)
        return cls(base_changes=tuple(cfg.base_change_sfs))

    def fields(self) -> dict[str, Any]:
        """The ZSSRConfig fields that state this schedule (the others keep their defaults)."""
        out: dict[str, Any] = {"base_change_sfs": self.base_changes} if self.base_changes else {}
        if self.kind == "steps":
            out["scale_factors"] = self.factors
        elif self.kind == "gradual":
            out.update(gradual_increments=self.factors, gradual_reference_scale=self.reference_scale)
        elif self.kind == "passes":
            out.update({"pass_factors": self.factors} if self.factors else {"pass_factor": self.pass_factor})
        return out

    @staticmethod
    def check_fields(cfg: Any) -> list[str]:
        """What is wrong with a ZSSRConfig's scale fields (an empty list: nothing)."""
        problems = []
        n_ways = sum(bool(v) for v in (cfg.scale_factors, cfg.gradual_increments, cfg.pass_factor or cfg.pass_factors))
        if cfg.pass_factor and cfg.pass_factors:
            problems.append("set either pass_factor or pass_factors, not both")
        elif cfg.pass_factor and cfg.pass_factor <= 1.0:
            problems.append("pass_factor must be > 1")
        elif n_ways > 1:
            problems.append("scale_factors, gradual_increments and passes (pass_factor/pass_factors) are exclusive")
        if (cfg.pass_factor or cfg.pass_factors) and cfg.base_change_sfs:
            problems.append("passes set their own base changes; leave base_change_sfs empty")
        return problems

    # --- for a target scale --------------------------------------------------------------------------------------
    def passes_for(self, scale: float | Pair) -> list[Pair]:
        """The relative (sy, sx) factor of every pass (one pass, the target, when passes are off)."""
        target = pair(scale)
        if self.kind != "passes":
            return [target]
        if self.factors:
            prod = (math.prod(p[0] for p in self.factors), math.prod(p[1] for p in self.factors))
            if not _close(prod, target):
                raise ValueError(f"pass_factors {self.factors} multiply to {prod}, but scale {target} was requested")
            return list(self.factors)
        f = self.pass_factor
        per_axis = []
        for t in target:
            factors, reached = [], 1.0
            while t / reached > f * (1 + 1e-9):
                factors.append(f)
                reached *= f
            if t / reached > 1 + 1e-9:
                factors.append(t / reached)
            per_axis.append(factors)
        n = max(len(a) for a in per_axis)
        for a in per_axis:  # a shorter axis finishes early: identity factors first (only for unequal per-axis scales)
            a[:0] = [1.0] * (n - len(a))
        return [(a, b) for a, b in zip(*per_axis)]

    def steps_for(self, scale: float | Pair) -> list[Pair]:
        """The absolute (sy, sx) scale steps for a requested final scale."""
        target = pair(scale)
        if self.kind == "passes":
            steps, acc = [], (1.0, 1.0)
            for p in self.passes_for(target):
                acc = (acc[0] * p[0], acc[1] * p[1])
                steps.append(acc)
            steps[-1] = target  # exact, whatever the float products
            return steps
        if self.kind == "steps":
            if not _close(self.factors[-1], target):
                raise ValueError(f"config scale_factors end at {self.factors[-1]}, but scale {target} was requested")
            return list(self.factors)
        if self.kind == "gradual":
            ref = self.reference_scale
            steps = [(p[0] * target[0] / ref, p[1] * target[1] / ref) for p in self.factors]
            if not _close(steps[-1], target):
                raise ValueError(f"gradual_increments must end at the reference scale ({ref}, {ref})")
            return steps
        return [target]

    def base_changes_for(self, scale: float | Pair) -> list[Pair]:
        """Absolute scales after which the output becomes the new input: base_changes, or every pass but the last."""
        if self.kind != "passes":
            return list(self.base_changes)
        return self.steps_for(scale)[:-1]


__all__ = ["ScaleSchedule", "PAPER_GRADUAL_X2", "PAPER_GRADUAL_X2_BP", "KINDS", "pair"]
