"""Interpolation baselines: MATLAB-exact bicubic (the classic table's reference)."""
from __future__ import annotations

import math

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


# ----------------------------------------------------------------------------------------------------------------
# Lanczos: MATLAB imresize(img, scale, 'lanczos3'), re-implemented from MATLAB's contributions() algorithm
# (basicsr's port supports only the cubic kernel).

def _lanczos3(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's lanczos3 kernel, including its eps terms (so that f(0) = 1 exactly)."""
    eps = torch.finfo(torch.float64).eps
    pi = torch.pi
    f = (torch.sin(pi * x) * torch.sin(pi * x / 3) + eps) / (pi**2 * x**2 / 3 + eps)
    return f * (x.abs() < 3)


def _matlab_cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


_KERNELS = {"lanczos3": (_lanczos3, 6.0), "cubic": (_matlab_cubic, 4.0)}


def _contributions(in_len: int, out_len: int, scale: float, kernel: str, antialiasing: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    fn, width = _KERNELS[kernel]
    if scale < 1 and antialiasing:
        h = lambda x: scale * fn(scale * x)  # noqa: E731
        width = width / scale
    else:
        h = fn
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    p = int(math.ceil(width)) + 2
    ind = left[:, None] + torch.arange(p, dtype=torch.float64)[None, :]  # 1-based, as in MATLAB
    weights = h(u[:, None] - ind)
    weights = weights / weights.sum(dim=1, keepdim=True)
    aux = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])  # symmetric padding, 0-based
    ind = aux[torch.remainder(ind.long() - 1, 2 * in_len)]
    keep = (weights != 0).any(dim=0)
    return weights[:, keep], ind[:, keep]


def _resize_dim(img: torch.Tensor, dim: int, out_len: int, scale: float, kernel: str) -> torch.Tensor:
    weights, ind = _contributions(img.shape[dim], out_len, scale, kernel)
    moved = img.movedim(dim, -1)  # ... x in_len
    gathered = moved[..., ind]  # ... x out_len x P
    out = (gathered * weights).sum(-1)
    return out.movedim(-1, dim)


def matlab_resize(img: torch.Tensor, scale: float, kernel: str = "lanczos3") -> torch.Tensor:
    """MATLAB `imresize(img, scale, kernel)` (antialiasing on) on N x C x H x W; computed in float64.

    Output size is ceil(H * scale) x ceil(W * scale); dimensions are processed rows first (MATLAB's order for
    equal scale factors).
    """
    if kernel not in _KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; known: {', '.join(_KERNELS)}")
    x = img.detach().to("cpu", torch.float64)
    h, w = x.shape[-2:]
    x = _resize_dim(x, -2, math.ceil(h * scale), scale, kernel)
    x = _resize_dim(x, -1, math.ceil(w * scale), scale, kernel)
    return x.to(device=img.device, dtype=img.dtype)


class Lanczos(Method):
    name = "lanczos"
    info = MethodInfo(
        family="interpolation",
        training_data="none",
        degradation="none (MATLAB lanczos3 interpolation)",
        licence="n/a",
        parameters=0,
        notes="MATLAB imresize 'lanczos3' (re-implemented from MATLAB's contributions(); antialiasing on)",
    )

    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        return matlab_resize(lr, float(scale), "lanczos3").clamp(0, 1)

    def config(self) -> dict:
        return {"kernel": "lanczos3", "antialiasing": True, "implementation": "baselines.interpolation.matlab_resize"}
