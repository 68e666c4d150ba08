"""The modified ZSSR, its one-change ablation presets and gradual (multi-pass) SR: presets of the same code."""
import math

import numpy as np
import pytest
import torch

from baselines.methods import create_method
from baselines.zssr_method import QUICK_OVERRIDES
from zssr import ZSSR, ZSSRConfig
from zssr.lr_policy import scheduled_lr
from zssr.network import ZSSRNet, count_parameters
from zssr.problem import ProblemRun

from sr_pairs import brick_pair, gain_over_bicubic, x2_pair

TINY = dict(max_iters=8, crop_size=16, min_iters=4, lr_slope_range=8, run_test_every=2, lr_check_every=3,
            back_projection_iters=(1,))


def _lr(h=10, w=12, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ZSSRConfig.preset_names())
def test_every_preset_trains_briefly_and_returns_the_right_shape(name):
    torch.set_num_threads(1)
    cfg = ZSSRConfig.preset(name).replace(**TINY)
    if name in ("given-kernel", "real-image"):
        cfg = cfg.replace(kernel_paths=())  # no kernel file here: bicubic degradation
    z = ZSSR(cfg)
    out = z.upscale(_lr(), 4)
    assert out.shape == (1, 3, 40, 48) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert z.last_stats["iterations"] >= len(z.last_stats["steps"])


def test_modified_preset_is_the_sum_of_the_one_change_ablations():
    original = ZSSRConfig.preset("original")
    modified = ZSSRConfig.preset("modified")
    assert (modified.conv, modified.width, modified.activation, modified.ensemble) == ("depthwise", 32, "prelu", False)
    assert modified.learning_rate == 0.1 and modified.lr_schedule == "warmup-cosine"
    assert modified.back_projection_iters == original.back_projection_iters  # back-projection stays configurable
    merged = {}
    for name in ("ablation-width32", "ablation-depthwise", "ablation-prelu", "ablation-lr", "ablation-no-ensemble"):
        cfg = ZSSRConfig.preset(name)
        changed = {k: v for k, v in cfg.to_dict().items() if v != original.to_dict()[k]}
        assert changed, name
        assert not set(changed) & set(merged), f"{name} overlaps another ablation"
        merged.update(changed)
    assert original.replace(**{k: getattr(modified, k) for k in merged}) == modified
    assert set(merged) == {k for k, v in modified.to_dict().items() if v != original.to_dict()[k]}


