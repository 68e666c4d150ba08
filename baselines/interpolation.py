"""Interpolation baselines: MATLAB-exact bicubic (the classic table's reference)."""
from __future__ import annotations

import torch

from baselines.api import Method, MethodInfo


def matlab_bicubic(img: torch.Tensor, scale: float) -> torch.Tensor:
    """MATLAB `imresize(img, scale, 'bicubic')` on an N x C x H x W tensor in [0, 1] (basicsr's port)."""
    from basicsr.utils.matlab_functions import imresize

    out = [imresize(frame.detach().cpu().float(), scale) for frame in img]
    return torch.stack(out).to(img.device)


class Bicubic(Method):
    name = "bicubic"
    info = MethodInfo(
        family="interpolation",
        training_data="none",
        degradation="none (MATLAB bicubic interpolation)",
        licence="n/a",
        parameters=0,
        notes="MATLAB imresize 'bicubic' (basicsr port), the reference of the classic tables",
    )

    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        return matlab_bicubic(lr, float(scale)).clamp(0, 1)

    def config(self) -> dict:
        return {"kernel": "cubic", "antialiasing": True, "implementation": "basicsr.utils.matlab_functions.imresize"}
