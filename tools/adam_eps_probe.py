#!/usr/bin/env python
"""Does it matter where Adam's epsilon goes? TF1's AdamOptimizer (the released ZSSR) against torch.optim.Adam (ours).

    python tools/adam_eps_probe.py --images bird --at 1,10,100,1000      # read the factor below during a run
    python tools/adam_eps_probe.py --placement tf1 --json docs/adam-eps-check.jsonl   # Set5 x2 trained the TF1 way
    python tools/adam_eps_probe.py --preset original-gradual --placement tf1 --json docs/adam-eps-check.jsonl

TF1 folds both bias corrections into the rate and adds epsilon to sqrt(v); torch divides by sqrt(v / bc2) and adds
epsilon after. Written on torch's scale, TF1's step is torch's with epsilon / sqrt(bc2) in place of epsilon
(bc2 = 1 - beta2^t). So for every weight the two steps differ by the factor

    (sqrt(v_hat) + eps) / (sqrt(v_hat) + eps / sqrt(bc2))      (TF1's step / torch's; <= 1)

This runs `zssr-original`'s configuration (one jump, the adaptive policy; `--preset original-gradual`: the six
increments, one network and optimizer across them as in the released code) on Set5 images and, at chosen iterations,
reads that factor off the optimizer's state for every weight that has had a gradient; it prints one JSON line per
(image, iteration): the smallest factor, its 0.1 % quantile and the share of weights whose step would shrink by
more than 1 %. With `--placement tf1` the run's optimizer is Adam with TF1's placement (torch's Adam with epsilon
replaced by epsilon / sqrt(bc2) before every step, the same update as tf.train.AdamOptimizer), and each image's
PSNR-Y, seconds and iterations go to `--json`: library seed 0, as tools/zssr_frontier.py's points, so the torch side
is the original's budget-3000 point of docs/zssr-frontier.jsonl (for the gradual preset there is no torch run at
library seed 0: compare with the harness's seeds in reports/reproduce/). `--at` counts iterations within each scale
step, so with the gradual preset a reading comes once per increment. Nothing here changes the trainer.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zssr_frontier import load_pair, to_uint8

from bench.metrics import psnr_y
from zssr import ZSSR, ZSSRConfig
from zssr.batched import ADAM_EPS  # torch's default epsilon, TF1's too
from zssr.precision import resolve_precision


def step_factors(opt: torch.optim.Optimizer) -> torch.Tensor:
    """TF1's step over torch's for every weight with a nonzero first moment (the others do not move in either)."""
    factors = []
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            bc2 = 1 - group["betas"][1] ** float(state["step"])
            root = (state["exp_avg_sq"].float() / bc2).sqrt()
            moving = state["exp_avg"].float() != 0
            factors.append(((root + ADAM_EPS) / (root + ADAM_EPS / bc2 ** 0.5))[moving])
    return torch.cat(factors)


class TF1Adam(torch.optim.Adam):
    """torch's Adam stepping as tf.train.AdamOptimizer: epsilon added to sqrt(v), the bias corrections in the rate."""

    def step(self, closure=None):
        for group in self.param_groups:
            group["tf1_step"] = group.get("tf1_step", 0) + 1
            group["eps"] = ADAM_EPS / math.sqrt(1 - group["betas"][1] ** group["tf1_step"])
        return super().step(closure)


class Probe(ZSSR):
    """ZSSR that keeps a handle on its optimizer (TF1's Adam where asked) so the callback can read its state."""

    def __init__(self, config: ZSSRConfig, placement: str) -> None:
        super().__init__(config)
        self.placement = placement

    def _optimizer(self, net, device):
        if self.placement == "tf1":
            self.opt = TF1Adam(net.parameters(), lr=self.config.learning_rate)
        else:
            self.opt = super()._optimizer(net, device)
        return self.opt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="baby,bird,butterfly,head,woman")
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    ap.add_argument("--preset", default="original", choices=("original", "original-gradual"))
    ap.add_argument("--placement", default="torch", choices=("torch", "tf1"), help="the optimizer the run trains with")
    ap.add_argument("--at", default="", help="iterations (1-based) at which to read the step factors, e.g. 1,100,1000")
    ap.add_argument("--json", type=Path, help="append one line per image (PSNR-Y, seconds, iterations) here")
    args = ap.parse_args(argv)
    at = {int(a) - 1 for a in args.at.split(",") if a.strip()}
    device = torch.device("cpu")
    precision = resolve_precision(args.precision, device)
    cfg = ZSSRConfig.preset(args.preset).replace(precision=precision, seed=0)
    for name in args.images.split(","):
        hr, lr = load_pair(name, 2)
        z = Probe(cfg, args.placement)

        def read(it, loss, lr_now, rec, name=name, z=z):
            if it in at:
                f = step_factors(z.opt)
                print(json.dumps({"image": name, "iteration": it + 1, "rate": lr_now, "weights": f.numel(),
                                  "min_factor": f.min().item(), "q001_factor": f.quantile(0.001).item(),
                                  "share_below_0.99": (f < 0.99).float().mean().item()}), flush=True)

        t0 = time.perf_counter()
        sr = z.upscale(lr, 2, callback=read)
        row = {"code": f"this port (library, {args.preset} preset, {precision}, Adam epsilon as {args.placement})",
               "dataset": "set5", "scale": 2, "mode": "gradual" if args.preset == "original-gradual" else "onejump",
               "image": name, "seed": 0, "psnr_y": round(psnr_y(to_uint8(sr), hr, 2), 4),
               "seconds": round(time.perf_counter() - t0, 1), "iterations": z.last_stats.get("iterations"),
               "restarts": len(z.last_stats.get("restarts", []))}
        print(json.dumps(row), flush=True)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