def test_depthwise_network_parameter_count():
    cfg = ZSSRConfig.preset("modified")  # depth 8, width 32, 3x3, no bias, per-channel PReLU
    k2, c, w = 9, 3, 32
    first = c * k2 + c * w  # depthwise 3x3 on 3 channels, pointwise 3 -> 32
    hidden = 6 * (w * k2 + w * w)  # six 32 -> 32 layers
    last = w * k2 + w * c  # depthwise 3x3 on 32 channels, pointwise 32 -> 3
    prelu = 7 * w
    assert first + hidden + last + prelu == 8603
    assert count_parameters(ZSSRNet(cfg)) == 8603
    # the original for comparison: 3*64*9 + 6*64*64*9 + 64*3*9 = 224640
    assert count_parameters(ZSSRNet(ZSSRConfig.preset("original"))) == 3 * 64 * 9 + 6 * 64 * 64 * 9 + 64 * 3 * 9
    convs = [m for m in ZSSRNet(cfg).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16 and [m.groups for m in convs[:2]] == [3, 1] and convs[2].groups == 32


def test_depthwise_pair_has_the_plain_layers_init_variance_and_zero_last_layer():
    cfg = ZSSRConfig(conv="depthwise", width=32)
    net = ZSSRNet(cfg)
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(1, 32, 64, 64)
    pair = net.body[2]  # a 32 -> 32 depthwise + pointwise
    assert abs(pair(x).var().item() - cfg.init_variance) < 0.03
    modified = ZSSRNet(ZSSRConfig.preset("modified"))
    modified.reset_parameters(torch.Generator().manual_seed(0))
    img = torch.rand(1, 3, 20, 20)
    assert torch.equal(modified(img), img)  # init_last_zero: starts as the interpolated input


def test_passes_for_targets():
    c = ZSSRConfig.preset("gradual")
    assert c.steps_for(8) == [(2.0, 2.0), (4.0, 4.0), (8.0, 8.0)] and c.base_changes_for(8) == [(2.0, 2.0), (4.0, 4.0)]
    assert c.steps_for(4) == [(2.0, 2.0), (4.0, 4.0)] and c.steps_for(2) == [(2.0, 2.0)]
    assert c.passes_for(6) == [(2.0, 2.0), (2.0, 2.0), (1.5, 1.5)]
    explicit = ZSSRConfig(pass_factors=[3, 2])
    assert explicit.steps_for(6) == [(3.0, 3.0), (6.0, 6.0)]
    with pytest.raises(ValueError, match="multiply"):
        explicit.steps_for(4)
    with pytest.raises(ValueError, match="exclusive"):
        ZSSRConfig(pass_factor=2, gradual_increments=[(1.5, 1.5), (2, 2)])
    assert ZSSRConfig.preset("original").base_changes_for(4) == []


def spy_on_steps(monkeypatch) -> tuple[list[dict], list[int]]:
    """What every scale step starts from (ProblemRun.begin_step, after it), and the optimizers ZSSR makes."""
    steps, optimizers = [], []
    real_begin, real_optimizer = ProblemRun.begin_step, ZSSR._optimizer

    def begin(self, *args, **kwargs):
        real_begin(self, *args, **kwargs)
        steps.append(dict(inp=tuple(self.inp.shape[-2:]), sf=self.sf, net=id(self.net), n_sources=len(self.sources),
                          first_param=next(self.net.parameters()).detach().clone()))

    def optimizer(self, net, device):
        opt = real_optimizer(self, net, device)
        optimizers.append(id(opt))
        return opt

    monkeypatch.setattr(ProblemRun, "begin_step", begin)
    monkeypatch.setattr(ZSSR, "_optimizer", optimizer)
    return steps, optimizers


@pytest.mark.parametrize("preset", ["gradual", "modified-gradual"])
def test_gradual_trains_once_per_pass_on_the_previous_output(preset, monkeypatch):
    calls, optimizers = spy_on_steps(monkeypatch)
    z = ZSSR(ZSSRConfig.preset(preset).replace(**TINY))
    out = z.upscale(_lr(5, 6), 8)
    assert out.shape == (1, 3, 40, 48)
    assert [c["inp"] for c in calls] == [(5, 6), (10, 12), (20, 24)]  # each pass's input is the last output
    assert [c["sf"] for c in calls] == [(2.0, 2.0)] * 3
    assert [c["n_sources"] for c in calls] == [1, 2, 3]  # earlier outputs are also fathers' sources
    assert [tuple(s["scale"]) for s in z.last_stats["steps"]] == [(2.0, 2.0), (4.0, 4.0), (8.0, 8.0)]
    assert [s["input_hw"] for s in z.last_stats["steps"]] == [[5, 6], [10, 12], [20, 24]]
    # continuing: the same network and optimizer, its weights as the previous pass left them
    assert len({c["net"] for c in calls}) == 1 and len(optimizers) == 1
    assert not torch.equal(calls[0]["first_param"], calls[1]["first_param"])


def test_gradual_restart_reinitialises_the_network(monkeypatch):
    seen, optimizers = spy_on_steps(monkeypatch)
    cfg = ZSSRConfig.preset("gradual").replace(**TINY)
    ZSSR(cfg.replace(init_net_for_each_sf=True)).upscale(_lr(5, 6), 4)
    restarted, restarted_optimizers = seen[:], optimizers[:]
    seen.clear()
    optimizers.clear()
    ZSSR(cfg).upscale(_lr(5, 6), 4)
    continued = seen[:]
    # restart: pass 2 starts from fresh weights (the seeded generator moves on, so they are new draws, not pass
    # 1's trained ones) and a new optimizer
    assert len(restarted_optimizers) == 2 and len(optimizers) == 1
    trained_after_pass1 = continued[1]["first_param"]
    assert not torch.equal(restarted[1]["first_param"], trained_after_pass1)
    std = restarted[1]["first_param"].std().item()
    assert abs(std - math.sqrt(0.1 / 27)) < 0.03  # a fresh draw of the first layer: N(0, sqrt(0.1 / (3 * 9)))


def test_warmup_cosine_schedule_shape():
    cfg = ZSSRConfig.preset("modified").replace(max_iters=100)
    lrs = [scheduled_lr(cfg, i) for i in range(100)]
    assert lrs[0] < 0.01 and max(lrs) == pytest.approx(0.1) and int(np.argmax(lrs)) == 10
    assert all(a <= b for a, b in zip(lrs[:11], lrs[1:11]))  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then decays
    assert lrs[-1] == pytest.approx(1e-4)
    step = cfg.replace(lr_schedule="warmup-step", lr_warmup_fraction=0.0)
    assert [scheduled_lr(step, i) for i in (0, 49, 50, 75, 99)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001])


def _gain_over_bicubic(preset: str, hr: torch.Tensor, lr: torch.Tensor) -> float:
    cfg = ZSSRConfig.preset(preset).replace(max_iters=120, crop_size=32, seed=0, precision="fp32")
    return gain_over_bicubic(ZSSR(cfg).upscale(lr, 2), hr, lr)


