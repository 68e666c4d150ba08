"""tools/zssr_frontier.py: a snapshot at N iterations of one run is the output of a run capped at N (the claim that
lets the frontier measure every budget of the adaptive-policy preset from one run per image)."""
import importlib.util
from pathlib import Path

import pytest
import torch

from sr_pairs import brick_pair
from zssr import ZSSR, ZSSRConfig

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def frontier():
    spec = importlib.util.spec_from_file_location("zssr_frontier", REPO / "tools" / "zssr_frontier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_which_presets_are_measured_from_snapshots(frontier):
    able = {name: frontier.snapshot_able(ZSSRConfig.preset(name), 2)
            for name in ("original", "fast", "modified", "original-gradual")}
    # fixed schedules follow max_iters; the gradual preset has 6 steps and a retry that reads max_iters
    assert able == {"original": True, "fast": False, "modified": False, "original-gradual": False}


def test_a_snapshot_is_the_output_of_a_run_capped_there(frontier):
    _, lr = brick_pair(32)
    # small crops, a measurement every 5 iterations; min_iters keeps the policy from stopping before 40
    cfg = ZSSRConfig.preset("original").replace(crop_size=16, run_test_every=5, min_iters=64, seed=3,
                                                back_projection_iters=(2,))
    results = frontier.run_budgets(cfg, lr, 2, [12, 25, 40], torch.device("cpu"))
    for budget in (12, 25, 40):
        capped = ZSSR(cfg.replace(max_iters=budget))
        expected = capped.upscale(lr, 2)
        sr, seconds, iterations = results[budget]
        assert iterations == capped.last_stats["iterations"] == budget
        assert torch.equal(sr, expected), budget  # bit for bit: the same weights, crops and final test
        assert seconds > 0
    assert results[12][1] < results[25][1] < results[40][1]
