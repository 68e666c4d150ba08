"""zssr.resize: MATLAB-exact imresize as resampling matrices, checked against basicsr's MATLAB port."""
import numpy as np
import pytest
import torch

from zssr.resize import imresize, imresize_np, resize_matrix

matlab_functions = pytest.importorskip("basicsr.utils.matlab_functions")


@pytest.mark.parametrize("shape", [(37, 53, 3), (64, 48, 3)])
@pytest.mark.parametrize("scale", [0.5, 2, 1 / 3, 3, 0.25, 4, 1.7, 0.6])
def test_matches_basicsr(shape, scale):
    # basicsr computes in float32; our matrices are float64: agreement to 1e-5 on values in [0, 1]
    img = np.random.default_rng(0).random(shape)
    ref = matlab_functions.imresize(img.astype(np.float32), scale)
    out = imresize_np(img, scale)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-5


def test_float32_tensor_path_matches_basicsr():
    img = np.random.default_rng(1).random((40, 30, 3)).astype(np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    for scale in (0.5, 2.0):
        ref = matlab_functions.imresize(img, scale)
        out = imresize(x, scale)[0].permute(1, 2, 0).numpy()
        assert np.abs(out - ref).max() < 1e-5


def test_per_axis_scales_are_separable():
    x = torch.rand(1, 3, 20, 30, dtype=torch.float64)
    both = imresize(x, (2.0, 1.5))
    rows_only = imresize(x, (2.0, 1.0))
    then_cols = imresize(rows_only, (1.0, 1.5))
    assert both.shape == (1, 3, 40, 45)
    assert torch.allclose(both, then_cols, atol=1e-12)


def test_scale_and_output_shape_together():
    # the original ZSSR passes both: the scale sets the coordinate map, the shape the number of pixels
    x = torch.rand(1, 3, 9, 9, dtype=torch.float64)
    out = imresize(x, 0.5, (4, 5))
    assert out.shape == (1, 3, 4, 5)
    assert torch.allclose(out[..., :4], imresize(x, 0.5)[..., :4, :4], atol=1e-12)


def test_identity_and_rows_sum_to_one():
    x = torch.rand(2, 3, 11, 13)
    assert torch.equal(imresize(x, 1.0), x)
    for kernel in ("cubic", "lanczos3"):
        for n_in, n_out, s in [(10, 20, 2.0), (20, 10, 0.5), (17, 29, 29 / 17)]:
            m = resize_matrix(n_in, n_out, s, kernel)
            assert np.allclose(m.sum(axis=1), 1.0, atol=1e-12)


def test_lanczos3_is_interpolating_at_integer_upscale():
    # MATLAB's lanczos3 (with its eps terms) is 1 at 0 and ~0 at other integers: x3 upscaling keeps every input
    # pixel at the centre of its 3x3 block
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    up = imresize(x, 3, kernel="lanczos3")
    assert torch.allclose(up[..., 1::3, 1::3], x, atol=1e-6)


def test_constant_image_stays_constant_on_any_dtype():
    for dtype in (torch.float32, torch.float64):
        x = torch.full((1, 3, 15, 10), 0.3, dtype=dtype)
        for s in (0.5, 2, (1.5, 1.0)):
            y = imresize(x, s)
            assert y.dtype == dtype
            assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-6)
