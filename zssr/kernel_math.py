"""Given (numeric) downscaling kernels in numpy: loading, centring, degradation with them, and their accuracy.

A kernel is a MATLAB `.mat` file holding a 2-D matrix under the name "Kernel"; for an input `<name>.png` and scale
step i the file is `<name>_<i>.mat`. As in the original ZSSR, a kernel is shifted before use so that its centre of
mass sits where the MATLAB-bicubic convention puts it (the top-left LR pixel corresponds to the middle of the first
sf x sf HR pixels); degradation is a correlation with symmetric ("reflect", half-sample) boundaries followed by
subsampling at rows/cols round(linspace(0, in - sf, out)).

numpy and scipy only (no torch): the report layer reads kernels through this module without loading a network.
zssr.kernels adds the device-resident degradation (KernelDownscaler) and re-exports these names.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.io import loadmat

Pair = tuple[float, float]


def _pair(scale: float | Pair) -> Pair:
    if isinstance(scale, (int, float)):
        return (float(scale), float(scale))
    return (float(scale[0]), float(scale[1]))


def load_kernel(path: str | Path) -> np.ndarray:
    """The 2-D float64 matrix stored as "Kernel" in a MATLAB file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"kernel file not found: {path}")
    data = loadmat(str(path))
    if "Kernel" not in data:
        names = [k for k in data if not k.startswith("__")]
        raise KeyError(f"{path}: no variable named 'Kernel' (found {names}); ZSSR kernels are stored as 'Kernel'")
    kernel = np.asarray(data["Kernel"], dtype=np.float64)
    if kernel.ndim != 2:
        raise ValueError(f"{path}: 'Kernel' must be a 2-D matrix, got shape {kernel.shape}")
    return kernel


def kernel_shift(kernel: np.ndarray, sf: float | Pair) -> np.ndarray:
    """Move the kernel's centre of mass to shape // 2 + (sf - shape % 2) / 2 (per axis), padding first.

    The wanted centre uses integer halving of the shape, as the original (Python 2) code computed it; for odd
    kernels this is exactly the MATLAB-bicubic alignment (for x2: centre + 0.5).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    shape = np.array(kernel.shape)
    current = np.array(ndimage.center_of_mass(kernel))
    wanted = shape // 2 + 0.5 * (np.array(_pair(sf)) - shape % 2)
    shift = wanted - current
    pad = int(np.ceil(np.max(np.abs(shift)))) + 1
    kernel = np.pad(kernel, pad, mode="constant")
    return ndimage.shift(kernel, shift)


def find_kernels(image_path: str | Path, n_scales: int) -> list[Path]:
    """Kernel files `<stem>_<i>.mat` (i = 0 .. n_scales - 1) beside an image; [] when there are none.

    Raises FileNotFoundError when only some of them exist (a silent fallback to bicubic would be wrong).
    """
    image_path = Path(image_path)
    paths = [image_path.with_name(f"{image_path.stem}_{i}.mat") for i in range(n_scales)]
    present = [p.is_file() for p in paths]
    if not any(present):
        return []
    if not all(present):
        missing = [str(p) for p, ok in zip(paths, present) if not ok]
        raise FileNotFoundError(f"incomplete kernel set for {image_path}: missing {missing}")
    return paths


def subsample_indices(in_len: int, out_len: int, sf: float) -> np.ndarray:
    """Rows (or cols) kept after filtering: round(linspace(0, in_len - sf, out_len)) (round half to even)."""
    return np.round(np.linspace(0, in_len - sf, out_len)).astype(np.int64)


def _output_shape(in_shape: tuple[int, int], sf: Pair) -> tuple[int, int]:
    return (int(math.ceil(in_shape[0] * (1.0 / sf[0]))), int(math.ceil(in_shape[1] * (1.0 / sf[1]))))


def degrade_with_kernel(img: np.ndarray, kernel: np.ndarray, scale: float | Pair, shift: bool = True,
                        output_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Blur an H x W (x C) float image with `kernel` (correlation, symmetric boundaries) and subsample by `scale`.

    `scale` is the super-resolution factor (2 for x2). `shift=True` first centres the kernel with `kernel_shift`
    (what ZSSR does with a given kernel), so that the result aligns like MATLAB bicubic downscaling.
    """
    sf = _pair(scale)
    arr = np.asarray(img, dtype=np.float64)
    k = kernel_shift(kernel, sf) if shift else np.asarray(kernel, dtype=np.float64)
    planes = arr[..., None] if arr.ndim == 2 else arr
    out_shape = output_shape or _output_shape(planes.shape[:2], sf)
    rows = subsample_indices(planes.shape[0], out_shape[0], sf[0])
    cols = subsample_indices(planes.shape[1], out_shape[1], sf[1])
    out = np.stack([ndimage.correlate(planes[..., c], k, mode="reflect")[np.ix_(rows, cols)]
                    for c in range(planes.shape[2])], axis=-1)
    return out[..., 0] if arr.ndim == 2 else out


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's cubic interpolation kernel (a = -0.5), the same function as zssr.resize.cubic, here so that the
    kernel maths imports no torch."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def bicubic_kernel(scale: int, odd: bool = True) -> np.ndarray:
    """MATLAB's antialiased bicubic downscaling by an integer `scale` as a 2-D kernel: the cubic stretched by
    `scale`, sampled at the input pixels around an output pixel: 4s of them, centred between pixels, for even
    scales; 4s + 1 centred on a pixel for odd ones. Even scales with `odd=True` get a zero row and column appended,
    so that `kernel_shift` centres the kernel by a whole pixel (exactly) and `degrade_with_kernel` with it
    reproduces imresize(1 / scale); `odd=False`: the bare 4s x 4s kernel, for a strided convolution."""
    even = scale % 2 == 0
    taps = (np.arange(4 * scale, dtype=np.float64) - (4 * scale - 1) / 2.0 if even
            else np.arange(-2 * scale, 2 * scale + 1, dtype=np.float64))  # distances in input pixels
    w = cubic(taps / scale) / scale
    k = np.outer(w, w) / np.outer(w, w).sum()
    return np.pad(k, ((0, 1), (0, 1))) if odd and even else k


