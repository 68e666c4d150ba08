"""Many ZSSR problems trained at once: one network step for K images' networks.

    results = upscale_many([Problem(lr_a, 2, cfg_a), Problem(lr_b, 4, cfg_b)], BatchConfig())
    sr_a, stats_a = results[0]          # or the exception that problem raised

One ZSSR problem is far too small to keep a GPU busy (a 128 x 128 step is ~22 GFLOP; eager PyTorch spends more time
launching kernels than computing them). Here the K problems' parameters are stacked along a new leading dimension
and every training iteration runs one forward, one backward and one optimizer update for all of them:

- per problem, exactly as `zssr.trainer.ZSSR` does it and with its own random numbers (the same seed gives the same
  draws): the augmentation plan and the HR fathers, the LR sons (cubic or a given kernel, noise), their
  interpolation, the L1 loss, the reconstruction-error measurement, the learning-rate policy and its stop decision,
  the optimizer state and learning rate, the scale steps (gradual increments, passes) and the final test;
- shared: the network computation. `stacking="grouped"` runs the K networks as grouped convolutions over the
  channel-concatenated crops; `stacking="vmap"` maps `torch.func.functional_call` over the stacked parameters.
  The optimizer (Adam or SGD with momentum, as torch.optim computes them, plus per-problem gradient clipping) is
  written out on the stacked tensors so that each problem keeps its own step count and learning rate.
- A problem whose training has finished leaves the batch (`finished="repack"`: the stacked tensors shrink) or stays
  in it with a zero step (`"mask"`: shapes stay fixed, which a captured CUDA graph needs).
- On CUDA, `cuda_graph=True` captures the network step (forward, L1 losses, backward, optimizer update, all on
  static buffers) as a CUDA graph and replays it; making the crops and measuring the error stay eager.

The final test (self-ensemble + back-projection) runs per problem, its same-shape ensemble passes in one forward.
Timing: the batch's training time is split between its problems in proportion to the iterations each ran; a
problem's own final test is timed alone (stats "seconds-train", "seconds-infer", "seconds-total"; "batch-size" and
"seconds-batch" say how it was counted).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zssr.augment import plan_augmentations, warp
from zssr.config import ZSSRConfig
from zssr.ensemble import self_ensemble
from zssr.lr_policy import make_policy
from zssr.network import ZSSRNet, count_parameters
from zssr.precision import autocast, resolve_precision
from zssr.resize import imresize
from zssr.restart import DeadStepGuard, StuckWatch
from zssr.trainer import ZSSR, Callback, Pair, _sync

# ZSSRConfig fields that decide the network's shape and the shared step: problems in one batch must agree on them
SHARED_FIELDS = ("depth", "width", "kernel_size", "conv", "activation", "bias", "learn_residual", "crop_size",
                 "optimizer", "momentum", "grad_clip_norm", "precision", "channels_last")
STACKINGS = ("grouped", "vmap")
FINISHED = ("auto", "repack", "mask")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which the single trainer uses


@dataclass(frozen=True)
class BatchConfig:
    stacking: str = "grouped"  # "grouped" convolutions or "vmap" of a functional call (measured: see README)
    finished: str = "auto"  # "repack" | "mask" | "auto" (mask under a CUDA graph, repack otherwise)
    cuda_graph: bool = False  # capture the network step as a CUDA graph (CUDA only; ignored elsewhere)
    batched_ensemble: bool = True  # the final test's same-shape ensemble passes in one forward

    def __post_init__(self) -> None:
        if self.stacking not in STACKINGS:
            raise ValueError(f"stacking={self.stacking!r} (expected one of {STACKINGS})")
        if self.finished not in FINISHED:
            raise ValueError(f"finished={self.finished!r} (expected one of {FINISHED})")


@dataclass
class Problem:
    lr: torch.Tensor  # 1 x C x H x W float in [0, 1] (C = 3 or 1)
    scale: float | Pair
    config: ZSSRConfig
    kernels: Sequence[Any] | None = None  # per scale step, as ZSSR.upscale takes them
    callback: Callback | None = None


def shared_key(cfg: ZSSRConfig) -> tuple:
    """What problems of one batch must have in common (the network shape and the step)."""
    return tuple(getattr(cfg, f) for f in SHARED_FIELDS)


# ---------------------------------------------------------------------------------------------------------------------
class _Slot:
    """One problem's state across its scale steps, as ZSSR.upscale keeps it (the network lives in the batch)."""

    def __init__(self, index: int, problem: Problem, device: torch.device) -> None:
        cfg = problem.config
        self.index, self.problem, self.cfg = index, problem, cfg
        self.helper = ZSSR(cfg)  # its degradation, forward and final-test methods, with this problem's config
        lr = problem.lr
        if lr.dim() == 3:
            lr = lr[None]
        if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] not in (1, 3):
            raise ValueError(f"ZSSR needs one image 1 x 3 x H x W (or 1 x 1 x H x W), got shape {tuple(lr.shape)}")
        self.out_device, self.out_dtype = lr.device, lr.dtype if lr.is_floating_point() else torch.float32
        x = lr.detach().to(device=device, dtype=torch.float32)
        self.gray = x.shape[1] == 1
        self.x = (x.expand(-1, 3, -1, -1) if self.gray else x).clamp(0.0, 1.0).contiguous()
        self.steps = cfg.steps_for(problem.scale)
        self.base_changes = cfg.base_changes_for(problem.scale)
        self.bp_iters = cfg.back_projection_for(len(self.steps))
        self.kernels = self.helper._kernels(problem.kernels, self.steps)
        seed = cfg.seed if cfg.seed is not None else int(np.random.SeedSequence().entropy % (2 ** 31))
        self.rng = np.random.default_rng(seed)
        self.init_gen = torch.Generator().manual_seed(seed)
        self.noise_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.helper.precision = resolve_precision(cfg.precision, device)
        self.helper._channels_last = cfg.channels_last
        self.net = ZSSRNet(cfg)  # holds this problem's weights between batches and for its final test
        self.net.reset_parameters(self.init_gen)
        self.net.to(device)
        if cfg.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.opt_state: dict[str, Any] | None = None  # None: a fresh optimizer
        self.iterations_run = 0
        self.sources, self.source_scales = [self.x], [1.0]
        self.inp, self.base_sf, self.base_ind = self.x, (1.0, 1.0), 0
        self.out = self.x
        self.step_ind = 0
        self.stats: dict[str, Any] = dict(iterations=0, curve=[], steps=[], restarts=[], device=str(device),
                                          parameters=count_parameters(self.net), seed=seed,
                                          precision=self.helper.precision, channels_last=cfg.channels_last)
        self.seconds_infer = 0.0
        self.done = False
        self.begin_step()

    def begin_step(self, restarted: bool = False, warmup: int = 0) -> None:
        cfg = self.cfg
        sf_abs = self.steps[self.step_ind]
        self.sf_abs = sf_abs
        self.sf = (sf_abs[0] / self.base_sf[0], sf_abs[1] / self.base_sf[1])
        if self.step_ind > 0 and cfg.init_net_for_each_sf and not restarted:
            self.net.reset_parameters(self.init_gen)
            self.opt_state = None
        self.watch = StuckWatch(cfg.restart_if_stuck, cfg.max_iters, enabled=not restarted)
        if not restarted:
            self.guard = DeadStepGuard(cfg.retry_dead_steps, self.net.state_dict(), self.step_ind)
        self.restart_requested = False
        self.down = self.helper._downscaler(self.kernels[self.step_ind], self.x.device)
        plan = plan_augmentations(
            self.rng, cfg.max_iters, [(int(s.shape[-2]), int(s.shape[-1])) for s in self.sources],
            self.source_scales, cfg.crop_size, cfg.augment_leave_as_is_probability,
            cfg.augment_no_interpolate_probability, cfg.augment_min_scale, cfg.augment_allow_rotation,
            cfg.augment_scale_diff_sigma, cfg.augment_shear_sigma)
        self.thetas = torch.tensor(plan.thetas, dtype=torch.float32).to(self.x.device)
        self.modes, self.srcs = plan.modes.tolist(), plan.sources.tolist()
        self.policy = make_policy(cfg, warmup)
        self.lr = self.policy.lr
        self.it = 0
        self.measured: list[tuple[int, torch.Tensor, float, torch.Tensor]] = []
        self.training = True

    def crop_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This iteration's interpolated son (the network's input) and HR father (the target)."""
        cfg, it = self.cfg, self.it
        father = warp(self.sources[self.srcs[it]], self.thetas[it:it + 1], cfg.crop_size, self.modes[it])
        son = self.helper._father_to_son(father, self.sf, self.down, self.noise_gen)
        up = imresize(son, self.sf, (cfg.crop_size, cfg.crop_size), kernel=cfg.upscale_method)
        return up, father

    def after_step(self, loss: torch.Tensor, net_view) -> None:
        """The single trainer's bookkeeping after its optimizer step: measurement, callback, policy, stop."""
        it, policy = self.it, self.policy
        lr_now = policy.lr
        rec = None
        if policy.should_measure(it):
            with torch.no_grad():
                rec = self.helper._reconstruction_error(net_view, self.inp, self.sf, self.down, self.noise_gen)
            policy.record(it, rec)
            self.measured.append((it, loss, lr_now, rec))
        if self.problem.callback is not None:
            self.problem.callback(it, loss, lr_now, rec)
        if rec is not None and self.watch.stuck(it, rec):
            self.it += 1
            self.restart_requested = True
            return
        if policy.update(it):
            self.lr = policy.lr
        self.it += 1
        if policy.finished or self.it >= self.cfg.max_iters:
            self.training = False

    def restart(self) -> None:
        """The single trainer's restart of a stuck step: fresh weights (into self.net), a fresh optimizer, the
        step planned again; the spent iterations are counted, their curve dropped."""
        self.stats["iterations"] += self.it
        self.stats["restarts"].append(self.watch.restart_entry(self.step_ind, self.it))
        self.net.reset_parameters(self.init_gen)
        self.opt_state = None
        self.begin_step(restarted=True)

    def retry_if_dead(self) -> bool:
        """The single trainer's DeadStepGuard at the end of an attempt (weights in self.net, optimizer state in
        self.opt_state): True when the step starts again from its starting weights."""
        final_rec = float(self.measured[-1][3]) if self.measured else None
        if self.guard.watching and self.guard.dead(final_rec,
                                                    self.helper._interpolation_error(self.inp, self.sf, self.down)):
            self.stats["iterations"] += self.it
            self.net.load_state_dict(self.guard.hold(self.net.state_dict(), self.opt_state, final_rec, self.it))
            self.stats["restarts"].append(self.guard.entry)
            self.opt_state = None
            self.begin_step(restarted=True, warmup=self.guard.warmup_iters(self.cfg.max_iters))
            return True
        kept = self.guard.settle(final_rec)
        if kept is not None:  # the retry did no better: back to the first attempt (the stats stay the retry's)
            self.net.load_state_dict(kept[0])
            self.opt_state = kept[1]
        return False

    def finish_step(self, ensemble_batched: bool) -> None:
        """Final test of this step (the network is in self.net), the step's stats, the next step or the end."""
        cfg, device = self.cfg, self.x.device
        _sync(device)
        t0 = time.perf_counter()
        self.net.eval()
        with torch.no_grad():
            out = self_ensemble(lambda t: self.helper._forward(self.net, t, self.sf), self.inp, self.sf, self.down,
                                self.bp_iters[self.step_ind], enabled=cfg.ensemble, up_kernel=cfg.upscale_method,
                                batched=ensemble_batched)
        _sync(device)
        seconds = time.perf_counter() - t0
        self.seconds_infer += seconds
        curve = []
        if self.measured:
            values = torch.stack([torch.stack([m[1].float(), m[3].float()]) for m in self.measured]).cpu().tolist()
            curve = [dict(iteration=m[0], loss=v[0], lr=m[2], rec_error=v[1], step=self.step_ind)
                     for m, v in zip(self.measured, values)]
        self.stats["iterations"] += self.it
        self.stats["curve"].extend(curve)
        self.stats["steps"].append(dict(
            scale=list(self.sf_abs), relative_scale=list(self.sf), back_projection_iters=self.bp_iters[self.step_ind],
            input_hw=[int(self.inp.shape[-2]), int(self.inp.shape[-1])], kernel=self.kernels[self.step_ind] is not None,
            seconds_infer=seconds, iterations=self.it, lr_changes=self.policy.change_iters[1:],
            final_lr=self.policy.lr, fits=self.policy.fits))
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
            self.done = True

    def result(self) -> torch.Tensor:
        out = self.out.mean(dim=1, keepdim=True) if self.gray else self.out
        return out.to(device=self.out_device, dtype=self.out_dtype)


