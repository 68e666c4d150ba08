"""The ZSSR network: a plain stack of convolutions with a global residual over the interpolated input.

Original: 8 layers, 3x3, width 64, ReLU between layers (none after the last), no bias, no normalisation, weights
~ N(0, sqrt(init_variance / fan_in)) with fan_in = kh * kw * in_channels. The "depthwise" variant replaces every
convolution by a depthwise kxk followed by a pointwise 1x1 (initialised so that the pair has the plain layer's
output variance); "prelu" uses a per-channel PReLU (init 0.25).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from zssr.config import ZSSRConfig


def _conv(cfg: ZSSRConfig, c_in: int, c_out: int) -> nn.Module:
    k = cfg.kernel_size
    if cfg.conv == "plain":
        return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=cfg.bias)
    depthwise = nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=cfg.bias)
    depthwise.zssr_unit_gain = True  # see ZSSRNet.reset_parameters
    return nn.Sequential(depthwise, nn.Conv2d(c_in, c_out, 1, bias=cfg.bias))


def _act(cfg: ZSSRConfig, channels: int) -> nn.Module:
    return nn.ReLU(inplace=True) if cfg.activation == "relu" else nn.PReLU(channels, init=0.25)


class ZSSRNet(nn.Module):
    def __init__(self, cfg: ZSSRConfig, channels: int = 3) -> None:
        super().__init__()
        widths = [channels] + [cfg.width] * (cfg.depth - 1) + [channels]
        layers: list[nn.Module] = []
        for i in range(cfg.depth):
            layers.append(_conv(cfg, widths[i], widths[i + 1]))
            if i < cfg.depth - 1:
                layers.append(_act(cfg, widths[i + 1]))
        self.body = nn.Sequential(*layers)
        self.residual = cfg.learn_residual
        self.init_variance = cfg.init_variance
        self.init_last_zero = cfg.init_last_zero

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
                # A depthwise conv gets a variance-preserving 1 / fan_in and the pointwise conv after it
                # init_variance / fan_in, so that the pair has the variance of the plain conv it replaces
                # (init_variance / fan_in on each would shrink the signal 10x more per layer: 1e-8 after 8 layers,
                # and the network would not train).
                gain = 1.0 if getattr(m, "zssr_unit_gain", False) else self.init_variance
                std = math.sqrt(gain / fan_in)
                # draw on the CPU so that a seed gives the same weights on every device
                w = torch.empty(m.weight.shape, dtype=torch.float32).normal_(0.0, std, generator=generator)
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.PReLU):
                m.weight.fill_(0.25)
        if self.init_last_zero:  # the output starts as the interpolated input exactly
            last = [m for m in self.body.modules() if isinstance(m, nn.Conv2d)][-1]
            last.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        # under bf16/fp16 autocast the body's output is low precision; the add (and the output) stays in the
        # input's fp32: a bf16 image has ~1 grey level of rounding error near 1.0
        y = y.to(x.dtype)
        return y + x if self.residual else y


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


__all__ = ["ZSSRNet", "count_parameters"]
