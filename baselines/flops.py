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

For the harness (bench/cellwork.py): `forward_cost(method, lr_shape, scale)` gives {"flops", "parameters"} of one
forward of a pretrained method's network at a cell's LR size, or {} for a method that does not expose its network
(`counted_network(scale) -> (module, input_channels)`). Methods that train at test time count themselves from their
run's shapes and iterations (`zssr_costs`, `kernelgan_flops`): a training step (forward, backward of every weight,
optimizer update) is counted once per network and crop size, on the meta device, and multiplied; the update and the
loss are elementwise work and count 0 under the convention above.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
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
    with counter, torch.no_grad(), _tensor_attributes_kept(model):
        functional_call(model, meta, (x,))
    return int(counter.get_total_flops())


@contextmanager
def _tensor_attributes_kept(model: torch.nn.Module):
    """Put back the plain tensor attributes (neither parameters nor buffers) of `model`'s modules after a counted
    forward: DAT's forward does `self.mean = self.mean.type_as(x)`, which on the meta device would leave the real
    network with a meta tensor and break its next real forward ("Cannot copy out of meta tensor")."""
    kept = [(m, k, v) for m in model.modules() for k, v in vars(m).items() if isinstance(v, torch.Tensor)]
    try:
        yield
    finally:
        for module, key, value in kept:
            module.__dict__[key] = value


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


def training_step_flops(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one training step of `model` on an input of `input_shape`: the forward and the backward to every
    parameter (not to the input, which needs no gradient), counted on the meta device; cached per model and shape.
    The loss and the optimizer update are elementwise (not counted)."""
    shapes = _STEP.setdefault(model, {})
    key = tuple(int(d) for d in input_shape)
    if key not in shapes:
        from torch.func import functional_call

        meta = {name: torch.empty_like(t, device="meta").requires_grad_(True) for name, t in model.named_parameters()}
        meta.update({name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()})
        x = torch.empty(key, device="meta")
        counter = FlopCounterMode(display=False)
        with counter, _tensor_attributes_kept(model):
            functional_call(model, meta, (x,)).float().abs().mean().backward()
        shapes[key] = int(counter.get_total_flops())
    return shapes[key]


_STEP: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[int, ...], int]]" = weakref.WeakKeyDictionary()

# ZSSR's networks by the fields that decide their shape (one network object per shape keeps the caches above warm)
_ZSSR_NETS: dict[tuple, torch.nn.Module] = {}
ZSSR_NETWORK_FIELDS = ("depth", "width", "kernel_size", "conv", "activation", "bias", "learn_residual")


def zssr_network(cfg: Any) -> torch.nn.Module:
    """A ZSSR network of `cfg`'s shape (weights irrelevant: it is only counted)."""
    key = tuple(getattr(cfg, f) for f in ZSSR_NETWORK_FIELDS)
    if key not in _ZSSR_NETS:
        from zssr.network import ZSSRNet

        _ZSSR_NETS[key] = ZSSRNet(cfg)
    return _ZSSR_NETS[key]


def zssr_costs(cfg: Any, stats: dict[str, Any], measurements: list[int]) -> dict[str, int]:
    """{"flops-train", "flops-test", "flops", "parameters"} of one ZSSR problem run with `cfg`, from its stats
    (iterations, and per scale step its input size, relative scale and back-projections) and `measurements`, the
    number of reconstruction-error measurements per scale step.

    Training: one counted step at crop_size x crop_size (forward, backward, update) times the iterations (restarted
    attempts included), plus one forward of the network at the step's input size per measurement (the
    learning-rate policy's reconstruction error; the son's downscaling and interpolation are resizes, not counted).
    Test: per scale step, one forward at the output size per self-ensemble pass (8, 4 or 1); back-projection and the
    median are resizes and elementwise work (not counted)."""
    from zssr.ensemble import ensemble_indices
    from zssr.resize import resolve_scale_and_shape

    net = zssr_network(cfg)
    step = training_step_flops(net, (1, 3, cfg.crop_size, cfg.crop_size))
    train = step * int(stats.get("iterations", 0))
    test = 0
    for k, info in enumerate(stats.get("steps", [])):
        h, w = (int(v) for v in info["input_hw"])
        sf = tuple(float(v) for v in info["relative_scale"])
        if k < len(measurements):
            train += measurements[k] * network_flops(net, (1, 3, h, w))
        _, (oh, ow) = resolve_scale_and_shape((h, w), sf, None)
        test += len(ensemble_indices(sf, cfg.ensemble)) * network_flops(net, (1, 3, int(oh), int(ow)))
    return {"flops-train": train, "flops-test": test, "flops": train + test, "parameters": count_parameters(net)}


_KERNELGAN: dict[tuple, int] = {}


def kernelgan_flops(cfg: Any) -> int:
    """FLOPs of a KernelGAN run of `cfg` (zssr.kernelgan): its iterations times one counted iteration, which does
    not depend on the image (fixed crops): G's step (G and D forward on a crop, backward to both), G's kernel (its
    response to a delta) and its loss terms, then D's step (G forward without gradients, D forward on a real and a
    fake crop, backward). Counted on the meta device once per configuration."""
    key = tuple(sorted((k, str(v)) for k, v in cfg.to_dict().items() if k not in ("seed", "precision", "max_iters")))
    if key not in _KERNELGAN:
        from zssr.kernelgan import Discriminator, Generator

        with torch.device("meta"):
            g, d = Generator(cfg), Discriminator(cfg)
        d_size = g.output_size(cfg.crop_size)
        counter = FlopCounterMode(display=False)
        with counter:
            g_in = torch.empty(1, 3, cfg.crop_size, cfg.crop_size, device="meta")
            (d(g(g_in)).mean() + g.kernel().abs().sum()).backward()
            with torch.no_grad():
                fake = g(g_in)
            (d(torch.empty(1, 3, d_size, d_size, device="meta")).mean() + d(fake).mean()).backward()
        _KERNELGAN[key] = int(counter.get_total_flops())
    return _KERNELGAN[key] * int(cfg.max_iters)
