"""Tiled inference for fully convolutional (and windowed-attention) SR networks.

The image is reflect-padded by `pad` pixels once; each tile of `tile` x `tile` input pixels is run with `pad` pixels
of context on every side (its neighbours' pixels inside the image, the reflection at the image border) and only its
core is kept. With one tile this is exactly "reflect-pad, run, crop" (the ncnn Real-ESRGAN runtime's scheme with
pad 10); with several it agrees with that as far as the network's receptive field fits inside `pad`.

On CUDA an out-of-memory error halves the tile size and retries (down to `min_tile`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TileConfig:
    tile: int | None = 512  # input pixels per tile side; None: whole image in one piece
    pad: int = 10  # context (and border reflection) per side, input pixels
    min_tile: int = 32


def _oom_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    for attr in ("OutOfMemoryError",):
        for mod in (torch, getattr(torch, "cuda", None)):
            t = getattr(mod, attr, None) if mod is not None else None
            if isinstance(t, type) and t not in types:
                types.append(t)
    return tuple(types)


def _reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    if pad <= 0:
        return x
    h, w = x.shape[-2:]
    if pad < h and pad < w:
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    return F.pad(x, (pad, pad, pad, pad), mode="replicate")  # image smaller than the padding


def _run_tiles(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int, pad: int
               ) -> torch.Tensor:
    n, c, h, w = x.shape
    xp = _reflect_pad(x, pad)
    out: torch.Tensor | None = None
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            # padded coordinates: original (y0 - pad) .. (y1 + pad) is padded y0 .. y1 + 2 pad
            piece = fn(xp[:, :, y0:y1 + 2 * pad, x0:x1 + 2 * pad])
            if piece.shape[-2:] != ((y1 - y0 + 2 * pad) * scale, (x1 - x0 + 2 * pad) * scale):
                raise RuntimeError(f"network returned {tuple(piece.shape)} for a {y1 - y0 + 2 * pad} x "
                                   f"{x1 - x0 + 2 * pad} tile; expected x{scale}")
            if out is None:
                out = piece.new_empty((n, piece.shape[1], h * scale, w * scale))
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = piece[
                :, :, pad * scale:(pad + y1 - y0) * scale, pad * scale:(pad + x1 - x0) * scale]
    assert out is not None
    return out


def tiled_forward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int,
                  config: TileConfig = TileConfig()) -> tuple[torch.Tensor, int]:
    """Run `fn` (an xN network) over `x` (N x C x H x W) in tiles; returns the output and the tile size used."""
    h, w = x.shape[-2:]
    tile = max(h, w) if config.tile is None else min(config.tile, max(h, w))
    oom = _oom_types()
    while True:
        try:
            return _run_tiles(fn, x, scale, tile, config.pad), tile
        except oom:  # raised by CUDA (and other accelerators) when a tile does not fit
            if tile // 2 < config.min_tile:
                raise
            tile //= 2
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
