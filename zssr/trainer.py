"""ZSSR training and inference on one image, entirely on the device.

    sr = ZSSR(ZSSRConfig.preset("original")).upscale(lr, 2)

For every scale step (one, or several with gradual increments): draw all augmentations up front, then per iteration
warp an HR father out of a source image, degrade it into an LR son (cubic with antialiasing, or a given kernel; plus
optional noise; clipped), interpolate the son back to the father's size, take one Adam step on the L1 loss of the
residual network, measure the reconstruction error every `run_test_every` iterations and apply the learning-rate
policy. Then super-resolve the (current) input with the geometric self-ensemble and back-projection. The output of a
step becomes an extra augmentation source for the next steps (and the new input after a "base change"). With
passes (config pass_factor / pass_factors, "gradual SR") every pass but the last is a base change: each pass trains
on, and super-resolves, the previous pass's output by the pass's factor, with the same network (continued, or
re-initialised when init_net_for_each_sf).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zssr.augment import plan_augmentations, warp
from zssr.config import ZSSRConfig
from zssr.ensemble import self_ensemble
from zssr.kernels import KernelDownscaler, kernel_shift, load_kernel
from zssr.lr_policy import make_policy
from zssr.network import ZSSRNet, count_parameters
from zssr.precision import autocast, resolve_precision
from zssr.resize import imresize
from zssr.restart import DeadStepGuard, StuckWatch

Pair = tuple[float, float]
Callback = Callable[[int, torch.Tensor, float, "torch.Tensor | None"], Any]


def _pair(scale: float | Sequence[float]) -> Pair:
    if isinstance(scale, (int, float)):
        return (float(scale), float(scale))
    sy, sx = scale
    return (float(sy), float(sx))


def _shrunk(hw: tuple[int, int], sf: Pair) -> tuple[int, int]:
    # the original computes ceil(size * (1 / sf)); keep the same float path
    return (int(math.ceil(hw[0] * (1.0 / sf[0]))), int(math.ceil(hw[1] * (1.0 / sf[1]))))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ZSSR:
    """Zero-Shot Super-Resolution of one image; `last_stats` describes the last call to `upscale`."""

    def __init__(self, config: ZSSRConfig | None = None) -> None:
        self.config = config if config is not None else ZSSRConfig()
        self.last_stats: dict[str, Any] = {}
        self.net: ZSSRNet | None = None
        self.precision = "fp32"  # resolved from config.precision against the device in upscale()
        self._channels_last = False

    # -------------------------------------------------------------------------------------------------------------
    def _device(self, lr: torch.Tensor) -> torch.device:
        if self.config.device in ("auto", "", None):
            return lr.device
        return torch.device(self.config.device)

    def _kernels(self, kernels: Sequence[Any] | None, steps: list[Pair]) -> list[np.ndarray | None]:
        given = list(kernels) if kernels is not None else list(self.config.kernel_paths)
        if not given:
            return [None] * len(steps)
        if len(given) != len(steps):
            raise ValueError(f"{len(given)} kernel(s) given for {len(steps)} scale step(s) {steps}; "
                             "give exactly one kernel per step")
        out = []
        for k, sf in zip(given, steps):
            arr = load_kernel(k) if isinstance(k, (str, Path)) else np.asarray(k, dtype=np.float64)
            out.append(kernel_shift(arr, sf))
        return out

    def _downscaler(self, kernel: np.ndarray | None, device: torch.device):
        if kernel is None:
            method = self.config.downscale_method

            def down(x: torch.Tensor, sf: Pair, out_hw: tuple[int, int]) -> torch.Tensor:
                return imresize(x, (1.0 / sf[0], 1.0 / sf[1]), out_hw, kernel=method)
            return down
        kd = KernelDownscaler(kernel, device)

        def down_k(x: torch.Tensor, sf: Pair, out_hw: tuple[int, int]) -> torch.Tensor:
            return kd(x, sf, out_hw)
        return down_k

    def _autocast(self, device: torch.device):
        return autocast(self.precision, device)

    def _net_in(self, x: torch.Tensor) -> torch.Tensor:
        if self._channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # -------------------------------------------------------------------------------------------------------------
    def upscale(self, lr: torch.Tensor, scale: float | Pair, callback: Callback | None = None,
                kernels: Sequence[Any] | None = None) -> torch.Tensor:
        """Super-resolve `lr` (1 x C x H x W float in [0, 1], C = 3 or 1, any device) by `scale` (int or (sy, sx)).

        callback(iteration, loss, lr, rec_error) is called after every iteration with the loss as a device tensor
        and rec_error a device tensor at measurement iterations (None otherwise); nothing is synced for it.
        kernels: optional per-step kernels (paths to .mat files or arrays), overriding config.kernel_paths.
        Returns a 1 x C x ceil(sy H) x ceil(sx W) tensor on lr's device.
        """
        cfg = self.config
        if lr.dim() == 3:
            lr = lr[None]
        if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] not in (1, 3):
            raise ValueError(f"ZSSR needs one image 1 x 3 x H x W (or 1 x 1 x H x W), got shape {tuple(lr.shape)}")
        device = self._device(lr)
        t_start = time.perf_counter()
        x = lr.detach().to(device=device, dtype=torch.float32)
        gray = x.shape[1] == 1
        if gray:
            x = x.expand(-1, 3, -1, -1)
        x = x.clamp(0.0, 1.0).contiguous()

        steps = cfg.steps_for(scale)
        base_changes = cfg.base_changes_for(scale)
        bp_iters = cfg.back_projection_for(len(steps))
        step_kernels = self._kernels(kernels, steps)

        seed = cfg.seed if cfg.seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))
        rng = np.random.default_rng(seed)
        init_gen = torch.Generator().manual_seed(seed)
        noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
        if device.type == "cuda" and cfg.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        self._channels_last = cfg.channels_last
        self.precision = resolve_precision(cfg.precision, device)

        net = ZSSRNet(cfg)
        net.reset_parameters(init_gen)
        net.to(device)
        if self._channels_last:
            net.to(memory_format=torch.channels_last)
        self.net = net
        opt = self._optimizer(net, device)
        scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")

        sources = [x]
        source_scales = [1.0]
        inp = x
        base_sf: Pair = (1.0, 1.0)
        base_ind = 0
        stats: dict[str, Any] = dict(iterations=0, curve=[], steps=[], restarts=[], device=str(device),
                                     parameters=count_parameters(net), seed=seed, precision=self.precision,
                                     channels_last=self._channels_last)
        seconds_train = 0.0
        seconds_infer = 0.0
        out = x
        for step_ind, (sf_abs, kernel, bp) in enumerate(zip(steps, step_kernels, bp_iters)):
            sf = (sf_abs[0] / base_sf[0], sf_abs[1] / base_sf[1])
            if step_ind > 0 and cfg.init_net_for_each_sf:
                net.reset_parameters(init_gen)
                opt = self._optimizer(net, device)
            down = self._downscaler(kernel, device)

            t0 = time.perf_counter()
            watch = StuckWatch(cfg.restart_if_stuck, cfg.max_iters)
            guard = DeadStepGuard(cfg.retry_dead_steps, net.state_dict(), step_ind)
            warmup = 0  # iterations of rate warm-up: the dead-step retry's
            while True:
                step_stats = self._train(net, opt, scaler, sources, source_scales, inp, sf, down, rng, noise_gen,
                                         callback, step_ind, watch, warmup)
                if step_stats.pop("stuck"):
                    stats["iterations"] += step_stats["iterations"]  # spent: counted, its curve dropped
                    stats["restarts"].append(watch.restart_entry(step_ind, step_stats["iterations"]))
                    net.reset_parameters(init_gen)
                    opt = self._optimizer(net, device)
                    watch = StuckWatch(cfg.restart_if_stuck, cfg.max_iters, enabled=False)
                    continue
                final_rec = step_stats["curve"][-1]["rec_error"] if step_stats["curve"] else None
                if guard.watching and guard.dead(final_rec, self._interpolation_error(inp, sf, down)):
                    stats["iterations"] += step_stats["iterations"]
                    net.load_state_dict(guard.hold(net.state_dict(), opt.state_dict(), final_rec,
                                                   step_stats["iterations"]))
                    stats["restarts"].append(guard.entry)
                    opt = self._optimizer(net, device)
                    watch = StuckWatch(cfg.restart_if_stuck, cfg.max_iters, enabled=False)
                    warmup = guard.warmup_iters(cfg.max_iters)
                    continue
                kept = guard.settle(final_rec)
                if kept is not None:  # the retry did no better: back to the first attempt (the stats stay the retry's)
                    net.load_state_dict(kept[0])
                    opt.load_state_dict(kept[1])
                break
            _sync(device)
            t1 = time.perf_counter()
            out = self._final_test(net, inp, sf, down, bp)
            _sync(device)
            t2 = time.perf_counter()
            seconds_train += t1 - t0
            seconds_infer += t2 - t1

            stats["iterations"] += step_stats["iterations"]
            stats["curve"].extend(step_stats.pop("curve"))
            stats["steps"].append(dict(scale=list(sf_abs), relative_scale=list(sf), back_projection_iters=bp,
                                       input_hw=[int(inp.shape[-2]), int(inp.shape[-1])],
                                       kernel=kernel is not None, seconds_train=t1 - t0,
                                       seconds_infer=t2 - t1, **step_stats))

            sources.append(out)
            source_scales.append(min(sf_abs))
            if base_ind < len(base_changes):
                target = base_changes[base_ind]
                if all(abs(a - b) < 1e-3 for a, b in zip(sf_abs, target)):
                    inp, base_sf, base_ind = out, target, base_ind + 1

        if gray:
            out = out.mean(dim=1, keepdim=True)
        result = out.to(device=lr.device, dtype=lr.dtype if lr.is_floating_point() else torch.float32)
        stats["seconds-train"] = seconds_train
        stats["seconds-infer"] = seconds_infer
        stats["seconds-total"] = time.perf_counter() - t_start
        self.last_stats = stats
        return result

    def _optimizer(self, net: ZSSRNet, device: torch.device) -> torch.optim.Optimizer:
        cfg = self.config
        kwargs = {"fused": True} if device.type == "cuda" else {}
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(net.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum, **kwargs)
        return torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, **kwargs)

    # -------------------------------------------------------------------------------------------------------------
    def _father_to_son(self, father: torch.Tensor, sf: Pair, down, noise_gen: torch.Generator) -> torch.Tensor:
        son = down(father, sf, _shrunk((father.shape[-2], father.shape[-1]), sf))
        if self.config.noise_std > 0:
            son = son + self.config.noise_std * torch.randn(son.shape, generator=noise_gen, device=son.device,
                                                            dtype=son.dtype)
        return son.clamp(0.0, 1.0)

    def _forward(self, net: ZSSRNet, son: torch.Tensor, sf: Pair, out_hw: tuple[int, int] | None = None
                 ) -> torch.Tensor:
        up = imresize(son, sf, out_hw, kernel=self.config.upscale_method)
        with self._autocast(son.device):
            y = net(self._net_in(up))
        return y.float().clamp(0.0, 1.0).contiguous()

    @torch.no_grad()
    def _interpolation_error(self, inp: torch.Tensor, sf: Pair, down) -> float:
        """The reconstruction error of interpolation alone (no network, no noise): what a dead network scores."""
        son = down(inp, sf, _shrunk((inp.shape[-2], inp.shape[-1]), sf)).clamp(0.0, 1.0)
        up = imresize(son, sf, (inp.shape[-2], inp.shape[-1]), kernel=self.config.upscale_method)
        return float(torch.mean((inp - up.clamp(0.0, 1.0)) ** 2))

    @torch.no_grad()
    def _reconstruction_error(self, net: ZSSRNet, inp: torch.Tensor, sf: Pair, down, noise_gen) -> torch.Tensor:
        son = self._father_to_son(inp, sf, down, noise_gen)
        rec = self._forward(net, son, sf, (inp.shape[-2], inp.shape[-1]))
        return torch.mean((inp - rec) ** 2)

    def _train(self, net, opt, scaler, sources, source_scales, inp, sf, down, rng, noise_gen, callback,
               step_ind, watch: StuckWatch, warmup: int = 0) -> dict[str, Any]:
        cfg = self.config
        device = inp.device
        crop = cfg.crop_size
        plan = plan_augmentations(
            rng, cfg.max_iters, [(int(s.shape[-2]), int(s.shape[-1])) for s in sources], source_scales, crop,
            cfg.augment_leave_as_is_probability, cfg.augment_no_interpolate_probability, cfg.augment_min_scale,
            cfg.augment_allow_rotation, cfg.augment_scale_diff_sigma, cfg.augment_shear_sigma)
        thetas = torch.tensor(plan.thetas, dtype=torch.float32).to(device)  # one transfer for the whole run
        modes = plan.modes.tolist()
        srcs = plan.sources.tolist()
        policy = make_policy(cfg, warmup)
        for group in opt.param_groups:
            group["lr"] = policy.lr
        measured: list[tuple[int, torch.Tensor, float, torch.Tensor]] = []
        net.train()
        iterations = 0
        stuck = False
        for it in range(cfg.max_iters):
            father = warp(sources[srcs[it]], thetas[it:it + 1], crop, modes[it])
            son = self._father_to_son(father, sf, down, noise_gen)
            up = imresize(son, sf, (crop, crop), kernel=cfg.upscale_method)
            with self._autocast(device):
                pred = net(self._net_in(up))
            loss = F.l1_loss(pred.float(), father)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip_norm > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip_norm)
            scaler.step(opt)
            scaler.update()
            iterations += 1
            lr_now = policy.lr
            rec = None
            if policy.should_measure(it):
                net.eval()
                rec = self._reconstruction_error(net, inp, sf, down, noise_gen)
                net.train()
                policy.record(it, rec)
                measured.append((it, loss.detach(), lr_now, rec))
            if callback is not None:
                callback(it, loss.detach(), lr_now, rec)
            if rec is not None and watch.stuck(it, rec):
                stuck = True
                break
            if policy.update(it):
                for group in opt.param_groups:
                    group["lr"] = policy.lr
            if policy.finished:
                break
        net.eval()
        curve = []
        if measured:  # one host transfer for the whole curve
            values = torch.stack([torch.stack([m[1].float(), m[3].float()]) for m in measured]).cpu().tolist()
            curve = [dict(iteration=m[0], loss=v[0], lr=m[2], rec_error=v[1], step=step_ind)
                     for m, v in zip(measured, values)]
        return dict(iterations=iterations, curve=curve, lr_changes=policy.change_iters[1:], final_lr=policy.lr,
                    fits=policy.fits, stuck=stuck)

    @torch.no_grad()
    def _final_test(self, net: ZSSRNet, inp: torch.Tensor, sf: Pair, down, bp_iters: int) -> torch.Tensor:
        cfg = self.config
        return self_ensemble(lambda t: self._forward(net, t, sf), inp, sf, down, bp_iters, enabled=cfg.ensemble,
                             up_kernel=cfg.upscale_method)


__all__ = ["ZSSR"]
