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


__all__ = ["load_kernel", "kernel_shift", "find_kernels", "degrade_with_kernel", "KernelDownscaler",
           "subsample_indices", "bicubic_kernel", "centred", "kernel_error"]
