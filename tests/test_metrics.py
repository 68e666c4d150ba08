"""Metric definitions: PSNR/SSIM on MATLAB Y with border crop, grayscale as is, LPIPS calibration, NIQE guard."""
import csv

import numpy as np
import pytest

from bench.protocol import rgb_to_y
from bench.images import load_image
from bench.metrics import compute, psnr_rgb, psnr_y, ssim_y


def test_matlab_y_formula():
    img = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    # MATLAB rgb2ycbcr on uint8: 16 + (65.481, 128.553, 24.966) . rgb/255, rounded
    assert rgb_to_y(img).tolist() == [[81, 145, 41, 235, 16]]


def test_psnr_border_and_gray():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    sr = hr.copy()
    sr[0, :] = 0  # only the border differs: cropped away
    assert psnr_y(sr, hr, border=2) == float("inf")
    sr2 = hr.astype(int)
    sr2[5, 5] = (sr2[5, 5] + 10) % 256
    sr2 = sr2.astype(np.uint8)
    mse = (int(sr2[5, 5]) - int(hr[5, 5])) ** 2 / (16 * 16)
    assert psnr_y(sr2, hr, border=2) == pytest.approx(10 * np.log10(255**2 / mse))
    assert ssim_y(hr, hr, border=2) == pytest.approx(1.0)


def test_metrics_reject_float_sr():
    hr = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        psnr_rgb(hr.astype(np.float32), hr, 2)


def test_niqe_small_image_is_nan_not_failure():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    result = compute(["niqe"], small, small, border=2)["niqe"]
    assert np.isnan(result.value) and result.status == "n/a" and "96x96" in result.note


def test_lpips_alex_calibration(reference_root):
    """LPIPS-alex (v0.1, ImageNet AlexNet) reproduces the official values to 4 decimals."""
    root = reference_root / "iqa_calibration"
    rows = {r["metric"]: r for r in csv.DictReader(open(root / "official_values.csv"))}
    for pair in ("I03", "I04", "I06", "I08", "I19"):
        ref, dist = load_image(root / "ref" / f"{pair}.png"), load_image(root / "dist" / f"{pair}.png")
        value = compute(["lpips-alex"], dist, ref, border=0)["lpips-alex"].value
        assert value == pytest.approx(float(rows["lpips_alex_v0.1"][pair]), abs=5e-5), pair
        assert psnr_rgb(dist, ref, 0) == pytest.approx(float(rows["psnr_rgb"][pair]), abs=0.005), pair