def _canvas_size(*kernels: np.ndarray, minimum: int = 31) -> int:
    need = max(max(np.shape(k)) for k in kernels) + 2
    return max(minimum, need + 1 - need % 2)  # odd, so that the middle is a pixel


def centred(kernel: np.ndarray, size: int | None = None) -> np.ndarray:
    """The kernel moved onto a size x size canvas (odd; default: 31, or larger for large kernels) with its centre
    of mass at the middle (sub-pixel shifts by linear interpolation), normalised to sum 1: kernels estimated with
    an arbitrary offset become comparable."""
    k = np.asarray(kernel, dtype=np.float64)
    size = _canvas_size(k) if size is None else size
    if k.shape[0] > size or k.shape[1] > size:
        raise ValueError(f"kernel of shape {k.shape} does not fit a {size} x {size} canvas")
    canvas = np.zeros((size, size))
    top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
    canvas[top:top + k.shape[0], left:left + k.shape[1]] = k
    com = np.array(ndimage.center_of_mass(np.clip(canvas, 0, None)))
    moved = ndimage.shift(canvas, (size - 1) / 2.0 - com, order=1, mode="constant")
    return moved / moved.sum()


def kernel_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Relative L2 error ||k_est - k_true|| / ||k_true|| of the two kernels, both centred (`centred`) on one canvas:
    0 for the true kernel, about 1 for a kernel sharing no shape with it. Offsets do not count (ZSSR centres
    kernels)."""
    size = _canvas_size(estimate, truth)
    a, b = centred(estimate, size), centred(truth, size)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


__all__ = ["Pair", "load_kernel", "kernel_shift", "find_kernels", "degrade_with_kernel", "subsample_indices",
           "bicubic_kernel", "centred", "kernel_error", "cubic"]
