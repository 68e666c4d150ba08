#!/usr/bin/env python
"""Run the authors' released ZSSR code (TensorFlow 1) on a dataset image, to compare it with this port.

    python tools/released_zssr.py --checkout ~/src/ZSSR --tf-python ~/tfenv/bin/python \\
        --dataset set14 --images comic,face --seeds 0 [--released-lr] [--gradual]

Not part of the suite: it needs a checkout of github.com/assafshocher/ZSSR (nothing of it is in this repository)
and a Python with tensorflow (2.x, used through tf.compat.v1), opencv-python-headless, scipy and matplotlib. The
released code is Python 2; a copy of it in a temporary folder gets the few edits Python 3 needs (`py3_port`:
print calls, range, the integer division in its learning-rate policy, tf.compat.v1) and nothing else.

This script (in the project's environment) makes each image's LR (x2, or `--scale`) as the harness does (top-left
mod-crop, MATLAB bicubic, uint8), runs the released code on it in the TF interpreter (paper configuration: X2_ONE_JUMP_IDEAL_CONF or,
with --gradual, X2_GRADUAL_IDEAL_CONF; numpy and TF graph seeded with the seed), rounds the output to uint8 and scores
PSNR-Y / SSIM-Y with bench.metrics (`scale`-pixel border); a grey image runs as three equal channels and
scores their mean, as this port does. `--released-lr` feeds the checkout's own Set14 LR files
(SelfExSR's `img_0NN_SRF_2_LR.png`) instead. One JSON line per run on stdout.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.protocol import make_pair
from bench.images import load_image
from bench.metrics import psnr_y, ssim_y

# the checkout's img_001 ... img_014
SET14_ORDER = ["baboon", "barbara", "bridge", "coastguard", "comic", "face", "flowers", "foreman", "lenna", "man",
               "monarch", "pepper", "ppt3", "zebra"]

# What runs in the TF interpreter: argv = port folder, LR .npy, seed, conf name, output .npy, max_iters (0: conf's),
# scale
RUNNER = r"""
import sys, time, json
import numpy as np
port, lr_path, seed, conf_name, out_path, max_iters, scale = sys.argv[1:8]
seed, max_iters, scale = int(seed), int(max_iters), float(scale)
sys.path.insert(0, port)
import tensorflow.compat.v1 as tf
import configs, ZSSR
conf = getattr(configs, conf_name)
conf.save_results, conf.display_test_results, conf.display_every = False, False, 10**9
if max_iters:
    conf.max_iters = max_iters
if scale != 2:  # the x2 configuration's steps scaled to the target, as this port's original presets do
    conf.scale_factors = [[a * scale / 2, b * scale / 2] for a, b in conf.scale_factors]
build = ZSSR.ZSSR.build_network
def seeded_build(self, meta):
    with self.model.as_default():
        tf.set_random_seed(seed)
    build(self, meta)
ZSSR.ZSSR.build_network = seeded_build
np.random.seed(seed)
t = time.time()
net = ZSSR.ZSSR(np.load(lr_path).astype(np.float32) / 255.0, conf)
out = net.run()
seconds = time.time() - t
np.save(out_path, np.asarray(out, dtype=np.float32))  # in [0, 1]; rounded by the caller
print("RESULT " + json.dumps(dict(seconds=seconds, iterations=int(net.iter) + 1,
                                  lr_drops=[int(i) for i in net.learning_rate_change_iter_nums[1:]])))
"""


def py3_port(source: str, name: str) -> str:
    """The released file `name` with the edits Python 3 and TF 2's v1 API need; the algorithm is left as it is."""
    if name == "ZSSR.py":
        source = source.replace("import tensorflow as tf", "import tensorflow.compat.v1 as tf\ntf.disable_v2_behavior()")
        source = source.replace("xrange(", "range(").replace("tf.initialize_all_variables()",
                                                           "tf.global_variables_initializer()")
        # Python 2's 256 / 50 == 5: the policy fits the last 5 reconstruction errors
        source = source.replace("learning_rate_slope_range /\n", "learning_rate_slope_range //\n")
        # print statements (one of them spans two lines, ending in `else None)`)
        source = re.sub(r"^(\s*)print (.*?)(\n\s+if self\.mse else None\))$", r"\1print(\2\3)", source, flags=re.MULTILINE)
        source = re.sub(r"^(\s*)print (?!\()(.*)$", r"\1print(\2)", source, flags=re.MULTILINE)
    return source.replace("np.int(", "int(")  # np.int is gone from numpy


