"""Cheap failure signals on an estimated x2 downscaling kernel, and the verdict they give.

    from zssr.kernel_checks import KernelLimits, check_kernel
    verdict = check_kernel(kernel, KernelLimits())      # verdict.ok, verdict.reasons, verdict.measures

KernelGAN can end on a kernel that no camera makes (two blobs, a mode off the centre of mass, a smear against its
canvas' edge) and ZSSR trained with such a kernel can end several dB below ZSSR assuming bicubic (issue 40: a
two-blob estimate cost 5 dB on a 192 x 192 crop). These checks look only at the kernel's shape, so they cost
microseconds and need neither the HR image nor any training:

- modes: the kernel's support above MODE_LEVEL x its peak, split into 8-connected parts; a part holding at least
  MIN_MODE_MASS of the kernel's mass is a mode. A Gaussian's level sets are single ellipses at every level, so a
  second mode is a second blob.
- mode offset: the main mode's centre of mass (the part holding the peak) against the whole kernel's. ZSSR centres a
  given kernel on its centre of mass (kernel_shift), so this is how far from where ZSSR puts it the blur really sits.
- centre offset: the whole kernel's centre of mass against the canvas' centre (kernel_shift's convention). KernelGAN's
  generator is pulled to that centre; a kernel that drifted far from it has been fighting its regularisation.
- spread: the eigenvalues of the kernel's second-moment matrix (pixel^2), against the range the DIV2KRK recipe draws
  its Gaussians from (bench.degradations.aniso_gaussian_kernel: variances uniform in [0.175 s, 2.5 s]).
- border: the fraction of the mass in the outer BORDER_RING pixels of the canvas (KernelGAN penalises exactly these
  on its 13 x 13 canvas): mass there means the kernel was cut by the canvas or is a smear.

The thresholds are named constants below with why each is where it is; they are defaults of KernelLimits (a frozen
config), so a caller may tune them. numpy and scipy only (no torch), like zssr.kernel_math.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

# -- thresholds and why -----------------------------------------------------------------------------------------

# A part of the support counts from a quarter of the peak: a valley between two blobs must dip below it to split
# them. Lower levels merge two blobs through their tails; the DIV2KRK kernels' +-25 % pixel noise can lift a single
# tail pixel over this level, but such a speck would hold a few percent of the mass at most, far below MIN_MODE_MASS
# (measured on 2000 x2 draws of aniso_gaussian_kernel: the level set was one part in every draw).
MODE_LEVEL = 0.25
# A second blob that holds a tenth of the mass shifts the kernel's centre of mass by a tenth of the blobs' distance
# and adds its own copy of the image a few pixels away: a ghost ZSSR would learn to undo. Smaller specks are noise.
MIN_MODE_MASS = 0.10
# The main mode's centre of mass may sit at most one HR pixel from the whole kernel's: one HR pixel is half an LR
# pixel at x2, a visible misregistration of the sons ZSSR trains on. The DIV2KRK draws, noise included, stay near
# the centre (measured on 2000 x2 draws: median 0.05, max 0.34 pixel).
MAX_MODE_OFFSET = 1.0
# KernelGAN's 13 x 13 generator kernel is pulled to its canvas' centre by its centring loss (the draws sit within
# 0.18 pixel of it, measured as above); beyond two pixels of drift under 3.5 pixels are left to the near edge,
# fewer than two sigmas of the widest DIV2KRK Gaussian (sqrt(5) = 2.2 pixels): its tail is cut there.
MAX_CENTRE_OFFSET = 2.0
# The DIV2KRK recipe draws covariance eigenvalues (variances, pixel^2) uniformly in [0.175 s, 2.5 s] per scale s.
# Its kernels' second moments, measured on 2000 21 x 21 x2 draws with their noise, lie in [0.17 s, 2.6 s]. A
# kernel outside half the smallest / twice the largest is no blur this recipe (or a common lens) makes: a near-delta
# aliases, a huge spread is a smear. The bounds are per unit of scale, applied at x2 (KernelGAN's only estimate).
MIN_VARIANCE_PER_SCALE = 0.5 * 0.175
MAX_VARIANCE_PER_SCALE = 2.0 * 2.5
# KernelGAN's boundary loss weights the outer two pixels of its 13 x 13 canvas (zssr.kernelgan.boundary_mask). The
# DIV2KRK Gaussians, cut to 13 x 13 like a generator's kernel, put little mass there (measured on 2000 x2 draws: median
# 0.018, max 0.086; after KernelGAN's thresholding, which keeps about the 41 largest values, max 0.035); a quarter of
# the mass there is a kernel the canvas cut, or a smear.
BORDER_RING = 2
MAX_BORDER_MASS = 0.25


@dataclass(frozen=True)
class KernelLimits:
    """Where the checks draw their lines (defaults: the named constants above)."""

    mode_level: float = MODE_LEVEL
    min_mode_mass: float = MIN_MODE_MASS
    max_mode_offset: float = MAX_MODE_OFFSET
    max_centre_offset: float = MAX_CENTRE_OFFSET
    min_variance_per_scale: float = MIN_VARIANCE_PER_SCALE
    max_variance_per_scale: float = MAX_VARIANCE_PER_SCALE
    border_ring: int = BORDER_RING
    max_border_mass: float = MAX_BORDER_MASS

    def replace(self, **overrides: Any) -> "KernelLimits":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"KernelLimits has no field(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class KernelVerdict:
    """Whether a kernel passed every check, what failed (one short phrase each) and what was measured."""

    ok: bool
    reasons: tuple[str, ...]
    measures: dict[str, float]

    def summary(self) -> str:
        """One line: the failures, or the measures that passed."""
        if not self.ok:
            return "; ".join(self.reasons)
        m = self.measures
        return (f"{int(m['modes'])} mode, mode offset {m['mode_offset']:.2f} px, centre offset "
                f"{m['centre_offset']:.2f} px, variances {m['variance_min']:.2f}-{m['variance_max']:.2f} px^2, "
                f"border mass {m['border_mass']:.2f}")


def _centre_of_mass(weights: np.ndarray) -> np.ndarray:
    return np.array(ndimage.center_of_mass(weights))


def measure_kernel(kernel: np.ndarray, limits: KernelLimits = KernelLimits(), scale: int = 2) -> dict[str, float]:
    """The measures the checks compare with their limits (see the module's docstring); negative values count as 0."""
    k = np.clip(np.asarray(kernel, dtype=np.float64), 0.0, None)
    total = k.sum()
    if k.ndim != 2 or not np.isfinite(total) or total <= 0:
        raise ValueError(f"a kernel must be a 2-D array with positive finite mass; got shape {np.shape(kernel)}, "
                         f"mass {total}")
    k = k / total
    labels, n = ndimage.label(k >= limits.mode_level * k.max(), structure=np.ones((3, 3)))
    masses = ndimage.sum(k, labels, index=np.arange(1, n + 1))
    main = int(labels[np.unravel_index(np.argmax(k), k.shape)])
    com = _centre_of_mass(k)
    main_com = _centre_of_mass(np.where(labels == main, k, 0.0))
    # where kernel_shift puts the centre of mass for this scale (odd sizes: half a pixel past the middle at x2)
    wanted = np.array(k.shape) // 2 + 0.5 * (scale - np.array(k.shape) % 2)
    yy, xx = np.indices(k.shape, dtype=np.float64)
    dy, dx = yy - com[0], xx - com[1]
    cov = np.array([[np.sum(k * dy * dy), np.sum(k * dy * dx)], [np.sum(k * dy * dx), np.sum(k * dx * dx)]])
    variances = np.linalg.eigvalsh(cov)
    ring = limits.border_ring
    inner = k[ring:-ring, ring:-ring].sum() if min(k.shape) > 2 * ring else 0.0
    return {"modes": float(np.sum(masses >= limits.min_mode_mass)),
            "mode_offset": float(np.linalg.norm(main_com - com)),
            "centre_offset": float(np.linalg.norm(com - wanted)),
            "variance_min": float(variances[0]), "variance_max": float(variances[1]),
            "border_mass": float(1.0 - inner)}


def check_kernel(kernel: np.ndarray, limits: KernelLimits = KernelLimits(), scale: int = 2) -> KernelVerdict:
    """The verdict of every check on `kernel` (an x`scale` downscaling kernel, on its canvas as estimated: not
    re-centred, so that the centre offset and the border mean something)."""
    m = measure_kernel(kernel, limits, scale)
    reasons = []
    if m["modes"] != 1:
        reasons.append(f"{int(m['modes'])} modes (parts above {limits.mode_level:g} of the peak holding "
                       f">= {limits.min_mode_mass:g} of the mass; one expected)")
    if m["mode_offset"] > limits.max_mode_offset:
        reasons.append(f"main mode {m['mode_offset']:.2f} px from the centre of mass (max {limits.max_mode_offset:g})")
    if m["centre_offset"] > limits.max_centre_offset:
        reasons.append(f"centre of mass {m['centre_offset']:.2f} px off the canvas centre "
                       f"(max {limits.max_centre_offset:g})")
    low, high = limits.min_variance_per_scale * scale, limits.max_variance_per_scale * scale
    if m["variance_min"] < low:
        reasons.append(f"too narrow: variance {m['variance_min']:.3f} px^2 (min {low:g})")
    if m["variance_max"] > high:
        reasons.append(f"too wide: variance {m['variance_max']:.2f} px^2 (max {high:g})")
    if m["border_mass"] > limits.max_border_mass:
        reasons.append(f"{m['border_mass']:.2f} of the mass in the outer {limits.border_ring} px "
                       f"(max {limits.max_border_mass:g})")
    return KernelVerdict(ok=not reasons, reasons=tuple(reasons), measures=m)


__all__ = ["KernelLimits", "KernelVerdict", "check_kernel", "measure_kernel", "MODE_LEVEL", "MIN_MODE_MASS",
           "MAX_MODE_OFFSET", "MAX_CENTRE_OFFSET", "MIN_VARIANCE_PER_SCALE", "MAX_VARIANCE_PER_SCALE", "BORDER_RING",
           "MAX_BORDER_MASS"]
