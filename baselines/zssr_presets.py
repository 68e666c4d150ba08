"""The ZSSR presets the harness registers (one method "zssr-<preset>" each) and their quick-profile reductions.

The presets themselves are zssr.config's: every one of them is a method except the per-cell overlays (OVERLAYS),
which the non-blind and blind adapters apply to zssr-original. A preset added there is registered here with the
common quick reduction (QUICK_BASE) unless QUICK_EXCEPTIONS says otherwise; nothing else is written twice.
"""
from __future__ import annotations

from typing import Any

# zssr.config presets that are not methods of their own: settings applied per cell (a given kernel, real images)
OVERLAYS = ("given-kernel", "real-image")

# The quick profile: a CPU-affordable reduction of every preset, labelled "not paper-comparable" in reports. Budget:
# `make bench` (builtin: 7 images of 192 x 192, x2 and x4, six methods) within ~10 minutes on 2 CPU cores, i.e. ~10 s
# per zssr-original cell. Every preset gets the same reduction, so that the quick numbers still compare presets on
# an equal training budget (per pass for the multi-pass presets):
# - 64 x 64 HR fathers instead of 128 x 128 (4x fewer pixels per step) and 150 iterations instead of <= 3000;
# - the original learning-rate policy compressed to fit: a measurement every 15 iterations, the slope fitted over
#   the last 60 (4 measurements), checked every 30 iterations once 48 passed since the last change, so that the
#   rate can still drop at iterations 59 and 119 (the fixed schedules of the modified presets scale with max_iters);
# - 4 back-projection iterations instead of 10; the self-ensemble (8 passes) is kept where the preset has it.
QUICK_BASE: dict[str, Any] = dict(crop_size=64, max_iters=150, min_iters=48, lr_slope_range=60, run_test_every=15,
                                  lr_check_every=30, back_projection_iters=4)
QUICK_EXCEPTIONS: dict[str, dict[str, Any]] = {
    # six increments: fewer iterations per increment, the paper's per-increment back-projection counts halved
    "original-gradual": {**QUICK_BASE, "max_iters": 100, "back_projection_iters": (3, 3, 4, 5, 5, 6)},
}

# Docstrings of the registered presets' classes (the others are described by their ZSSRConfig preset).
NOTES = {
    "modified": "Depthwise-separable convs, 32 channels, PReLU, SGD at lr 0.1 with warm-up + cosine, no self-ensemble.",
    "gradual": "The original network reaching the target in x2 passes (x4 = x2, x2), continuing to train the same net.",
}


def preset_names() -> tuple[str, ...]:
    """zssr.config's presets that are methods, in its order."""
    from zssr.config import ZSSRConfig

    return tuple(p for p in ZSSRConfig.preset_names() if p not in OVERLAYS)


def quick_reduction(preset: str) -> dict[str, Any]:
    """The ZSSRConfig overrides of `preset` under the quick profile (a fresh dict)."""
    return dict(QUICK_EXCEPTIONS.get(preset, QUICK_BASE))


__all__ = ["OVERLAYS", "QUICK_BASE", "QUICK_EXCEPTIONS", "preset_names", "quick_reduction"]
