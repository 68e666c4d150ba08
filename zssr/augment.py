"""HR-father augmentation, as in the original ZSSR, sampled on the host once and applied on the device.

Each iteration draws one of three modes (probabilities from the config):
- "leave as is": a random integer-offset crop of the input (no flip, no rotation, no resampling);
- "no interpolation": a random integer-offset crop with a random mirror flip and rotation by a multiple of 90
  degrees (values copied, never resampled);
- "affine": random scale in [min_scale, max_scale] relative to the chosen source, a per-axis scale difference
  (sigma scale_diff_sigma), mirror flip, any rotation angle, shear (sigma shear_sigma) and a random crop, resampled
  with bicubic interpolation.

The geometry is the original's: the transform is centre-shift-back . crop-shift . shear . rotation . scale . shift-to-
centre in pixel coordinates (x = column, y = row), the output is crop_size x crop_size, pixels that fall outside the
source are zero (OpenCV's constant border), and the result is clipped to [0, 1]. With gradual increments, earlier
outputs are extra sources: the random scale picks the smallest source whose (min) scale is at least that big.

All random numbers of a training run are drawn up front (`plan_augmentations`) into one device tensor of
affine_grid matrices, so the training loop only slices it: no host work and no transfer per iteration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LEAVE_AS_IS, NO_INTERP, AFFINE = 0, 1, 2


@dataclass
class AugmentPlan:
    sources: np.ndarray  # (n,) index of the source image per iteration
    modes: np.ndarray  # (n,) LEAVE_AS_IS | NO_INTERP | AFFINE
    thetas: np.ndarray  # (n, 2, 3) float64 affine_grid matrices (normalised coords, align_corners=True)
    matrices: np.ndarray  # (n, 3, 3) forward pixel-space transforms source -> crop (for inspection/tests)


def sample_transform(rng: np.random.Generator, src_hw: tuple[int, int], mode: int, scale: float, crop_size: int,
                     allow_rotation: bool, scale_diff_sigma: float, shear_sigma: float) -> np.ndarray:
    """The 3x3 pixel-space matrix mapping source (x, y) to crop (x, y); `scale` is relative to the source."""
    h, w = src_hw
    to_center = np.array([[1.0, 0, -w / 2.0], [0, 1.0, -h / 2.0], [0, 0, 1.0]])
    from_center = np.array([[1.0, 0, w / 2.0], [0, 1.0, h / 2.0], [0, 0, 1.0]])
    if mode != AFFINE:  # keep it interpolation-free: integer shifts only
        to_center, from_center = np.round(to_center), np.round(from_center)
    if mode == AFFINE:
        scale_diff = rng.standard_normal() * scale_diff_sigma
    else:
        scale, scale_diff = 1.0, 0.0
    reflect = 1.0 if (mode == LEAVE_AS_IS or not allow_rotation) else float(np.sign(rng.standard_normal()) or 1.0)
    scale_mat = np.array([[reflect * (scale + scale_diff / 2), 0, 0], [0, scale - scale_diff / 2, 0], [0, 0, 1.0]])
    shift_x = rng.random() * max(scale * w - crop_size, 0.0)
    shift_y = rng.random() * max(scale * h - crop_size, 0.0)
    shift_mat = np.array([[1.0, 0, -shift_x], [0, 1.0, -shift_y], [0, 0, 1.0]])
    if mode != AFFINE:
        shift_mat = np.round(shift_mat)
    if mode == AFFINE:
        angle = rng.random() * 2 * math.pi
    elif mode == NO_INTERP:
        angle = int(rng.integers(4)) * math.pi / 2
    else:
        angle = 0.0
    if not allow_rotation:
        angle = 0.0
    c, s = math.cos(angle), math.sin(angle)
    if mode == NO_INTERP:  # exact multiples of 90 degrees (no 6e-17 residue)
        c, s = float(round(c)), float(round(s))
    rot_mat = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])
    if mode == AFFINE:
        shear_x, shear_y = rng.standard_normal() * shear_sigma, rng.standard_normal() * shear_sigma
    else:
        shear_x = shear_y = 0.0
    shear_mat = np.array([[1.0, shear_x, 0], [shear_y, 1.0, 0], [0, 0, 1.0]])
    return from_center @ shift_mat @ shear_mat @ rot_mat @ scale_mat @ to_center


def grid_theta(matrix: np.ndarray, src_hw: tuple[int, int], crop_size: int) -> np.ndarray:
    """Convert a forward pixel-space matrix to the (2 x 3) inverse map in affine_grid's normalised coordinates."""
    h, w = src_hw
    inv = np.linalg.inv(matrix)
    # normalised = 2 * pixel / (size - 1) - 1 with align_corners=True (a 1-pixel axis maps to 0)
    norm_src = np.array([[2.0 / max(w - 1, 1), 0, -1.0], [0, 2.0 / max(h - 1, 1), -1.0], [0, 0, 1.0]])
    half = (crop_size - 1) / 2.0
    denorm_dst = np.array([[half, 0, half], [0, half, half], [0, 0, 1.0]])
    return (norm_src @ inv @ denorm_dst)[:2]


