"""The ZSSR presets the harness registers (one method "zssr-<preset>" each) and their quick-profile reductions.

The presets themselves are zssr.config's: every one of them is a method except the per-cell overlays (OVERLAYS),
which the non-blind and blind adapters apply per cell. A preset added there is registered here with the common
quick reduction (QUICK_BASE) unless QUICK_EXCEPTIONS says otherwise; nothing else is written twice.

What kernel ZSSR trains with is an overlay on any single-step preset (KERNEL_SOURCES): "zssr-<preset>" assumes
bicubic downscaling, "zssr-<preset>+true-kernel" is told each cell's true kernel (non-blind), "zssr-<preset>+kernelgan"
trains with KernelGAN's estimate (blind). For the original preset the two are the historical names
zssr-true-kernel and zssr-kernelgan (LEGACY_NAMES), whose identities the committed results use.
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


# What kernel ZSSR trains with: an overlay of every single-step preset (the multi-step ones take one kernel per
# step, which neither a told kernel nor KernelGAN's x2 estimate provides). "bicubic" is the preset itself.
KERNEL_SOURCES: dict[str, str] = {
    "bicubic": "assumes MATLAB bicubic downscaling (the preset as it is)",
    "true-kernel": "told each cell's true blur kernel (given-kernel configuration) and noise level (non-blind)",
    "kernelgan": "trains with the kernel KernelGAN estimates from the LR image (blind; the estimate is shared by "
                 "every preset that asks for the same one)",
}
# the original preset's kernel sources keep the names (and identities) they had before sources were an overlay
LEGACY_NAMES: dict[tuple[str, str], str] = {("original", "true-kernel"): "zssr-true-kernel",
                                            ("original", "kernelgan"): "zssr-kernelgan"}
SOURCE_MARK = "+"


def kernel_source_name(preset: str, source: str) -> str:
    """The registered method name of `preset` with kernel source `source`."""
    if source not in KERNEL_SOURCES:
        raise KeyError(f"unknown kernel source {source!r}; known: {', '.join(KERNEL_SOURCES)}")
    if source == "bicubic":
        return f"zssr-{preset}"
    return LEGACY_NAMES.get((preset, source), f"zssr-{preset}{SOURCE_MARK}{source}")


def parse_kernel_source(name: str) -> tuple[str, str]:
    """(preset, kernel source) of a registered ZSSR name; a KeyError naming the choices otherwise."""
    for (preset, source), legacy in LEGACY_NAMES.items():
        if name == legacy:
            return preset, source
    base, _, source = name.partition(SOURCE_MARK)
    preset = base[len("zssr-"):]
    if not base.startswith("zssr-") or preset not in preset_names():
        raise KeyError(f"{name!r} is not a ZSSR preset; presets: {', '.join(preset_names())}")
    source = source or "bicubic"
    if source not in KERNEL_SOURCES or (source != "bicubic" and preset not in single_step_presets()):
        raise KeyError(f"{name!r}: kernel sources {', '.join(KERNEL_SOURCES)} exist for the single-step presets "
                       f"({', '.join(single_step_presets())})")
    if kernel_source_name(preset, source) != name:  # zssr-original+true-kernel is spelt zssr-true-kernel
        raise KeyError(f"{name!r} is registered as {kernel_source_name(preset, source)!r}")
    return preset, source


def single_step_presets() -> tuple[str, ...]:
    """The presets that reach the target in one scale step (one kernel per cell is enough for them)."""
    from zssr.config import ZSSRConfig

    out = []
    for p in preset_names():
        cfg = ZSSRConfig.preset(p)
        if not (cfg.gradual_increments or cfg.pass_factor or cfg.pass_factors or cfg.scale_factors):
            out.append(p)
    return tuple(out)


def kernel_source_names() -> tuple[str, ...]:
    """Every "zssr-<preset>+<source>" method besides the presets themselves (legacy names included)."""
    return tuple(kernel_source_name(p, s) for p in single_step_presets() for s in KERNEL_SOURCES if s != "bicubic")


def preset_names() -> tuple[str, ...]:
    """zssr.config's presets that are methods, in its order."""
    from zssr.config import ZSSRConfig

    return tuple(p for p in ZSSRConfig.preset_names() if p not in OVERLAYS)


def quick_reduction(preset: str) -> dict[str, Any]:
    """The ZSSRConfig overrides of `preset` under the quick profile (a fresh dict)."""
    return dict(QUICK_EXCEPTIONS.get(preset, QUICK_BASE))


__all__ = ["KERNEL_SOURCES", "LEGACY_NAMES", "OVERLAYS", "QUICK_BASE", "QUICK_EXCEPTIONS", "kernel_source_name",
           "kernel_source_names", "parse_kernel_source", "preset_names", "quick_reduction", "single_step_presets"]
