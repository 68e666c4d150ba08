"""The `realistic` degradation's draws: Real-ESRGAN's first-order degradation stage, reduced to what the suite's steps
do (a blur kernel then subsampling, Gaussian noise, JPEG), with each parameter drawn per image from stated ranges.

Source: Wang, Xie, Dong, Shan: "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCV Workshops 2021, first degradation stage (the ranges of its training configuration for x4):
- blur: a bivariate (anisotropic) Gaussian kernel, size odd in {7, 9, ..., 21}, standard deviations sigma_x and
  sigma_y each uniform in [0.2, 3] (HR pixels), rotation uniform in [-pi, pi];
- noise: additive Gaussian noise, sigma uniform in [1, 30] grey levels (of 255), independent per colour channel;
- JPEG: quality an integer uniform in [30, 95].
What this leaves out of that stage, on purpose (each would need a step the suite does not have): the other kernel
shapes (isotropic, generalised, plateau Gaussians and the sinc filter are drawn there with some probability; here
the kernel is always the anisotropic Gaussian), the random resize between blur and noise (here the blurred image is
subsampled by the scale directly, on the same grid as `aniso-gaussian` and `kernel:`), Poisson and grey noise (here
colour Gaussian noise, always), and the second-order stage.

Non-blind methods are told the kernel and the noise sigma (Realisation.kernel, .noise_sigma); the JPEG quality is
never told.
"""
from __future__ import annotations

import numpy as np

KERNEL_SIZES = tuple(range(7, 22, 2))  # odd sizes 7..21
SIGMA_RANGE = (0.2, 3.0)  # each axis's standard deviation, HR pixels
ROTATION_RANGE = (-np.pi, np.pi)
NOISE_RANGE = (1.0, 30.0)  # Gaussian noise sigma, grey levels of 255
JPEG_RANGE = (30, 95)  # quality, both ends included

DESCRIPTION = (
    "Real-ESRGAN's first-order degradation (Wang et al., ICCV-W 2021), one draw per image and scale: an anisotropic "
    f"Gaussian blur (size odd in {KERNEL_SIZES[0]}-{KERNEL_SIZES[-1]}, sigma_x and sigma_y uniform in "
    f"[{SIGMA_RANGE[0]}, {SIGMA_RANGE[1]}] HR pixels, rotation uniform in [-pi, pi]) then subsampling (as "
    f"aniso-gaussian), Gaussian noise (sigma uniform in [{NOISE_RANGE[0]:g}, {NOISE_RANGE[1]:g}] grey levels), JPEG "
    f"(quality uniform in [{JPEG_RANGE[0]}, {JPEG_RANGE[1]}]); without that stage's other kernel shapes, random "
    "resize and Poisson noise. Non-blind methods are told the kernel and the noise level, never the JPEG quality")


def anisotropic_gaussian(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """A centred bivariate Gaussian kernel, size x size, covariance R diag(sigma_x^2, sigma_y^2) R^T with R the
    rotation by theta, normalised to sum 1."""
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T)
    half = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size] - half
    z = np.stack([xx, yy], axis=-1)
    raw = np.exp(-0.5 * np.einsum("...i,ij,...j->...", z, inv, z))
    return raw / raw.sum()


def draw(rng: np.random.Generator) -> dict:
    """One image's parameters, in a fixed order from `rng` (seeded by the degradation, the image's content and the
    scale): kernel size, sigmas, rotation, noise sigma, JPEG quality, and the kernel they make."""
    size = int(rng.choice(KERNEL_SIZES))
    sigma_x, sigma_y = (float(v) for v in rng.uniform(*SIGMA_RANGE, size=2))
    theta = float(rng.uniform(*ROTATION_RANGE))
    noise = float(rng.uniform(*NOISE_RANGE))
    quality = int(rng.integers(JPEG_RANGE[0], JPEG_RANGE[1] + 1))
    return {"kernel_size": size, "sigma_x": sigma_x, "sigma_y": sigma_y, "theta": theta, "noise_sigma": noise,
            "jpeg_quality": quality, "kernel": anisotropic_gaussian(size, sigma_x, sigma_y, theta)}


__all__ = ["DESCRIPTION", "JPEG_RANGE", "KERNEL_SIZES", "NOISE_RANGE", "ROTATION_RANGE", "SIGMA_RANGE",
           "anisotropic_gaussian", "draw"]
