"""Image-quality metrics under the published protocol. One name, one definition (see results.METRIC_SPECS).

Inputs are uint8 arrays (H x W x 3 RGB or H x W grayscale) of the same shape; `border` pixels are cropped.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bench.degrade import rgb_to_y

_LPIPS_CACHE: dict[str, object] = {}


class MetricNotApplicable(ValueError):
    """The metric is undefined for this input (e.g. NIQE on a small image); recorded as NaN, the cell goes on."""


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def _check(sr: np.ndarray, hr: np.ndarray) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"SR shape {sr.shape} differs from HR shape {hr.shape}")
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        raise TypeError("metrics take uint8 images (round the SR output first, as published tables do)")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    _check(sr, hr)
    return psnr(_crop(rgb_to_y(sr), border), _crop(rgb_to_y(hr), border))


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """Wang et al.'s ssim.m (basicsr's port: 11x11 Gaussian, sigma 1.5, 'valid' filtering) on MATLAB Y."""
    from basicsr.metrics.psnr_ssim import _ssim

    _check(sr, hr)
    y_sr = _crop(rgb_to_y(sr), border).astype(np.float64)
    y_hr = _crop(rgb_to_y(hr), border).astype(np.float64)
    return float(_ssim(y_sr, y_hr))


def psnr_rgb(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    _check(sr, hr)
    return psnr(_crop(sr, border), _crop(hr, border))


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def lpips_alex(sr: np.ndarray, hr: np.ndarray, border: int, device: str = "cpu") -> float:
    """LPIPS v0.1 with the ImageNet AlexNet backbone (never a random one), inputs mapped to [-1, 1]."""
    import torch

    _check(sr, hr)
    key = str(device)
    if key not in _LPIPS_CACHE:
        from baselines.weights import lpips_alex_model

        _LPIPS_CACHE[key] = lpips_alex_model(torch.device(device))
    model = _LPIPS_CACHE[key]

    def to_tensor(img: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(_as_rgb(_crop(img, border)))).permute(2, 0, 1)[None].float()
        return (t / 127.5 - 1.0).to(device)

    with torch.no_grad():
        return float(model(to_tensor(sr), to_tensor(hr)).item())


def niqe(sr: np.ndarray, hr: np.ndarray | None, border: int) -> float:
    """NIQE (no reference) on Y, basicsr's MATLAB-compatible implementation with its bundled parameters."""
    from basicsr.metrics.niqe import calculate_niqe

    h, w = sr.shape[0] - 2 * border, sr.shape[1] - 2 * border
    if (h // 96) * (w // 96) < 2:
        raise MetricNotApplicable(f"niqe needs at least two 96x96 blocks after the border crop; this image is {w}x{h} "
                         "(leave niqe out for small images)")
    img = sr if sr.ndim == 2 else sr[..., ::-1]  # basicsr converts BGR to Y
    return float(calculate_niqe(img, border, input_order="HW" if sr.ndim == 2 else "HWC", convert_to="y"))


METRICS: dict[str, Callable[..., float]] = {
    "psnr-y": psnr_y,
    "ssim-y": ssim_y,
    "psnr-rgb": psnr_rgb,
    "lpips-alex": lpips_alex,
    "niqe": niqe,
}
DEFAULT_METRICS = ("psnr-y", "ssim-y", "psnr-rgb", "lpips-alex")


def compute(names: list[str] | tuple[str, ...], sr: np.ndarray, hr: np.ndarray, border: int,
            device: str = "cpu") -> dict[str, float]:
    out = {}
    for name in names:
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        fn = METRICS[name]
        try:
            out[name] = fn(sr, hr, border, device=device) if name == "lpips-alex" else fn(sr, hr, border)
        except MetricNotApplicable:
            out[name] = float("nan")
    return out