# ---------------------------------------------------------------------------------------------------------------------
def _leaf_modules(module: nn.Module) -> list[nn.Module]:
    leaves = []
    for m in module.children():
        leaves.extend(_leaf_modules(m) if isinstance(m, nn.Sequential) else [m])
    return leaves


class StackedNets:
    """The parameters of K same-shape ZSSR networks stacked on a leading dimension, their optimizer state, and the
    batched step. All tensors keep their shapes while the batch is unchanged (what a CUDA graph needs)."""

    def __init__(self, nets: Sequence[ZSSRNet], cfg: ZSSRConfig, stacking: str,
                 states: Sequence[dict[str, torch.Tensor] | None]) -> None:
        self.cfg, self.stacking, self.k = cfg, stacking, len(nets)
        self.template = nets[0]
        self.names = [n for n, _ in self.template.named_parameters()]
        self.layers = _leaf_modules(self.template.body)
        device = next(self.template.parameters()).device
        with torch.no_grad():
            self.params = [torch.stack([dict(net.named_parameters())[n].detach() for net in nets]).contiguous()
                           for n in self.names]
        self.state = {key: [torch.zeros_like(p) for p in self.params] for key in self._state_keys()}
        self.step_count = torch.zeros(self.k, dtype=torch.float64)
        for j, st in enumerate(states):
            if st is not None:
                self.load_state(j, st)
        for p in self.params:
            p.requires_grad_(True)
        # per-problem step size and Adam's bias-correction divisor, refreshed every iteration (static buffers)
        self.step_size = torch.zeros(self.k, device=device)
        self.denominator = torch.ones(self.k, device=device)
        self.precision = resolve_precision(cfg.precision, device)
        self.device = device

    def _state_keys(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") if self.cfg.optimizer == "adam" else ("momentum_buffer",)

    # --- state in and out --------------------------------------------------------------------------------------------
    def load_state(self, j: int, st: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for key in self._state_keys():
                for buf, value in zip(self.state[key], st[key]):
                    buf[j].copy_(value)
        self.step_count[j] = float(st["step"])

    def export(self, j: int, net: ZSSRNet) -> dict[str, Any]:
        """Write problem j's weights into `net`; return its optimizer state (to re-stack it in another batch)."""
        with torch.no_grad():
            own = dict(net.named_parameters())
            for n, p in zip(self.names, self.params):
                own[n].copy_(p[j])
        st: dict[str, Any] = {key: [buf[j].clone() for buf in self.state[key]] for key in self._state_keys()}
        st["step"] = float(self.step_count[j])
        return st

    def load(self, j: int, net: ZSSRNet, st: dict[str, Any] | None) -> None:
        """Problem j continues from `net`'s weights and optimizer state `st` (None: a fresh optimizer)."""
        with torch.no_grad():
            own = dict(net.named_parameters())
            for n, p in zip(self.names, self.params):
                p[j].copy_(own[n])
            if st is None:
                for key in self._state_keys():
                    for buf in self.state[key]:
                        buf[j].zero_()
        if st is None:
            self.step_count[j] = 0.0
        else:
            self.load_state(j, st)

    # --- the network ---------------------------------------------------------------------------------------------
    def _memory(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def forward(self, x: torch.Tensor, params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """K x 3 x H x W crops (one per problem) -> K x 3 x H x W outputs, problem j through network j."""
        params = self.params if params is None else params
        k = params[0].shape[0]
        with autocast(self.precision, x.device, cache=False):  # no weight-cast cache: capturable as a CUDA graph
            if self.stacking == "vmap":
                y = self._vmap_body(x, params)
            else:
                y = self._grouped_body(x, params, k)
        y = y.to(x.dtype)
        return y + x if self.cfg.learn_residual else y

    def _grouped_body(self, x: torch.Tensor, params: Sequence[torch.Tensor], k: int) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self._memory(x.reshape(1, k * x.shape[1], h, w))
        i = 0
        for layer in self.layers:
            if isinstance(layer, nn.Conv2d):
                weight = params[i].reshape(-1, *params[i].shape[2:])
                i += 1
                bias = None
                if layer.bias is not None:
                    bias = params[i].reshape(-1)
                    i += 1
                y = F.conv2d(y, weight, bias, padding=layer.padding, groups=layer.groups * k)
            elif isinstance(layer, nn.PReLU):
                y = F.prelu(y, params[i].reshape(-1))
                i += 1
            else:  # ReLU
                y = F.relu(y)
        return y.reshape(k, -1, h, w)

    def _vmap_body(self, x: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
        from torch.func import functional_call, vmap

        body = self.template.body
        names = [n[len("body."):] for n in self.names]

        def one(p, xi):
            return functional_call(body, dict(zip(names, p)), (xi[None],))[0]

        return vmap(one)(list(params), x)

    # --- one step ------------------------------------------------------------------------------------------------
    def set_rates(self, rates: Sequence[float], active: Sequence[bool]) -> None:
        """Per-problem step sizes of the next update (0 for a masked problem); advances the step counts."""
        sizes, denominators = [], []
        for j, (rate, on) in enumerate(zip(rates, active)):
            if not on:
                sizes.append(0.0)
                denominators.append(1.0)
                continue
            self.step_count[j] += 1
            if self.cfg.optimizer == "adam":
                step = float(self.step_count[j])
                sizes.append(rate / (1 - ADAM_BETAS[0] ** step))
                denominators.append((1 - ADAM_BETAS[1] ** step) ** 0.5)
            else:
                sizes.append(rate)
                denominators.append(1.0)
        self.step_size.copy_(torch.tensor(sizes, dtype=torch.float32))
        self.denominator.copy_(torch.tensor(denominators, dtype=torch.float32))

    def step(self, up: torch.Tensor, father: torch.Tensor) -> torch.Tensor:
        """Forward, per-problem L1 losses, backward and optimizer update on the stacked parameters; returns the K
        losses (a device tensor). Only in-place updates on fixed tensors: capturable as a CUDA graph."""
        pred = self.forward(up)
        losses = (pred.float() - father).abs().mean(dim=(1, 2, 3))
        grads = torch.autograd.grad(losses.sum(), self.params)
        with torch.no_grad():
            self._update(list(grads))
        return losses.detach()

    def _bcast(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    def _update(self, grads: list[torch.Tensor]) -> None:
        cfg = self.cfg
        if cfg.grad_clip_norm > 0:  # per problem, as torch.nn.utils.clip_grad_norm_ over its own parameters
            norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)
            coef = (cfg.grad_clip_norm / (norms + 1e-6)).clamp(max=1.0)
            grads = [g * self._bcast(coef, g) for g in grads]
        if cfg.optimizer == "adam":
            b1, b2 = ADAM_BETAS
            for p, g, m, v in zip(self.params, grads, self.state["exp_avg"], self.state["exp_avg_sq"]):
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / self._bcast(self.denominator, v)).add_(ADAM_EPS)
                p.sub_((self._bcast(self.step_size, p) * m) / denom)  # addcdiv's (value * m) / denom
        else:  # SGD with momentum, dampening 0 (a zero buffer makes the first step's buffer the gradient)
            for p, g, buf in zip(self.params, grads, self.state["momentum_buffer"]):
                buf.mul_(cfg.momentum).add_(g)
                p.sub_(self._bcast(self.step_size, p) * buf)

    def view(self, j: int) -> "_OneNet":
        return _OneNet(self, j)


class _OneNet(nn.Module):
    """Problem j's network as a module over the stacked parameters (no copy), for the error measurement."""

    def __init__(self, stacked: StackedNets, j: int) -> None:
        super().__init__()
        self.stacked, self.j = stacked, j

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stacked
        params = [p[self.j:self.j + 1] for p in s.params]
        return torch.cat([s.forward(x[i:i + 1], params) for i in range(x.shape[0])])


class _GraphedStep:
    """StackedNets.step captured as a CUDA graph over static input buffers (warm-up on a side stream, with the
    parameters and optimizer state restored afterwards so that the warm-up leaves no trace)."""

    WARMUP = 3

    def __init__(self, stacked: StackedNets, crop: int) -> None:
        dev = stacked.device
        self.stacked = stacked
        self.up = torch.zeros(stacked.k, 3, crop, crop, device=dev)
        self.father = torch.zeros_like(self.up)
        saved = [t.detach().clone() for t in self._mutable()]
        sizes, denominators = stacked.step_size.clone(), stacked.denominator.clone()
        stacked.step_size.zero_()
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                stacked.step(self.up, self.father)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.losses = stacked.step(self.up, self.father)
        with torch.no_grad():
            for t, s in zip(self._mutable(), saved):
                t.copy_(s)
            stacked.step_size.copy_(sizes)
            stacked.denominator.copy_(denominators)

    def _mutable(self) -> list[torch.Tensor]:
        s = self.stacked
        return list(s.params) + [buf for key in s.state for buf in s.state[key]]

    def __call__(self, up: torch.Tensor, father: torch.Tensor) -> torch.Tensor:
        self.up.copy_(up)
        self.father.copy_(father)
        self.graph.replay()
        return self.losses.clone()


# ---------------------------------------------------------------------------------------------------------------------
def upscale_many(problems: Sequence[Problem], batch: BatchConfig | None = None,
                 device: torch.device | str | None = None, keep_networks: bool = False
                 ) -> list[tuple[torch.Tensor, dict] | Exception]:
    """Super-resolve every problem; returns per problem (output, stats) or the exception it raised. A problem that
    cannot be set up (bad input, kernels) fails alone; the others train on. Problems must agree on SHARED_FIELDS.
    keep_networks: stats["network"] is the problem's trained ZSSRNet (for inspection)."""
    batch = batch or BatchConfig()
    if not problems:
        return []
    keys = {shared_key(p.config) for p in problems}
    if len(keys) > 1:
        raise ValueError("problems of one batch must share " + ", ".join(SHARED_FIELDS) + "; got "
                         + f"{len(keys)} different combinations")
    cfg0 = problems[0].config
    dev = torch.device(device) if device is not None else (
        problems[0].lr.device if cfg0.device in ("auto", "", None) else torch.device(cfg0.device))
    if resolve_precision(cfg0.precision, dev) == "fp16":
        raise ValueError("batched ZSSR runs fp32 or bf16 (fp16 needs a gradient scaler per problem); use "
                         "precision bf16, or batch size 1")
    if dev.type == "cuda" and cfg0.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    graph = batch.cuda_graph and dev.type == "cuda"
    mask = batch.finished == "mask" or (batch.finished == "auto" and graph)

    t_start = time.perf_counter()
    results: list[Any] = [None] * len(problems)
    slots: list[_Slot] = []
    for i, problem in enumerate(problems):
        try:
            slots.append(_Slot(i, problem, dev))
        except Exception as exc:  # this problem only
            results[i] = exc
    active = list(slots)
    while active:  # one packing of the still-training problems per pass
        stacked = StackedNets([s.net for s in active], cfg0, batch.stacking, [s.opt_state for s in active])
        step = _GraphedStep(stacked, cfg0.crop_size) if graph else stacked.step
        live = [True] * len(active)
        pairs: list[Any] = [None] * len(active)
        while any(live):
            for j, s in enumerate(active):
                if live[j]:  # a masked problem keeps its last crop (its step size is 0)
                    pairs[j] = s.crop_pair()
            stacked.set_rates([s.lr for s in active], live)
            losses = step(torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
            leaving = False
            for j, s in enumerate(active):
                if not live[j]:
                    continue
                s.iterations_run += 1
                s.after_step(losses[j], stacked.view(j))
                if s.restart_requested:
                    s.restart()
                    stacked.load(j, s.net, None)
                    continue
                if s.training:
                    continue
                s.opt_state = stacked.export(j, s.net)  # the weights into s.net for the final test
                if s.retry_if_dead():
                    stacked.load(j, s.net, None)
                    continue
                s.finish_step(batch.batched_ensemble)  # (re-initialises s.net and its state if the config says so)
                if s.done:
                    live[j], leaving = False, True
                else:
                    stacked.load(j, s.net, s.opt_state)
            if leaving and not mask:
                break
        for j, s in enumerate(active):
            if live[j]:
                s.opt_state = stacked.export(j, s.net)
        active = [s for s, on in zip(active, live) if on]
    _sync(dev)
    wall = time.perf_counter() - t_start
    infer = sum(s.seconds_infer for s in slots)
    total_iters = max(sum(s.iterations_run for s in slots), 1)
    for s in slots:
        train_share = (wall - infer) * s.iterations_run / total_iters
        s.stats.update({"seconds-train": train_share, "seconds-infer": s.seconds_infer,
                        "seconds-total": train_share + s.seconds_infer, "batch-size": len(problems),
                        "seconds-batch": wall, "stacking": batch.stacking, "cuda-graph": graph,
                        "finished": "mask" if mask else "repack"})
        if keep_networks:
            s.stats["network"] = s.net
        results[s.index] = (s.result(), s.stats)
    return results
