"""The pipeline's own oracle: under the y-only protocol, bicubic reproduces the published table (ANCHORS.md)."""
import pytest

from bench.results import read_results
from bench.runner import RunOptions, run

# Published bicubic PSNR / SSIM (Y), x2 / x3 / x4. Tolerances: 0.02 dB and 0.002 SSIM.
PUBLISHED = {
    "set5": {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)},
    "set14": {2: (30.24, 0.8688), 3: (27.55, 0.7742), 4: (26.00, 0.7027)},
}


@pytest.mark.parametrize("dataset", ["set5", "set14"])
def test_bicubic_reproduces_published_table(dataset, data_root, tmp_path):
    out = tmp_path / dataset
    summary = run(RunOptions(dataset=dataset, methods=("bicubic",), scales=(2, 3, 4), protocol="y-only",
                             profile="paper", device="cpu", out=out, metrics=("psnr-y", "ssim-y"),
                             save_images=False), render=False)
    assert summary.ok, summary.failures
    df = read_results(out / "results.csv")
    means = df.groupby(["scale", "metric"])["value"].mean()
    for scale, (psnr, ssim) in PUBLISHED[dataset].items():
        assert means[(scale, "psnr-y")] == pytest.approx(psnr, abs=0.02), (dataset, scale)
        assert means[(scale, "ssim-y")] == pytest.approx(ssim, abs=0.002), (dataset, scale)


def test_rgb_protocol_differs_from_y_only(data_root, tmp_path):
    """Upscaling RGB and evaluating on Y is a different protocol: close to, but not equal to, the y-only table.

    ANCHORS.md quotes about +0.07 dB on Set5 x2; with Y rounded to uint8 (the stated protocol) we measure
    33.649 dB (-0.003), and 33.682 dB with an unrounded Y. Both are within 0.1 dB of the table."""
    out = tmp_path / "rgb"
    run(RunOptions(dataset="set5", methods=("bicubic",), scales=(2,), protocol="rgb", profile="paper", device="cpu",
                   out=out, metrics=("psnr-y",), save_images=False), render=False)
    rgb = read_results(out / "results.csv").query("metric == 'psnr-y'")["value"].mean()
    assert abs(rgb - 33.66) < 0.1
    assert rgb != pytest.approx(33.6522, abs=1e-3)  # the y-only figure measured by the test above