def test_modified_schedule_at_lr_0_1_is_finite_and_lowers_the_loss():
    torch.set_num_threads(1)
    _, lr = brick_pair(48)
    cfg = ZSSRConfig.preset("modified").replace(max_iters=200, crop_size=24, run_test_every=10, seed=0)
    losses, rates = [], []
    z = ZSSR(cfg)
    sr = z.upscale(lr, 2, callback=lambda it, loss, lr_now, rec: (losses.append(float(loss)), rates.append(lr_now)))
    assert len(losses) == 200 and np.all(np.isfinite(losses)) and torch.isfinite(sr).all()
    assert max(rates) == pytest.approx(0.1, rel=1e-6)
    assert np.mean(losses[-50:]) < np.mean(losses[:50])  # per-crop losses are noisy (random fathers)
    assert max(losses) < 2 * max(losses[:20])  # no spike
    rec = [p["rec_error"] for p in z.last_stats["curve"]]  # the input rebuilt from its own downscaling: not noisy
    assert rec[-1] < 0.95 * rec[0] and max(rec) < 1.5 * rec[0]  # measured: -11 %


def test_adapters_for_every_variant():
    names = ["zssr-modified", "zssr-gradual", "zssr-modified-gradual", "zssr-ablation-width32",
             "zssr-ablation-depthwise", "zssr-ablation-prelu", "zssr-ablation-lr", "zssr-ablation-no-ensemble"]
    for name in names:
        m = create_method(name, profile="quick")
        assert m.name == name and m.config()["preset"] in QUICK_OVERRIDES
        assert m.config()["zssr"]["crop_size"] == 64 and "QUICK" in m.info.notes
    assert create_method("zssr-modified").info.parameters == 8603
    assert "multi-pass" in create_method("zssr-gradual").info.notes
    assert set(QUICK_OVERRIDES) == set(ZSSRConfig.preset_names()) - {"given-kernel", "real-image"}
    m = create_method("zssr-modified-gradual", profile="quick", **TINY)
    m.setup(torch.device("cpu"))
    out = m.upscale(torch.rand(1, 3, 6, 7), 4)
    assert out.shape == (1, 3, 24, 28) and len(m.last_stats["steps"]) == 2


def test_fast_preset_is_the_original_network_on_a_shorter_schedule():
    original, fast = ZSSRConfig.preset("original"), ZSSRConfig.preset("fast")
    changed = {k: v for k, v in fast.to_dict().items() if v != original.to_dict()[k]}
    # what the README's variants table says: 96 x 96 fathers, He init with a zero last layer, Adam 1e-3 with warm-up
    # and cosine over a fixed budget, a restart if the network is dead at 25 % of it; network, augmentation,
    # ensemble and back-projection stay the original's
    assert changed == dict(crop_size=96, max_iters=650, init_variance=2.0, init_last_zero=True,
                           lr_schedule="warmup-cosine", lr_warmup_fraction=0.1, lr_final_fraction=1e-3,
                           grad_clip_norm=0.4, restart_if_stuck=0.25)
    assert fast.learning_rate == original.learning_rate == 1e-3 and fast.optimizer == "adam"
    assert (fast.conv, fast.width, fast.activation, fast.ensemble) == ("plain", 64, "relu", True)
    m = create_method("zssr-fast")
    assert m.config()["zssr"]["max_iters"] == 650
    assert m.info.parameters == create_method("zssr-original").info.parameters


def test_fast_preset_beats_bicubic_on_a_small_crop():
    # the fast recipe at a test-sized budget (120 iterations, 32 x 32 fathers, fp32) on a 96 x 96 crop of
    # scikit-image's astronaut: >= 1 dB over bicubic (measured +2.19 dB; seed 1: +1.87)
    skimage_data = pytest.importorskip("skimage.data")
    torch.set_num_threads(1)
    assert _gain_over_bicubic("fast", *x2_pair(skimage_data.astronaut()[100:196, 180:276])) > 1.0


@pytest.mark.xfail(strict=True, reason="known defect of zssr-fast: its He init overfits periodic texture (README)")
def test_fast_preset_beats_bicubic_on_brick_texture():
    # the same budget on a 96 x 96 crop of scikit-image's brick: the original init gains +1.78 dB, zssr-fast's He
    # init with a zero last layer loses 3.1 dB (and 0.67 dB at the full preset on a 256 x 256 crop); when a fix
    # lands this test passes and strict xfail reports it
    torch.set_num_threads(1)
    assert _gain_over_bicubic("fast", *brick_pair(96)) > 0.5
