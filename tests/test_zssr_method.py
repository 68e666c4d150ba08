"""baselines.zssr_method: the harness adapters for the ZSSR presets."""
import json

import pytest
import torch

from baselines.methods import create_method


def test_adapters_profiles_and_config():
    m = create_method("zssr-original", profile="quick")
    assert m.name == "zssr-original" and m.info.family == "internal"
    cfg = m.config()
    json.dumps(cfg)
    assert cfg["profile"] == "quick" and cfg["zssr"]["max_iters"] < 3000
    paper = create_method("zssr-original-gradual")
    assert paper.config()["zssr"]["max_iters"] == 3000 and len(paper.config()["zssr"]["gradual_increments"]) == 6
    assert cfg["zssr"]["seed"] == 0  # the configured seed; a cell's own travels in its Request
    with pytest.raises(ValueError, match="profile"):
        create_method("zssr-original", profile="fast")
    with pytest.raises(TypeError, match="max_iters"):
        create_method("zssr-original", max_iter=3)


def test_adapter_upscales_a_batch_and_reports_stats():
    m = create_method("zssr-original", profile="quick", max_iters=6, crop_size=16, back_projection_iters=1)
    m.setup(torch.device("cpu"))
    out = m.upscale(torch.rand(2, 3, 10, 12), 2)
    assert out.shape == (2, 3, 20, 24)
    assert m.last_stats["iterations"] == 12 and m.last_stats["seconds-train"] > 0 and m.last_stats["curve"]
    assert m.last_stats["restarts"] == []  # both frames' (none: the original preset does not restart)


def test_every_zssr_config_preset_is_a_method_with_a_quick_reduction(monkeypatch):
    """The presets are zssr.config's (less the per-cell overlays); the quick profile's reductions one table."""
    from baselines.methods import METHODS
    from baselines.zssr_presets import OVERLAYS, QUICK_BASE, QUICK_EXCEPTIONS, preset_names, quick_reduction
    from zssr import ZSSRConfig
    from zssr.config import PRESETS

    names = preset_names()
    assert set(names) == set(ZSSRConfig.preset_names()) - set(OVERLAYS) and set(OVERLAYS) <= set(PRESETS)
    assert set(QUICK_EXCEPTIONS) <= set(names)  # an exception names a preset that exists
    for preset in names:
        assert f"zssr-{preset}" in METHODS
        m = create_method(f"zssr-{preset}", profile="quick")
        assert m.config()["quick_overrides"] == quick_reduction(preset)
        assert m.cfg == ZSSRConfig.preset(preset).replace(precision="auto", **quick_reduction(preset))
    assert quick_reduction("original-gradual")["max_iters"] == 100 and quick_reduction("fast") == QUICK_BASE
    # a preset added to zssr.config is a method with the common reduction, with no other edit
    monkeypatch.setitem(PRESETS, "test-wide", {"width": 96})
    assert "test-wide" in preset_names() and quick_reduction("test-wide") == QUICK_BASE
