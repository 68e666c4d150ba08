"""tools/released_zssr.py's Python 3 port of the released ZSSR code: only the edits Python 3 and tf.compat.v1 need.

The released files are not in this repository; the snippet below copies the constructs of ZSSR.py that need an edit
(the full-file run, TensorFlow and the checkout are outside the suite).
"""
import ast
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.protocol import make_pair

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from released_zssr import load_pair, py3_port

RELEASED_LIKE = '''import tensorflow as tf
class Z:
    def train(self):
        for self.iter in xrange(self.conf.max_iters):
            if not self.iter % 20:
                print 'sf:', self.sf, ', iteration: ', self.iter
        self.init_op = tf.initialize_all_variables()
    def policy(self):
        [slope, _], [[var, _], _] = np.polyfit(self.mse_steps[-(self.conf.learning_rate_slope_range /
                                                                self.conf.run_test_every):], 1)
        print "learning rate updated: ", self.learning_rate
    def quick_test(self):
        if self.conf.display_test_results:
            print 'iteration: ', self.iter, ', true mse:', (self.mse[-1]
                                                           if self.mse else None)
        k = np.int(np.ceil(3.5))
'''


def test_the_port_parses_as_python3_and_keeps_python2_arithmetic():
    ported = py3_port(RELEASED_LIKE, "ZSSR.py")
    ast.parse(ported)  # the released text itself does not parse in Python 3
    assert "import tensorflow.compat.v1 as tf\ntf.disable_v2_behavior()" in ported
    assert "range(self.conf.max_iters)" in ported and "xrange" not in ported
    # 256 / 50 was 5 in Python 2: the policy's window must stay 5 points
    assert "learning_rate_slope_range //\n" in ported
    assert "print('sf:', self.sf, ', iteration: ', self.iter)" in ported
    assert 'print("learning rate updated: ", self.learning_rate)' in ported
    assert "if self.mse else None))" in ported
    assert "tf.global_variables_initializer()" in ported and "int(np.ceil(3.5))" in ported


def test_other_files_only_lose_np_int():
    text = "x = np.int(np.ceil(2.5))\ny = a / b\n"
    assert py3_port(text, "utils.py") == "x = int(np.ceil(2.5))\ny = a / b\n"


def test_inputs_at_other_scales_are_the_harness_pairs(tmp_path):
    hr = (np.random.default_rng(0).random((50, 38, 3)) * 255).astype(np.uint8)
    (tmp_path / "set5" / "HR").mkdir(parents=True)
    Image.fromarray(hr).save(tmp_path / "set5" / "HR" / "im.png")
    got_hr, got_lr = load_pair(tmp_path, "set5", "im", None, 4)
    want_hr, want_lr = make_pair(hr, 4, "im")
    assert got_lr.shape == (12, 9, 3) and np.array_equal(got_lr, want_lr) and np.array_equal(got_hr, want_hr)
    with pytest.raises(SystemExit, match="x2 inputs only"):
        load_pair(tmp_path, "set5", "im", tmp_path, 4)
