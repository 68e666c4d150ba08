"""The published Gaussian degradations (MZSR's g^d / g^b) and the subsampling grid told with a kernel."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from bench.degradations import gaussian_kernel, parse
from zssr.kernel_math import degrade_with_kernel, kernel_shift
from zssr.kernels import GridKernel, direct_as_correlation

MZSR_FILES = Path(os.environ.get("ZSSR_BENCH_MZSR_FILES", "/tmp/mzsr"))  # GT/<n>_GT.png, g20/<n>.png, g20/kernel.mat


def _hr(h=48, w=40, seed=0):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((h, w, 3)) * 255, (2, 2, 0))
    return np.clip(smooth + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _mzsr_gaussian(size, theta, l1, l2):
    """MZSR's gkernel.anisotropic_Gaussian, written out independently (covariance V D V^-1, positions (x, y))."""
    c, s = np.cos(theta), np.sin(theta)
    sigma_inv = np.linalg.inv(np.array([[c, -s], [s, c]]) @ np.diag([l1, l2]) @ np.array([[c, s], [-s, c]]))
    centre = size / 2.0 - 0.5
    x, y = np.meshgrid(np.arange(centre - size + 1, size - centre), np.arange(centre - size + 1, size - centre))
    pos = np.stack([x, y], axis=-1)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pos, sigma_inv, pos))
    return k / k.sum()


def test_kernels_are_mzsr_gaussians_by_variance_and_sigma():
    iso = parse("gauss-var-direct:2").realise("img", 2).kernel
    np.testing.assert_allclose(iso, _mzsr_gaussian(21, 0.0, 2.0, 2.0), rtol=0, atol=1e-15)
    by_sigma = parse(f"gauss-sigma-direct:{float(np.sqrt(2.0))!r}").realise("img", 2).kernel
    np.testing.assert_allclose(by_sigma, iso, rtol=0, atol=1e-12)
    aniso = parse("gauss-var-direct:4,1,30").realise("img", 2).kernel
    np.testing.assert_allclose(aniso, _mzsr_gaussian(21, np.deg2rad(30), 4.0, 1.0), rtol=0, atol=1e-15)
    assert parse("gauss-var-direct:2").id == parse("gauss-var-direct:2.0").id == "gauss-var-direct-2.0.v1"
    assert parse("gauss-sigma-bicubic:1.3").id != parse("gauss-var-bicubic:1.3").id


@pytest.mark.parametrize("spec", ["gauss-var-direct", "gauss-var-direct:-1", "gauss-sigma-bicubic:1,2",
                                  "gauss-var-direct:nan", "gauss-var-direct:2+kernel:k.mat"])
def test_bad_gaussian_steps_are_errors(spec):
    with pytest.raises(ValueError, match="gauss-var-direct|gauss-sigma-bicubic|at most one"):
        parse(spec)


@pytest.mark.parametrize("scale", [2, 4])
def test_direct_step_is_mzsr_direct_subsampling_bit_for_bit(scale):
    """MZSR's g^d LR: convolve(GT, k, mode='reflect')[0::s, 0::s] per channel, rounded."""
    hr = _hr(48, 40)
    k = _mzsr_gaussian(21, 0.0, 2.0, 2.0)
    expected = np.stack([ndimage.convolve(hr[..., c].astype(np.float64), k, mode="reflect")[0::scale, 0::scale]
                         for c in range(3)], axis=-1)
    expected = np.clip(np.round(expected), 0, 255).astype(np.uint8)
    _, lr, drawn = parse("gauss-var-direct:2.0").make_pair(hr, scale, "synthetic", False, "id")
    assert drawn.grid == "direct"
    assert lr.dtype == np.uint8 and np.array_equal(lr, expected)


@pytest.mark.skipif(not (MZSR_FILES / "g20" / "kernel.mat").is_file(),
                    reason="MZSR's Input/g20 Set5 files (JWSoh/MZSR) not present; set ZSSR_BENCH_MZSR_FILES")
def test_direct_step_reproduces_mzsr_g20_files():
    from scipy.io import loadmat

    from bench.images import load_image

    kernel = loadmat(str(MZSR_FILES / "g20" / "kernel.mat"))["kernel"]
    assert np.array_equal(parse("gauss-var-direct:2.0").realise("x", 2).kernel, kernel)
    names = sorted(p.stem for p in (MZSR_FILES / "g20").glob("*.png"))
    assert names
    for name in names:
        gt = load_image(MZSR_FILES / "GT" / f"{name}_GT.png")
        _, lr, _ = parse("gauss-var-direct:2.0").make_pair(gt, 2, name, False, name)
        assert np.array_equal(lr, load_image(MZSR_FILES / "g20" / f"{name}.png")), name


def test_bicubic_step_is_blur_then_matlab_bicubic():
    from basicsr.utils.matlab_functions import imresize

    hr = _hr(48, 40, seed=1)
    k = _mzsr_gaussian(21, 0.0, 1.69, 1.69)
    blurred = np.stack([ndimage.convolve(hr[..., c].astype(np.float64), k, mode="reflect") for c in range(3)], -1)
    expected = np.clip(np.round(imresize(blurred / 255.0, 0.5) * 255.0), 0, 255).astype(np.uint8)
    _, lr, drawn = parse("gauss-sigma-bicubic:1.3").make_pair(hr, 2, "synthetic", False, "id")
    assert drawn.grid == "bicubic" and np.array_equal(lr, expected)


