"""Geometric self-ensemble and back-projection, as tensor ops.

Ensemble (the original's final test): for k = 0..7 the input is rotated by 90k degrees (k < 4) or rotated and then
mirrored left-right (k >= 4), super-resolved, the transform undone, and back-projected; the outputs' median
(numpy semantics: the mean of the two middle values for an even count) is back-projected again. When the scale
differs per axis only k = 0, 2, 4, 6 (180-degree steps) are used, since a 90-degree turn would swap the axes' scales.
"""
from __future__ import annotations

from typing import Callable

import torch

from zssr.resize import imresize

Pair = tuple[float, float]
# downscale(x, sf, out_hw): the degradation by the super-resolution factor sf (> 1) to an out_hw image
Downscale = Callable[[torch.Tensor, Pair, tuple[int, int]], torch.Tensor]


def transform(x: torch.Tensor, k: int) -> torch.Tensor:
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if k >= 4 else y


def inverse_transform(y: torch.Tensor, k: int) -> torch.Tensor:
    if k >= 4:
        y = torch.flip(y, dims=(-1,))
    return torch.rot90(y, (-k) % 4, dims=(-2, -1))


def ensemble_indices(sf: Pair, enabled: bool) -> list[int]:
    if not enabled:
        return [0]
    return list(range(0, 8, 1 if sf[0] == sf[1] else 2))


def median(stack: torch.Tensor) -> torch.Tensor:
    """numpy.median along dim 0."""
    n = stack.shape[0]
    if n == 1:
        return stack[0]
    s, _ = torch.sort(stack, dim=0)
    if n % 2:
        return s[n // 2]
    return 0.5 * (s[n // 2 - 1] + s[n // 2])


def back_projection(sr: torch.Tensor, lr: torch.Tensor, sf: Pair, downscale: Downscale, up_kernel: str = "cubic",
                    iters: int = 1) -> torch.Tensor:
    """sr <- clip(sr + up(lr - down(sr))), `iters` times; down is the degradation (cubic or a given kernel)."""
    lr_hw = (lr.shape[-2], lr.shape[-1])
    sr_hw = (sr.shape[-2], sr.shape[-1])
    for _ in range(iters):
        residual = lr - downscale(sr, sf, lr_hw)
        sr = (sr + imresize(residual, sf, sr_hw, kernel=up_kernel)).clamp_(0.0, 1.0)
    return sr


def _passes(fn: Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, indices: list[int], batched: bool
            ) -> dict[int, torch.Tensor]:
    """fn of every transformed input, undone; batched: the variants of one shape in one call of fn."""
    if not batched:
        return {k: inverse_transform(fn(transform(lr, k)), k) for k in indices}
    by_shape: dict[tuple, list[int]] = {}
    for k in indices:
        by_shape.setdefault(tuple(transform(lr, k).shape), []).append(k)
    outs = {}
    for ks in by_shape.values():
        ys = fn(torch.cat([transform(lr, k) for k in ks]))
        outs.update({k: inverse_transform(ys[i:i + 1], k) for i, k in enumerate(ks)})
    return outs


def self_ensemble(fn: Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, sf: Pair, downscale: Downscale,
                  bp_iters: int, enabled: bool = True, up_kernel: str = "cubic", batched: bool = False
                  ) -> torch.Tensor:
    """Median over the geometric variants of fn(lr), each back-projected, then back-projected once more.
    batched: the variants that share a shape go through fn together (the same result up to float rounding)."""
    indices = ensemble_indices(sf, enabled)
    passes = _passes(fn, lr, indices, batched)
    outputs = [back_projection(passes[k], lr, sf, downscale, up_kernel, bp_iters) for k in indices]
    fused = median(torch.stack(outputs, dim=0))
    return back_projection(fused, lr, sf, downscale, up_kernel, bp_iters)


__all__ = ["transform", "inverse_transform", "ensemble_indices", "median", "back_projection", "self_ensemble"]
