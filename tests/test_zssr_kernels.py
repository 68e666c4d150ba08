"""zssr.kernels: loading, centring and degrading with a given kernel; ZSSR uses it."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.io import savemat

from zssr import ZSSR, ZSSRConfig
from zssr.kernels import KernelDownscaler, degrade_with_kernel, find_kernels, kernel_shift, load_kernel


def _example_kernel() -> Path:
    ref = os.environ.get("ZSSR_BENCH_REFERENCE")
    if not ref:
        pytest.skip("ZSSR_BENCH_REFERENCE is not set (it points at the shared reference folder)")
    path = Path(ref) / "zssr_examples" / "kernel_example" / "BSD100_100_lr_rand_ker_c_X2_0.mat"
    if not path.is_file():
        pytest.skip(f"reference kernel missing: {path}")
    return path


def test_example_kernel_loads_and_centres():
    k = load_kernel(_example_kernel())
    assert k.shape == (9, 9) and abs(k.sum() - 1) < 1e-6
    shifted = kernel_shift(k, 2)
    # centre of mass moved to shape // 2 + 0.5 (the original's target for odd kernels at x2)
    com = np.array(ndimage.center_of_mass(shifted))
    assert np.allclose(com, np.array(shifted.shape) // 2 + 0.5, atol=2e-3)


def test_torch_degradation_matches_numpy():
    rng = np.random.default_rng(0)
    img = rng.random((33, 40, 3))
    for kernel, sf in [(rng.random((9, 9)), (2.0, 2.0)), (rng.random((4, 6)), (2.0, 3.0))]:
        kernel /= kernel.sum()
        ref = degrade_with_kernel(img, kernel, sf, shift=False)
        down = KernelDownscaler(kernel, torch.device("cpu"), torch.float64)
        out = down(torch.from_numpy(np.moveaxis(img, -1, 0)[None].copy()), sf)[0].permute(1, 2, 0).numpy()
        assert out.shape == ref.shape == (17, int(np.ceil(40 / sf[1])), 3)
        assert np.abs(out - ref).max() < 1e-12


def test_delta_kernel_is_plain_subsampling():
    img = np.random.default_rng(1).random((10, 12))
    delta = np.zeros((3, 3))
    delta[1, 1] = 1
    assert np.allclose(degrade_with_kernel(img, delta, 2, shift=False), img[::2, ::2])


def test_find_kernels(tmp_path):
    img = tmp_path / "pic.png"
    img.write_bytes(b"")
    assert find_kernels(img, 2) == []
    savemat(tmp_path / "pic_0.mat", {"Kernel": np.ones((3, 3)) / 9})
    with pytest.raises(FileNotFoundError, match="pic_1.mat"):
        find_kernels(img, 2)
    savemat(tmp_path / "pic_1.mat", {"Kernel": np.ones((3, 3)) / 9})
    assert [p.name for p in find_kernels(img, 2)] == ["pic_0.mat", "pic_1.mat"]
    savemat(tmp_path / "bad.mat", {"K": np.ones((3, 3))})
    with pytest.raises(KeyError, match="Kernel"):
        load_kernel(tmp_path / "bad.mat")


def test_zssr_uses_the_given_kernel():
    path = _example_kernel()
    kernel = load_kernel(path)
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 32, 32)
    lr_np = degrade_with_kernel(hr[0].permute(1, 2, 0).double().numpy(), kernel, 2)
    lr = torch.from_numpy(lr_np).permute(2, 0, 1)[None].float()
    cfg = ZSSRConfig.preset("given-kernel").replace(max_iters=8, crop_size=16, back_projection_iters=(10,),
                                                   kernel_paths=(str(path),))
    z = ZSSR(cfg)
    sr = z.upscale(lr, 2)
    assert z.last_stats["steps"][0]["kernel"] is True
    # back-projection with the kernel makes the output consistent with the LR under that kernel...
    re_k = degrade_with_kernel(sr[0].permute(1, 2, 0).double().numpy(), kernel, 2)
    err_kernel = np.abs(re_k - lr_np).mean()
    # ...and not under bicubic degradation (so the kernel, not bicubic, was used)
    sr_bicubic = ZSSR(cfg.replace(kernel_paths=())).upscale(lr, 2)
    re_b = degrade_with_kernel(sr_bicubic[0].permute(1, 2, 0).double().numpy(), kernel, 2)
    assert err_kernel < 0.5 * np.abs(re_b - lr_np).mean()
    with pytest.raises(ValueError, match="one kernel per step"):
        ZSSR(ZSSRConfig.preset("original-gradual").replace(kernel_paths=(str(path),))).upscale(lr, 2)
