"""Cost that means the same on every machine: FLOPs (multiply-adds x 2) of a network's forward, and parameters.

Counted with `torch.utils.flop_counter.FlopCounterMode` on the meta device: the parameters are replaced by meta
tensors of the same shapes (`torch.func.functional_call`), so nothing is computed or copied and the count takes
milliseconds whatever the image size. What is counted: convolutions, matrix products and attention (PyTorch's
flop formulas, 2 per multiply-add, biases not included); elementwise work (activations, additions, pixel
shuffle, interpolation) is not, as in the SR literature's tables.

The meta-device forward still costs Python time per operation (about 1 ms; RRDBNet's 1,000 operations: about a
second), so `network_flops` counts a pixel-proportional network once, at three small probe sizes, and scales the
count to every image (exact: each convolution's count is a whole number per output pixel); other networks are
counted once per input shape. Measured on the 2-core development CPU under a load of ~18 (so roughly 9x slower
than idle): RRDBNet's three probes 27 s once per process, then nothing per cell; realesr-animevideov3 1.7 s once;
DAT-light is not pixel-proportional (its window attention pads and splits by axis) and costs one count per
distinct LR shape, 18-21 s there (about 2 s idle) - more than 2 % of a DAT-light cell on a GPU: cache its counts
across runs (they depend only on the shape and the weights' architecture) before wiring it for GPU sessions.

For the harness (not wired yet): `forward_cost(method, lr_shape, scale)` gives {"flops", "parameters"} of one
forward of a pretrained method's network at a cell's LR size, or {} for a method that does not expose its network
(`counted_network(scale) -> (module, input_channels)`).
"""
from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: torch.nn.Module) -> int:
    """Every parameter's element count (shared parameters once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def count_flops(model: torch.nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> int:
    """FLOPs (2 x multiply-adds) of one forward of `model` on an input of `input_shape` (N x C x H x W), counted on
    the meta device: the model itself is left untouched."""
    from torch.func import functional_call

    meta = {name: torch.empty_like(t, device="meta") for name, t in
            [*model.named_parameters(), *model.named_buffers()]}
    x = torch.empty(input_shape, dtype=dtype, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        functional_call(model, meta, (x,))
    return int(counter.get_total_flops())


# Networks whose count is proportional to the number of input pixels (every stride-1, same-padded convolutional
# network: RRDBNet, SRVGG, SRMD) are counted once, at setup-sized probes, and scaled for every cell; the others
# (windowed attention padded to a multiple of its window, strided encoders) are counted once per input shape.
_PROBES = ((24, 24), (24, 40), (29, 37))  # the odd one catches padding to multiples and strides
_PER_PIXEL: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[int, torch.dtype], int | None]]"
_BY_SHAPE: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[tuple[int, ...], torch.dtype], int]]"


def _per_pixel(model: torch.nn.Module, channels: int, dtype: torch.dtype) -> int | None:
    """FLOPs per input pixel of one image when the count is exactly proportional to the pixels (None otherwise),
    found once per (model, channels, dtype) from three probe sizes."""
    known = _PER_PIXEL.setdefault(model, {})
    key = (channels, dtype)
    if key not in known:
        try:
            counts = [(count_flops(model, (1, channels, h, w), dtype), h * w) for h, w in _PROBES]
        except Exception:  # noqa: BLE001 - a network that rejects the probe sizes is counted per shape instead
            counts = []
        first, pixels = counts[0] if counts else (0, 0)
        linear = bool(counts) and first % pixels == 0 and all(f * pixels == first * p for f, p in counts)
        known[key] = first // pixels if linear else None
    return known[key]


def network_flops(model: torch.nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> int:
    """count_flops, cheaply: scaled from the per-pixel count for pixel-proportional networks, else counted once
    per input shape (cached for the model's lifetime)."""
    n, c, h, w = (int(d) for d in input_shape)
    per_pixel = _per_pixel(model, c, dtype)
    if per_pixel is not None:
        return per_pixel * n * h * w
    shapes = _BY_SHAPE.setdefault(model, {})
    key = ((n, c, h, w), dtype)
    if key not in shapes:
        shapes[key] = count_flops(model, key[0], dtype)
    return shapes[key]


_PER_PIXEL = weakref.WeakKeyDictionary()
_BY_SHAPE = weakref.WeakKeyDictionary()


def forward_cost(method: Any, lr_shape: tuple[int, ...], scale: int) -> dict[str, int]:
    """{"flops", "parameters"} of one forward of `method`'s network on an LR image of `lr_shape` (N x 3 x H x W)
    at `scale`, after method.setup(); {} when the method exposes no network (`counted_network`)."""
    counted = getattr(method, "counted_network", None)
    if counted is None:
        return {}
    model, channels = counted(scale)
    n, _, h, w = lr_shape
    return {"flops": network_flops(model, (n, channels, h, w)), "parameters": count_parameters(model)}
