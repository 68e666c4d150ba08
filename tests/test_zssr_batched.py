"""Batched ZSSR (zssr.batched): K problems in one step follow the single-problem trainer.

Tolerances: with K = 1 the grouped convolution is the plain one and the batched optimizer computes torch.optim's
formulas in the same order, so a run is bit-identical to ZSSR.upscale. With K > 1 the grouped convolution rounds
differently (measured fp32, 40 iterations: losses within 1.3e-7, outputs within 2e-6); Adam then moves weights whose
gradient is float noise by up to lr per step in either direction (measured up to 2.5e-3 on weights of ~0.05, with
the network's function unchanged), so weights are compared against that bound and the function on the outputs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sr_pairs import gain_over_bicubic, psnr_inner, x2_lr, x2_pair
from zssr import ZSSR, ZSSRConfig
from zssr.batched import BatchConfig, Problem, StackedNets, upscale_many
from zssr.ensemble import self_ensemble
from zssr.network import ZSSRNet
from zssr.resize import imresize

TINY = dict(max_iters=40, crop_size=32, min_iters=8, lr_slope_range=16, run_test_every=4, lr_check_every=10,
            back_projection_iters=(2,), precision="fp32")


def images(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.nn.functional.avg_pool2d(torch.rand(1, 3, 40 + 8 * i, 48, generator=g), 3, 1, 1)
            for i in range(n)]


def run_single(cfg: ZSSRConfig, lr: torch.Tensor, scale) -> tuple[torch.Tensor, list[float], ZSSR]:
    losses: list[float] = []
    z = ZSSR(cfg)
    out = z.upscale(lr, scale, callback=lambda it, loss, *_: losses.append(float(loss)))
    return out, losses, z


def run_batched(cfgs, lrs, scales, batch=None):
    losses: list[list[float]] = [[] for _ in lrs]

    def recorder(i):
        return lambda it, loss, *_: losses[i].append(float(loss))

    problems = [Problem(lr, s, c, callback=recorder(i)) for i, (lr, s, c) in enumerate(zip(lrs, scales, cfgs))]
    return upscale_many(problems, batch, keep_networks=True), losses


def test_one_problem_batch_is_the_single_trainer_bit_for_bit():
    # gradual increments: 6 scale steps, non-square steps (4-pass ensemble), the net continued across steps
    cfg = ZSSRConfig.preset("original-gradual").replace(**{**TINY, "back_projection_iters": (1,), "max_iters": 24},
                                                        seed=3)
    lr = images(1)[0]
    out, losses, z = run_single(cfg, lr, 2)
    (results, b_losses) = run_batched([cfg], [lr], [2])
    b_out, stats = results[0]
    assert b_losses[0] == losses
    assert torch.equal(b_out, out)
    for a, b in zip(z.net.parameters(), stats["network"].parameters()):
        assert torch.equal(a, b)
    assert stats["iterations"] == z.last_stats["iterations"]
    assert [s["lr_changes"] for s in stats["steps"]] == [s["lr_changes"] for s in z.last_stats["steps"]]


@pytest.mark.parametrize("preset", ["original", "modified"])
def test_three_problems_follow_three_single_runs(preset):
    # different images, scales, seeds; "modified" covers SGD with momentum, gradient clipping, PReLU, depthwise
    cfg = ZSSRConfig.preset(preset).replace(**TINY)
    lrs, scales = images(3), [2, 3, 2]
    cfgs = [cfg.replace(seed=10 + i) for i in range(3)]
    singles = [run_single(c, lr, s) for c, lr, s in zip(cfgs, lrs, scales)]
    results, b_losses = run_batched(cfgs, lrs, scales)
    for (out, losses, z), (b_out, stats), bl in zip(singles, results, b_losses):
        assert len(bl) == len(losses) == z.last_stats["iterations"] == stats["iterations"]
        np.testing.assert_allclose(bl, losses, rtol=0, atol=1e-6)
        assert (b_out - out).abs().max().item() < 1e-4
        # Adam's step is at most ~lr per weight: the weights of noise-level gradients may differ by that much
        bound = 2 * cfg.learning_rate * z.last_stats["iterations"]
        for a, b in zip(z.net.parameters(), stats["network"].parameters()):
            assert (a - b).abs().max().item() <= bound
            assert ((a - b).norm() / a.norm()).item() < 0.05
        if preset == "modified":  # SGD has no such amplification: the weights agree closely
            for a, b in zip(z.net.parameters(), stats["network"].parameters()):
                assert (a - b).abs().max().item() < 1e-5


def astronaut_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three crops of scikit-image's astronaut (96 x 96 and 192 x 96 HR) and their x2 MATLAB-bicubic LR (uint8)."""
    skimage_data = pytest.importorskip("skimage.data")
    img = skimage_data.astronaut()[100:292, 100:292].astype(np.float32) / 255
    hr = torch.from_numpy(img).permute(2, 0, 1)[None]
    lr = x2_lr(hr)
    return [(hr[..., :96, :96], lr[..., :48, :48]), (hr[..., 96:, :96], lr[..., 48:, :48]),
            (hr[..., :, 96:], lr[..., :, 48:])]


