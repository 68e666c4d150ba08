"""zssr.config: presets, strict overrides, scale steps."""
import dataclasses
import json
from pathlib import Path

import pytest

from zssr import ZSSRConfig
from zssr.config import PAPER_GRADUAL_X2, PAPER_GRADUAL_X2_BP
from zssr.scales import ScaleSchedule

REPO = Path(__file__).resolve().parent.parent


def test_original_defaults_are_the_papers():
    c = ZSSRConfig.preset("original")
    assert (c.depth, c.width, c.kernel_size, c.activation, c.conv) == (8, 64, 3, "relu", "plain")
    assert (c.crop_size, c.max_iters, c.learning_rate, c.min_learning_rate) == (128, 3000, 1e-3, 9e-6)
    assert (c.run_test_every, c.lr_slope_range, c.lr_check_every, c.lr_change_ratio) == (50, 256, 60, 1.5)
    assert (c.augment_leave_as_is_probability, c.augment_no_interpolate_probability) == (0.05, 0.45)
    assert (c.augment_min_scale, c.augment_scale_diff_sigma, c.augment_shear_sigma) == (0.5, 0.25, 0.1)
    assert c.back_projection_iters == (10,) and c.ensemble and c.learn_residual and c.init_variance == 0.1
    assert c.steps_for(2) == [(2.0, 2.0)]


def test_gradual_preset_steps():
    c = ZSSRConfig.preset("original-gradual")
    assert c.steps_for(2) == list(PAPER_GRADUAL_X2)
    assert c.back_projection_for(6) == list(PAPER_GRADUAL_X2_BP)
    assert c.steps_for(4)[-1] == (4.0, 4.0) and c.steps_for(4)[0] == (2.0, 3.0)
    assert c.steps_for((2, 3))[-1] == (2.0, 3.0)


def test_kernel_and_real_presets():
    k = ZSSRConfig.preset("given-kernel")
    assert not k.ensemble and not k.augment_allow_rotation and k.back_projection_iters == (2,)
    r = ZSSRConfig.preset("real-image")
    assert r.noise_std == 0.0125 and r.back_projection_iters == (0,) and r.augment_min_scale == 0.75
    assert r.augment_scale_diff_sigma == 0 and r.augment_shear_sigma == 0 and not r.ensemble


def test_unknown_preset_and_field_are_errors():
    with pytest.raises(KeyError, match="did you mean 'original'"):
        ZSSRConfig.preset("orignal")
    with pytest.raises(TypeError, match="max_iters"):
        ZSSRConfig.preset("original").replace(max_iter=10)
    with pytest.raises(TypeError):
        dataclasses.replace(ZSSRConfig(), nonsense=1)
    with pytest.raises(ValueError, match="conv"):
        ZSSRConfig(conv="fancy")
    with pytest.raises(ValueError, match="restart_if_stuck"):
        ZSSRConfig(restart_if_stuck=1.0)


def test_frozen_hashable_and_json():
    c = ZSSRConfig.preset("original-gradual").replace(kernel_paths=["a_0.mat"], back_projection_iters=[1, 2])
    assert c.kernel_paths == ("a_0.mat",) and c.back_projection_iters == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.depth = 3
    hash(c)
    json.dumps(c.to_dict())


def test_explicit_scale_factors_must_end_at_request():
    c = ZSSRConfig(scale_factors=[(1.5, 1.5), (2, 2)])
    assert c.steps_for(2) == [(1.5, 1.5), (2.0, 2.0)]
    with pytest.raises(ValueError, match="requested"):
        c.steps_for(3)


def test_scale_schedule_reads_the_scale_fields_as_one_value():
    kinds = {name: ZSSRConfig.preset(name).scale_schedule.kind for name in ZSSRConfig.preset_names()}
    assert kinds["original"] == "jump" and kinds["original-gradual"] == "gradual"
    assert kinds["gradual"] == kinds["modified-gradual"] == "passes"
    assert ScaleSchedule.passes(2.0).fields() == {"pass_factor": 2.0}
    # each way written back as fields gives a config with the same steps
    for schedule in (ScaleSchedule(), ScaleSchedule.steps([(1.5, 1.5), 2], base_changes=[1.5]),
                     ScaleSchedule.gradual(PAPER_GRADUAL_X2), ScaleSchedule.passes(2.0),
                     ScaleSchedule.passes(factors=[2, (1.5, 2)])):
        cfg = ZSSRConfig(**schedule.fields())
        assert cfg.scale_schedule == schedule
        target = (3.0, 4.0) if schedule.kind == "passes" and schedule.factors else 2
        assert cfg.steps_for(target) == schedule.steps_for(target)
    assert ZSSRConfig(pass_factor=2.0).steps_for(6) == [(2.0, 2.0), (4.0, 4.0), (6.0, 6.0)]
    assert ZSSRConfig(pass_factor=2.0).base_changes_for(6) == [(2.0, 2.0), (4.0, 4.0)]
    with pytest.raises(ValueError, match="exclusive"):
        ZSSRConfig(scale_factors=[(2, 2)], gradual_increments=PAPER_GRADUAL_X2)


def test_committed_runs_keep_their_cell_identities():
    # to_dict() is hashed into every stored cell's identity: the config ids recorded in the committed
    # reports/reproduce/*/run.json must be what the code computes today (else resuming would recompute them)
    import torch

    from baselines.methods import create_method
    from bench.session import config_id

    checked = 0
    for run_json in sorted((REPO / "reports" / "reproduce").glob("*/run.json")):
        run = json.loads(run_json.read_text())
        opts = run["options"]
        for cid, entry in run["config_ids"].items():
            if not entry["method"].startswith("zssr-"):
                continue
            method = create_method(entry["method"], profile=run["profile"], precision=entry["precision"])
            method.choose_precision(torch.device("cpu"))
            assert config_id(entry["method"], method, run["profile"], run["protocol"], opts["seed"]) == cid, run_json
            checked += 1
    assert checked >= 9
