"""The report layer is rendered from the run folder alone: it never loads torch or a network (DESIGN.md), kernel
figures included (their maths is zssr.kernel_math, numpy only)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def test_rendering_a_report_with_kernel_figures_loads_no_torch(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]
        import numpy as np
        from scipy.io import savemat
        from results_helpers import IMAGE_SHA, write_results

        import bench.report
        from bench.report import render_report
        from bench.results import Cell, estimated_kernel_path
        from pathlib import Path

        run = Path({str(tmp_path)!r}) / "run"
        run.mkdir()
        rows = [dict(dataset="d", image=image, scale=2, method="zssr-kernelgan", config_id="c", metric="psnr-y",
                     value=30.0) for image in ("a", "b")]
        write_results(run / "results.csv", rows)
        estimate = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
        for image in ("a", "b"):
            path = run / estimated_kernel_path(Cell("d", "", image, IMAGE_SHA, "bicubic", 2, "zssr-kernelgan", "c"))
            path.parent.mkdir(parents=True, exist_ok=True)
            savemat(path, {{"Kernel": estimate}})
        render_report(run)
        figures = sorted(p.name for p in run.rglob("kernels_*.png"))
        print("FIGURES", figures)
        print("TORCH", "torch" in sys.modules, sorted(m for m in sys.modules if m.startswith("zssr")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("FIGURES", "TORCH")))
    assert "kernels_d_x2" in lines["FIGURES"]  # the kernel code ran: a figure of true vs estimated kernels
    assert lines["TORCH"].startswith("False"), lines["TORCH"]
    assert "zssr.trainer" not in lines["TORCH"]


def test_the_numpy_kernel_maths_agrees_with_the_resampling_cubic():
    import numpy as np

    from zssr.kernel_math import cubic
    from zssr.resize import cubic as resize_cubic

    x = np.linspace(-3, 3, 601)
    assert np.array_equal(cubic(x), resize_cubic(x))  # the same function in both modules, exactly
