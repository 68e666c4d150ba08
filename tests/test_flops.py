"""FLOP counting (baselines.flops): hand counts, the pixel-proportional shortcut, the per-shape fallback, and the
count of a method's forward at a cell's size."""
from __future__ import annotations

import torch

from baselines import flops


def _two_convs() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 4, 5, padding=2))


def test_two_conv_layers_match_a_hand_count():
    # each output pixel of a conv costs c_in * k * k multiply-adds per output channel; FLOPs = 2 x multiply-adds,
    # biases and the ReLU not counted: 2 * H * W * (3 * 8 * 3^2 + 8 * 4 * 5^2) = 2 * 10 * 12 * 1016
    assert flops.count_flops(_two_convs(), (1, 3, 10, 12)) == 243_840
    assert flops.count_flops(_two_convs(), (2, 3, 10, 12)) == 2 * 243_840  # per image in the batch
    assert flops.count_parameters(_two_convs()) == (3 * 8 * 9 + 8) + (8 * 4 * 25 + 4)


def test_counting_leaves_the_model_alone():
    model = _two_convs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flops.count_flops(model, (1, 3, 64, 64))
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class _MeanShift(torch.nn.Module):
    """As DAT's forward (spandrel): a plain tensor attribute (not a buffer) reassigned from the input."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.mean = torch.tensor([0.4, 0.4, 0.4]).view(1, 3, 1, 1)

    def forward(self, x):
        self.mean = self.mean.type_as(x)
        return self.conv(x - self.mean) + self.mean


def test_counting_leaves_plain_tensor_attributes_alone():
    model = _MeanShift()
    flops.count_flops(model, (1, 3, 16, 16))
    flops.training_step_flops(model, (1, 3, 16, 16))
    assert model.mean.device.type == "cpu"
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)  # a real forward after counting (was: meta error)


def test_pixel_proportional_networks_are_scaled_exactly(monkeypatch):
    model = _two_convs()
    shape = (1, 3, 123, 77)
    direct = flops.count_flops(model, shape)
    assert flops.network_flops(model, shape) == direct
    calls = []
    monkeypatch.setattr(flops, "count_flops", lambda *a, **k: calls.append(a) or 0)
    assert flops.network_flops(model, (1, 3, 500, 333)) == 243_840 // 120 * 500 * 333  # no new count
    assert calls == []


class _Strided(torch.nn.Module):
    """Not proportional to the pixels: a stride-2 convolution on odd sizes rounds up."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_other_networks_are_counted_per_shape(monkeypatch):
    model = _Strided()
    shape = (1, 3, 31, 17)
    expected = 2 * 16 * 9 * (3 * 4 * 9)  # output 16 x 9
    assert flops.count_flops(model, shape) == expected
    assert flops.network_flops(model, shape) == expected
    calls = []
    real = flops.count_flops
    monkeypatch.setattr(flops, "count_flops", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert flops.network_flops(model, shape) == expected  # cached: not counted again
    assert calls == []


def test_forward_cost_of_a_method():
    class Counted:
        def __init__(self) -> None:
            self.net = _two_convs()

        def counted_network(self, scale: int):
            return self.net, 3

    cost = flops.forward_cost(Counted(), (1, 3, 10, 12), 2)
    assert cost == {"flops": 243_840, "parameters": flops.count_parameters(_two_convs())}
    assert flops.forward_cost(object(), (1, 3, 10, 12), 2) == {}  # a method without a network: nothing
