"""What kernel ZSSR trains with, as an overlay of any preset (baselines.zssr_presets.KERNEL_SOURCES): names,
identities, and one KernelGAN estimate shared by every preset that asks for it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.methods import METHODS, create_method
from bench.session import config_id

FIXTURE = Path(__file__).parent / "data" / "zssr_identities_before_kernel_sources.json"


def _identity(name: str, profile: str = "paper") -> tuple[str, dict]:
    # fp32, as the fixture was written: `auto` is bf16 on CPUs with bf16 hardware, and precision is in the identity
    m = create_method(name, profile=profile, precision="fp32")
    m.prepare()
    m.choose_precision(torch.device("cpu"))
    return config_id(name, m, profile, "rgb", 0), m.config()


def test_every_single_step_preset_has_its_kernel_sources_registered():
    from baselines.zssr_presets import kernel_source_names, single_step_presets

    assert {"zssr-fast+true-kernel", "zssr-fast+kernelgan", "zssr-true-kernel", "zssr-kernelgan"} <= set(METHODS)
    assert "zssr-original+true-kernel" not in METHODS  # the original's are spelt zssr-true-kernel / zssr-kernelgan
    assert "gradual" not in single_step_presets() and "original-gradual" not in single_step_presets()
    assert "zssr-gradual+kernelgan" not in METHODS  # several scale steps: one kernel per cell is not enough
    assert len(kernel_source_names()) == 2 * len(single_step_presets())
    with pytest.raises(KeyError, match="registered as 'zssr-true-kernel'"):
        from baselines.zssr_presets import parse_kernel_source

        parse_kernel_source("zssr-original+true-kernel")


def test_kernel_source_identities_are_distinct():
    ids = {name: _identity(name)[0] for name in ("zssr-fast", "zssr-fast+true-kernel", "zssr-fast+kernelgan",
                                                  "zssr-true-kernel", "zssr-kernelgan")}
    assert len(set(ids.values())) == len(ids), ids


def test_the_overlay_is_the_preset_with_the_sources_settings():
    fast = create_method("zssr-fast", profile="quick")
    told = create_method("zssr-fast+true-kernel", profile="quick")
    blind = create_method("zssr-fast+kernelgan", profile="quick")
    assert told.cfg == fast.cfg and blind.cfg == fast.cfg  # the same preset and quick reduction
    assert told.told == ("kernel", "noise") and blind.told == ()
    assert told.seed_as == blind.seed_as == "zssr-fast"  # the preset's random numbers: they differ in the kernel only
    assert blind.named_seeds == {"kernelgan": "zssr-original"}  # KernelGAN's seed does not depend on the preset
    cfg, kernels = told._cell_config({"kernel": np.ones((3, 3)) / 9, "noise": None})
    assert kernels is not None and not cfg.ensemble and cfg.back_projection_iters == (2,)  # given-kernel settings
    assert told._cell_config({"kernel": None, "noise": None}) == (fast.cfg, None)  # told bicubic: the preset


@pytest.mark.parametrize("name", ["zssr-fast", "zssr-original"])
@pytest.mark.parametrize("profile", ["paper", "quick"])
def test_existing_identities_are_unchanged(name, profile):
    """The committed results use these: their config() and cell identity are those before kernel sources existed
    (tests/data/zssr_identities_before_kernel_sources.json, written by the code before this change)."""
    before = json.loads(FIXTURE.read_text())[f"{name}/{profile}"]
    cid, cfg = _identity(name, profile)
    assert json.loads(json.dumps(cfg)) == before["config"]
    assert cid == before["config_id"]


@pytest.mark.parametrize("profile", ["paper", "quick"])
def test_zssr_true_kernel_changed_only_by_what_it_does_with_told_noise(profile):
    """Version 3 changed what a told noise level does (the real-image configuration with the sons' noise at the told
    sigma, instead of 0.0125 on top of the given-kernel one): a new identity whose configuration is the old one with
    the noise rule replaced."""
    before = json.loads(FIXTURE.read_text())[f"zssr-true-kernel/{profile}"]
    cid, cfg = _identity("zssr-true-kernel", profile)
    cfg = json.loads(json.dumps(cfg))
    old = dict(before["config"])
    assert old.pop("noise_std_when_noisy") == 0.0125
    assert cfg.pop("when_noisy") == {"ensemble": False, "back_projection_iters": [0], "augment_allow_rotation": False,
                                     "augment_scale_diff_sigma": 0.0, "augment_shear_sigma": 0.0,
                                     "augment_min_scale": 0.75, "noise_std": "told sigma / 255"}
    assert cfg == old and cid != before["config_id"]
    assert create_method("zssr-true-kernel").version == create_method("zssr-fast+true-kernel").version == "3"


def test_told_noise_runs_the_real_image_configuration_at_the_told_level():
    told = create_method("zssr-fast+true-kernel", profile="paper")
    kernel = np.ones((3, 3)) / 9
    cfg, _ = told._cell_config({"kernel": kernel, "noise": 12.75})
    assert cfg.noise_std == pytest.approx(0.05) and cfg.back_projection_iters == (0,)  # 12.75 / 255; no BP
    assert not cfg.augment_allow_rotation and cfg.augment_min_scale == 0.75 and not cfg.ensemble
    quiet, _ = told._cell_config({"kernel": kernel, "noise": None})
    assert quiet.noise_std == 0.0 and quiet.back_projection_iters == (2,)  # no noise: given-kernel as before
    noisy_bicubic, kernels = told._cell_config({"kernel": None, "noise": 5.0})
    assert kernels is None and noisy_bicubic.noise_std == pytest.approx(5 / 255)  # bicubic + noise: told the noise


@pytest.mark.parametrize("profile", ["paper", "quick"])
def test_zssr_kernelgan_changed_only_by_its_kernel_decision_and_schedule(profile):
    """Issue 40 changed zssr-kernelgan's numbers twice (version 3: a rejected estimate is estimated again or
    replaced by bicubic; version 4: ZSSR trains on an estimate with the preset's quick schedule): a new identity,
    whose configuration is the old one plus the checks, the decision policy and the estimate's schedule."""
    from baselines.zssr_presets import quick_reduction

    before = json.loads(FIXTURE.read_text())[f"zssr-kernelgan/{profile}"]
    cid, cfg = _identity("zssr-kernelgan", profile)
    cfg = json.loads(json.dumps(cfg))
    assert set(cfg) - set(before["config"]) == {"kernel_checks", "kernel_policy", "estimate_schedule"}
    assert {k: v for k, v in cfg.items() if k in before["config"]} == before["config"]
    assert cfg["estimate_schedule"] == json.loads(json.dumps(quick_reduction("original")))
    assert cid != before["config_id"]
    assert create_method("zssr-kernelgan").version == create_method("zssr-fast+kernelgan").version == "4"


