"""ZSSR adapters for the harness: each registered name is a preset of `zssr.ZSSRConfig`.

profile "paper": the preset as published (3000 iterations max, the original learning-rate policy, back-projection,
geometric self-ensemble). profile "quick": a CPU-affordable reduction (see QUICK_OVERRIDES), labelled as such.
Keyword overrides are applied last and must name ZSSRConfig fields.
"""
from __future__ import annotations

from typing import Any

import torch

from baselines.api import Method, MethodInfo
from zssr import ZSSR, ZSSRConfig
from zssr.network import ZSSRNet, count_parameters

# A compressed version of the original schedule: fewer iterations, and the learning-rate policy measuring and
# checking twice as often over half the window, so that the rate can still drop once or twice before the end.
# Back-projection and the self-ensemble are kept (they cost little next to training).
QUICK_OVERRIDES: dict[str, dict[str, Any]] = {
    "original": dict(max_iters=400, min_iters=128, lr_slope_range=128, run_test_every=25, lr_check_every=30),
    "original-gradual": dict(max_iters=150, min_iters=64, lr_slope_range=80, run_test_every=16,
                             lr_check_every=30),
}

PAPER = "Shocher, Cohen, Irani: \"Zero-Shot\" Super-Resolution using Deep Internal Learning, CVPR 2018"


class _ZSSRPreset(Method):
    preset: str = "original"
    info = MethodInfo(family="internal", training_data="the test image itself",
                      degradation="bicubic (MATLAB) unless a kernel is given", paper=PAPER)

    def __init__(self, profile: str = "paper", **overrides: Any) -> None:
        super().__init__(profile)
        cfg = ZSSRConfig.preset(self.preset)
        if profile == "quick":
            cfg = cfg.replace(**QUICK_OVERRIDES[self.preset])
        elif profile != "paper":
            raise ValueError(f"{self.name}: unknown profile {profile!r} (expected 'paper' or 'quick')")
        self.cfg = cfg.replace(**overrides)
        self.overrides = dict(overrides)
        self._seed = self.cfg.seed
        self.info = MethodInfo(
            family="internal",
            training_data="the test image itself",
            degradation="bicubic (MATLAB) unless a kernel is given",
            licence="this port: project licence; original ZSSR code: academic non-commercial (Weizmann)",
            parameters=count_parameters(ZSSRNet(self.cfg)),
            paper=PAPER,
            notes=self._notes(),
        )

    def _notes(self) -> str:
        note = f"PyTorch port of the original ZSSR, preset {self.preset!r}, trained at test time"
        if self.profile == "quick":
            note += f"; QUICK profile (reduced schedule: {QUICK_OVERRIDES[self.preset]}), not paper-comparable"
        return note

    def set_seed(self, seed: int) -> None:
        self._seed = int(seed)

    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        cfg = self.cfg.replace(seed=self._seed, device=str(self.device) if self.cfg.device == "auto"
                               else self.cfg.device)
        outputs, stats = [], []
        for frame in lr:
            model = ZSSR(cfg)
            outputs.append(model.upscale(frame[None].to(self.device), scale)[0])
            stats.append(model.last_stats)
        self.last_stats = dict(stats[-1])
        if len(stats) > 1:
            self.last_stats["seconds-train"] = sum(s["seconds-train"] for s in stats)
            self.last_stats["iterations"] = sum(s["iterations"] for s in stats)
        return torch.stack(outputs).to(lr.device)

    def config(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "profile": self.profile,
            "quick_overrides": QUICK_OVERRIDES[self.preset] if self.profile == "quick" else {},
            "overrides": {k: str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v
                          for k, v in self.overrides.items()},
            "zssr": self.cfg.replace(seed=self._seed).to_dict(),
        }


class ZSSROriginal(_ZSSRPreset):
    name = "zssr-original"
    preset = "original"


class ZSSROriginalGradual(_ZSSRPreset):
    name = "zssr-original-gradual"
    preset = "original-gradual"


__all__ = ["ZSSROriginal", "ZSSROriginalGradual", "QUICK_OVERRIDES"]
