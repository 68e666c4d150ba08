"""ZSSR training and inference on one image, entirely on the device.

    sr = ZSSR(ZSSRConfig.preset("original")).upscale(lr, 2)

The step loop (augmentation, LR sons, measurement, learning-rate policy, restarts, final test, scale steps) is
zssr/problem.py's ProblemRun; this module drives one problem with a torch.optim optimizer (Adam, or SGD with
momentum; fp16 with a gradient scaler). zssr/batched.py drives K problems with stacked networks.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from zssr.config import ZSSRConfig
from zssr.network import ZSSRNet
from zssr.precision import autocast, resolve_precision
from zssr.problem import Callback, Pair, ProblemRun, device_for


class ZSSR:
    """Zero-Shot Super-Resolution of one image; `last_stats` describes the last call to `upscale`, `run` is its
    ProblemRun and `net` its network."""

    def __init__(self, config: ZSSRConfig | None = None) -> None:
        self.config = config if config is not None else ZSSRConfig()
        self.last_stats: dict[str, Any] = {}
        self.net: ZSSRNet | None = None
        self.run: ProblemRun | None = None
        self.precision = "fp32"  # resolved from config.precision against the device in upscale()

    def upscale(self, lr: torch.Tensor, scale: float | Pair, callback: Callback | None = None,
                kernels: Sequence[Any] | None = None) -> torch.Tensor:
        """Super-resolve `lr` (1 x C x H x W float in [0, 1], C = 3 or 1, any device) by `scale` (int or (sy, sx)).

        callback(iteration, loss, lr, rec_error) is called after every iteration with the loss as a device tensor
        and rec_error a device tensor at measurement iterations (None otherwise); nothing is synced for it.
        kernels: optional per-step kernels (paths to .mat files or arrays), overriding config.kernel_paths.
        Returns a 1 x C x ceil(sy H) x ceil(sx W) tensor on lr's device.
        """
        cfg = self.config
        device = device_for(cfg, lr)
        self.precision = resolve_precision(cfg.precision, device)  # once, here: everything below gets the result
        run = self.run = ProblemRun(lr, scale, cfg, device, self.precision, kernels, callback)
        net = self.net = run.net
        opt = self._optimizer(net, device)
        scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        event = "train"
        while event != "done":
            up, father = run.crop_pair()
            for group in opt.param_groups:
                group["lr"] = run.lr
            with autocast(self.precision, device):
                pred = net(run.net_input(up))
            loss = F.l1_loss(pred.float(), father)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip_norm > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip_norm)
            scaler.step(opt)
            scaler.update()
            event, state = run.after_step(loss.detach(), net, opt.state_dict)
            if event == "fresh":  # a restart, a dead-step retry or a re-initialised step: weights already in net
                opt = self._optimizer(net, device)
            elif event == "restore":  # the dead step's first attempt kept: its optimizer state too
                opt.load_state_dict(state)
        result = run.result()
        self.last_stats = run.stats
        return result

    def _optimizer(self, net: ZSSRNet, device: torch.device) -> torch.optim.Optimizer:
        cfg = self.config
        kwargs = {"fused": True} if device.type == "cuda" else {}
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(net.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum, **kwargs)
        return torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, **kwargs)


__all__ = ["ZSSR"]
