"""tools/adam_eps_probe.py: its TF1-style Adam steps as tf.train.AdamOptimizer's update rule, written out here."""
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from adam_eps_probe import TF1Adam, step_factors

from zssr.batched import ADAM_EPS as EPS


def _tf1_reference(grads, lr, b1=0.9, b2=0.999):
    """TF1's AdamOptimizer: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); w -= lr_t m / (sqrt(v) + eps)."""
    w, m, v = 0.0, 0.0, 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w -= lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (math.sqrt(v) + EPS)
        out.append(w)
    return out


def test_tf1_adam_follows_tf1s_rule_where_torch_adam_does_not():
    # gradients of the size ZSSR's weights see (1e-8 .. 1e-6), where the two placements part
    grads = [3e-7, -1e-8, 2e-6, 5e-9, 1e-7, -4e-7]
    expected = _tf1_reference(grads, lr=1e-3)
    for cls, should_match in ((TF1Adam, True), (torch.optim.Adam, False)):
        w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=1e-3)
        got = []
        for g in grads:
            w.grad = torch.tensor([g], dtype=torch.float64)
            opt.step()
            got.append(w.item())
        close = all(math.isclose(a, b, rel_tol=1e-9, abs_tol=0) for a, b in zip(got, expected))
        assert close == should_match, (cls.__name__, got, expected)


def test_step_factors_read_the_ratio_of_tf1s_step_to_torchs():
    w = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1e-3)
    w.grad = torch.tensor([1.0, 1e-9])  # first step: sqrt(v_hat) = |g|, bc2 = 1e-3
    opt.step()
    f = step_factors(opt)
    assert math.isclose(f[0].item(), 1.0, rel_tol=1e-6)  # a large gradient: epsilon is nothing either way
    expected = (1e-9 + EPS) / (1e-9 + EPS / math.sqrt(1e-3))
    assert math.isclose(f[1].item(), expected, rel_tol=1e-4)
