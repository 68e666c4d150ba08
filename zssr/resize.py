"""MATLAB-exact `imresize` as precomputed resampling matrices.

Each axis is resized by a dense (out x in) matrix built once per (in, out, scale, kernel, antialiasing) in float64
and cached per device and dtype, so resizing an N x C x H x W tensor is two matmuls on whatever device it lives on.
The weights follow MATLAB's `imresize` (Keys cubic with a = -0.5, or MATLAB's lanczos3; antialiasing when
shrinking: the kernel is stretched by 1 / scale; symmetric boundary handling with mirror indexing), so the result
matches `basicsr.utils.matlab_functions.imresize` up to float32 rounding.

Scale and output size can both be given (as the original ZSSR does when the size is not scale * input): the scale
sets the coordinate mapping, the size sets how many output pixels there are.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

Pair = tuple[float, float]


def cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def lanczos3(x: np.ndarray) -> np.ndarray:
    # MATLAB's definition (eps is double precision eps)
    eps = np.finfo(np.float64).eps
    return ((np.sin(np.pi * x) * np.sin(np.pi * x / 3) + eps) / (np.pi ** 2 * x ** 2 / 3 + eps)) * (np.abs(x) < 3)


KERNELS = {"cubic": (cubic, 4.0), "lanczos3": (lanczos3, 6.0)}


@lru_cache(maxsize=512)
def resize_matrix(in_len: int, out_len: int, scale: float, kernel: str = "cubic",
                  antialiasing: bool = True) -> np.ndarray:
    """The (out_len x in_len) float64 matrix that resizes one axis like MATLAB's imresize."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown resize kernel {kernel!r}; expected one of {sorted(KERNELS)}")
    if in_len < 1 or out_len < 1 or not scale > 0:
        raise ValueError(f"bad resize request: in_len={in_len}, out_len={out_len}, scale={scale}")
    func, width = KERNELS[kernel]
    if antialiasing and scale < 1:
        def h(t):
            return scale * func(scale * t)
        width = width / scale
    else:
        h = func
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # matching positions in 1-based input coordinates
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :] - 1.0  # 0-based input indices
    weights = h(u[:, None] - idx - 1.0)
    sums = weights.sum(axis=1, keepdims=True)
    sums[sums == 0] = 1.0
    weights = weights / sums
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = mirror[np.mod(idx.astype(np.int64), 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), idx.ravel()), weights.ravel())
    mat.setflags(write=False)
    return mat


@lru_cache(maxsize=512)
def _matrix_tensor(in_len: int, out_len: int, scale: float, kernel: str, antialiasing: bool,
                   device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    mat = torch.tensor(resize_matrix(in_len, out_len, scale, kernel, antialiasing), dtype=torch.float64)
    return mat.to(device=device, dtype=dtype)


def resolve_scale_and_shape(in_shape: tuple[int, int], scale: float | Pair | None,
                            output_shape: tuple[int, int] | None) -> tuple[Pair, tuple[int, int]]:
    """Fill in whichever of scale / output shape is missing (MATLAB and the original ZSSR: size = ceil(in * s))."""
    if scale is None and output_shape is None:
        raise ValueError("give a scale or an output shape")
    if scale is not None:
        sy, sx = (float(scale), float(scale)) if isinstance(scale, (int, float)) else (float(scale[0]),
                                                                                       float(scale[1]))
    else:
        sy, sx = output_shape[0] / in_shape[0], output_shape[1] / in_shape[1]
    if output_shape is None:
        output_shape = (int(math.ceil(in_shape[0] * sy)), int(math.ceil(in_shape[1] * sx)))
    return (sy, sx), (int(output_shape[0]), int(output_shape[1]))


def imresize(x: torch.Tensor, scale: float | Pair | None = None, output_shape: tuple[int, int] | None = None,
             kernel: str = "cubic", antialiasing: bool = True) -> torch.Tensor:
    """Resize the last two axes of `x` (... x H x W) like MATLAB's imresize.

    scale: a number or (sy, sx); output_shape: (h, w); either or both. Works on any device; float tensors only.
    """
    if not x.is_floating_point():
        raise TypeError(f"imresize needs a floating-point tensor, got {x.dtype}")
    in_shape = (int(x.shape[-2]), int(x.shape[-1]))
    (sy, sx), (oh, ow) = resolve_scale_and_shape(in_shape, scale, output_shape)
    # like MATLAB, resize the axis with the smaller scale first (less work when shrinking)
    axes = [(0, sy, oh), (1, sx, ow)]
    axes.sort(key=lambda a: a[1])
    out = x
    for axis, s, o in axes:
        n = in_shape[axis]
        if s == 1.0 and o == n:
            continue
        mat = _matrix_tensor(n, o, s, kernel, bool(antialiasing), x.device, x.dtype)
        out = torch.matmul(mat, out) if axis == 0 else torch.matmul(out, mat.t())
    return out


def imresize_np(img: np.ndarray, scale: float | Pair | None = None, output_shape: tuple[int, int] | None = None,
                kernel: str = "cubic", antialiasing: bool = True) -> np.ndarray:
    """The same on an H x W (x C) numpy array, in float64."""
    arr = np.asarray(img, dtype=np.float64)
    chw = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    out = imresize(torch.from_numpy(np.ascontiguousarray(chw)), scale, output_shape, kernel, antialiasing).numpy()
    return out[0] if arr.ndim == 2 else np.moveaxis(out, 0, -1)


__all__ = ["imresize", "imresize_np", "resize_matrix", "resolve_scale_and_shape", "cubic", "lanczos3"]
