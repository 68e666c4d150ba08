"""The harness: exactly-once cells across interruption and resume; failure isolation; the CLI's exit code."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fake_methods
from bench.results import CELL_KEY, END_METRIC, read_results
from bench.runner import RunOptions, run

fake_methods.register()
REPO = Path(__file__).resolve().parent.parent


def _opts(folder, out, methods, **kw):
    kw.setdefault("metrics", ("psnr-y", "ssim-y"))
    kw.setdefault("scales", (2, 3))
    return RunOptions(dataset=str(folder), methods=methods, protocol="rgb", profile="quick", device="cpu", out=out,
                      **kw)


def _ends(df):
    return df[df.metric == END_METRIC]


def _metric_rows(df):
    return df[df.metric != END_METRIC]


def _cli(args, **kw):
    return subprocess.run([sys.executable, "-c", fake_methods.CLI_CODE, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300, **kw)


def test_interrupt_and_resume_exactly_once(folder, tmp_path):
    out = tmp_path / "run"
    fake_methods.CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        run(_opts(folder, out, ("test-nearest", "test-interrupt")), render=False)
    first = read_results(out / "results.csv")
    assert 0 < _ends(first).shape[0] < 20
    calls_before = list(fake_methods.CALLS)
    fake_methods.InterruptAfter.budget = 10**6
    try:
        summary = run(_opts(folder, out, ("test-nearest", "test-interrupt")), render=False)
    finally:
        fake_methods.InterruptAfter.budget = 3
    assert summary.ok
    df = read_results(out / "results.csv")
    assert len(_ends(df)) == df.groupby(CELL_KEY).ngroups == 5 * 2 * 2  # images x scales x methods
    assert (df.groupby(CELL_KEY + ["metric"]).size() == 1).all()  # no duplicated row
    # no finished cell was computed again: one call per cell in all (the interrupted call raised before counting)
    resumed_calls = fake_methods.CALLS[len(calls_before):]
    assert len(calls_before) + len(resumed_calls) == 20
    assert summary.n_done_before == len(_ends(first))


def test_failures_are_isolated_and_recorded(folder, tmp_path):
    (folder / "b" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "run"
    summary = run(_opts(folder, out, ("test-nearest", "test-broken", "test-missing-weights")), render=False)
    df = read_results(out / "results.csv")
    ends = _ends(df)
    errors, unavailable = ends[ends.status == "error"], ends[ends.status == "unavailable"]
    ok = df[df.metric == "psnr-y"]
    assert len(ok) == 5 * 2  # every good image with the working method
    assert set(errors.method) == {"test-nearest", "test-broken"}
    assert errors[errors.method == "test-nearest"].image.unique().tolist() == ["corrupt"]
    assert errors[errors.method == "test-broken"].note.str.contains("always fails").any()
    assert unavailable.method.unique().tolist() == ["test-missing-weights"]
    assert unavailable.note.str.contains("make weights").all()
    corrupt = errors[errors.image == "corrupt"]
    assert len(corrupt) == 4 and corrupt.note.str.contains("corrupt.png").all()
    assert len(summary.unavailable) == len(unavailable) == 2 * 6
    assert len(summary.failures) == len(errors)
    # the user named the unavailable method: the run fails for it too
    assert not summary.ok and summary.explicit_unavailable == ["test-missing-weights"]
    # bench.log: one line per cell, with its status, and the PSNR where there is one
    cell_lines = [line for line in (out / "bench.log").read_text().splitlines() if " INFO cell " in line]
    assert len(cell_lines) == len(ends)
    assert sum(": ok, " in line and " psnr-y " in line for line in cell_lines) == len(ok)
    assert any("corrupt x2 bicubic test-nearest: error" in line and "corrupt.png" in line for line in cell_lines)


def test_unavailable_default_method_does_not_fail_the_run(folder, tmp_path, monkeypatch):
    import bench.options as options_module

    monkeypatch.setitem(options_module.DEFAULT_METHODS, "quick", ["test-nearest", "test-missing-weights"])
    summary = run(_opts(folder, tmp_path / "u", ()), render=False)
    assert summary.ok and len(summary.unavailable) == 5 * 2 and not summary.explicit_unavailable
    df = read_results(tmp_path / "u" / "results.csv")
    assert _ends(df[df.method == "test-missing-weights"]).status.eq("unavailable").all()
    assert _metric_rows(df[df.method == "test-missing-weights"]).empty


def test_cli_exit_code_and_summary(folder, tmp_path):
    (folder / "b" / "corrupt.png").write_bytes(b"not an image")
    out = tmp_path / "cli"
    proc = _cli(["run", "--dataset", str(folder), "--methods", "test-nearest", "--scales", "2", "--device", "cpu",
                 "--out", str(out), "--metrics", "psnr-y", "--no-report"])
    assert proc.returncode == 1, proc.stderr
    assert "1 cell(s) failed" in proc.stderr and "corrupt" in proc.stderr


def test_killed_process_resumes_without_duplicates(folder, tmp_path):
    """SIGKILL in the middle of a run: the results file stays readable and the resumed run completes it."""
    out = tmp_path / "killed"
    args = ["run", "--dataset", str(folder), "--methods", "test-slow", "--scales", "2,3", "--device", "cpu",
            "--out", str(out), "--metrics", "psnr-y", "--no-report"]
    proc = subprocess.Popen([sys.executable, "-c", fake_methods.CLI_CODE, *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        df = read_results(out / "results.csv") if (out / "results.csv").exists() else None
        if df is not None and len(_ends(df)) >= 3:
            break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_ends(read_results(out / "results.csv")))
    assert 3 <= done_before < 10
    proc = _cli(args)
    assert proc.returncode == 0, proc.stderr
    assert f"({done_before} already done, {10 - done_before} run)" in proc.stdout
    df = read_results(out / "results.csv")
    assert len(_ends(df)) == 10 and (df.groupby(CELL_KEY + ["metric"]).size() == 1).all()


def test_timing_and_memory_rows(folder, tmp_path):
    out = tmp_path / "t"
    run(_opts(folder, out, ("test-nearest",)), render=False)
    df = read_results(out / "results.csv")
    metrics = set(df.metric)
    assert {"seconds-total", "seconds-train", "seconds-infer", "seconds-load", "peak-memory-mb",
            "memory-baseline-mb"} <= metrics
    assert (df[df.metric == "seconds-load"].groupby("method").size() == 1).all()
    # finding 12: on the CPU the peak is the process's resident set over the call (never 0), at least the baseline
    peak = df[df.metric == "peak-memory-mb"].set_index("image")["value"]
    base = df[df.metric == "memory-baseline-mb"].set_index("image")["value"]
    assert (peak > 50).all() and (peak >= base).all()
    assert (out / "run.json").exists()
    outputs = _ends(df).output
    assert outputs.str.startswith("sr/test-nearest/").all() and all((out / o).is_file() for o in outputs)


def test_time_budget_stops_starting_cells_and_resume_continues(folder, tmp_path, monkeypatch):
    import types

    import bench.executors as executors_module

    ticks = iter(range(10**6))  # a clock that advances 1 s at every reading: deterministic on any machine
    monkeypatch.setattr(executors_module, "time", types.SimpleNamespace(monotonic=lambda: float(next(ticks))))
    out = tmp_path / "budget"
    # deadline read at 0 s + 3.5 s; checks before cells read 1, 2, 3 (cells start), then 4: stop
    first = run(_opts(folder, out, ("test-nearest",), time_budget=3.5), render=False)
    assert (first.n_run, first.n_left) == (3, 7)  # 5 images x 2 scales
    second = run(_opts(folder, out, ("test-nearest",)), render=False)
    assert (second.n_done_before, second.n_run, second.n_left) == (3, 7, 0)
    with pytest.raises(ValueError, match="time budget"):
        run(_opts(folder, out, ("test-nearest",), time_budget=10, executor="local-gpus"), render=False)


def test_an_image_selection_runs_the_cells_a_whole_run_would(folder, tmp_path):
    """--images: only the named images run, with the identities and seeds of a run over the whole dataset (a
    seeded ZSSR gives the same numbers), and a later whole run into the same folder resumes them."""
    from bench.datasets import DatasetError

    out, whole_out = tmp_path / "part", tmp_path / "whole"
    part = run(_opts(folder, out, ("test-zssr",), scales=(2,), images=("b1", "a0")), render=False)
    assert (part.n_run, part.n_left) == (2, 0)
    part_rows = _metric_rows(read_results(out / "results.csv"))
    assert set(part_rows.image) == {"a0", "b1"}

    run(_opts(folder, whole_out, ("test-zssr",), scales=(2,)), render=False)
    whole_rows = _metric_rows(read_results(whole_out / "results.csv"))
    keys = CELL_KEY + ["metric"]
    quality = ["psnr-y", "ssim-y"]
    mine = part_rows[part_rows.metric.isin(quality)].set_index(keys)["value"].sort_index()
    theirs = whole_rows[whole_rows.metric.isin(quality) & whole_rows.image.isin(["a0", "b1"])]
    assert mine.to_dict() == theirs.set_index(keys)["value"].sort_index().to_dict()

    again = run(_opts(folder, out, ("test-zssr",), scales=(2,), images=("b1", "a0")), render=False)
    assert (again.n_done_before, again.n_run, again.notices) == (2, 0, [])
    resumed = run(_opts(folder, out, ("test-zssr",), scales=(2,)), render=False)
    assert (resumed.n_done_before, resumed.n_run) == (2, 3)
    assert any("images ['b1', 'a0'] -> []" in line for line in resumed.notices)
    assert len(_ends(read_results(out / "results.csv"))) == 5

    with pytest.raises(DatasetError, match=r"'imgs' has no image 'a9'; its images: a0, a1, a2, b0, b1"):
        run(_opts(folder, tmp_path / "typo", ("test-nearest",), images=("a0", "a9")), render=False)


def test_the_time_split_does_not_count_a_reused_kernel_estimate_twice():
    """Two cells share one KernelGAN estimate: each is charged its 100 s (its cost), but the session spent them
    once, so the share of wall time outside the methods is not negative."""
    import pandas as pd

    from bench.runner import _timing

    def cell(method, reused):
        base = {"image": "a", "degradation": "aniso-gaussian.v1", "scale": 2, "method": method}
        return [{**base, "metric": "seconds-total", "value": 110.0}, {**base, "metric": "seconds-kernel", "value": 100.0},
                {**base, "metric": "kernel-reused", "value": float(reused)}]

    rows = pd.DataFrame(cell("zssr-kernelgan", False) + cell("zssr-fast+kernelgan", True))
    timing = _timing(rows, n_run=2, cells_seconds=125.0, wall_seconds=125.0)
    assert timing["method_seconds"] == 120.0 and timing["outside_methods_share"] == 0.04
