"""FLOPs and parameters as cost rows of every cell (bench.cellwork.counted_costs, baselines.flops): interpolation 0, a
pretrained network one forward at the LR size, ZSSR its training steps, measurements and final test, checked
against hand counts; the report shows TFLOP per image and a quality-vs-TFLOP plot."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

# hand counts: FLOPs per pixel = 2 x (multiply-adds per pixel) of each 3 x 3 convolution, biases not counted
TINY_NET_X2 = 2 * 9 * (3 * 8 + 8 * 3 * 2 * 2)  # per LR pixel: conv 3->8, conv 8->12, then pixel shuffle
ORIGINAL_FORWARD = 2 * 9 * (3 * 64 + 6 * 64 * 64 + 64 * 3)  # per pixel: zssr-original's 8 layers
# a training step: the forward, the weight gradients (as much again) and the input gradients of every layer but the
# first (its input needs none)
ORIGINAL_STEP = 3 * ORIGINAL_FORWARD - 2 * 9 * 3 * 64


def _value(df, method, metric):
    rows = df[(df.method == method) & (df.metric == metric)]
    assert len(rows) == 5, (method, metric, len(rows))
    return rows.set_index("image")["value"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    from PIL import Image

    import fake_methods
    from bench.runner import RunOptions, run

    fake_methods.register()
    root = tmp_path_factory.mktemp("flops")
    rng = np.random.default_rng(0)
    for cat, n in (("a", 3), ("b", 2)):
        (root / "imgs" / cat).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(root / "imgs" / cat / f"{cat}{i}.png")
    out = root / "run"
    summary = run(RunOptions(dataset=str(root / "imgs"), methods=("bicubic", "test-tiny-net", "test-zssr"),
                             scales=(2,), profile="quick", device="cpu", out=out, metrics=("psnr-y",)))
    assert summary.ok
    return out


def test_interpolation_counts_zero(run_folder):
    from bench.results import read_results

    df = read_results(run_folder / "results.csv")
    assert (_value(df, "bicubic", "flops") == 0).all() and (_value(df, "bicubic", "parameters") == 0).all()


def test_a_pretrained_network_counts_one_forward_at_the_lr_size(run_folder):
    from bench.results import read_results

    df = read_results(run_folder / "results.csv")
    assert (_value(df, "test-tiny-net", "flops") == TINY_NET_X2 * 24 * 20).all()  # LR of 48 x 40 at x2
    assert (_value(df, "test-tiny-net", "parameters") == (3 * 8 * 9 + 8) + (8 * 12 * 9 + 12)).all()


def test_zssr_counts_its_steps_measurements_and_final_test(run_folder):
    from bench.results import read_results

    df = read_results(run_folder / "results.csv")
    iterations = _value(df, "test-zssr", "iterations")
    assert (_value(df, "test-zssr", "restarts") == 0).all()  # one attempt: its measurements are every 15th iteration
    crop, every = 16, 15  # TinyZSSR's crop size, the quick profile's run_test_every
    measurements = np.ceil(iterations / every)
    train = ORIGINAL_STEP * crop * crop * iterations + measurements * ORIGINAL_FORWARD * 24 * 20
    test = 8 * ORIGINAL_FORWARD * 48 * 40  # the self-ensemble's 8 forwards at the output size
    assert (_value(df, "test-zssr", "flops-train") == train).all()
    assert (_value(df, "test-zssr", "flops-test") == test).all()
    assert (_value(df, "test-zssr", "flops") == train + test).all()
    assert (_value(df, "test-zssr", "parameters") == 9 * (3 * 64 + 6 * 64 * 64 + 64 * 3)).all()


def test_the_report_shows_tflop_per_image_and_its_tradeoff(run_folder):
    md = (run_folder / "report.md").read_text()
    assert "TFLOP / image" in md and "### Quality vs TFLOP" in md
    figure = md[md.index("### Quality vs TFLOP"):].split("](")[1].split(")")[0]
    assert (run_folder / figure).is_file()
    table = next(line for line in md.splitlines() if line.startswith("| test-tiny-net"))
    assert f"{TINY_NET_X2 * 24 * 20 / 1e12:.3g}" in table  # TFLOP, the metric's format
    html = (run_folder / "index.html").read_text()
    assert "TFLOP / image" in html and "quality vs TFLOP" in html


def test_zssr_counting_with_restarts_attributes_measurements_to_their_attempts():
    from baselines.zssr_method import measurements_per_step

    # step 0 restarted once (2 measurements then 3), step 1 ran once (4)
    assert measurements_per_step(2, [{"step": 0, "kind": "stuck"}], [2, 3, 4]) == [5, 4]
    assert measurements_per_step(1, [], [7]) == [7]


def test_a_kernelgan_run_is_counted_per_iteration_independently_of_the_image():
    from baselines import flops
    from zssr.kernelgan import KernelGANConfig

    cfg = KernelGANConfig(max_iters=4)
    per_iteration = flops.kernelgan_flops(cfg) // 4
    assert flops.kernelgan_flops(cfg.replace(max_iters=8)) == 8 * per_iteration
    assert flops.kernelgan_flops(cfg.replace(seed=5)) == flops.kernelgan_flops(cfg)  # the seed changes no shape
    # G's forward alone, by hand (valid convolutions of the 64 x 64 crop's 3 channels): a lower bound of the count
    sizes, size, g_forward = (7, 5, 3, 1, 1, 1), 64, 0
    chans = [1, 64, 64, 64, 64, 64, 1]
    for i, k in enumerate(sizes):
        size = (size - k) // (2 if i == len(sizes) - 1 else 1) + 1
        g_forward += 2 * 3 * size * size * chans[i] * chans[i + 1] * k * k
    assert 3 * g_forward < per_iteration < 20 * g_forward


def test_counting_is_cached_after_the_first_cell():
    import time

    from baselines import flops
    from baselines.methods import create_method
    from baselines.api import Request

    m = create_method("zssr-original", profile="quick", max_iters=3, crop_size=16, back_projection_iters=(1,))
    m.setup(torch.device("cpu"))
    (result,) = m.run([Request(torch.rand(1, 3, 12, 10), 2, 1)])
    m.counted_costs(result.stats)  # the first count of this network
    start = time.perf_counter()
    for _ in range(10):
        m.counted_costs(result.stats)
    assert (time.perf_counter() - start) / 10 < 0.05  # then a lookup, whatever the machine's load
    assert math.isfinite(flops.training_step_flops(flops.zssr_network(m.cfg), (1, 3, 16, 16)))
