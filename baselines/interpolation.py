"""Interpolation baselines: MATLAB-exact bicubic (the classic table's reference) and MATLAB lanczos3."""
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


def matlab_resize(img: torch.Tensor, scale: float, kernel: str = "lanczos3") -> torch.Tensor:
    """MATLAB `imresize(img, scale, kernel)` (antialiasing on) on N x C x H x W, computed in float64 with ZSSR's
    resampling matrices (basicsr's port supports only the cubic kernel)."""
    from zssr.resize import imresize

    x = imresize(img.detach().to("cpu", torch.float64), float(scale), kernel=kernel)
    return x.to(device=img.device, dtype=img.dtype)


class Lanczos(Method):
    name = "lanczos"
    info = MethodInfo(
        family="interpolation",
        training_data="none",
        degradation="none (MATLAB lanczos3 interpolation)",
        licence="n/a",
        parameters=0,
        notes="MATLAB imresize 'lanczos3' (antialiasing on), computed with zssr.resize's resampling matrices",
    )

    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        return matlab_resize(lr, float(scale), "lanczos3").clamp(0, 1)

    def config(self) -> dict:
        return {"kernel": "lanczos3", "antialiasing": True, "implementation": "zssr.resize.imresize (float64)"}
