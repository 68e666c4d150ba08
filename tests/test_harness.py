"""The harness: exactly-once cells across interruption and resume; failure isolation; the CLI's exit code."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fake_methods
from bench.results import CELL_KEY, read_results
from bench.runner import RunOptions, run

fake_methods.register()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for cat, n in (("a", 3), ("b", 2)):
        (tmp_path / "imgs" / cat).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cat / f"{cat}{i}.png")
    return tmp_path / "imgs"


def _opts(folder, out, methods, **kw):
    return RunOptions(dataset=str(folder), methods=methods, scales=(2, 3), protocol="rgb", profile="quick",
                      device="cpu", out=out, metrics=("psnr-y", "ssim-y"), **kw)


def test_interrupt_and_resume_exactly_once(folder, tmp_path):
    out = tmp_path / "run"
    fake_methods.CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        run(_opts(folder, out, ("test-nearest", "test-interrupt")), render=False)
    first = read_results(out / "results.csv")
    assert 0 < first.groupby(CELL_KEY).ngroups < 20
    calls_before = list(fake_methods.CALLS)
    fake_methods.InterruptAfter.budget = 10**6
    try:
        summary = run(_opts(folder, out, ("test-nearest", "test-interrupt")), render=False)
    finally:
        fake_methods.InterruptAfter.budget = 3
    assert summary.ok
    df = read_results(out / "results.csv")
    cells = df.groupby(CELL_KEY).size()
    assert len(cells) == 5 * 2 * 2  # images x scales x methods
    assert (df.groupby(CELL_KEY + ["metric"]).size() == 1).all()  # no duplicated row
    # no finished cell was computed again: one call per cell in all (the interrupted call raised before counting)
    resumed_calls = fake_methods.CALLS[len(calls_before):]
    assert len(calls_before) + len(resumed_calls) == 20
    assert summary.n_done_before == first.groupby(CELL_KEY).ngroups


def test_failures_are_isolated_and_recorded(folder, tmp_path):
    (folder / "b" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "run"
    summary = run(_opts(folder, out, ("test-nearest", "test-broken", "test-missing-weights")), render=False)
    df = read_results(out / "results.csv")
    errors = df[df.metric == "error"]
    ok = df[df.metric == "psnr-y"]
    assert len(ok) == 5 * 2  # every good image with the working method
    assert set(errors.method) == {"test-nearest", "test-broken", "test-missing-weights"}
    assert errors[errors.method == "test-nearest"].image.unique().tolist() == ["corrupt"]
    assert errors[errors.method == "test-broken"].note.str.contains("always fails").any()
    assert errors[errors.method == "test-missing-weights"].note.str.contains("make weights").all()
    corrupt = errors[(errors.image == "corrupt") & (errors.method != "test-missing-weights")]
    assert len(corrupt) == 4 and corrupt.note.str.contains("corrupt.png").all()
    # a method that cannot run here is reported, not counted as a failure; the crashing cells are failures
    unavailable = errors[errors.method == "test-missing-weights"]
    assert len(summary.unavailable) == len(unavailable) == 2 * 6
    assert not summary.ok and len(summary.failures) == len(errors) - len(unavailable)


def test_unavailable_method_alone_does_not_fail_the_run(folder, tmp_path):
    summary = run(_opts(folder, tmp_path / "u", ("test-nearest", "test-missing-weights")), render=False)
    assert summary.ok and len(summary.unavailable) == 5 * 2
    df = read_results(tmp_path / "u" / "results.csv")
    assert df[df.method == "test-missing-weights"].metric.eq("error").all()


def test_cli_exit_code_and_summary(folder, tmp_path):
    (folder / "b" / "corrupt.png").write_bytes(b"not an image")
    out = tmp_path / "cli"
    code = (
        "import sys; sys.path.insert(0, %r); import fake_methods; fake_methods.register();"
        "from bench.cli import main; sys.exit(main(sys.argv[1:]))" % str(Path(__file__).parent)
    )
    proc = subprocess.run([sys.executable, "-c", code, "run", "--dataset", str(folder), "--methods", "test-nearest",
                           "--scales", "2", "--device", "cpu", "--out", str(out), "--metrics", "psnr-y",
                           "--no-report"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "1 cell(s) failed" in proc.stderr and "corrupt" in proc.stderr


def test_killed_process_resumes_without_duplicates(folder, tmp_path):
    """SIGKILL in the middle of a run: the results file stays readable and the resumed run completes it."""
    out = tmp_path / "killed"
    code = (
        "import sys, time; sys.path.insert(0, %r); import fake_methods; fake_methods.register();"
        "import torch.nn.functional as F\n"
        "def slow(self, lr, scale):\n    time.sleep(0.4); return F.interpolate(lr, scale_factor=scale, mode='nearest')\n"
        "fake_methods.Nearest.upscale = slow\n"
        "from bench.cli import main; sys.exit(main(sys.argv[1:]))" % str(Path(__file__).parent)
    )
    args = ["run", "--dataset", str(folder), "--methods", "test-nearest", "--scales", "2,3", "--device", "cpu",
            "--out", str(out), "--metrics", "psnr-y", "--no-report"]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        df = read_results(out / "results.csv") if (out / "results.csv").exists() else None
        if df is not None and df.groupby(CELL_KEY).ngroups >= 3:
            break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = read_results(out / "results.csv").groupby(CELL_KEY).ngroups
    assert 3 <= done_before < 10
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"({done_before} already done, {10 - done_before} run)" in proc.stdout
    df = read_results(out / "results.csv")
    assert df.groupby(CELL_KEY).ngroups == 10 and (df.groupby(CELL_KEY + ["metric"]).size() == 1).all()


def test_timing_rows_present(folder, tmp_path):
    out = tmp_path / "t"
    run(_opts(folder, out, ("test-nearest",)), render=False)
    df = read_results(out / "results.csv")
    metrics = set(df.metric)
    assert {"seconds-total", "seconds-train", "seconds-infer", "seconds-load", "peak-memory-mb"} <= metrics
    assert (df[df.metric == "seconds-load"].groupby("method").size() == 1).all()
    assert (out / "run.json").exists() and (out / "sr" / "test-nearest").is_dir()


def test_time_budget_stops_starting_cells_and_resume_continues(folder, tmp_path, monkeypatch):
    import time
    import types

    import bench.runner as runner_module

    ticks = iter(range(10**6))  # a clock that advances 1 s at every reading: deterministic on any machine
    monkeypatch.setattr(runner_module, "time",
                        types.SimpleNamespace(monotonic=lambda: float(next(ticks)), perf_counter=time.perf_counter))
    out = tmp_path / "budget"
    # deadline read at 0 s + 3.5 s; checks before cells read 1, 2, 3 (cells start), then 4: stop
    first = run(_opts(folder, out, ("test-nearest",), time_budget=3.5), render=False)
    assert (first.n_run, first.n_left) == (3, 7)  # 5 images x 2 scales
    second = run(_opts(folder, out, ("test-nearest",)), render=False)
    assert (second.n_done_before, second.n_run, second.n_left) == (3, 7, 0)
    with pytest.raises(ValueError, match="time budget"):
        run(_opts(folder, out, ("test-nearest",), time_budget=10, executor="local-gpus"), render=False)
