"""The method registry. Adding a method is one module and one line here."""
from __future__ import annotations

from typing import Any

from baselines.api import Method
from baselines.pretrained import PRETRAINED
from baselines.registry import LazyRegistry
from baselines.zssr_presets import kernel_source_names, preset_names

METHODS: LazyRegistry[type[Method]] = LazyRegistry("method")

# interpolation
METHODS.register("bicubic", "baselines.interpolation:Bicubic")
METHODS.register("lanczos", "baselines.interpolation:Lanczos")
# internal learning: one method per ZSSR preset of zssr.config (less the per-cell overlays; the table and the quick
# profile's reductions are baselines/zssr_presets.py; baselines/zssr_method.py adapts the algorithm)
ZSSR_PRESETS = preset_names()
for _preset in ZSSR_PRESETS:
    METHODS.register(f"zssr-{_preset}", "baselines.zssr_method:preset_class()")
# what kernel they train with, an overlay of every single-step preset: zssr-<preset>+true-kernel (non-blind, told
# the true kernel) and zssr-<preset>+kernelgan (blind); for the original: zssr-true-kernel and zssr-kernelgan
for _name in kernel_source_names():
    METHODS.register(_name, "baselines.zssr_method:preset_class()")
# external learning: the pretrained networks of baselines/pretrained.py's PRETRAINED table
PRETRAINED_NAMES = tuple(PRETRAINED)
for _name in PRETRAINED_NAMES:
    METHODS.register(_name, "baselines.pretrained:method_class()")

# external, non-blind: SRMD is told each cell's kernel and noise level (the external twin of zssr-true-kernel)
METHODS.register("srmd", "baselines.srmd:SRMD")
METHODS.register("srmd-nf", "baselines.srmd:SRMDNF")

CHECKPOINT_PREFIX = "checkpoint:"


def create_method(name: str, profile: str = "paper", precision: str = "auto", **kwargs: Any) -> Method:
    """Instantiate a method by name; `checkpoint:<path>` loads any checkpoint spandrel recognises.

    `precision` ("auto", "fp32", "bf16", "fp16") reaches every method whose constructor takes it (all built-in
    ones); a plugin method written before it existed is built without it and runs as it always did."""
    if name.startswith(CHECKPOINT_PREFIX):
        from baselines.checkpoint import CheckpointMethod

        return CheckpointMethod(name[len(CHECKPOINT_PREFIX):], profile=profile, precision=precision, **kwargs)
    cls = METHODS.resolve(name)
    if _accepts(cls, "precision"):
        kwargs["precision"] = precision
    return cls(profile=profile, **kwargs)


def _accepts(cls: type, parameter: str) -> bool:
    import inspect

    params = inspect.signature(cls).parameters
    return parameter in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def load_plugins() -> None:
    """Import the modules named in ZSSR_BENCH_PLUGINS (comma-separated) so that they can register methods
    without editing this file; worker processes inherit the variable and do the same."""
    import importlib

    from baselines import settings

    for module in settings.plugins():
        importlib.import_module(module)
