"""One ZSSR problem: its state across the scale steps and everything a training iteration does except the network
step itself. Both drivers run this step loop: `zssr.trainer.ZSSR.upscale` (one problem, torch.optim) and
`zssr.batched.upscale_many` (K problems, stacked networks).

    run, event = ProblemRun(lr, scale, config, device, precision), "train"
    while event != "done":
        up, father = run.crop_pair()                  # this iteration's interpolated LR son and HR father
        loss = <one optimizer step of run.net's weights at rate run.lr on (up, father)>
        event, state = run.after_step(loss, net, export)
        # "train": go on; "fresh": weights in run.net, a fresh optimizer; "restore"/"continue": weights in run.net,
        # optimizer state `state`; "done": the output is run.result(), the stats run.stats

For every scale step (one, or several with gradual increments): draw all augmentations up front, then per iteration
warp an HR father out of a source image, degrade it into an LR son (cubic with antialiasing, or a given kernel; plus
optional noise; clipped) and interpolate the son back to the father's size; after the driver's step on the L1 loss
of the residual network, measure the reconstruction error every `run_test_every` iterations and apply the
learning-rate policy, the stuck restart and, when the attempt ends, the dead-step guard (zssr/restart.py). Then
super-resolve the (current) input with the geometric self-ensemble and back-projection. The output of a step becomes
an extra augmentation source for the next steps (and the new input after a "base change"). With passes (config
pass_factor / pass_factors, "gradual SR") every pass but the last is a base change: each pass trains on, and
super-resolves, the previous pass's output by the pass's factor, with the same network (continued, or
re-initialised when init_net_for_each_sf).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from zssr.augment import plan_augmentations, warp
from zssr.config import ZSSRConfig
from zssr.ensemble import self_ensemble
from zssr.kernels import GridKernel, KernelDownscaler, kernel_shift, load_kernel
from zssr.lr_policy import make_policy
from zssr.network import ZSSRNet, count_parameters
from zssr.precision import autocast
from zssr.resize import imresize
from zssr.restart import DeadStepGuard, StuckWatch

Pair = tuple[float, float]
Callback = Callable[[int, torch.Tensor, float, "torch.Tensor | None"], Any]
Downscale = Callable[[torch.Tensor, Pair, tuple[int, int]], torch.Tensor]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (for timing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_for(config: ZSSRConfig, lr: torch.Tensor) -> torch.device:
    """The configured device ("auto": the input's)."""
    return lr.device if config.device in ("auto", "", None) else torch.device(config.device)


def shrunk(hw: tuple[int, int], sf: Pair) -> tuple[int, int]:
    # the original computes ceil(size * (1 / sf)); keep the same float path
    return (int(math.ceil(hw[0] * (1.0 / sf[0]))), int(math.ceil(hw[1] * (1.0 / sf[1]))))


def step_kernels(kernels: Sequence[Any] | None, config: ZSSRConfig, steps: list[Pair]) -> list[np.ndarray | None]:
    """One kernel (shifted for its step's scale) or None (cubic) per scale step: `kernels`, else config.kernel_paths."""
    given = list(kernels) if kernels is not None else list(config.kernel_paths)
    if not given:
        return [None] * len(steps)
    if len(given) != len(steps):
        raise ValueError(f"{len(given)} kernel(s) given for {len(steps)} scale step(s) {steps}; "
                         "give exactly one kernel per step")
    return [k.for_zssr(sf) if isinstance(k, GridKernel)  # placed for the grid it was applied on
            else kernel_shift(load_kernel(k) if isinstance(k, (str, Path)) else np.asarray(k, dtype=np.float64), sf)
            for k, sf in zip(given, steps)]


def downscaler(kernel: np.ndarray | None, method: str, device: torch.device) -> Downscale:
    """x, sf, out_hw -> x downscaled by sf: with `kernel`, or by interpolation `method` when there is none."""
    if kernel is None:
        return lambda x, sf, out_hw: imresize(x, (1.0 / sf[0], 1.0 / sf[1]), out_hw, kernel=method)
    return KernelDownscaler(kernel, device)


class ProblemRun:
    """One problem's state across its scale steps: input, seeds, network weights (`net`; a driver may train a copy
    and write them back when asked), augmentation plan, policy, restart and dead-step guards, outputs, stats."""

    def __init__(self, lr: torch.Tensor, scale: float | Pair, config: ZSSRConfig, device: torch.device,
                 precision: str, kernels: Sequence[Any] | None = None, callback: Callback | None = None) -> None:
        """lr: 1 x C x H x W float in [0, 1] (C = 3 or 1, any device); precision: the concrete one ("fp32", "bf16"
        or "fp16", resolved by the caller); kernels: optional per-step kernels (paths or arrays) overriding
        config.kernel_paths."""
        self.t_start = time.perf_counter()
        cfg = self.cfg = config
        if lr.dim() == 3:
            lr = lr[None]
        if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] not in (1, 3):
            raise ValueError(f"ZSSR needs one image 1 x 3 x H x W (or 1 x 1 x H x W), got shape {tuple(lr.shape)}")
        self.out_device, self.out_dtype = lr.device, lr.dtype if lr.is_floating_point() else torch.float32
        x = lr.detach().to(device=device, dtype=torch.float32)
        self.gray = x.shape[1] == 1
        self.x = (x.expand(-1, 3, -1, -1) if self.gray else x).clamp(0.0, 1.0).contiguous()
        self.device, self.precision, self.callback = device, precision, callback
        self.ensemble_batched = False  # the final test's same-shape ensemble passes in one forward (batched driver)
        self.steps = cfg.steps_for(scale)
        self.base_changes = cfg.base_changes_for(scale)
        self.bp_iters = cfg.back_projection_for(len(self.steps))
        self.kernels = step_kernels(kernels, cfg, self.steps)
        seed = cfg.seed if cfg.seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))
        self.rng = np.random.default_rng(seed)
        self.init_gen = torch.Generator().manual_seed(seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
        if device.type == "cuda" and cfg.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        self.net = ZSSRNet(cfg)
        self.net.reset_parameters(self.init_gen)
        self.net.to(device)
        if cfg.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.opt_state: Any = None  # the optimizer state while the problem waits outside a batch (None: fresh)
        self.sources, self.source_scales = [self.x], [1.0]
        self.inp, self.base_sf, self.base_ind = self.x, (1.0, 1.0), 0
        self.out = self.x
        self.step_ind = 0
        self.stats: dict[str, Any] = dict(iterations=0, curve=[], steps=[], restarts=[], device=str(device),
                                          parameters=count_parameters(self.net), seed=seed, precision=precision,
                                          channels_last=cfg.channels_last)
        self.seconds_train = self.seconds_infer = 0.0
        self.begin_step()

    # --- the network as the step loop sees it --------------------------------------------------------------------
    def net_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def forward(self, net: Callable[[torch.Tensor], torch.Tensor], son: torch.Tensor, sf: Pair, out_hw: tuple[int, int] | None = None
                ) -> torch.Tensor:
        """The network's SR of an LR son: interpolation by sf, the residual network, clipped to [0, 1]."""
        up = imresize(son, sf, out_hw, kernel=self.cfg.upscale_method)
        with autocast(self.precision, son.device):
            y = net(self.net_input(up))
        return y.float().clamp(0.0, 1.0).contiguous()

    def father_to_son(self, father: torch.Tensor) -> torch.Tensor:
        son = self.down(father, self.sf, shrunk((father.shape[-2], father.shape[-1]), self.sf))
        if self.cfg.noise_std > 0:
            son = son + self.cfg.noise_std * torch.randn(son.shape, generator=self.noise_gen, device=son.device,
                                                         dtype=son.dtype)
        return son.clamp(0.0, 1.0)

    # --- one scale step ------------------------------------------------------------------------------------------
    def begin_step(self, restarted: bool = False, warmup: int = 0) -> None:
        """Plan an attempt at the current step: a new step, or (restarted) the same step again; warmup: iterations
        of rate warm-up (the dead-step retry's)."""
        cfg = self.cfg
        self.net.train()  # (the final test sets eval)
        self.sf_abs = self.steps[self.step_ind]
        self.sf = (self.sf_abs[0] / self.base_sf[0], self.sf_abs[1] / self.base_sf[1])
        if not restarted:
            if self.step_ind > 0 and cfg.init_net_for_each_sf:
                self.net.reset_parameters(self.init_gen)
                self.opt_state = None
            self.t_step = time.perf_counter()
        self.watch = StuckWatch(cfg.restart_if_stuck, cfg.max_iters, enabled=not restarted)
        if not restarted:
            self.guard = DeadStepGuard(cfg.retry_dead_steps, self.net.state_dict(), self.step_ind)
        self.down = downscaler(self.kernels[self.step_ind], cfg.downscale_method, self.device)
        plan = plan_augmentations(
            self.rng, cfg.max_iters, [(int(s.shape[-2]), int(s.shape[-1])) for s in self.sources],
            self.source_scales, cfg.crop_size, cfg.augment_leave_as_is_probability,
            cfg.augment_no_interpolate_probability, cfg.augment_min_scale, cfg.augment_allow_rotation,
            cfg.augment_scale_diff_sigma, cfg.augment_shear_sigma)
        self.thetas = torch.tensor(plan.thetas, dtype=torch.float32).to(self.device)  # one transfer per attempt
        self.modes, self.srcs = plan.modes.tolist(), plan.sources.tolist()
        self.policy = make_policy(cfg, warmup)
        self.lr = self.policy.lr  # the rate of the next optimizer step
        self.it = 0
        self.measured: list[tuple[int, torch.Tensor, float, torch.Tensor]] = []

    def crop_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This iteration's interpolated son (the network's input) and HR father (the target)."""
        crop, it = self.cfg.crop_size, self.it
        father = warp(self.sources[self.srcs[it]], self.thetas[it:it + 1], crop, self.modes[it])
        up = imresize(self.father_to_son(father), self.sf, (crop, crop), kernel=self.cfg.upscale_method)
        return up, father

    def after_step(self, loss: torch.Tensor, net: Callable[[torch.Tensor], torch.Tensor], export: Callable[[], Any]
                   ) -> tuple[str, Any]:
        """The bookkeeping after the driver's optimizer step (loss: its detached L1 loss; net: the trained network,
        for the measurement; export: writes the trained weights into self.net and returns the optimizer state,
        called when an attempt ends). Returns (event, optimizer state) for the driver, see the module's doc."""
        it, policy = self.it, self.policy
        lr_now = policy.lr
        rec = None
        if policy.should_measure(it):
            with torch.no_grad():
                rec = torch.mean((self.inp - self.forward(net, self.father_to_son(self.inp), self.sf,
                                                          (self.inp.shape[-2], self.inp.shape[-1]))) ** 2)
            policy.record(it, rec)
            self.measured.append((it, loss, lr_now, rec))
        if self.callback is not None:
            self.callback(it, loss, lr_now, rec)
        self.it += 1
        if rec is not None and self.watch.stuck(it, rec):  # a dead network: fresh weights, the step again
            self.stats["iterations"] += self.it  # spent: counted, its curve dropped
            self.stats["restarts"].append(self.watch.restart_entry(self.step_ind, self.it))
            self.net.reset_parameters(self.init_gen)
            self.begin_step(restarted=True)
            return "fresh", None
        if policy.update(it):
            self.lr = policy.lr
        if not (policy.finished or self.it >= self.cfg.max_iters):
            return "train", None
        return self._end_attempt(export())

    def _end_attempt(self, opt_state: Any) -> tuple[str, Any]:
        """The attempt's weights are in self.net: retry a dead step, or finish it (and begin the next one)."""
        final_rec = float(self.measured[-1][3]) if self.measured else None
        if self.guard.watching and self.guard.dead(final_rec, self._interpolation_error()):
            self.stats["iterations"] += self.it
            self.net.load_state_dict(self.guard.hold(self.net.state_dict(), opt_state, final_rec, self.it))
            self.stats["restarts"].append(self.guard.entry)
            self.begin_step(restarted=True, warmup=self.guard.warmup_iters(self.cfg.max_iters))
            return "fresh", None
        event = "continue"
        kept = self.guard.settle(final_rec)
        if kept is not None:  # the retry did no better: back to the first attempt (the stats stay the retry's)
            self.net.load_state_dict(kept[0])
            opt_state, event = kept[1], "restore"
        self.opt_state = opt_state
        self._finish_step()
        if self.step_ind == len(self.steps):
            return "done", None
        return ("fresh", None) if self.opt_state is None else (event, self.opt_state)

    @torch.no_grad()
    def _interpolation_error(self) -> float:
        """The reconstruction error of interpolation alone (no network, no noise): what a dead network scores."""
        inp, sf = self.inp, self.sf
        son = self.down(inp, sf, shrunk((inp.shape[-2], inp.shape[-1]), sf)).clamp(0.0, 1.0)
        up = imresize(son, sf, (inp.shape[-2], inp.shape[-1]), kernel=self.cfg.upscale_method)
        return float(torch.mean((inp - up.clamp(0.0, 1.0)) ** 2))

    @torch.no_grad()
    def final_test(self, batched: bool | None = None) -> torch.Tensor:
        """The current step's SR of its input by self.net: self-ensemble and back-projection. batched: the
        same-shape ensemble passes in one forward (default: the driver's choice, `ensemble_batched`)."""
        cfg = self.cfg
        return self_ensemble(lambda t: self.forward(self.net, t, self.sf), self.inp, self.sf, self.down,
                             self.bp_iters[self.step_ind], enabled=cfg.ensemble, up_kernel=cfg.upscale_method,
                             batched=self.ensemble_batched if batched is None else batched)

    def _finish_step(self) -> None:
        """Final test of this step, its stats, the base change, then the next step (or the end)."""
        sync(self.device)
        t0 = time.perf_counter()
        self.net.eval()
        out = self.final_test()
        sync(self.device)
        t1 = time.perf_counter()
        self.seconds_train += t0 - self.t_step
        self.seconds_infer += t1 - t0
        curve = []
        if self.measured:  # one host transfer for the whole curve
            values = torch.stack([torch.stack([m[1].float(), m[3].float()]) for m in self.measured]).cpu().tolist()
            curve = [dict(iteration=m[0], loss=v[0], lr=m[2], rec_error=v[1], step=self.step_ind)
                     for m, v in zip(self.measured, values)]
        self.stats["iterations"] += self.it
        self.stats["curve"].extend(curve)
        self.stats["steps"].append(dict(
            scale=list(self.sf_abs), relative_scale=list(self.sf), back_projection_iters=self.bp_iters[self.step_ind],
            input_hw=[int(self.inp.shape[-2]), int(self.inp.shape[-1])], kernel=self.kernels[self.step_ind] is not None,
            seconds_train=t0 - self.t_step, seconds_infer=t1 - t0, iterations=self.it,
            lr_changes=self.policy.change_iters[1:], final_lr=self.policy.lr, fits=self.policy.fits))
        self.out = out
        self.sources.append(out)
        self.source_scales.append(min(self.sf_abs))
        if self.base_ind < len(self.base_changes):
            target = self.base_changes[self.base_ind]
            if all(abs(a - b) < 1e-3 for a, b in zip(self.sf_abs, target)):
                self.inp, self.base_sf, self.base_ind = out, target, self.base_ind + 1
        self.step_ind += 1
        if self.step_ind < len(self.steps):
            self.begin_step()
        else:
            self.stats.update({"seconds-train": self.seconds_train, "seconds-infer": self.seconds_infer,
                               "seconds-total": time.perf_counter() - self.t_start})

    def result(self) -> torch.Tensor:
        """The output, as the input came: its device, its float dtype, gray when it was gray."""
        out = self.out.mean(dim=1, keepdim=True) if self.gray else self.out
        return out.to(device=self.out_device, dtype=self.out_dtype)


__all__ = ["ProblemRun", "Pair", "Callback", "sync", "device_for", "step_kernels", "downscaler"]
