"""ZSSR ("Zero-Shot" Super-Resolution, Shocher, Cohen and Irani, CVPR 2018) as a standalone PyTorch library.

    from zssr import ZSSR, ZSSRConfig
    sr = ZSSR(ZSSRConfig.preset("original")).upscale(lr, 2)   # lr: 1 x 3 x H x W float in [0, 1]

Imports torch, numpy and scipy only; importing the package does no work: ZSSR and ZSSRConfig are loaded on first
use, so that a torch-free submodule (zssr.kernel_math, which the reports read kernels with) does not load the
trainer and torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zssr.config import ZSSRConfig
    from zssr.trainer import ZSSR

_LAZY = {"ZSSR": "zssr.trainer", "ZSSRConfig": "zssr.config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zssr' has no attribute {name!r}")


__all__ = ["ZSSR", "ZSSRConfig"]
