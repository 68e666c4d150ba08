"""Given (numeric) downscaling kernels: loading, centring, and degradation with them.

A kernel is a MATLAB `.mat` file holding a 2-D matrix under the name "Kernel"; for an input `<name>.png` and scale
step i the file is `<name>_<i>.mat`. As in the original ZSSR, a kernel is shifted before use so that its centre of
mass sits where the MATLAB-bicubic convention puts it (the top-left LR pixel corresponds to the middle of the first
sf x sf HR pixels); degradation is a correlation with symmetric ("reflect", half-sample) boundaries followed by
subsampling at rows/cols round(linspace(0, in - sf, out)).

The numpy maths lives in zssr.kernel_math (no torch); this module adds KernelDownscaler, the same degradation on
the device, and re-exports the numpy names so that `from zssr.kernels import ...` keeps working.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from zssr.kernel_math import (Pair, _output_shape, _pair, bicubic_kernel, centred, degrade_with_kernel,
                              find_kernels, kernel_error, kernel_shift, load_kernel, subsample_indices)


def _symmetric_index(n: int, before: int, after: int) -> np.ndarray:
    idx = np.arange(-before, n + after)
    period = 2 * n
    idx = np.mod(idx, period)
    return np.where(idx < n, idx, period - 1 - idx)


class KernelDownscaler:
    """Device-resident degradation with one (already shifted) kernel: x (N x C x H x W) -> blurred, subsampled."""

    def __init__(self, kernel: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        kernel = np.asarray(kernel, dtype=np.float64)
        self.kh, self.kw = kernel.shape
        self.weight = torch.tensor(kernel, dtype=dtype, device=device)[None, None]
        self.device = device
        self._index_cache: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def _indices(self, h: int, w: int, oh: int, ow: int, sf: Pair) -> tuple[torch.Tensor, ...]:
        key = (h, w, oh, ow, sf)
        if key not in self._index_cache:
            # scipy's correlate centres a kernel of size k at k // 2
            py = _symmetric_index(h, self.kh // 2, self.kh - 1 - self.kh // 2)
            px = _symmetric_index(w, self.kw // 2, self.kw - 1 - self.kw // 2)
            rows = subsample_indices(h, oh, sf[0])
            cols = subsample_indices(w, ow, sf[1])
            # only the padded rows/cols that feed the kept outputs are needed: gather them, then a strided-free conv
            as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.long, device=self.device)
            self._index_cache[key] = (as_t(py), as_t(px), as_t(rows), as_t(cols))
        return self._index_cache[key]

    def __call__(self, x: torch.Tensor, scale: float | Pair, output_shape: tuple[int, int] | None = None
                 ) -> torch.Tensor:
        sf = _pair(scale)
        n, c, h, w = x.shape
        oh, ow = output_shape or _output_shape((h, w), sf)
        py, px, rows, cols = self._indices(h, w, oh, ow, sf)
        padded = x.index_select(-2, py).index_select(-1, px)
        weight = self.weight.to(x.dtype).expand(c, 1, self.kh, self.kw)
        blurred = F.conv2d(padded, weight, groups=c)
        return blurred.index_select(-2, rows).index_select(-1, cols)


# -- subsampling grids --------------------------------------------------------------------------------------------
# A blur kernel says half of a degradation; the other half is where the LR pixels sit on the HR grid:
# - "zssr": ZSSR's own convention (and this suite's `kernel:` and `aniso-gaussian` steps): the kernel is re-centred
#   by kernel_shift, correlated (scipy.ndimage.correlate, reflect) and sampled at rows/cols
#   round(linspace(0, in - s, out)) = 0, s, 2s, ... for sizes that are multiples of s. The kernel's centre of mass
#   then sits (s - 1) / 2 HR pixels after each kept pixel: LR pixel i is centred at HR s*i + (s - 1) / 2, where
#   MATLAB bicubic downscaling centres it.
# - "direct": MZSR's and SRMD's "direct downsampler": convolve(HR, k, mode="reflect")[0::s, 0::s] with the kernel
#   as given (a centred kernel: LR pixel i is centred at HR s*i). (s - 1) / 2 HR pixels up and left of "zssr":
#   half a pixel per axis at x2, 1.5 at x4.
# - "bicubic": blur with k (convolve, reflect), then MATLAB bicubic downscaling (MZSR's g^b, SRMD's model): the
#   "zssr" grid, with the cubic's blur after k.
GRIDS = ("zssr", "direct", "bicubic")


def check_grid(grid: str) -> str:
    if grid not in GRIDS:
        raise ValueError(f"unknown subsampling grid {grid!r}; known: {', '.join(GRIDS)}")
    return grid


def direct_as_correlation(kernel: np.ndarray) -> np.ndarray:
    """The kernel K for which correlate(x, K)[0::s, 0::s] (ZSSR's downscaler, no re-centring) equals direct
    subsampling convolve(x, kernel)[0::s, 0::s] (scipy, same boundary): the kernel flipped, and for an even size
    one zero row / column put first (scipy's convolution origin for even sizes sits one pixel before the middle)."""
    k = np.asarray(kernel, dtype=np.float64)[::-1, ::-1]
    return np.pad(k, ((1 - k.shape[0] % 2, 0), (1 - k.shape[1] % 2, 0)))


@dataclass(frozen=True)
class GridKernel:
    """A told kernel with the subsampling grid it was applied on (see GRIDS). ZSSR takes one where it takes a
    kernel (zssr.problem.step_kernels): `for_zssr` places it on ZSSR's grid, so that ZSSR's sons are made exactly
    as the LR image was and a told ZSSR is not misaligned. The direct grid is not flip-invariant (a flipped image
    is sampled at s*i + s - 1): training is unaffected (sons are made after the flip), but a self-ensemble that flips
    the test image would average outputs (s - 1) HR pixels apart; the given-kernel configuration has no ensemble."""

    kernel: np.ndarray = field(compare=False, repr=False)
    grid: str = "zssr"

    def __post_init__(self) -> None:
        check_grid(self.grid)

    def for_zssr(self, sf: float | Pair) -> np.ndarray:
        """The kernel as ZSSR's downscaler (KernelDownscaler, or degrade_with_kernel with shift=False) uses it."""
        k = np.asarray(self.kernel, dtype=np.float64)
        if self.grid == "direct":
            # no re-centring: ZSSR keeps rows 0, s, 2s, ... as the direct grid does; the kernel's own centre stays
            return direct_as_correlation(k)
        if self.grid == "bicubic":
            # the cubic's blur after k, then ZSSR's usual centring (bicubic_kernel with kernel_shift is imresize)
            from scipy.signal import convolve2d

            s = _pair(sf)
            if s[0] != s[1] or s[0] != int(s[0]):
                raise ValueError(f"a kernel on the bicubic grid needs an integer scale, got {sf}")
            k = convolve2d(k, bicubic_kernel(int(s[0])))
        return kernel_shift(k, sf)


__all__ = ["GRIDS", "GridKernel", "check_grid", "direct_as_correlation", "load_kernel", "kernel_shift", "find_kernels", "degrade_with_kernel", "KernelDownscaler",
           "subsample_indices", "bicubic_kernel", "centred", "kernel_error"]
