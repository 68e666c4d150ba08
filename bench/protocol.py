"""The evaluation protocol: how an HR image becomes its LR input (mod-crop, MATLAB bicubic or a given kernel, rounded
to uint8), the Y channel the metrics read (rgb_to_y), and the protocol's description in reports (PROTOCOL_TEXT)."""
from __future__ import annotations

import hashlib

import numpy as np

from bench.images import ImageError

MIN_LR_SIDE = 8  # smaller LR images leave too little for the border crop and the 11x11 SSIM window


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Top-left crop to a multiple of `scale` in both dimensions."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luminance of a uint8 RGB image, as uint8 (rounded); grayscale passes through."""
    if img.ndim == 2:
        return img
    x = img.astype(np.float64) / 255.0
    y = 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def matlab_resize_uint8(img: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB `imresize(img, factor, 'bicubic')` of a uint8 image, rounded back to uint8."""
    from basicsr.utils.matlab_functions import imresize

    out = imresize(img.astype(np.float64) / 255.0, factor)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def kernel_downscale_uint8(img: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """Blur with a given kernel and subsample (the ZSSR paper's non-bicubic degradation), rounded to uint8."""
    from zssr.kernel_math import degrade_with_kernel

    x = img.astype(np.float64) / 255.0
    out = degrade_with_kernel(x if x.ndim == 3 else x[..., None], kernel, scale)
    out = out if img.ndim == 3 else out[..., 0]
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def check_size(img: np.ndarray, scale: int, name: str) -> None:
    h, w = img.shape[:2]
    if min(h, w) < MIN_LR_SIDE * scale:
        raise ImageError(
            f"{name}: {w}x{h} is too small for x{scale} (needs at least {MIN_LR_SIDE * scale} pixels per side "
            f"so that the LR image is {MIN_LR_SIDE}x{MIN_LR_SIDE}); use a larger image or a smaller scale"
        )


def make_pair(hr: np.ndarray, scale: int, name: str = "image", kernel: np.ndarray | None = None,
              y_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(mod-cropped HR, LR) as uint8 arrays. With `y_only` both are the Y channel (the bicubic-table protocol)."""
    if scale < 2 or int(scale) != scale:
        raise ValueError(f"{name}: scale must be an integer >= 2, got {scale!r}")
    check_size(hr, scale, name)
    hr = modcrop(hr, scale)
    if y_only:
        hr = rgb_to_y(hr)
    lr = matlab_resize_uint8(hr, 1.0 / scale) if kernel is None else kernel_downscale_uint8(hr, kernel, scale)
    return hr, lr


def kernel_digest(kernel: np.ndarray) -> str:
    arr = np.ascontiguousarray(kernel, dtype=np.float64)
    return hashlib.sha256(f"{arr.shape}".encode() + arr.tobytes()).hexdigest()



PROTOCOL_TEXT = {
    "rgb": (
        "HR images are mod-cropped (top-left) to a multiple of the scale; LR images are made from the RGB HR with "
        "MATLAB-exact bicubic downscaling (basicsr's imresize, antialiased) and rounded to uint8. Methods upscale "
        "RGB; SR outputs are rounded to uint8; PSNR/SSIM are computed on MATLAB Y after a `scale`-pixel border crop. "
        "Grayscale images are replicated to three channels for the methods and evaluated on their single channel."
    ),
    "y-only": (
        "The classic bicubic-table protocol: HR images are mod-cropped, converted to MATLAB Y (uint8), downscaled and "
        "upscaled as single-channel images with MATLAB-exact bicubic (rounded to uint8 at each step), and evaluated "
        "on that channel after a `scale`-pixel border crop. Colour metrics (LPIPS, PSNR-RGB) see a grey image."
    ),
}