def plan_augmentations(rng: np.random.Generator, n: int, source_shapes: list[tuple[int, int]],
                       base_scales: list[float], crop_size: int, leave_as_is_probability: float,
                       no_interpolate_probability: float, min_scale: float, allow_rotation: bool,
                       scale_diff_sigma: float, shear_sigma: float) -> AugmentPlan:
    """Draw the augmentation of n iterations.

    source_shapes: (h, w) of each source image (the input first, then earlier outputs); base_scales: the smallest
    per-axis scale of each source w.r.t. the input (1.0 for the input). The largest allowed scale is that of the
    last source.
    """
    if len(source_shapes) != len(base_scales) or not source_shapes:
        raise ValueError("source_shapes and base_scales must be non-empty and of the same length")
    max_scale = base_scales[-1]
    sources = np.zeros(n, dtype=np.int64)
    modes = np.zeros(n, dtype=np.int64)
    thetas = np.zeros((n, 2, 3), dtype=np.float64)
    matrices = np.zeros((n, 3, 3), dtype=np.float64)
    for i in range(n):
        chooser = rng.random()
        if chooser < leave_as_is_probability:
            mode = LEAVE_AS_IS
        elif chooser < leave_as_is_probability + no_interpolate_probability:
            mode = NO_INTERP
        else:
            mode = AFFINE
        scale = 1.0 if mode == LEAVE_AS_IS else rng.random() * (max_scale - min_scale) + min_scale
        src = next(j for j, b in enumerate(base_scales) if b > scale - 1e-6)
        mat = sample_transform(rng, source_shapes[src], mode, scale / base_scales[src], crop_size, allow_rotation,
                               scale_diff_sigma, shear_sigma)
        sources[i], modes[i], matrices[i] = src, mode, mat
        thetas[i] = grid_theta(mat, source_shapes[src], crop_size)
    return AugmentPlan(sources, modes, thetas, matrices)


def warp(src: torch.Tensor, theta: torch.Tensor, crop_size: int, mode: int) -> torch.Tensor:
    """Apply one planned transform: src 1 x C x H x W, theta 1 x 2 x 3 (device) -> 1 x C x crop x crop in [0, 1].

    Interpolation-free modes sample at integer positions with 'nearest' (exact copies); the affine mode uses
    bicubic (a = -0.75, as OpenCV's INTER_CUBIC). Outside the source the value is 0.
    """
    grid = F.affine_grid(theta.to(src.dtype), [src.shape[0], src.shape[1], crop_size, crop_size],
                         align_corners=True)
    out = F.grid_sample(src, grid, mode="bicubic" if mode == AFFINE else "nearest", padding_mode="zeros",
                        align_corners=True)
    return out.clamp_(0.0, 1.0)


__all__ = ["AugmentPlan", "plan_augmentations", "sample_transform", "grid_theta", "warp", "LEAVE_AS_IS",
           "NO_INTERP", "AFFINE"]
