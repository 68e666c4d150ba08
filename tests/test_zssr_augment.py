"""zssr.augment: HR-father augmentation keeps shapes and value ranges and follows the original geometry."""
import numpy as np
import pytest
import torch

from zssr.augment import AFFINE, LEAVE_AS_IS, NO_INTERP, grid_theta, plan_augmentations, sample_transform, warp


def _plan(n, shapes=((40, 50),), scales=(1.0,), **kw):
    args = dict(crop_size=32, leave_as_is_probability=0.05, no_interpolate_probability=0.45, min_scale=0.5,
                allow_rotation=True, scale_diff_sigma=0.25, shear_sigma=0.1)
    args.update(kw)
    return plan_augmentations(np.random.default_rng(0), n, list(shapes), list(scales), **args)


def test_shapes_ranges_and_mode_frequencies():
    src = torch.rand(1, 3, 40, 50)
    plan = _plan(400)
    thetas = torch.tensor(plan.thetas, dtype=torch.float32)
    for i in range(0, 400, 7):
        out = warp(src, thetas[i:i + 1], 32, int(plan.modes[i]))
        assert out.shape == (1, 3, 32, 32)
        assert out.min() >= 0 and out.max() <= 1
    freq = np.bincount(plan.modes, minlength=3) / 400
    assert abs(freq[LEAVE_AS_IS] - 0.05) < 0.04 and abs(freq[NO_INTERP] - 0.45) < 0.08


def test_interpolation_free_modes_copy_pixels():
    src = torch.rand(1, 3, 40, 50)
    values = set(src.flatten().tolist()) | {0.0}
    plan = _plan(200)
    thetas = torch.tensor(plan.thetas, dtype=torch.float32)
    for i in np.flatnonzero(plan.modes != AFFINE)[:20]:
        out = warp(src, thetas[i:i + 1], 32, int(plan.modes[i]))
        assert set(out.flatten().tolist()) <= values


def test_leave_as_is_is_a_plain_crop():
    rng = np.random.default_rng(3)
    src = torch.rand(1, 3, 40, 50)
    m = sample_transform(rng, (40, 50), LEAVE_AS_IS, 1.0, 32, True, 0.25, 0.1)
    dx, dy = -int(m[0, 2]), -int(m[1, 2])
    out = warp(src, torch.tensor(grid_theta(m, (40, 50), 32), dtype=torch.float32)[None], 32, LEAVE_AS_IS)
    assert torch.equal(out, src[..., dy:dy + 32, dx:dx + 32])


def test_no_rotation_when_disallowed():
    plan = _plan(100, allow_rotation=False)
    lin = plan.matrices[:, :2, :2]
    assert np.all(lin[:, 0, 0] > 0) and np.all(lin[:, 1, 1] > 0)  # no mirror, no rotation beyond shear


def test_sources_are_chosen_by_scale():
    plan = _plan(300, shapes=((40, 50), (60, 75)), scales=(1.0, 1.5))
    assert set(plan.sources.tolist()) == {0, 1}


def test_affine_matches_opencv_warp_perspective():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    img = np.random.default_rng(2).random((30, 40, 3)).astype(np.float32)
    src = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    for mode in (AFFINE, AFFINE, NO_INTERP):
        m = sample_transform(rng, (30, 40), mode, 0.8, 24, True, 0.25, 0.1)
        ref = np.clip(cv2.warpPerspective(img, m, (24, 24), flags=cv2.INTER_CUBIC), 0, 1)
        out = warp(src, torch.tensor(grid_theta(m, (30, 40), 24), dtype=torch.float32)[None], 24, mode)
        # OpenCV quantises sub-pixel positions to 1/32 pixel: a few 1e-3 on random (worst-case) data
        assert np.abs(out[0].permute(1, 2, 0).numpy() - ref).max() < 2e-2
        assert np.abs(out[0].permute(1, 2, 0).numpy() - ref).mean() < 1e-3
