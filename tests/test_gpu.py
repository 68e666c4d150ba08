"""CUDA paths (`pytest -m gpu`; skipped without CUDA): ZSSR training in fp32 and bf16 with channels_last,
pretrained inference in fp16 and bf16, tiling's out-of-memory fallback, synchronised timing, allocator peak memory.
tools/device_run.sh runs these on a lent GPU."""
from __future__ import annotations

import pytest
import torch

from baselines.pretrained import move_for_inference, run_at_native_scale
from baselines.tiling import TileConfig, tiled_forward
from bench.device import PeakMemory, timed
from sr_pairs import brick_pair, gain_over_bicubic, psnr_inner
from test_pretrained import random_compact_state
from zssr import ZSSR, ZSSRConfig

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
CUDA = torch.device("cuda")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_zssr_trains_on_cuda_and_beats_bicubic(precision):
    # as the CPU test: 200 iterations on 32 x 32 fathers gain >= 0.5 dB over bicubic
    hr, lr = brick_pair(64, CUDA)
    cfg = ZSSRConfig.preset("original").replace(max_iters=200, crop_size=32, min_iters=64, lr_slope_range=80,
                                                run_test_every=16, lr_check_every=30, seed=0, precision=precision)
    z = ZSSR(cfg)
    sr = z.upscale(lr, 2)
    assert sr.device.type == "cuda" and sr.dtype == torch.float32
    assert z.last_stats["precision"] == precision and z.last_stats["channels_last"]
    assert next(z.net.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert gain_over_bicubic(sr, hr, lr) > 0.5


def test_auto_is_bf16_on_ampere_and_newer():
    from zssr.precision import resolve_precision

    expected = "bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp32"
    assert resolve_precision("auto", CUDA) == expected


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_pretrained_low_precision_matches_fp32(precision):
    import spandrel

    x = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0)).to(CUDA)
    outs = {}
    for p in ("fp32", precision):
        desc = spandrel.ModelLoader().load_from_state_dict(random_compact_state())
        dtype = move_for_inference(desc, CUDA, p, "test")
        with torch.inference_mode():
            outs[p], _ = run_at_native_scale(desc, x.to(dtype), 4, 4, TileConfig(tile=None), p)
    assert outs[precision].dtype == torch.float32
    rms = ((outs[precision] - outs["fp32"]) * 255).pow(2).mean().sqrt().item()
    assert rms < 1.0, rms


def test_tile_halves_on_a_real_cuda_oom(monkeypatch):
    calls = []

    def fn(t):
        calls.append(t.shape[-1])
        if t.shape[-1] > 40:  # a tile that does not fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated on a CUDA tensor)")
        return torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")

    x = torch.rand(1, 3, 64, 64, device=CUDA)
    out, tile = tiled_forward(fn, x, 2, TileConfig(tile=64, pad=4, min_tile=16))
    assert tile == 32 and out.shape == (1, 3, 128, 128) and out.device.type == "cuda"


def test_timing_synchronises():
    a = torch.rand(4096, 4096, device=CUDA)
    torch.cuda.synchronize()
    times: dict = {}
    start_evt, end_evt = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with timed(CUDA, times, "t"):
        start_evt.record()
        for _ in range(50):
            a = a @ a
            a = a / a.norm()
        end_evt.record()
    gpu_seconds = start_evt.elapsed_time(end_evt) / 1000
    # without a sync the host clock would stop at the last launch, far before the kernels end
    assert times["t"] >= 0.95 * gpu_seconds > 0


def test_peak_memory_reads_the_allocator():
    with PeakMemory(CUDA) as mem:
        block = torch.empty(256 * 2**20, dtype=torch.uint8, device=CUDA)
        block.fill_(1)
        del block
    assert mem.mb is not None and mem.mb >= 256


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batched_zssr_trains_on_cuda(precision):
    # three brick crops trained as one batch on CUDA: each beats bicubic by >= 0.5 dB, as the single runs do
    from zssr.batched import Problem, upscale_many

    hr, lr = brick_pair(64, CUDA)
    crops = [(hr, lr), (hr[..., :48, :48], lr[..., :24, :24]), (hr[..., 16:, 8:56], lr[..., 8:, 4:28])]
    cfg = ZSSRConfig.preset("original").replace(max_iters=200, crop_size=32, min_iters=64, lr_slope_range=80,
                                                run_test_every=16, lr_check_every=30, precision=precision)
    results = upscale_many([Problem(low, 2, cfg.replace(seed=i)) for i, (_, low) in enumerate(crops)])
    for (h, low), (sr, stats) in zip(crops, results):
        assert sr.device.type == "cuda" and stats["precision"] == precision and stats["batch-size"] == 3
        assert gain_over_bicubic(sr, h, low) > 0.5


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_step_equals_the_eager_step(precision):
    from zssr.batched import StackedNets, _GraphedStep
    from zssr.network import ZSSRNet

    cfg = ZSSRConfig.preset("original").replace(precision=precision, crop_size=32)
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(3, 3, 32, 32, generator=g).to(CUDA), torch.rand(3, 3, 32, 32, generator=g).to(CUDA))
            for _ in range(5)]
    finals, losses = [], []
    for graphed in (False, True):
        nets = []
        for i in range(3):
            net = ZSSRNet(cfg)
            net.reset_parameters(torch.Generator().manual_seed(i))
            nets.append(net.to(CUDA).to(memory_format=torch.channels_last))
        stacked = StackedNets(nets, cfg, "grouped", [None] * 3)
        step = _GraphedStep(stacked, 32) if graphed else stacked.step
        run = []
        for up, father in data:
            stacked.set_rates([1e-3, 1e-3, 1e-4], [True, True, True])
            run.append(step(up, father).cpu())
        losses.append(torch.stack(run))
        finals.append([p.detach().clone() for p in stacked.params])
    tol = 1e-5 if precision == "fp32" else 1e-3
    assert (losses[0] - losses[1]).abs().max().item() < tol
    for a, b in zip(*finals):
        assert (a - b).abs().max().item() < 10 * 1e-3 * 5  # Adam moves each weight by <= ~lr per step


def test_batched_zssr_with_cuda_graph_follows_eager():
    from zssr.batched import BatchConfig, Problem, upscale_many

    hr, lr = brick_pair(64, CUDA)
    cfg = ZSSRConfig.preset("original").replace(max_iters=120, crop_size=32, min_iters=64, lr_slope_range=80,
                                                run_test_every=16, lr_check_every=30, precision="fp32")
    problems = [Problem(lr, 2, cfg.replace(seed=i)) for i in range(2)]
    eager = upscale_many(problems, BatchConfig())
    graph = upscale_many(problems, BatchConfig(cuda_graph=True))
    for (a, sa), (b, sb) in zip(eager, graph):
        assert sb["cuda-graph"] and not sa["cuda-graph"] and sb["finished"] == "mask"
        assert abs(psnr_inner(a, hr) - psnr_inner(b, hr)) < 0.3
