"""LR synthesis under the published protocol: mod-crop, MATLAB bicubic (or a given kernel), round to uint8."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

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
    from zssr.kernels import degrade_with_kernel

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


@dataclass(frozen=True)
class Degradation:
    """How LR images are made from HR ones. `id` is part of a cell's identity: a different kernel is a different
    cell, whatever its file is called."""

    id: str  # "bicubic", or "kernel-<sha256 of the kernel's values, 12 digits>"
    description: str
    kernel: np.ndarray | None = field(default=None, compare=False, repr=False)
    source: str = ""  # the kernel file, for run.json

    def make_pair(self, hr: np.ndarray, scale: int, name: str, y_only: bool) -> tuple[np.ndarray, np.ndarray]:
        return make_pair(hr, scale, name=name, kernel=self.kernel, y_only=y_only)


BICUBIC = Degradation("bicubic", "MATLAB bicubic downscaling (antialiased)")


def kernel_digest(kernel: np.ndarray) -> str:
    arr = np.ascontiguousarray(kernel, dtype=np.float64)
    return hashlib.sha256(f"{arr.shape}".encode() + arr.tobytes()).hexdigest()


def load_degradation(kernel_path: str | None) -> Degradation:
    """Bicubic, or the blur kernel of a MATLAB file; a missing or malformed file is an error naming it."""
    if not kernel_path:
        return BICUBIC
    from zssr.kernels import load_kernel

    path = Path(kernel_path).expanduser()
    try:
        kernel = load_kernel(path)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ValueError(f"--kernel {kernel_path}: {exc.args[0] if exc.args else exc}; give a .mat file holding a "
                         "2-D matrix named 'Kernel'") from exc
    except Exception as exc:  # scipy's loadmat on a file that is not a MATLAB file
        raise ValueError(f"--kernel {kernel_path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    if not np.isfinite(kernel).all() or kernel.sum() <= 0:
        raise ValueError(f"--kernel {kernel_path}: the kernel must be finite with a positive sum")
    return Degradation(f"kernel-{kernel_digest(kernel)[:12]}", f"blur kernel {path.name} "
                       f"({kernel.shape[0]}x{kernel.shape[1]}) and subsampling, instead of bicubic",
                       kernel=kernel, source=str(path.resolve()))


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