def _com(a):
    return np.array(ndimage.center_of_mass(a))


@pytest.mark.parametrize("scale", [2, 4])
def test_the_grids_differ_by_half_of_scale_minus_one(scale):
    """Where an HR impulse at (s*i, s*j) lands: on the direct grid at LR (i, j); on ZSSR's grid (the `kernel:` and
    `aniso-gaussian` steps, kernel re-centred by kernel_shift) (s - 1) / (2 s) LR pixels before, i.e. ZSSR's LR pixel
    i is centred at HR s*i + (s - 1) / 2 (MATLAB bicubic's grid)."""
    img = np.zeros((16 * scale, 16 * scale))
    img[8 * scale, 8 * scale] = 1.0
    k = gaussian_kernel((2.0 * scale**2, 2.0 * scale**2), size=41)  # wide enough for a sampled centre of mass
    direct = ndimage.convolve(img, k, mode="reflect")[::scale, ::scale]
    zssr = degrade_with_kernel(img, k, scale)
    np.testing.assert_allclose(_com(direct), [8, 8], atol=1e-9)
    np.testing.assert_allclose(_com(zssr), [8 - (scale - 1) / (2 * scale)] * 2, atol=2e-3)


@pytest.mark.parametrize("shape", [(21, 21), (6, 7)])
def test_a_direct_kernel_placed_for_zssr_reproduces_direct_subsampling(shape):
    """The grid fix: ZSSR's downscaler with GridKernel(k, "direct").for_zssr makes exactly the direct LR (so its
    sons are made as the LR image was); the unsaid "zssr" grid is today's kernel_shift, unchanged."""
    rng = np.random.default_rng(3)
    x = rng.random((40, 36))
    k = rng.random(shape)
    k /= k.sum()
    expected = ndimage.convolve(x, k, mode="reflect")[::2, ::2]
    placed = GridKernel(k, "direct").for_zssr(2)
    np.testing.assert_allclose(degrade_with_kernel(x, placed, 2, shift=False), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(placed, direct_as_correlation(k))
    np.testing.assert_array_equal(GridKernel(k).for_zssr(2), kernel_shift(k, 2))
    # without the fix (ZSSR re-centres the kernel) the sons sit on the other grid
    assert np.abs(degrade_with_kernel(x, k, 2) - expected).max() > 1e-3


def test_a_bicubic_grid_kernel_placed_for_zssr_is_blur_then_bicubic():
    from basicsr.utils.matlab_functions import imresize

    rng = np.random.default_rng(4)
    x = ndimage.gaussian_filter(rng.random((64, 64)), 1.0)
    k = gaussian_kernel((1.69, 1.69))
    expected = imresize(ndimage.convolve(x, k, mode="reflect"), 0.5)
    got = degrade_with_kernel(x, GridKernel(k, "bicubic").for_zssr(2), 2, shift=False)
    inner = (slice(8, -8), slice(8, -8))  # the two boundary rules differ at the edges
    np.testing.assert_allclose(got[inner], expected[inner], rtol=0, atol=1e-6)


def test_the_grid_is_told_with_the_kernel_to_non_blind_methods():
    from baselines.zssr_method import ZSSRTrueKernel
    from bench.cellwork import told_values
    from zssr.config import ZSSRConfig
    from zssr.problem import step_kernels

    hr = _hr(48, 48)
    method = ZSSRTrueKernel(profile="quick")
    _, _, drawn = parse("gauss-var-direct:2.0").make_pair(hr, 2, "x", False, "x")
    told = told_values(method, drawn)
    assert told["grid"] == "direct" and told["kernel"] is drawn.kernel
    _, kernels = method._cell_config(told)
    (placed,) = step_kernels(kernels, ZSSRConfig(), [(2.0, 2.0)])
    np.testing.assert_array_equal(placed, direct_as_correlation(drawn.kernel))
    # today's steps say nothing more (ZSSR's own grid): what the method does there is unchanged
    for spec in ("aniso-gaussian", "bicubic"):
        _, _, drawn = parse(spec).make_pair(hr, 2, "x", False, "x")
        assert "grid" not in told_values(method, drawn)
    _, _, drawn = parse("aniso-gaussian").make_pair(hr, 2, "x", False, "x")
    _, kernels = method._cell_config(told_values(method, drawn))
    (placed,) = step_kernels(kernels, ZSSRConfig(), [(2.0, 2.0)])
    np.testing.assert_array_equal(placed, kernel_shift(drawn.kernel, 2))


def test_srmd_takes_the_bicubic_grid_and_refuses_the_direct_one():
    from baselines.srmd import KERNEL_SIZE, srmd_kernel, srmd_kernel_on_grid

    k = gaussian_kernel((1.69, 1.69))
    k15, err = srmd_kernel_on_grid(k, 2, "bicubic")
    assert k15.shape == (KERNEL_SIZE, KERNEL_SIZE) and err == 0.0
    np.testing.assert_allclose(k15, k[3:18, 3:18] / k[3:18, 3:18].sum(), atol=1e-12)  # SRMD's own model: k itself
    np.testing.assert_array_equal(srmd_kernel_on_grid(k, 2, "zssr")[0], srmd_kernel(k, 2)[0])
    with pytest.raises(ValueError, match="direct subsampling grid.*0.5 HR pixel"):
        srmd_kernel_on_grid(k, 2, "direct")
