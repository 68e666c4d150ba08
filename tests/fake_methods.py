"""Small methods for harness tests (registered under test-* names)."""
from __future__ import annotations

import torch.nn.functional as F

from baselines.api import Method, MethodInfo
from baselines.methods import METHODS

CALLS: list[tuple[str, int]] = []


class Nearest(Method):
    name = "test-nearest"
    info = MethodInfo(family="interpolation", training_data="none", degradation="none")

    def upscale(self, lr, scale):
        CALLS.append((self.name, scale))
        return F.interpolate(lr, scale_factor=scale, mode="nearest")


class InterruptAfter(Nearest):
    """Raises KeyboardInterrupt on its (budget+1)-th call, as a user pressing Ctrl-C would."""

    name = "test-interrupt"
    budget = 3

    def upscale(self, lr, scale):
        if sum(1 for n, _ in CALLS if n == self.name) >= InterruptAfter.budget:
            raise KeyboardInterrupt
        return super().upscale(lr, scale)


class Broken(Nearest):
    name = "test-broken"

    def upscale(self, lr, scale):
        raise RuntimeError("this method always fails")


class MissingWeights(Nearest):
    name = "test-missing-weights"

    def setup(self, device):
        from baselines.api import MethodUnavailable

        raise MethodUnavailable("weights file test.pth not found; run `make weights`")


class DieOnce(Nearest):
    """Kills its worker process the first time it runs a x3 cell (a marker file makes it happen once)."""

    name = "test-die-once"

    def upscale(self, lr, scale):
        import os
        from pathlib import Path

        marker = Path(os.environ["DIE_ONCE_MARKER"])
        if scale == 3 and not marker.exists():
            marker.write_text("died")
            os._exit(17)
        return super().upscale(lr, scale)


class Slow(Nearest):
    """Nearest, 0.4 s per cell: long enough to kill a run, or to start a second one, in the middle."""

    name = "test-slow"

    def upscale(self, lr, scale):
        import time

        time.sleep(0.4)
        return super().upscale(lr, scale)


class ToldSpy(Nearest):
    """A non-blind method: records what the harness tells it of each cell's degradation."""

    name = "test-told"
    told = ("kernel", "noise")
    RECEIVED: list[tuple] = []

    def set_degradation(self, kernel=None, noise=None):
        ToldSpy.RECEIVED.append((kernel, noise))


class RunSpy(Method):
    """A method written against run() alone: records each call's requests (seed, scale, told) and reports stats."""

    name = "test-run-spy"
    info = MethodInfo(family="interpolation", training_data="none", degradation="none")
    told = ("noise",)
    CALLS: list[list[tuple]] = []

    def run(self, requests):
        from baselines.api import Result

        RunSpy.CALLS.append([(r.seed, r.scale, dict(r.told)) for r in requests])
        return [Result(F.interpolate(r.lr, scale_factor=r.scale, mode="nearest"), {"iterations": 3})
                for r in requests]


class PrecisionSpy(Nearest):
    """A "network" method that resolves its precision like the real ones and records what it ran at."""

    name = "test-precision"
    RAN_AT: list[str] = []

    def choose_precision(self, device):
        from zssr.precision import resolve_precision

        self.precision = resolve_precision(self.precision_request, device)
        return self.precision

    def upscale(self, lr, scale):
        PrecisionSpy.RAN_AT.append(self.precision)
        return super().upscale(lr, scale)

    def config(self):
        return {"precision": self.precision}


class TinyNet(Method):
    """A pretrained-style network (conv 3->8, conv 8->3 s^2, pixel shuffle) exposing it for FLOP counting."""

    name = "test-tiny-net"
    info = MethodInfo(family="external", training_data="none (random weights)", degradation="none")

    def setup(self, device):
        import torch
        from torch import nn

        super().setup(device)
        torch.manual_seed(0)
        self.nets = {s: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3 * s * s, 3, padding=1),
                                      nn.PixelShuffle(s)).to(device) for s in (2, 3, 4)}

    def counted_network(self, scale):
        return self.nets[scale], 3

    def upscale(self, lr, scale):
        import torch

        with torch.no_grad():
            return self.nets[scale](lr).clamp(0, 1)


def _tiny_kernelgan() -> type:
    from baselines.zssr_method import ZSSRKernelGAN

    class TinyKernelGAN(ZSSRKernelGAN):
        """zssr-kernelgan with a few iterations of each network: the whole path through the harness, quickly."""

        name = "test-kernelgan"

        def __init__(self, profile: str = "quick", precision: str = "auto", **kwargs) -> None:
            super().__init__(profile, precision, max_iters=6, back_projection_iters=(1,), kernelgan_max_iters=4,
                             **kwargs)

    return TinyKernelGAN


def _tiny_fast_kernelgan() -> type:
    from baselines.zssr_method import preset_class

    class TinyFastKernelGAN(preset_class("zssr-fast+kernelgan")):
        """zssr-fast+kernelgan with test-kernelgan's KernelGAN configuration: the two share their estimates."""

        name = "test-fast-kernelgan"

        def __init__(self, profile: str = "quick", precision: str = "auto", **kwargs) -> None:
            super().__init__(profile, precision, max_iters=6, back_projection_iters=(1,), kernelgan_max_iters=4,
                             **kwargs)

    return TinyFastKernelGAN


def _tiny_zssr() -> type:
    from baselines.zssr_method import preset_class

    class TinyZSSR(preset_class("zssr-original")):
        """zssr-original with a few iterations on small crops: batched training through the harness, quickly."""

        name = "test-zssr"

        def __init__(self, profile: str = "quick", precision: str = "auto", **kwargs) -> None:
            super().__init__(profile, precision, max_iters=12, crop_size=16, back_projection_iters=(1,), **kwargs)

    return TinyZSSR


# `python -c CLI_CODE run ...`: the command line with these methods registered (tests of whole processes)
CLI_CODE = ("import sys; sys.path.insert(0, %r); import fake_methods; fake_methods.register()\n"
            "from bench.cli import main; sys.exit(main(sys.argv[1:]))" % str(__import__("pathlib").Path(__file__).parent))


def register() -> None:
    for cls in (Nearest, InterruptAfter, Broken, MissingWeights, DieOnce, Slow, ToldSpy, RunSpy, PrecisionSpy, TinyNet,
                _tiny_kernelgan(), _tiny_fast_kernelgan(), _tiny_zssr()):
        if cls.name not in METHODS:
            METHODS.register(cls.name, cls)


register()  # imported as a plugin (ZSSR_BENCH_PLUGINS=fake_methods) in workers too
