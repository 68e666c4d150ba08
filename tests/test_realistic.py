"""The `realistic` degradation (bench/realistic.py): Real-ESRGAN's first-order stage with per-image draws from
stated ranges, reproducible, and what non-blind methods are told of it (kernel and noise, never JPEG)."""
from __future__ import annotations

import numpy as np
import pytest

from bench import realistic
from bench.degradations import REGISTRY, _jpeg, _rng, parse
from bench.protocol import make_pair


def _params(image_id: str, scale: int) -> dict:
    d = parse("realistic")
    return realistic.draw(_rng(d.blur_id, image_id, scale))


def test_registered_versioned_and_citing_its_source_and_ranges():
    d = parse("realistic")
    assert d.id == "realistic.v1" and REGISTRY["realistic"].version == 1
    text = REGISTRY["realistic"].describe
    for needed in ("Real-ESRGAN", "Wang et al., ICCV-W 2021", "7-21", "[0.2, 3.0]", "[1, 30]", "[30, 95]",
                   "never the JPEG quality"):
        assert needed in text, needed
    with pytest.raises(ValueError, match="realistic draws its own noise and JPEG"):
        parse("realistic+jpeg:50")


def test_drawn_parameters_lie_in_the_stated_ranges_and_cover_them():
    draws = [_params(f"img{i}", scale) for i in range(300) for scale in (2, 4)]
    sizes = {p["kernel_size"] for p in draws}
    assert sizes == set(range(7, 22, 2))  # every odd size 7..21 occurs, no other
    for key, (lo, hi) in (("sigma_x", (0.2, 3.0)), ("sigma_y", (0.2, 3.0)), ("theta", (-np.pi, np.pi)),
                          ("noise_sigma", (1.0, 30.0)), ("jpeg_quality", (30, 95))):
        values = np.array([p[key] for p in draws])
        assert values.min() >= lo and values.max() <= hi, key
        # the draws spread over the range (uniform: 600 draws reach within 3 % of each end)
        assert values.min() < lo + 0.03 * (hi - lo) and values.max() > hi - 0.03 * (hi - lo), key
    assert {30, 95} <= {p["jpeg_quality"] for p in draws}  # both ends included


def test_the_kernel_is_the_drawn_anisotropic_gaussian():
    p = _params("a", 2)
    k = p["kernel"]
    assert k.shape == (p["kernel_size"],) * 2 and abs(k.sum() - 1) < 1e-12
    yy, xx = np.mgrid[0:k.shape[0], 0:k.shape[1]] - (k.shape[0] - 1) / 2
    assert abs((k * xx).sum()) < 1e-9 and abs((k * yy).sum()) < 1e-9  # centred
    # the covariance of the (untruncated) Gaussian: R diag(sx^2, sy^2) R^T; the truncated kernel's second moments
    # are it when the kernel is wide and the sigmas well above a pixel (sampling exact to ~1e-9 here)
    wide = realistic.anisotropic_gaussian(61, 2.6, 1.2, 0.7)
    yy, xx = np.mgrid[0:61, 0:61] - 30.0
    cov = np.array([[(wide * xx * xx).sum(), (wide * xx * yy).sum()], [(wide * xx * yy).sum(), (wide * yy * yy).sum()]])
    rot = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    np.testing.assert_allclose(cov, rot @ np.diag([2.6 ** 2, 1.2 ** 2]) @ rot.T, rtol=1e-6)


def test_draws_are_reproducible_per_image_content_and_scale():
    d = parse("realistic")
    a, b = d.realise("content-1", 2), parse("realistic").realise("content-1", 2)
    assert np.array_equal(a.kernel, b.kernel) and (a.noise_sigma, a.jpeg_quality) == (b.noise_sigma, b.jpeg_quality)
    others = [d.realise("content-2", 2), d.realise("content-1", 4)]
    assert all(o.noise_sigma != a.noise_sigma for o in others)  # another image or scale: another draw
    p = _params("content-1", 2)
    assert np.array_equal(a.kernel, p["kernel"]) and a.noise_sigma == p["noise_sigma"]
    assert a.jpeg_quality == p["jpeg_quality"]


def test_the_lr_image_is_blur_subsampling_noise_then_jpeg_with_the_drawn_values():
    hr = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    d = parse("realistic")
    hr_c, lr, real = d.make_pair(hr, 2, name="x", y_only=False, image_id="img")
    _, blurred = make_pair(hr, 2, kernel=real.kernel)  # the existing blur steps' subsampling
    noise = _rng(d.id, "img", 2, "noise").normal(0.0, real.noise_sigma, size=blurred.shape)
    noisy = np.clip(np.round(blurred.astype(np.float64) + noise), 0, 255).astype(np.uint8)
    assert np.array_equal(lr, _jpeg(noisy, real.jpeg_quality))
    assert not np.array_equal(lr, noisy)  # JPEG did change it


def test_a_non_blind_method_is_told_kernel_and_noise_never_jpeg(folder, tmp_path):
    import fake_methods
    from baselines.api import Method, MethodInfo, Result
    from baselines.methods import METHODS
    from bench.results import END_METRIC, read_results
    from bench.runner import RunOptions, run

    received: list[dict] = []

    class AsksForAll(Method):
        name = "test-told-realistic"
        info = MethodInfo(family="interpolation", training_data="none", degradation="told")  # no warm-up call
        told = ("kernel", "noise", "jpeg")  # asks for JPEG too: there is nothing to tell

        def run(self, requests):
            import torch.nn.functional as F

            received.extend(dict(r.told) for r in requests)
            return [Result(F.interpolate(r.lr, scale_factor=r.scale, mode="nearest")) for r in requests]

    fake_methods.register()
    if AsksForAll.name not in METHODS:
        METHODS.register(AsksForAll.name, AsksForAll)
    else:
        METHODS._loaded[AsksForAll.name] = AsksForAll  # this test's class (a re-run in one process)
    out = tmp_path / "run"
    assert run(RunOptions(dataset=str(folder), methods=(AsksForAll.name,), scales=(2,), profile="quick",
                          device="cpu", out=out, metrics=("psnr-y",), degradations=("realistic",)), render=False).ok
    df = read_results(out / "results.csv")
    ends = df[(df.metric == END_METRIC) & (df.method == AsksForAll.name)]
    assert len(received) == len(ends) == 5 and set(ends.status) == {"ok"}
    d = parse("realistic")
    truth = {r.image_sha: d.realise(r.image_sha, 2) for r in ends.itertuples()}
    for told in received:
        assert set(told) == {"kernel", "noise", "jpeg"} and told["jpeg"] is None  # never told
        match = [t for t in truth.values() if t.noise_sigma == told["noise"]]
        assert len(match) == 1 and np.array_equal(match[0].kernel, told["kernel"])
