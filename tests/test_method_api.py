"""baselines.api: one call, Method.run(requests) -> results; a cell is a batch of one, each request carries its
seed and what the method is told, and a plugin written against upscale(lr, scale) alone still works."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.api import Method, MethodInfo, Request, Result
from baselines.methods import create_method
from zssr import ZSSR
from zssr.kernels import bicubic_kernel

TINY = dict(max_iters=6, crop_size=16, back_projection_iters=1)


class UpscaleOnly(Method):
    """A plugin as written before run() existed: upscale() only, no hooks."""

    name = "upscale-only"
    info = MethodInfo(family="interpolation", training_data="none", degradation="none")

    def upscale(self, lr, scale):
        if scale == 3:
            raise ValueError("x3 is not supported")
        self.last_stats = {"iterations": 7}
        return F.interpolate(lr, scale_factor=scale, mode="nearest")


class WithHooks(UpscaleOnly):
    """A plugin with the old hooks: told the kernel, seeded per cell."""

    name = "with-hooks"
    told = ("kernel", "noise")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[tuple] = []
        self._seed, self._told = None, None

    def set_seed(self, seed):
        self._seed = seed

    def set_degradation(self, kernel=None, noise=None):
        self._told = (kernel, noise)

    def upscale(self, lr, scale):
        self.seen.append((self._seed, self._told))
        return super().upscale(lr, scale)


def test_a_plugin_with_only_upscale_runs_through_run_and_fails_per_request():
    m = UpscaleOnly()
    lr = torch.rand(1, 3, 5, 6)
    results = m.run([Request(lr, 2, seed=1), Request(lr, 3, seed=2), Request(lr, 4, seed=3)])
    assert isinstance(results[0], Result) and isinstance(results[2], Result)
    assert isinstance(results[1], ValueError) and "x3" in str(results[1])  # the others ran
    assert results[0].sr.shape == (1, 3, 10, 12) and results[2].sr.shape == (1, 3, 20, 24)
    assert torch.equal(results[0].sr, F.interpolate(lr, scale_factor=2, mode="nearest"))
    assert results[0].stats["iterations"] == 7 and results[0].stats["seconds-total"] >= 0  # each timed alone


def test_the_base_class_feeds_the_old_hooks_before_each_request():
    m = WithHooks()
    lr = torch.rand(1, 3, 4, 4)
    m.run([Request(lr, 2, seed=11, told={"kernel": "k", "noise": 5.0}), Request(lr, 2, seed=12, told={})])
    # the second request is told nothing: the hook is called with the defaults, no value left from the first
    assert m.seen == [(11, ("k", 5.0)), (12, (None, None))]


def test_zssr_run_uses_each_requests_seed_and_keeps_no_state_between_requests():
    m = create_method("zssr-true-kernel", profile="quick", **TINY)
    m.setup(torch.device("cpu"))
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 12, 12)
    alone = m.run([Request(lr, 2, seed=5)])[0]
    reference = ZSSR(m.cfg.replace(seed=5)).upscale(lr, 2)  # what the library gives with that seed
    assert torch.equal(alone.sr, reference) and alone.stats["iterations"] == 6
    assert not torch.equal(m.run([Request(lr, 2, seed=6)])[0].sr, reference)  # the seed is the request's
    told = m.run([Request(lr, 2, seed=5, told={"kernel": bicubic_kernel(2), "noise": None})])[0]
    assert not torch.equal(told.sr, reference)  # the given-kernel configuration
    again = m.run([Request(lr, 2, seed=5)])[0]
    assert torch.equal(again.sr, reference)  # the kernel told before did not stay


def test_zssr_run_of_several_requests_trains_them_together_and_reports_shares():
    m = create_method("zssr-original", profile="quick", **TINY)
    m.setup(torch.device("cpu"))
    torch.manual_seed(1)
    lrs = [torch.rand(1, 3, 12, 12), torch.rand(1, 3, 10, 14)]
    results = m.run([Request(lrs[0], 2, seed=1), Request(torch.rand(2, 3, 8, 8), 2, seed=2),
                     Request(lrs[1], 2, seed=3)])
    assert isinstance(results[1], ValueError) and "one image" in str(results[1])  # only that request fails
    for lr, result in zip(lrs, (results[0], results[2])):
        assert result.sr.shape == (1, 3, 2 * lr.shape[2], 2 * lr.shape[3])
        assert result.stats["seconds-total"] > 0 and result.stats["iterations"] == 6


def test_zssr_upscale_is_run_with_the_configured_seed():
    m = create_method("zssr-original", profile="quick", **TINY)
    m.setup(torch.device("cpu"))
    lr = torch.rand(1, 3, 10, 10)
    assert torch.equal(m.upscale(lr, 2), ZSSR(m.cfg).upscale(lr, 2))
    with pytest.raises(ValueError):
        create_method("zssr-kernelgan", profile="quick").upscale(lr, 3)


def test_the_harness_hands_each_cell_to_run_with_its_seed_and_what_it_is_told(folder, tmp_path):
    import fake_methods
    from bench.results import END_METRIC, read_results
    from bench.runner import RunOptions, run
    from bench.session import cell_seed

    fake_methods.register()
    fake_methods.RunSpy.CALLS.clear()
    out = tmp_path / "spy"
    opts = RunOptions(dataset=str(folder), methods=("test-run-spy",), profile="quick", device="cpu", out=out,
                      scales=(2,), metrics=("psnr-y",), degradations=("noise:3",), batch="4")
    assert run(opts, render=False).ok
    calls = fake_methods.RunSpy.CALLS
    assert [len(c) for c in calls] == [1] * 5  # not batchable: each cell is a call of one
    df = read_results(out / "results.csv")
    ends = df[df.metric == END_METRIC]
    expected = sorted(cell_seed(0, r, None) for r in ends.itertuples())
    assert sorted(seed for c in calls for seed, _, _ in c) == expected
    assert all(scale == 2 and told == {"noise": 3.0} for c in calls for _, scale, told in c)
    assert set(df[df.metric == "iterations"].value) == {3.0}  # the stats a method reports become rows
    assert "batch-size" not in set(df.metric)  # cells of one: no batch rows
