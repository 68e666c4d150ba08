"""The method registry. Adding a method is one module and one line here."""
from __future__ import annotations

from typing import Any

from baselines.api import Method
from baselines.registry import LazyRegistry

METHODS: LazyRegistry[type[Method]] = LazyRegistry("method")

# interpolation
METHODS.register("bicubic", "baselines.interpolation:Bicubic")
METHODS.register("lanczos", "baselines.interpolation:Lanczos")
# internal learning: ZSSR presets (zssr/ holds the algorithm; baselines/zssr_method.py adapts it)
METHODS.register("zssr-original", "baselines.zssr_method:ZSSROriginal")
METHODS.register("zssr-original-gradual", "baselines.zssr_method:ZSSROriginalGradual")
METHODS.register("zssr-modified", "baselines.zssr_method:ZSSRModified")
METHODS.register("zssr-gradual", "baselines.zssr_method:ZSSRGradual")
METHODS.register("zssr-modified-gradual", "baselines.zssr_method:ZSSRModifiedGradual")
METHODS.register("zssr-ablation-width32", "baselines.zssr_method:ZSSRAblationWidth32")
METHODS.register("zssr-ablation-depthwise", "baselines.zssr_method:ZSSRAblationDepthwise")
METHODS.register("zssr-ablation-prelu", "baselines.zssr_method:ZSSRAblationPReLU")
METHODS.register("zssr-ablation-lr", "baselines.zssr_method:ZSSRAblationLR")
METHODS.register("zssr-ablation-no-ensemble", "baselines.zssr_method:ZSSRAblationNoEnsemble")
# external learning: pretrained networks
METHODS.register("realesrgan-x4plus", "baselines.pretrained:RealESRGANx4plus")
METHODS.register("realesrgan-x4plus-anime", "baselines.pretrained:RealESRGANx4plusAnime")
METHODS.register("realesr-animevideov3", "baselines.pretrained:RealESRAnimeVideoV3")
METHODS.register("dat-light", "baselines.pretrained:DATLight")
METHODS.register("esrgan", "baselines.pretrained:ESRGAN")
METHODS.register("rrdb-psnr", "baselines.pretrained:RRDBPSNR")

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
