"""Image-quality metrics under the published protocol, and the one table that describes every column of results.

Inputs are uint8 arrays (H x W x 3 RGB or H x W grayscale) of the same shape; `border` pixels are cropped.
Metrics without a reference (`needs_reference=False`) read the SR output alone (niqe) or the SR output and the LR
input it was made from (`needs_input`: the LR consistency); under the degradation `none` (real photos) there is no
HR image, and every metric that needs one is n/a with the reason.
`METRIC_TABLE` is read by the runner (what to compute), results (run.json), and the report (direction, unit,
decimals), so a metric is added in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.protocol import kernel_downscale_uint8, matlab_resize_uint8, rgb_to_y

_LPIPS_CACHE: dict[str, object] = {}
LPIPS_MIN_SIDE = 31  # AlexNet's strides and pools leave nothing of a smaller input (measured: 30 fails, 31 runs)


class MetricNotApplicable(ValueError):
    """The metric is undefined for this input (e.g. NIQE on a small image); recorded as NaN with the reason."""


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def _check(sr: np.ndarray, hr: np.ndarray) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"SR shape {sr.shape} differs from HR shape {hr.shape}")
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        raise TypeError("metrics take uint8 images (round the SR output first, as published tables do)")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    _check(sr, hr)
    return psnr(_crop(rgb_to_y(sr), border), _crop(rgb_to_y(hr), border))


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """Wang et al.'s ssim.m (basicsr's port: 11x11 Gaussian, sigma 1.5, 'valid' filtering) on MATLAB Y."""
    from basicsr.metrics.psnr_ssim import _ssim

    _check(sr, hr)
    y_sr = _crop(rgb_to_y(sr), border).astype(np.float64)
    y_hr = _crop(rgb_to_y(hr), border).astype(np.float64)
    return float(_ssim(y_sr, y_hr))


def psnr_rgb(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    _check(sr, hr)
    return psnr(_crop(sr, border), _crop(hr, border))


def _as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def lpips_alex_model(device="cpu"):
    """LPIPS v0.1 'alex' with its ImageNet backbone from the weight store (no torchvision download); eval mode.

    Inputs are RGB in [-1, 1], as in the original code."""
    import warnings

    import lpips

    from baselines.weights import load_state_dict

    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=` argument
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    features = load_state_dict("lpips-alexnet-backbone")
    mapped = {}
    for key in model.net.state_dict():  # lpips slices torchvision's `features` and keeps the indices: slice2.3.weight
        _, idx_param = key.split(".", 1)
        mapped[key] = features[f"features.{idx_param}"]
    if len(mapped) != len(features):
        raise RuntimeError(f"LPIPS alexnet expects {len(mapped)} backbone tensors, the store has {len(features)}")
    model.net.load_state_dict(mapped, strict=True)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(device)


def lpips_alex(sr: np.ndarray, hr: np.ndarray, border: int, device: str = "cpu") -> float:
    """LPIPS v0.1 with the ImageNet AlexNet backbone (never a random one), inputs mapped to [-1, 1]."""
    import torch

    _check(sr, hr)
    h, w = sr.shape[0] - 2 * border, sr.shape[1] - 2 * border
    if min(h, w) < LPIPS_MIN_SIDE:
        raise MetricNotApplicable(f"lpips-alex needs at least {LPIPS_MIN_SIDE} x {LPIPS_MIN_SIDE} pixels after the "
                                  f"border crop; this image is {w} x {h}")
    key = str(device)
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = lpips_alex_model(torch.device(device))
    model = _LPIPS_CACHE[key]

    def to_tensor(img: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(_as_rgb(_crop(img, border)))).permute(2, 0, 1)[None].float()
        return (t / 127.5 - 1.0).to(device)

    with torch.no_grad():
        return float(model(to_tensor(sr), to_tensor(hr)).item())


def niqe(sr: np.ndarray, hr: np.ndarray | None, border: int) -> float:
    """NIQE (no reference) on Y, basicsr's MATLAB-compatible implementation with its bundled parameters."""
    from basicsr.metrics.niqe import calculate_niqe

    h, w = sr.shape[0] - 2 * border, sr.shape[1] - 2 * border
    if (h // 96) * (w // 96) < 2:
        raise MetricNotApplicable(f"niqe needs at least two 96x96 blocks after the border crop; this image is {w}x{h}")
    img = sr if sr.ndim == 2 else sr[..., ::-1]  # basicsr converts BGR to Y
    return float(calculate_niqe(img, border, input_order="HW" if sr.ndim == 2 else "HWC", convert_to="y"))


def lr_consistency(sr: np.ndarray, lr: np.ndarray, scale: int, kernel: np.ndarray | None = None) -> float:
    """PSNR-Y between the LR input and the SR output downscaled by `scale` (MATLAB bicubic, or `kernel` on ZSSR's
    grid): how well the output explains its own input, the standard sanity check of zero-shot SR. No border crop
    (both downscalings handle the borders). An output that is not `scale` times the input is an error."""
    if sr.dtype != np.uint8 or lr.dtype != np.uint8:
        raise TypeError("metrics take uint8 images (round the SR output first, as published tables do)")
    want = (lr.shape[0] * scale, lr.shape[1] * scale)
    if sr.shape[:2] != want or sr.ndim != lr.ndim:
        raise ValueError(f"SR output is {sr.shape[1]}x{sr.shape[0]}{'' if sr.ndim == 3 else ' (grey)'}; x{scale} of "
                         f"the {lr.shape[1]}x{lr.shape[0]}{'' if lr.ndim == 3 else ' (grey)'} input must be "
                         f"{want[1]}x{want[0]} with the same channels")
    down = matlab_resize_uint8(sr, 1.0 / scale) if kernel is None else kernel_downscale_uint8(sr, kernel, scale)
    if down.shape != lr.shape:  # cannot happen for an exact multiple; said rather than broadcast
        raise ValueError(f"SR output downscaled x{scale} is {down.shape}, the input {lr.shape}")
    return psnr(rgb_to_y(down), rgb_to_y(lr))


def lr_psnr_y(sr: np.ndarray, lr: np.ndarray, scale: int, kernel: np.ndarray | None = None) -> float:
    """LR consistency with the bicubic kernel (every method)."""
    return lr_consistency(sr, lr, scale)


def lr_psnr_y_estimated(sr: np.ndarray, lr: np.ndarray, scale: int, kernel: np.ndarray | None = None) -> float:
    """LR consistency with the kernel the method estimated itself (blind-kernel methods only)."""
    if kernel is None:
        raise MetricNotApplicable("the method estimated no kernel (only blind-kernel methods such as zssr-kernelgan "
                                  "do); see lr-psnr-y for the bicubic kernel")
    return lr_consistency(sr, lr, scale, np.asarray(kernel, dtype=np.float64))


# Why a metric that needs an HR image has no value under the degradation `none` (the results' note)
NO_REFERENCE_NOTE = ("no HR image: the degradation none upscales the images as they are, and their high-resolution "
                     "originals do not exist; see the no-reference metrics (niqe, lr-psnr-y)")


@dataclass(frozen=True)
class MetricSpec:
    """One column of results: how it is computed (quality metrics) or measured (costs), and how it reads."""

    name: str
    higher_is_better: bool
    unit: str
    fmt: str  # format spec of a mean in tables, e.g. ".2f"
    description: str
    kind: str = "quality"  # "quality" (computed from SR and HR) | "cost" (measured around the method)
    fn: Callable[..., float] | None = None
    needs_reference: bool = True
    wants_device: bool = False
    needs_input: bool = False  # fn(sr, lr, scale, kernel): reads the LR input (and a kernel the method estimated)

    def to_json(self) -> dict:
        return {"higher_is_better": self.higher_is_better, "unit": self.unit, "fmt": self.fmt,
                "description": self.description, "kind": self.kind, "needs_reference": self.needs_reference}


_SPECS = (
    MetricSpec("psnr-y", True, "dB", ".2f", "PSNR on MATLAB Y (rgb2ycbcr, rounded to uint8), `scale`-pixel border "
               "crop, uint8 SR; grayscale images on their single channel", fn=psnr_y),
    MetricSpec("ssim-y", True, "", ".4f", "SSIM (Wang et al. ssim.m: 11x11 Gaussian, sigma 1.5) on the same Y and "
               "crop as psnr-y", fn=ssim_y),
    MetricSpec("psnr-rgb", True, "dB", ".2f", "PSNR over R, G, B (uint8), `scale`-pixel border crop", fn=psnr_rgb),
    MetricSpec("lpips-alex", False, "", ".4f", "LPIPS v0.1, AlexNet (ImageNet) backbone, inputs in [-1, 1], on RGB, "
               f"`scale`-pixel border crop (n/a below {LPIPS_MIN_SIDE} px per side)", fn=lpips_alex,
               wants_device=True),
    MetricSpec("niqe", False, "", ".3f", "NIQE (no reference; basicsr, MATLAB-compatible), on Y, `scale`-pixel border "
               "crop: the distance of the output's natural-scene statistics from those of pristine photos (lower: "
               "more natural-looking); blind to whether the content is faithful", fn=niqe, needs_reference=False),
    MetricSpec("lr-psnr-y", True, "dB", ".2f", "LR consistency (no reference): PSNR-Y between the LR input and the SR "
               "output downscaled by MATLAB bicubic, no border crop; high when the output explains its input under "
               "the bicubic model (ZSSR's back-projection enforces it). It says nothing of detail the input lacks: "
               "plain bicubic upscaling scores high", fn=lr_psnr_y, needs_reference=False, needs_input=True),
    MetricSpec("lr-psnr-y-kernel", True, "dB", ".2f", "LR consistency under the method's own kernel (no reference): "
               "as lr-psnr-y, the SR output downscaled by the kernel the method estimated (ZSSR's grid); blind-kernel "
               "methods only (zssr-kernelgan), n/a for the others", fn=lr_psnr_y_estimated, needs_reference=False,
               needs_input=True),
    MetricSpec("seconds-load", False, "s", ".3g", "method set-up (weights to device), once per method and session, "
               "on its first cell", kind="cost"),
    MetricSpec("seconds-train", False, "s", ".3g", "test-time training (ZSSR), device-synchronised", kind="cost"),
    MetricSpec("seconds-infer", False, "s", ".3g", "inference (total minus training), device-synchronised",
               kind="cost"),
    MetricSpec("seconds-total", False, "s", ".3g", "wall time of the method's upscale call, device-synchronised; a "
               "batched cell's share of its batch (see batch-size)", kind="cost"),
    MetricSpec("peak-memory-mb", False, "MiB", ".0f", "peak memory during the method's call: the CUDA allocator's "
               "peak on a GPU; on the CPU the process's peak resident set (RSS) over the call, which includes the "
               "process's RSS at the call's start (memory-baseline-mb)", kind="cost"),
    MetricSpec("memory-baseline-mb", False, "MiB", ".0f", "the process's resident set at the start of the call (CPU)",
               kind="cost"),
    MetricSpec("iterations", False, "", ".0f", "ZSSR training iterations", kind="cost"),
    MetricSpec("restarts", False, "", ".0f", "ZSSR steps trained again because the network was dead: from fresh "
               "weights at restart_if_stuck of the budget, or from the step's starting weights when it ended no "
               "better than interpolation (retry_dead_steps); their iterations are in iterations", kind="cost"),
    MetricSpec("seconds-kernel", False, "s", ".3g", "blind kernel estimation (KernelGAN), part of seconds-train and "
               "seconds-total. An estimate is computed once per LR image, KernelGAN configuration and seed and shared "
               "by every method and run that asks for it (kernels-estimated/shared/); every cell that uses it is "
               "charged its full measured cost, also when it reused it (kernel-reused = 1), so that no cell's "
               "total depends on which cell ran first; a cell that re-estimated (kernel-decision) is charged both "
               "KernelGAN runs", kind="cost"),
    MetricSpec("kernel-reused", False, "", ".0f", "1: the cell's KernelGAN estimate (and decision) was computed for an "
               "earlier cell or run and reused (its seconds-kernel is that computation's, charged, not spent again); "
               "0: computed for this cell", kind="cost"),
    MetricSpec("kernel-decision", False, "", ".0f", "what a blind ZSSR cell did with KernelGAN's estimate "
               "(baselines.kernel_decision): 0 use it (ZSSR trains on it with the preset's quick schedule), 1 "
               "re-estimate (version 3 only: the first estimate failed the shape checks of zssr.kernel_checks, "
               "another seed's passed), 2 bicubic (it failed: the preset without a kernel source, on its own "
               "schedule); the reason is in the row's note. Shared, like the estimate, by every method that asks for "
               "the same one", kind="cost"),
    MetricSpec("flops", False, "FLOP", ".3g", "floating-point operations of the cell's method call, machine-"
               "independent: 2 per multiply-add of convolutions, matrix products and attention (torch.utils."
               "flop_counter on the meta device; biases, activations, resizes and other elementwise work not "
               "counted, as in the SR literature's tables). Pretrained networks: one forward at the cell's LR size "
               "(a resize to a non-native scale not counted). ZSSR: flops-train + flops-test. Interpolation: 0 (no "
               "network). Reports show it as TFLOP per image", kind="cost"),
    MetricSpec("flops-train", False, "FLOP", ".3g", "ZSSR's test-time training: one counted step at the crop size "
               "(forward, backward to every weight; the optimizer update is elementwise) times the iterations "
               "(restarted attempts included), plus one forward at the step's input size per reconstruction-error "
               "measurement, plus flops-kernel where a KernelGAN estimate is used", kind="cost"),
    MetricSpec("flops-test", False, "FLOP", ".3g", "ZSSR's final test: per scale step one forward at the output "
               "size per self-ensemble pass (8, 4 or 1); back-projection and the median are resizes and elementwise "
               "work (not counted)", kind="cost"),
    MetricSpec("flops-kernel", False, "FLOP", ".3g", "KernelGAN's estimate: its iterations times one counted "
               "iteration (G's step: G and D forward and backward, G's kernel; D's step: G forward, D forward on a "
               "real and a fake crop, backward; the bicubic-loss target, a small fixed convolution, not counted); "
               "charged to every cell that uses the estimate, like seconds-kernel; part of flops-train", kind="cost"),
    MetricSpec("parameters", False, "", ".0f", "learnable parameters of the network that made the output (ZSSR: the "
               "network trained on the image; 0 for interpolation)", kind="cost"),
    MetricSpec("batch-size", False, "", ".0f", "cells trained together in one call (BATCH); such a cell's "
               "seconds-train is its share of the batch's training time, in proportion to the iterations it ran, "
               "plus what ran for it alone (its final test, a kernel estimate)", kind="cost"),
    MetricSpec("seconds-batch", False, "s", ".3g", "wall time of the whole batched call the cell was part of",
               kind="cost"),
)
METRIC_TABLE: dict[str, MetricSpec] = {s.name: s for s in _SPECS}
QUALITY_METRICS = tuple(s.name for s in _SPECS if s.kind == "quality")
COST_METRICS = tuple(s.name for s in _SPECS if s.kind == "cost")
DEFAULT_METRICS = ("psnr-y", "ssim-y", "psnr-rgb", "lpips-alex")
# Added to the defaults when a run has the degradation none (real photos: the reference metrics are n/a there);
# lr-psnr-y-kernel only when a blind-kernel method runs (bench.session)
NO_REFERENCE_METRICS = ("niqe", "lr-psnr-y", "lr-psnr-y-kernel")


def check_metric_names(names) -> tuple[str, ...]:
    """The requested quality metrics, validated before any cell runs (duplicates dropped, order kept)."""
    import difflib

    out = tuple(dict.fromkeys(names))
    for name in out:
        if name not in QUALITY_METRICS:
            close = difflib.get_close_matches(name, QUALITY_METRICS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown metric {name!r}{hint}; known: {', '.join(QUALITY_METRICS)}")
    if not out:
        raise ValueError("no metric requested; known: " + ", ".join(QUALITY_METRICS))
    return out


@dataclass(frozen=True)
class MetricValue:
    value: float
    status: str = "ok"  # "ok" | "n/a" (undefined for this input) | "error" (the metric itself failed)
    note: str = ""


def compute(names, sr: np.ndarray, hr: np.ndarray | None, border: int, device: str = "cpu",
            lr: np.ndarray | None = None, scale: int | None = None, kernel: np.ndarray | None = None
            ) -> dict[str, MetricValue]:
    """Each metric on its own: one that is undefined for this input is NaN with the reason; one that raises is
    recorded as an error with its message, and the others are kept. `hr` None (degradation none): every metric
    that needs a reference is n/a with NO_REFERENCE_NOTE. `lr`, `scale`: the input the output was made from (for
    the LR consistency); `kernel`: the kernel the method estimated, if it did."""
    out: dict[str, MetricValue] = {}
    for name in check_metric_names(names):
        spec = METRIC_TABLE[name]
        if spec.needs_reference and hr is None:
            out[name] = MetricValue(float("nan"), "n/a", NO_REFERENCE_NOTE)
            continue
        if spec.needs_input and (lr is None or scale is None):
            out[name] = MetricValue(float("nan"), "n/a", f"{name} needs the LR input, which was not given")
            continue
        try:
            if spec.needs_input:
                value = spec.fn(sr, lr, int(scale), kernel)
            else:
                value = spec.fn(sr, hr, border, device=device) if spec.wants_device else spec.fn(sr, hr, border)
            out[name] = MetricValue(float(value))
        except MetricNotApplicable as exc:
            out[name] = MetricValue(float("nan"), "n/a", str(exc))
        except Exception as exc:  # noqa: BLE001 - one metric's failure must not lose the others
            out[name] = MetricValue(float("nan"), "error", f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500])
    return out