def test_whole_short_runs_give_the_same_psnr():
    # 120 iterations each, x2: batched PSNR within 0.3 dB of the single runs (measured 0.03, 0.16, 0.00 dB; another
    # seed moves the single runs by 0.05, 0.00, 0.02 dB: training is chaotic, the rounding of the grouped
    # convolution acts like a change of seed) and all of them >= 0.5 dB above bicubic (measured +1.1 to +1.2 dB)
    pairs = astronaut_pairs()
    cfg = ZSSRConfig.preset("original").replace(max_iters=120, crop_size=32, min_iters=64, lr_slope_range=80,
                                                run_test_every=16, lr_check_every=30, precision="fp32")
    cfgs = [cfg.replace(seed=i) for i in range(3)]
    results, _ = run_batched(cfgs, [p[1] for p in pairs], [2, 2, 2])
    for (h, low), c, (b_out, stats) in zip(pairs, cfgs, results):
        out, _, _ = run_single(c, low, 2)
        assert abs(psnr_inner(b_out, h) - psnr_inner(out, h)) < 0.3
        assert gain_over_bicubic(b_out, h, low) > 0.5
        assert stats["batch-size"] == 3


def test_mask_and_repack_agree():
    cfg = ZSSRConfig.preset("original").replace(**TINY)
    lrs, scales = images(3), [2, 2, 3]
    cfgs = [cfg.replace(seed=i, max_iters=20 + 10 * i) for i in range(3)]
    a, _ = run_batched(cfgs, lrs, scales, BatchConfig(finished="repack"))
    b, _ = run_batched(cfgs, lrs, scales, BatchConfig(finished="mask"))
    for (oa, sa), (ob, sb) in zip(a, b):
        assert sa["iterations"] == sb["iterations"] and (sa["finished"], sb["finished"]) == ("repack", "mask")
        assert (oa - ob).abs().max().item() < 1e-4


def test_vmap_stacking_follows_grouped():
    cfg = ZSSRConfig.preset("original").replace(**{**TINY, "max_iters": 12})
    lrs, scales = images(2), [2, 2]
    cfgs = [cfg.replace(seed=i) for i in range(2)]
    a, la = run_batched(cfgs, lrs, scales, BatchConfig(stacking="grouped"))
    b, lb = run_batched(cfgs, lrs, scales, BatchConfig(stacking="vmap"))
    for (oa, _), (ob, _), x, y in zip(a, b, la, lb):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
        assert (oa - ob).abs().max().item() < 1e-4


def test_a_bad_problem_fails_alone_and_time_is_shared():
    cfg = ZSSRConfig.preset("original").replace(**{**TINY, "max_iters": 10})
    lrs = images(2)
    problems = [Problem(lrs[0], 2, cfg),
                Problem(lrs[1], 2, cfg, kernels=[np.ones((5, 5)) / 25, np.ones((5, 5)) / 25]),  # 2 kernels, 1 step
                Problem(lrs[1][0, :2], 2, cfg)]  # 2 channels
    results = upscale_many(problems)
    assert isinstance(results[1], ValueError) and "kernel" in str(results[1])
    assert isinstance(results[2], ValueError) and "shape" in str(results[2])
    out, stats = results[0]
    assert out.shape == (1, 3, 80, 96)
    assert stats["seconds-total"] == pytest.approx(stats["seconds-batch"], rel=1e-6)  # the only one that ran


def test_batch_refuses_mixed_networks_and_fp16():
    lr = images(1)[0]
    cfg = ZSSRConfig.preset("original").replace(**TINY)
    with pytest.raises(ValueError, match="share"):
        upscale_many([Problem(lr, 2, cfg), Problem(lr, 2, cfg.replace(width=32))])
    with pytest.raises(ValueError, match="fp16"):
        upscale_many([Problem(lr, 2, cfg.replace(precision="fp16"))], device="cpu")
    with pytest.raises(ValueError, match="stacking"):
        BatchConfig(stacking="loop")


