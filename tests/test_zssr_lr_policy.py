"""zssr.lr_policy: the original rule (-1.5 * slope < std of the slope => divide the rate by 10)."""
import numpy as np
import pytest

from zssr import ZSSRConfig
from zssr.lr_policy import OriginalLRPolicy, make_policy, slope_and_std


def _run(curve):
    policy = OriginalLRPolicy(ZSSRConfig())
    changes = []
    for it in range(len(curve) * 50):
        if policy.should_measure(it):
            policy.record(it, curve[it // 50])
        if policy.update(it):
            changes.append(it)
    return policy, changes


def test_flat_noisy_curve_lowers_the_rate():
    rng = np.random.default_rng(0)
    policy, changes = _run(1e-3 + 1e-5 * rng.standard_normal(12))
    # first check at iteration 299 ((it + 1) % 60 == 0 and > 256 iterations since the start), again 300+ later
    assert changes and changes[0] == 299
    assert policy.lr < 1e-3


def test_steep_curve_keeps_the_rate():
    policy, changes = _run(np.linspace(1e-2, 1e-3, 12))
    assert changes == [] and policy.lr == 1e-3


def test_three_drops_finish_training():
    policy = OriginalLRPolicy(ZSSRConfig())
    for _ in range(3):
        policy.lr /= 10
    assert policy.finished  # 1e-6 < 9e-6


def test_slope_std_matches_old_numpy_polyfit_scaling():
    x = np.array([50, 100, 150, 200, 250.0])
    y = np.array([3.0, 2.5, 2.7, 2.2, 2.4])
    slope, std = slope_and_std(x, y, dof=2)  # numpy >= 1.16 scaling: compare with polyfit(cov=True)
    (p, _), cov = np.polyfit(x, y, 1, cov=True)
    assert np.isclose(slope, p) and np.isclose(std, np.sqrt(cov[0, 0]))
    _, std_old = slope_and_std(x, y, dof=4)  # numpy < 1.16 (the original): residuals / (n - 4)
    assert np.isclose(std_old, std * np.sqrt(3))


def test_warmed_up_policy_ramps_the_rate_then_decides_as_the_policy():
    rng = np.random.default_rng(0)
    curve = 1e-3 + 1e-5 * rng.standard_normal(12)
    plain, plain_changes = _run(curve)
    warm = make_policy(ZSSRConfig(), warmup_iters=4)
    assert warm.lr == pytest.approx(1e-3 / 5)
    rates, changed = [], []
    for it in range(len(curve) * 50):
        if warm.should_measure(it):
            warm.record(it, curve[it // 50])
        if warm.update(it):
            changed.append(it)
        rates.append(warm.lr)
    assert rates[:5] == pytest.approx([2e-3 / 5, 3e-3 / 5, 4e-3 / 5, 1e-3, 1e-3])
    # True while ramping (the trainer then writes the rate), then only where the policy itself changed the rate
    assert changed == [0, 1, 2, 3] + plain_changes
    assert warm.lr == plain.lr and warm.change_iters == plain.change_iters and warm.finished == plain.finished