def make_port(checkout: Path, into: Path) -> None:
    for f in ("ZSSR.py", "configs.py", "utils.py", "imresize.py"):
        src = checkout / f
        if not src.is_file():
            raise SystemExit(f"{checkout} is not a ZSSR checkout ({f} missing): clone github.com/assafshocher/ZSSR")
        (into / f).write_text(py3_port(src.read_text(), f))


def load_pair(data: Path, dataset: str, name: str, released_lr: Path | None, scale: int = 2
              ) -> tuple[np.ndarray, np.ndarray]:
    """(mod-cropped HR, LR) as the harness makes them, or with the checkout's own (x2) LR file."""
    hr, lr = make_pair(load_image(data / dataset / "HR" / f"{name}.png"), scale, name)
    if released_lr is None:
        return hr, lr
    if dataset != "set14" or scale != 2:
        raise SystemExit("--released-lr: the checkout holds Set14 x2 inputs only")
    return hr, load_image(released_lr / "set14" / f"img_{SET14_ORDER.index(name) + 1:03d}_SRF_2_LR.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", type=Path, required=True, help="a clone of github.com/assafshocher/ZSSR")
    ap.add_argument("--tf-python", required=True, help="a Python with tensorflow, opencv, scipy, matplotlib")
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--dataset", default="set14")
    ap.add_argument("--images", required=True)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--gradual", action="store_true", help="the paper's 6 increments (X2_GRADUAL_IDEAL_CONF)")
    ap.add_argument("--released-lr", action="store_true", help="the checkout's Set14 LR files instead of ours")
    ap.add_argument("--max-iters", type=int, default=0, help="cap the iterations (a smoke run; 0: the paper's)")
    ap.add_argument("--scale", type=int, default=2, help="target scale: the x2 configuration's steps times scale / 2")
    args = ap.parse_args(argv)
    conf = "X2_GRADUAL_IDEAL_CONF" if args.gradual else "X2_ONE_JUMP_IDEAL_CONF"
    with tempfile.TemporaryDirectory() as tmp:
        port = Path(tmp) / "port"
        port.mkdir()
        make_port(args.checkout, port)
        (port / "runner.py").write_text(RUNNER)
        for name in args.images.split(","):
            hr, lr = load_pair(args.data, args.dataset, name, args.checkout if args.released_lr else None, args.scale)
            gray = lr.ndim == 2  # the released network takes 3 channels: grey in all three, the mean back (as ours)
            np.save(Path(tmp) / "lr.npy", np.repeat(lr[..., None], 3, axis=2) if gray else lr)
            for seed in (int(s) for s in args.seeds.split(",")):
                out = Path(tmp) / "sr.npy"
                run = subprocess.run([args.tf_python, str(port / "runner.py"), str(port), str(Path(tmp) / "lr.npy"),
                                      str(seed), conf, str(out), str(args.max_iters), str(args.scale)],
                                     capture_output=True, text=True, check=False)
                lines = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
                if run.returncode or not lines:
                    raise SystemExit(f"the released code failed on {name} (seed {seed}):\n{run.stderr[-3000:]}")
                sr = np.load(out).astype(np.float64)
                sr = np.clip(np.round((sr.mean(axis=2) if gray else sr) * 255.0), 0, 255).astype(np.uint8)
                print(json.dumps(dict(image=name, scale=args.scale, seed=seed, conf=conf,
                                      lr="released" if args.released_lr else "ours",
                                      psnr_y=round(psnr_y(sr, hr, args.scale), 4),
                                      ssim_y=round(ssim_y(sr, hr, args.scale), 5),
                                      **json.loads(lines[0][len("RESULT "):]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
