"""Many ZSSR problems trained at once: one network step for K images' networks.

    results = upscale_many([Problem(lr_a, 2, cfg_a), Problem(lr_b, 4, cfg_b)], BatchConfig())
    sr_a, stats_a = results[0]          # or the exception that problem raised

One ZSSR problem is far too small to keep a GPU busy (a 128 x 128 step is ~22 GFLOP; eager PyTorch spends more time
launching kernels than computing them). Here the K problems' parameters are stacked along a new leading dimension
and every training iteration runs one forward, one backward and one optimizer update for all of them:

- per problem, the step loop of `zssr.problem.ProblemRun` (the one `zssr.trainer.ZSSR` drives too), with its own
  random numbers (the same seed gives the same draws): the augmentation plan and the HR fathers, the LR sons (cubic
  or a given kernel, noise), their interpolation, the reconstruction-error measurement, the learning-rate policy and
  its stop decision, the restart and dead-step guards, the scale steps (gradual increments, passes) and the final
  test; here, per problem too: the L1 loss, the optimizer state and learning rate;
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

import torch
import torch.nn.functional as F
from torch import nn

from zssr.config import ZSSRConfig
from zssr.network import ZSSRNet
from zssr.precision import autocast, resolve_precision
from zssr.problem import Callback, Pair, ProblemRun, device_for, sync

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
def _leaf_modules(module: nn.Module) -> list[nn.Module]:
    leaves = []
    for m in module.children():
        leaves.extend(_leaf_modules(m) if isinstance(m, nn.Sequential) else [m])
    return leaves


class StackedNets:
    """The parameters of K same-shape ZSSR networks stacked on a leading dimension, their optimizer state, and the
    batched step. All tensors keep their shapes while the batch is unchanged (what a CUDA graph needs)."""

    def __init__(self, nets: Sequence[ZSSRNet], cfg: ZSSRConfig, stacking: str,
                 states: Sequence[dict[str, torch.Tensor] | None], precision: str | None = None) -> None:
        """precision: the concrete one ("fp32", "bf16" or "fp16"; default cfg.precision, then not "auto")."""
        precision = precision or cfg.precision
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"StackedNets needs a concrete precision, got {precision!r}: resolve it first "
                             "(zssr.precision.resolve_precision)")
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
        self.precision = precision
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

    def view(self, j: int):
        """Problem j's network as a function over the stacked parameters (no copy), for the error measurement."""
        params = [p[j:j + 1] for p in self.params]
        return lambda x: torch.cat([self.forward(x[i:i + 1], params) for i in range(x.shape[0])])


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
    dev = torch.device(device) if device is not None else device_for(cfg0, problems[0].lr)
    precision = resolve_precision(cfg0.precision, dev)  # once, here: everything below gets the result
    if precision == "fp16":
        raise ValueError("batched ZSSR runs fp32 or bf16 (fp16 needs a gradient scaler per problem); use "
                         "precision bf16, or batch size 1")
    graph = batch.cuda_graph and dev.type == "cuda"
    mask = batch.finished == "mask" or (batch.finished == "auto" and graph)

    t_start = time.perf_counter()
    results: list[Any] = [None] * len(problems)
    runs: dict[int, ProblemRun] = {}
    for i, p in enumerate(problems):
        try:
            runs[i] = ProblemRun(p.lr, p.scale, p.config, dev, precision, p.kernels, p.callback)
            runs[i].ensemble_batched = batch.batched_ensemble
        except Exception as exc:  # this problem only
            results[i] = exc
    active = list(runs.values())
    while active:  # one packing of the still-training problems per pass
        stacked = StackedNets([r.net for r in active], cfg0, batch.stacking, [r.opt_state for r in active],
                              precision)
        step = _GraphedStep(stacked, cfg0.crop_size) if graph else stacked.step
        live = [True] * len(active)
        pairs: list[Any] = [None] * len(active)
        while any(live):
            for j, r in enumerate(active):
                if live[j]:  # a masked problem keeps its last crop (its step size is 0)
                    pairs[j] = r.crop_pair()
            stacked.set_rates([r.lr for r in active], live)
            losses = step(torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
            leaving = False
            for j, r in enumerate(active):
                if not live[j]:
                    continue
                event, state = r.after_step(losses[j], stacked.view(j), lambda j=j, r=r: stacked.export(j, r.net))
                if event == "done":
                    live[j], leaving = False, True
                elif event != "train":  # new weights in r.net (and its optimizer state, or a fresh one)
                    stacked.load(j, r.net, state)
            if leaving and not mask:
                break
        for j, r in enumerate(active):
            if live[j]:
                r.opt_state = stacked.export(j, r.net)
        active = [r for r, on in zip(active, live) if on]
    sync(dev)
    wall = time.perf_counter() - t_start
    infer = sum(r.seconds_infer for r in runs.values())
    total_iters = max(sum(r.stats["iterations"] for r in runs.values()), 1)
    for i, r in runs.items():
        train_share = (wall - infer) * r.stats["iterations"] / total_iters
        r.stats.update({"seconds-train": train_share, "seconds-infer": r.seconds_infer,
                        "seconds-total": train_share + r.seconds_infer, "batch-size": len(problems),
                        "seconds-batch": wall, "stacking": batch.stacking, "cuda-graph": graph,
                        "finished": "mask" if mask else "repack"})
        if keep_networks:
            r.stats["network"] = r.net
        results[i] = (r.result(), r.stats)
    return results
