"""ZSSR adapters for the harness: each registered name is a preset of `zssr.ZSSRConfig`.

profile "paper": the preset as published (3000 iterations max, the original learning-rate policy, back-projection,
geometric self-ensemble). profile "quick": a CPU-affordable reduction (baselines.zssr_presets), labelled as such.
Keyword overrides are applied last and must name ZSSRConfig fields.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from baselines.api import Method, MethodInfo, Request, Result
from baselines.zssr_presets import KERNEL_SOURCES, NOTES, parse_kernel_source, preset_names, quick_reduction
from zssr import ZSSR, ZSSRConfig
from zssr.batched import BatchConfig, Problem
from zssr.config import PRESETS as PRESET_OVERRIDES
from zssr.network import ZSSRNet, count_parameters
from zssr.precision import resolve_precision

PAPER = "Shocher, Cohen, Irani: \"Zero-Shot\" Super-Resolution using Deep Internal Learning, CVPR 2018"


class _ZSSRPreset(Method):
    preset: str = "original"
    info = MethodInfo(family="internal", training_data="the test image itself",
                      degradation="bicubic (MATLAB) unless a kernel is given", paper=PAPER)
    batchable = True  # run() trains several cells' problems together

    def __init__(self, profile: str = "paper", precision: str = "auto", **overrides: Any) -> None:
        super().__init__(profile, precision)
        cfg = ZSSRConfig.preset(self.preset).replace(precision=precision)
        if profile == "quick":
            cfg = cfg.replace(**quick_reduction(self.preset))
        elif profile != "paper":
            raise ValueError(f"{self.name}: unknown profile {profile!r} (expected 'paper' or 'quick')")
        batch = {k[len("batch_"):]: overrides.pop(k) for k in list(overrides) if k.startswith("batch_")}
        self.batch_config = BatchConfig(**batch)  # how run() stacks problems (batch_<field> overrides)
        self.cfg = cfg.replace(**overrides)
        self.overrides = dict(overrides)
        self.info = MethodInfo(
            family="internal",
            training_data="the test image itself",
            degradation="bicubic (MATLAB) unless a kernel is given",
            licence="this port: project licence; original ZSSR code: academic non-commercial (Weizmann)",
            parameters=count_parameters(ZSSRNet(self.cfg)),
            paper=PAPER,
            notes=self._notes(),
        )

    def _notes(self) -> str:
        note = f"PyTorch port of the original ZSSR, preset {self.preset!r}, trained at test time"
        if self.profile == "quick":
            note += f"; QUICK profile (reduced schedule: {quick_reduction(self.preset)}), not paper-comparable"
        steps = ZSSRConfig.preset(self.preset)
        if steps.pass_factor or steps.pass_factors:
            note += "; multi-pass (each pass's output is the next pass's input)"
        return note

    def choose_precision(self, device: torch.device) -> str:
        self.precision = resolve_precision(self.cfg.precision, device)
        self.cfg = self.cfg.replace(precision=self.precision)
        return self.precision

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        if self.precision is None:
            self.choose_precision(device)

    def _cell_config(self, told: dict[str, Any]) -> tuple[ZSSRConfig, list | None]:
        """The configuration for a cell told `told` (see Method.told), and the kernels to hand ZSSR (None:
        bicubic)."""
        return self.cfg, None

    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        """Every frame of `lr` with the configured seed, told nothing (the harness calls run() with each cell's)."""
        result = self.run([Request(lr, scale, self.cfg.seed)])[0]
        if isinstance(result, Exception):
            raise result
        self.last_stats = result.stats
        return result.sr

    def run(self, requests: list[Request]) -> list[Result | Exception]:
        """One cell: ZSSR.upscale, frame by frame. Several: their problems trained together (zssr.batched); what
        runs before ZSSR (KernelGAN) runs per cell first and is added to that cell's seconds."""
        if len(requests) == 1:
            return [self._run_alone(requests[0])]
        return self._run_together(requests)

    def _run_alone(self, req: Request) -> Result | Exception:
        try:
            outputs, stats = [], []
            for frame in req.lr:
                problem, before = self._problem(frame[None].to(self.device), req)
                model = ZSSR(problem.config)
                out = model.upscale(problem.lr, problem.scale, callback=problem.callback, kernels=problem.kernels)
                outputs.append(out[0])
                stats.append(_with_before(dict(model.last_stats), before, problem.config))
        except Exception as exc:  # this request only
            return exc
        merged = dict(stats[-1])
        if len(stats) > 1:
            merged["seconds-train"] = sum(s["seconds-train"] for s in stats)
            merged["iterations"] = sum(s["iterations"] for s in stats)
            merged["restarts"] = [r for s in stats for r in s.get("restarts", [])]
            merged["flop-inputs"] = [f for s in stats for f in s["flop-inputs"]]
        return Result(torch.stack(outputs).to(req.lr.device), merged)

    def _problem(self, frame: torch.Tensor, req: Request, kernels: list | None = None,
                 config: ZSSRConfig | None = None) -> tuple[Problem, dict[str, Any]]:
        """One image (1 x 3 x H x W) of a request as a ZSSR problem with the request's seed and configuration
        (`kernels` and `config` override the cell's), and the stats of what ran before ZSSR (none here)."""
        cell_cfg, cell_kernels = self._cell_config(req.told)
        cell_cfg = cell_cfg if config is None else config
        cfg = cell_cfg.replace(seed=int(req.seed), device=str(self.device) if self.cfg.device == "auto"
                               else self.cfg.device)
        report = self.on_progress
        measured = _Measurements()

        def callback(it, loss, lr, rec):
            measured.seen(it, rec)
            if report is not None:
                report(it)

        problem = Problem(frame, req.scale, cfg, cell_kernels if kernels is None else kernels, callback)
        return problem, {"measurements": measured}

    def _run_together(self, requests: list[Request]) -> list[Result | Exception]:
        from zssr.batched import shared_key, upscale_many

        results: list[Any] = [None] * len(requests)
        staged: list[tuple[int, Problem, dict[str, Any]]] = []
        for i, req in enumerate(requests):
            try:
                if req.lr.shape[0] != 1:
                    raise ValueError(f"{self.name}: a batched cell is one image, got {req.lr.shape[0]} frames")
                problem, before = self._problem(req.lr.to(self.device), req)
                staged.append((i, problem, before))
            except Exception as exc:  # this cell only
                results[i] = exc
        # cells whose networks cannot be stacked (a blind cell trains on an estimate with a smaller crop than its
        # bicubic fallback) train in separate batches
        groups: dict[tuple, list[tuple[int, Problem, dict[str, Any]]]] = {}
        for item in staged:
            groups.setdefault(shared_key(item[1].config), []).append(item)
        done = []
        for group in groups.values():
            done += zip(group, upscale_many([p for _, p, _ in group], self.batch_config, device=self.device))
        for (i, problem, before), out in done:
            if isinstance(out, Exception):
                results[i] = out
                continue
            sr, stats = out
            stats = _with_before(stats, before, problem.config)
            stats["seconds-total"] += before.get("seconds-kernel", 0.0)
            results[i] = Result(sr, stats)
        return results

    def counted_costs(self, stats: dict[str, Any]) -> dict[str, float]:
        """FLOPs and parameters of a finished request, from its stats (called by the harness after the timed call;
        baselines.flops.zssr_costs says what is counted). A KernelGAN estimate's FLOPs are charged like its seconds:
        to every cell that uses it, as part of training."""
        from baselines.flops import zssr_costs

        total: dict[str, float] = {}
        for cfg, run, attempts in stats.get("flop-inputs", []):
            measured = measurements_per_step(len(run["steps"]), run["restarts"], attempts)
            for key, value in zssr_costs(cfg, run, measured).items():
                total[key] = value if key == "parameters" else total.get(key, 0) + value
        if "kernelgan-config" in stats:
            from baselines.flops import kernelgan_flops

            kernel = kernelgan_flops(stats["kernelgan-config"]) * int(stats.get("kernelgan-runs", 1))
            total.update({"flops-kernel": kernel, "flops-train": total.get("flops-train", 0) + kernel,
                          "flops": total.get("flops", 0) + kernel})
        return total

    def config(self) -> dict[str, Any]:  # the batch settings are not part of it: they do not change the algorithm
        return {
            "preset": self.preset,
            "profile": self.profile,
            "precision": self.cfg.precision,
            "quick_overrides": quick_reduction(self.preset) if self.profile == "quick" else {},
            "overrides": {k: str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v
                          for k, v in self.overrides.items()},
            # the configured seed, not the last cell's: run.json records config() after the cells have run
            "zssr": self.cfg.to_dict(),
        }


def _with_before(stats: dict[str, Any], before: dict[str, Any], cfg: ZSSRConfig) -> dict[str, Any]:
    """ZSSR's stats with what ran before it (a kernel estimate: its seconds count as training) and what its FLOPs
    are counted from after the timed call ("flop-inputs", see counted_costs)."""
    before = dict(before)
    measured = before.pop("measurements")
    stats.update(before)
    stats["seconds-train"] = stats.get("seconds-train", 0.0) + before.get("seconds-kernel", 0.0)
    stats["flop-inputs"] = [(cfg, {"iterations": stats.get("iterations", 0), "steps": stats.get("steps", []),
                                   "restarts": stats.get("restarts", [])}, measured.attempts)]
    return stats


class _Measurements:
    """How many reconstruction-error measurements each training attempt made (an attempt starts at iteration 0:
    a scale step, or a restart of one), from the step loop's callback."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    def seen(self, iteration: int, rec) -> None:
        if iteration == 0:
            self.attempts.append(0)
        if rec is not None and self.attempts:
            self.attempts[-1] += 1


def measurements_per_step(n_steps: int, restarts: list[dict], attempts: list[int]) -> list[int]:
    """The measurements of each scale step: its attempts are its restarts (stats["restarts"] name their step) plus
    the one that finished it, in the order they ran."""
    out, i = [], 0
    for k in range(n_steps):
        n = 1 + sum(1 for r in restarts if r.get("step") == k)
        out.append(sum(attempts[i:i + n]))
        i += n
    return out


# The original code's given-kernel and real-image settings (zssr.config.PRESETS), applied per cell when told: the
# real-image one when the cell adds noise, with the sons' noise at the told level instead of its fixed 0.0125.
GIVEN_KERNEL = PRESET_OVERRIDES["given-kernel"]
REAL_IMAGE = {k: v for k, v in PRESET_OVERRIDES["real-image"].items() if k != "noise_std"}


def told_noise_std(sigma: float) -> float:
    """The sons' noise for a told noise sigma (grey levels of 255): the same level, on ZSSR's [0, 1] scale."""
    return float(sigma) / 255.0


class ZSSRTrueKernel(_ZSSRPreset):
    """Non-blind ZSSR: zssr-original, told each cell's true kernel (then the original code's given-kernel
    configuration: no rotations in augmentation or ensemble, 2 back-projections) and, when the degradation adds
    noise, its noise sigma: then the original code's real-image configuration (no back-projection, which would copy
    the LR image's noise into the output; narrower augmentation; noise on the sons), with the sons' noise at the told
    sigma rather than the configuration's fixed 0.0125. Under bicubic it is zssr-original exactly.

    Version 3 (the told noise): measured on the 7 builtin images under `realistic` x2, quick profile, zssr-fast told
    the kernel: 22.61 dB mean PSNR-Y with version 2's 0.0125 and 2 back-projections, 27.01 with this (bicubic 26.13,
    SRMD told 27.34): docs/experiments/2026-12-06-told-noise.md."""

    name = "zssr-true-kernel"
    preset = "original"
    told = ("kernel", "noise")
    seed_as = "zssr-original"  # the same random numbers as zssr-original: told bicubic, the same numbers too
    version = "3"  # 1 drew its own seeds; 2 used the real-image noise 0.0125 with 2 back-projections when told noise

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.info = dataclasses.replace(self.info, degradation="the true kernel and noise level, told per cell",
                                        notes=self.info.notes + "; non-blind: told the true kernel (given-kernel "
                                        "configuration) and, with noise, the real-image noise setting")

    def _cell_config(self, told):
        cfg, kernels = self.cfg, None
        if told.get("kernel") is not None:
            from zssr.kernels import GridKernel

            # placed on ZSSR's grid for the grid it was applied on (unsaid: ZSSR's own, re-centred as before)
            grid = told.get("grid", "zssr")
            kernels = [told["kernel"] if grid == "zssr" else GridKernel(told["kernel"], grid)]
            cfg = cfg.replace(**GIVEN_KERNEL)
        if told.get("noise"):
            cfg = cfg.replace(**REAL_IMAGE, noise_std=told_noise_std(told["noise"]))
        return cfg, kernels

    def config(self):
        return {**super().config(), "told": list(self.told), "given_kernel": dict(GIVEN_KERNEL),
                "when_noisy": {**REAL_IMAGE, "noise_std": "told sigma / 255"}}


KERNELGAN_PAPER = ("Bell-Kligler, Shocher, Irani: Blind Super-Resolution Kernel Estimation using an Internal-GAN, "
                   "NeurIPS 2019")


class ZSSRKernelGAN(_ZSSRPreset):
    """Blind ZSSR: KernelGAN estimates the x2 kernel from the LR image alone (x4: the analytic kernel of two x2
    steps), then zssr-original runs with it in the given-kernel configuration as zssr-true-kernel runs with the true
    one (same random numbers), but on the preset's quick schedule (estimate_cfg: the full one learns the estimate's
    errors). No real-image noise on the sons (the setting of the paper's DIV2KRK numbers).

    An estimate that fails the shape checks (zssr.kernel_checks) sends the cell to the preset without a kernel source
    (bicubic, on its own schedule): baselines.kernel_decision. The decision and its reason are the cell's
    kernel-decision row.

    Keyword overrides named kernelgan_<field> set KernelGANConfig fields (e.g. kernelgan_max_iters=500), those named
    check_<field> KernelLimits fields (e.g. check_max_border_mass=0.3); the others ZSSRConfig fields, as for every
    preset."""

    name = "zssr-kernelgan"
    preset = "original"
    scales = (2, 4)
    seed_as = "zssr-original"
    # KernelGAN's seed is zssr-kernelgan's cell seed for every preset that asks, so that they share one estimate
    named_seeds = {"kernelgan": "zssr-original"}
    estimate_cache = None  # a baselines.kernel_estimates.EstimateCache set by the harness (None: the process's)
    # 1: noise of 2/255 on D's fake inputs (the release adds 1/255 there); 2: until the estimate was checked (a
    # rejected estimate is estimated again or replaced by bicubic: baselines.kernel_decision); 3: until ZSSR trained
    # on an estimate with the preset's quick schedule (estimate_cfg)
    version = "4"

    def __init__(self, profile: str = "paper", precision: str = "auto", **overrides: Any) -> None:
        from zssr.kernel_checks import KernelLimits
        from zssr.kernelgan import KernelGANConfig

        kgan = {k[len("kernelgan_"):]: overrides.pop(k) for k in list(overrides) if k.startswith("kernelgan_")}
        checks = {k[len("check_"):]: overrides.pop(k) for k in list(overrides) if k.startswith("check_")}
        super().__init__(profile, precision, **overrides)
        # ZSSR trains on an estimate with the preset's quick-profile schedule, at every profile: an estimate is
        # never exact, and the paper's schedule (up to 3000 iterations a step) learns its errors too, e.g. undoing
        # blur that a too-wide estimate claims and the image does not have (up to 1.5 dB below assuming bicubic on
        # 192-pixel crops), which the quick schedule's 150 iterations do not (issue 40; the evidence:
        # docs/experiments/2026-12-06-blind-kernel-decision.md). The bicubic fallback keeps the preset's own
        # schedule (self.cfg), and the caller's overrides win.
        self.estimate_schedule = {k: v for k, v in quick_reduction(self.preset).items() if k not in overrides}
        self.kgan = KernelGANConfig.preset("quick" if profile == "quick" else "paper").replace(**kgan)
        self.limits = KernelLimits().replace(**checks)
        self._kgan_request = self.kgan.precision
        quick = "; KernelGAN QUICK profile (1000 iterations, schedule compressed 3x)" if profile == "quick" else ""
        self.info = dataclasses.replace(
            self.info, degradation="estimated per image by KernelGAN (blind)", paper=f"{KERNELGAN_PAPER}; {PAPER}",
            notes=self.info.notes + "; blind: the kernel is estimated by KernelGAN (zssr.kernelgan) from the LR image, "
            "then used as a given kernel, ZSSR training on it with the preset's quick schedule; an estimate that fails "
            "the shape checks is replaced by bicubic (kernel-decision)" + quick)

    def choose_precision(self, device: torch.device) -> str:
        from zssr.kernelgan import kernelgan_precision

        precision = super().choose_precision(device)
        self.kgan = self.kgan.replace(precision=kernelgan_precision(self._kgan_request, device))
        return precision

    @property
    def estimate_cfg(self) -> ZSSRConfig:
        """What ZSSR trains with on an estimate (before the given-kernel settings): the preset's configuration, with
        the precision in force, on the quick schedule."""
        return self.cfg.replace(**self.estimate_schedule)

    def _cell_config(self, told):
        return self.estimate_cfg.replace(**GIVEN_KERNEL), None

    def _problem(self, frame, req, kernels=None):
        from zssr.kernelgan import analytic_x4

        if req.scale not in self.scales:
            raise ValueError(f"{self.name}: KernelGAN estimates x2 kernels (and x4 from them); x{req.scale} is not "
                             "supported, use scale 2 or 4")
        decision = self._decision(frame, int(req.seeds.get("kernelgan", req.seed)))

        def for_scale(k):
            return k if req.scale == 2 else analytic_x4(k)

        if decision.kernel_x2 is None:  # bicubic: the preset as it is, with the same random numbers
            problem, before = super()._problem(frame, req, kernels=None, config=self.cfg)
        else:
            problem, before = super()._problem(frame, req, kernels=[for_scale(decision.kernel_x2)])
        # each cell is charged the decision's full cost (every KernelGAN run it took), also when it reuses one made
        # for another cell; the kernel saved for the reports is the estimate the decision looked at last
        return problem, {**before, "seconds-kernel": decision.seconds, "kernel-reused": decision.reused,
                         "kernel": for_scale(decision.shown_x2), "kernelgan-config": self.kgan,
                         "kernelgan-runs": len(decision.seeds), "kernel-decision": decision.code,
                         "notes": {"kernel-decision": f"{decision.decision}: {decision.reason}"}}

    def _decision(self, frame: torch.Tensor, seed: int):
        """What the cell trains with (baselines.kernel_decision), made once per (LR image, KernelGAN configuration,
        seed, device kind, checks) and shared through the harness's cache with the estimates it looked at."""
        from baselines.kernel_decision import POLICY_VERSION, decide
        from baselines.kernel_estimates import estimate_key

        key = estimate_key(frame, {"kernelgan": self.kgan.replace(seed=seed).to_dict(), "checks": self.limits.to_dict(),
                                   "policy": POLICY_VERSION}, frame.device.type)
        return self._cache().decision(key, lambda: decide(seed, lambda s: self._estimate(frame, s), self.limits,
                                                          self.kgan.n_filtering))

    def _cache(self):
        from baselines.kernel_estimates import PROCESS_CACHE

        return self.estimate_cache if self.estimate_cache is not None else PROCESS_CACHE

    def _estimate(self, frame: torch.Tensor, seed: int):
        """KernelGAN's x2 kernel for `frame` with `seed`: computed once per (LR image, KernelGAN configuration,
        seed, device kind) and shared through the harness's cache (baselines.kernel_estimates)."""
        from baselines.kernel_estimates import estimate_key
        from zssr.kernelgan import estimate_kernel

        cfg = self.kgan.replace(seed=seed)
        report = self.on_progress

        def compute():
            est = estimate_kernel(frame, cfg, callback=(lambda it, _: report(it)) if report is not None else None)
            return est.kernel_x2, est.stats["seconds"], est.raw_kernel

        return self._cache().estimate(estimate_key(frame, cfg.to_dict(), frame.device.type), compute)

    def config(self):
        from baselines.kernel_decision import POLICY_VERSION

        return {**super().config(), "given_kernel": dict(GIVEN_KERNEL), "estimate_schedule": self.estimate_schedule,
                "kernelgan": self.kgan.to_dict(), "kernel_checks": self.limits.to_dict(),
                "kernel_policy": POLICY_VERSION}


# The registered presets: zssr.config's, less the per-cell overlays (baselines.zssr_presets). The ablation presets
# each change one thing from zssr-original on the way to zssr-modified.
PRESETS = preset_names()
# each preset's quick-profile overrides (tools and tests read them here)
QUICK_OVERRIDES: dict[str, dict[str, Any]] = {preset: quick_reduction(preset) for preset in PRESETS}
_CLASSES: dict[str, type] = {}


def preset_class(name: str) -> type[_ZSSRPreset]:
    """The method class of a registered name: "zssr-<preset>", or "zssr-<preset>+<kernel source>" (the kernel
    source overlay: baselines.zssr_presets.KERNEL_SOURCES), made once (the registry calls this lazily)."""
    if name in _CLASSES:
        return _CLASSES[name]
    preset, source = parse_kernel_source(name)
    base = {"bicubic": _ZSSRPreset, "true-kernel": ZSSRTrueKernel, "kernelgan": ZSSRKernelGAN}[source]
    if name == base.name:  # zssr-true-kernel, zssr-kernelgan: the original's, as they always were
        return base
    attrs = {"name": name, "preset": preset, "__module__": __name__,
             "__doc__": NOTES.get(preset, "") if source == "bicubic" else
             f"zssr-{preset} with kernel source {source}: {KERNEL_SOURCES[source]}; otherwise as {base.name}."}
    if source != "bicubic":
        attrs["seed_as"] = f"zssr-{preset}"  # the preset's random numbers: the two differ only in the kernel
    _CLASSES[name] = type(f"ZSSR[{preset}{'+' + source if source != 'bicubic' else ''}]", (base,), attrs)
    return _CLASSES[name]


__all__ = ["PRESETS", "QUICK_OVERRIDES", "ZSSRKernelGAN", "ZSSRTrueKernel", "preset_class"]