def test_one_kernelgan_estimate_serves_two_presets_and_later_runs(tmp_path, monkeypatch):
    """zssr-original and zssr-fast with KernelGAN over the same cells: KernelGAN runs once per cell; both are charged
    its seconds; a later run over the same folder reads the estimates back instead of computing them."""
    from PIL import Image

    import fake_methods
    import zssr.kernelgan as kernelgan
    from bench.results import END_METRIC, read_results
    from bench.runner import RunOptions, run

    fake_methods.register()
    calls = []
    real = kernelgan.estimate_kernel
    monkeypatch.setattr(kernelgan, "estimate_kernel", lambda lr, cfg, **kw: calls.append(cfg.seed) or real(lr, cfg, **kw))
    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / "imgs" / f"s{i}.png")
    out = tmp_path / "run"

    def bench(methods, render=False):
        return run(RunOptions(dataset=str(tmp_path / "imgs"), methods=methods, scales=(2,), profile="quick",
                              device="cpu", out=out, metrics=("psnr-y",), degradations=("aniso-gaussian",)),
                   render=render)

    assert bench(("test-kernelgan", "test-fast-kernelgan"), render=True).ok
    # once per image and seed (only a re-estimate, decision 1, takes a second seed), not once per (image, method)
    decisions = read_results(out / "results.csv").query("metric == 'kernel-decision'")
    runs_per_image = decisions.groupby("image")["value"].first().astype(float).map(lambda code: 2 if code == 1 else 1)
    assert len(calls) == runs_per_image.sum() and len(set(calls)) == len(calls)
    df = read_results(out / "results.csv")
    assert set(df[df.metric == END_METRIC].status) == {"ok"}
    charged = df[df.metric == "seconds-kernel"].pivot_table(index="image", columns="method", values="value")
    assert (charged["test-kernelgan"] == charged["test-fast-kernelgan"]).all()  # the same estimate's cost, charged
    reused = df[df.metric == "kernel-reused"].groupby("method")["value"].sum()
    assert reused.sum() == 2  # one of the two methods reused each image's estimate
    totals = df[df.metric == "seconds-total"].set_index(["image", "method"])["value"]
    kernel = df[df.metric == "seconds-kernel"].set_index(["image", "method"])["value"]
    assert (totals >= kernel).all()  # a reusing cell's total still includes the estimate's cost
    assert len(list((out / "kernels-estimated" / "shared").glob("kernelgan-*.json"))) == len(calls)
    md = (out / "report.md").read_text()
    assert "2 of 4 such cells here reused one" in md and "charged the estimate's full seconds and FLOPs" in md
    flops = df[df.metric == "flops-kernel"].set_index(["image", "method"])["value"]
    per_image = flops.unstack("method")
    assert len(flops) == 4 and (flops > 0).all()
    assert (per_image["test-kernelgan"] == per_image["test-fast-kernelgan"]).all()  # the same KernelGAN runs, charged
    # a later run over the same folder (a new method asking for the same estimates): read back, not computed
    (out / "results.csv").unlink()  # the cells are computed again; the estimates are not
    n_calls = len(calls)
    assert bench(("test-fast-kernelgan",)).ok
    assert len(calls) == n_calls


def test_the_estimate_cache_round_trips_exactly(tmp_path):
    from baselines.kernel_estimates import EstimateCache, estimate_key

    lr = torch.rand(1, 3, 8, 8)
    key = estimate_key(lr, {"seed": 3}, "cpu")
    assert key != estimate_key(lr, {"seed": 4}, "cpu") != estimate_key(lr + 1e-3, {"seed": 3}, "cpu")
    assert key != estimate_key(lr, {"seed": 3}, "cuda")
    k = np.random.default_rng(0).random((13, 13))
    raw = np.random.default_rng(1).random((13, 13))
    first = EstimateCache(tmp_path).estimate(key, lambda: (k, 1.25, raw))
    assert not first.reused
    again = EstimateCache(tmp_path).estimate(key, lambda: pytest.fail("computed again"))
    assert again.reused and again.seconds == 1.25 and np.array_equal(again.kernel_x2, k)
    assert np.array_equal(again.raw_kernel, raw)  # the checks of baselines.kernel_decision look at it
    assert not list(tmp_path.glob(".kernelgan-*"))  # no temporary file left behind