def test_batched_ensemble_equals_one_pass_at_a_time():
    net = ZSSRNet(ZSSRConfig())
    net.reset_parameters(torch.Generator().manual_seed(0))
    net.eval()
    lr = images(1)[0]

    def fn(t):
        return net(imresize(t, 2)).clamp(0, 1)

    def down(x, sf, hw):
        return imresize(x, (1 / sf[0], 1 / sf[1]), hw)

    with torch.no_grad():
        a = self_ensemble(fn, lr, (2.0, 2.0), down, 2)
        b = self_ensemble(fn, lr, (2.0, 2.0), down, 2, batched=True)
    assert (a - b).abs().max().item() < 1e-5


def test_stacked_adam_is_torch_adam():
    # the stacked optimizer's first steps against torch.optim.Adam on the same gradients
    cfg = ZSSRConfig().replace(depth=3, width=4, precision="fp32", channels_last=False)
    nets = [ZSSRNet(cfg) for _ in range(2)]
    for i, n in enumerate(nets):
        n.reset_parameters(torch.Generator().manual_seed(i))
    ref = [ZSSRNet(cfg) for _ in range(2)]
    for r, n in zip(ref, nets):
        r.load_state_dict(n.state_dict())
    stacked = StackedNets(nets, cfg, "grouped", [None, None])
    opts = [torch.optim.Adam(r.parameters(), lr=lr) for r, lr in zip(ref, (1e-3, 1e-2))]
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        up, father = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
        stacked.set_rates([1e-3, 1e-2], [True, True])
        losses = stacked.step(up, father)
        for j, (r, opt) in enumerate(zip(ref, opts)):
            loss = torch.nn.functional.l1_loss(r(up[j:j + 1]), father[j:j + 1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert abs(loss.item() - losses[j].item()) < 1e-6
    for j, r in enumerate(ref):
        for p, q in zip(r.parameters(), stacked.params):
            assert (p - q[j]).abs().max().item() < 1e-6


def stuck_config(**over) -> ZSSRConfig:
    """zssr-fast's restart on a tiny budget, at learning rate 0: the weights cannot move, the reconstruction error
    stays exactly where it started, and the watch calls the step stuck at its first measurement at or after 25 % of
    max_iters (iteration 12 of 40: measurements every 4). A non-zero last layer, so fresh weights change the output."""
    return ZSSRConfig.preset("fast").replace(**{**TINY, "learning_rate": 0.0, "init_last_zero": False, "seed": 5,
                                                **over})


def test_a_stuck_step_restarts_once_with_fresh_weights():
    torch.set_num_threads(1)
    lr = images(1)[0]
    out, _, z = run_single(stuck_config(), lr, 2)
    st = z.last_stats
    assert st["restarts"] == [dict(step=0, kind="stuck", iteration=13, rec_ratio=1.0)]  # the second try is not watched
    assert st["iterations"] == 13 + 40 and [s["iterations"] for s in st["steps"]] == [40]
    assert len(st["curve"]) == 10  # the restarted try's measurements only
    no_restart, _, z0 = run_single(stuck_config(restart_if_stuck=0.0), lr, 2)
    assert z0.last_stats["restarts"] == [] and z0.last_stats["iterations"] == 40
    assert not torch.equal(out, no_restart)  # fresh weights: a different network, hence output
    # a live run is not restarted: the same budget at zssr-fast's rate
    _, _, live = run_single(stuck_config(learning_rate=1e-3, init_last_zero=True), lr, 2)
    assert live.last_stats["restarts"] == [] and live.last_stats["iterations"] == 40


def test_batched_restart_follows_the_single_trainer():
    torch.set_num_threads(1)
    lrs = images(2)
    stuck, live = stuck_config(), stuck_config(learning_rate=1e-3, init_last_zero=True)
    single = [run_single(c, lr, 2) for c, lr in zip((stuck, live), lrs)]
    (one, _) = run_batched([stuck], lrs[:1], [2])  # K = 1: bit for bit
    assert torch.equal(one[0][0], single[0][0])
    assert one[0][1]["restarts"] == single[0][2].last_stats["restarts"]
    assert one[0][1]["iterations"] == single[0][2].last_stats["iterations"]
    (two, _) = run_batched([stuck, live], lrs, [2, 2])  # K = 2: one problem restarts while the other trains on
    for (b_out, b_stats), (out, _, z) in zip(two, single):
        assert b_stats["restarts"] == z.last_stats["restarts"] and b_stats["iterations"] == z.last_stats["iterations"]
    # the restarted problem's weights cannot move (rate 0): equal up to grouped-convolution rounding (measured: 0);
    # the live one carries K > 1's rounding through Adam at zssr-fast's rate (measured: 3.1e-3 at most)
    torch.testing.assert_close(two[0][0], single[0][0], rtol=0, atol=1e-5)
    assert (two[1][0] - single[1][0]).abs().max().item() < 1e-2


def dead_config(**over) -> ZSSRConfig:
    """original-gradual's dead-step guard on two tiny scale steps at learning rate 0 with a zero last layer: the
    network is the interpolation throughout, so each attempt ends at exactly the interpolation's reconstruction
    error (ratio 1), each step is retried once from its starting weights, and the retry (no better) is dropped."""
    return ZSSRConfig.preset("fast").replace(**{**TINY, "learning_rate": 0.0, "init_last_zero": True,
                                                "restart_if_stuck": 0.0, "retry_dead_steps": True, "seed": 5,
                                                "scale_factors": ((1.5, 1.5), (2.0, 2.0)), **over})


def live_problem() -> tuple[ZSSRConfig, torch.Tensor]:
    """A 48 x 48 LR crop of scikit-image's astronaut at zssr-fast's rate for 120 iterations: both steps end well
    below the interpolation's reconstruction error (measured: 0.73 and 0.74 of it)."""
    skimage_data = pytest.importorskip("skimage.data")
    return dead_config(learning_rate=1e-3, max_iters=120), x2_pair(skimage_data.astronaut()[100:196, 180:276])[1]


def test_a_dead_step_is_retried_once_and_the_better_attempt_kept():
    torch.set_num_threads(1)
    lr = images(1)[0]
    out, _, z = run_single(dead_config(), lr, 2)
    st = z.last_stats
    assert [(r["step"], r["kind"], r["iteration"], r["kept"]) for r in st["restarts"]] == \
        [(0, "dead", 40, "first"), (1, "dead", 40, "first")]
    assert all(r["rec_ratio"] == pytest.approx(1.0, abs=1e-6) for r in st["restarts"])
    assert st["iterations"] == 4 * 40 and [s["iterations"] for s in st["steps"]] == [40, 40]
    unguarded, _, z0 = run_single(dead_config(retry_dead_steps=False), lr, 2)
    assert z0.last_stats["restarts"] == [] and z0.last_stats["iterations"] == 2 * 40
    assert torch.equal(out, unguarded)  # the kept attempts are the unguarded run's

    # a live run is not touched: bit for bit the unguarded run
    live, live_lr = live_problem()
    out_live, _, z1 = run_single(live, live_lr, 2)
    assert z1.last_stats["restarts"] == []
    assert torch.equal(out_live, run_single(live.replace(retry_dead_steps=False), live_lr, 2)[0])

    # kill the live run's second step (every channel of the last hidden layer off): retried from the step's starting
    # weights, and the retry, alive, is kept
    starts: list[bool] = []
    z2 = ZSSR(live)

    def kill_in_second_step(it, *_):
        starts.append(it == 0)
        if it == 0 and sum(starts) == 2:
            hidden = [m for m in z2.net.body if isinstance(m, torch.nn.Conv2d)][-2]
            with torch.no_grad():  # its inputs are ReLU outputs (>= 0): negative weights switch every unit off
                hidden.weight.fill_(-1.0)

    revived = z2.upscale(live_lr, 2, callback=kill_in_second_step)
    (entry,) = z2.last_stats["restarts"]
    assert (entry["step"], entry["kind"], entry["kept"]) == (1, "dead", "retry")
    assert entry["rec_ratio"] > 0.97 and entry["retry_rec_error"] < 0.9 * entry["rec_error"]
    assert z2.last_stats["iterations"] == 3 * 120
    assert psnr_inner(revived, out_live) > 30  # close to what the unharmed run made


def test_batched_dead_step_retry_follows_the_single_trainer():
    torch.set_num_threads(1)
    live, live_lr = live_problem()
    dead, dead_lr = dead_config(), images(1)[0]
    single = [run_single(c, lr, 2) for c, lr in ((dead, dead_lr), (live, live_lr))]
    (one, _) = run_batched([dead], [dead_lr], [2])  # K = 1: bit for bit
    assert torch.equal(one[0][0], single[0][0])
    assert one[0][1]["restarts"] == single[0][2].last_stats["restarts"]
    (two, _) = run_batched([dead, live], [dead_lr, live_lr], [2, 2])  # K = 2: one retries, the other trains on
    for (b_out, b_stats), (out, _, z) in zip(two, single):
        assert [(r["step"], r["kept"]) for r in b_stats["restarts"]] == \
            [(r["step"], r["kept"]) for r in z.last_stats["restarts"]]
        assert b_stats["iterations"] == z.last_stats["iterations"]
    torch.testing.assert_close(two[0][0], single[0][0], rtol=0, atol=1e-5)
