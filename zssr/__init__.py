"""ZSSR ("Zero-Shot" Super-Resolution, Shocher, Cohen and Irani, CVPR 2018) as a standalone PyTorch library.

    from zssr import ZSSR, ZSSRConfig
    sr = ZSSR(ZSSRConfig.preset("original")).upscale(lr, 2)   # lr: 1 x 3 x H x W float in [0, 1]

Imports torch, numpy and scipy only; importing the package does no work.
"""
from zssr.config import ZSSRConfig
from zssr.trainer import ZSSR

__all__ = ["ZSSR", "ZSSRConfig"]
