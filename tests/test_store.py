"""The results store and the checks around it: each test is one finding of the store's review (issue 12), which
gave wrong, doubled or stale numbers with exit code 0 before."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

import fake_methods
from bench.results import CELL_KEY, COLUMNS, END_METRIC, ResultsError, read_results
from bench.runner import RunOptions, run

fake_methods.register()
REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def _images(folder: Path, n=3, size=(48, 40), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def _opts(dataset, out, **kw):
    kw.setdefault("methods", ("test-nearest",))
    kw.setdefault("scales", (2,))
    kw.setdefault("metrics", ("psnr-y",))
    return RunOptions(dataset=str(dataset), profile="quick", device="cpu", out=out, **kw)


def _ends(df):
    return df[df.metric == END_METRIC]


def _cli(args):
    return subprocess.run([sys.executable, "-c", fake_methods.CLI_CODE, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def _calls() -> int:
    return sum(1 for name, _ in fake_methods.CALLS if name == "test-nearest")


# 1. a kernel is part of a cell's identity
def test_kernel_change_makes_new_cells(tmp_path):
    data, out = _images(tmp_path / "d"), tmp_path / "out"
    run(_opts(data, out), render=False)
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(float)
    savemat(tmp_path / "k.mat", {"Kernel": k / k.sum()})
    second = run(_opts(data, out, kernel=str(tmp_path / "k.mat")), render=False)
    assert (second.n_done_before, second.n_run) == (0, 3)
    df = read_results(out / "results.csv")
    psnr = df[df.metric == "psnr-y"].pivot(index="image", columns="degradation", values="value")
    assert len(psnr.columns) == 2 and "bicubic" in psnr.columns
    assert (psnr["bicubic"] != psnr.drop(columns="bicubic").iloc[:, 0]).all()  # other LR images, other numbers
    # the same kernel saved under another name is the same degradation: nothing to do
    savemat(tmp_path / "same.mat", {"Kernel": k / k.sum()})
    assert run(_opts(data, out, kernel=str(tmp_path / "same.mat")), render=False).n_run == 0


# 2. an image's content is part of a cell's identity
def test_changed_image_is_recomputed_and_its_old_rows_set_aside(tmp_path):
    data, out = _images(tmp_path / "d"), tmp_path / "out"
    run(_opts(data, out), render=False)
    before = read_results(out / "results.csv")
    Image.fromarray(np.full((48, 40, 3), 90, np.uint8)).save(data / "im1.png")
    fake_methods.CALLS.clear()
    summary = run(_opts(data, out), render=False)
    assert (summary.n_done_before, summary.n_run, _calls()) == (2, 1, 1)
    after = read_results(out / "results.csv")
    assert len(_ends(after)) == 3 and after.groupby(["image", "metric"]).size().eq(1).all()
    new = after[(after.image == "im1") & (after.metric == "psnr-y")].value.item()
    old = before[(before.image == "im1") & (before.metric == "psnr-y")].value.item()
    assert new != old
    superseded = read_results(out / "superseded.csv")
    assert set(superseded.image) == {"im1"} and any("content changed" in n for n in summary.notices)


# 3. key columns are text
def test_numeric_names_resume(tmp_path):
    data = _images(tmp_path / "2024")
    (data / "im0.png").rename(data / "007.png")
    out = tmp_path / "out"
    run(_opts(data, out), render=False)
    df = read_results(out / "results.csv")
    assert df.dataset.eq("2024").all() and "007" in set(df.image)
    again = run(_opts(data, out), render=False)
    assert (again.n_done_before, again.n_run) == (3, 0)
    assert len(read_results(out / "results.csv")) == len(df)


# 4. a request naming a scale or a method twice means it once
def test_duplicate_scales_and_methods_collapse(tmp_path):
    data, out = _images(tmp_path / "d", n=2), tmp_path / "out"
    fake_methods.CALLS.clear()
    summary = run(_opts(data, out, scales=(2, 2, 3), methods=("test-nearest", "test-nearest")), render=False)
    assert summary.n_cells == 4 and _calls() == 4
    assert read_results(out / "results.csv").groupby(CELL_KEY + ["metric"]).size().eq(1).all()


# 5. one writer per output folder
def test_two_concurrent_runs_give_each_cell_once(tmp_path):
    data, out = _images(tmp_path / "d", n=4), tmp_path / "out"
    args = ["run", "--dataset", str(data), "--methods", "test-slow", "--scales", "2,3", "--device", "cpu",
            "--out", str(out), "--metrics", "psnr-y", "--no-report"]
    procs = [subprocess.Popen([sys.executable, "-c", fake_methods.CLI_CODE, *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    df = read_results(out / "results.csv")
    assert len(_ends(df)) == 8 and df.groupby(CELL_KEY + ["metric"]).size().eq(1).all()
    outs = sorted(r[0] for r in results)
    assert any("(0 already done, 8 run)" in o for o in outs) and any("(8 already done, 0 run)" in o for o in outs)
    assert any("waiting for it to finish" in r[1] for r in results)


def test_no_wait_stops_with_a_clear_message(tmp_path):
    from bench.results import FolderBusy, exclusive

    out = tmp_path / "out"
    with exclusive(out):
        with pytest.raises(FolderBusy, match="being written by another run"):
            with exclusive(out, wait=False):
                pass
    with exclusive(out, wait=False):  # released: free again
        pass


# 6. cut lines, cut blocks and garbage lines
def test_cut_last_line_and_cut_block(tmp_path):
    data, out = _images(tmp_path / "d"), tmp_path / "out"
    run(_opts(data, out, metrics=("psnr-y", "ssim-y")), render=False)
    path = out / "results.csv"
    lines = path.read_text().splitlines(keepends=True)
    # the last cell's block loses its end row and half of the line before: a write killed mid-way
    cut = "".join(lines[:-1])
    path.write_text(cut[: len(cut) - 30])
    df = read_results(path)
    assert len(_ends(df)) == 2 and df.metric.isin(["psnr-y", "ssim-y", END_METRIC]).any()
    assert df.groupby(CELL_KEY).ngroups == 2  # the cut cell's surviving rows do not count
    proc = _cli(["report", str(out)])
    assert proc.returncode == 0, proc.stderr
    fake_methods.CALLS.clear()
    summary = run(_opts(data, out, metrics=("psnr-y", "ssim-y")), render=False)
    assert (summary.n_done_before, summary.n_run, _calls()) == (2, 1, 1)
    df = read_results(path)
    assert len(_ends(df)) == 3 and df.groupby(CELL_KEY + ["metric"]).size().eq(1).all()
    assert path.read_text().count("\n") == len(df) + 1  # the writer removed the cut block


def test_garbage_line_is_named_by_file_and_line(tmp_path):
    data, out = _images(tmp_path / "d"), tmp_path / "out"
    run(_opts(data, out), render=False)
    path = out / "results.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(3, "this,is,not,a,results,row\n")
    path.write_text("".join(lines))
    with pytest.raises(ResultsError, match=r"results.csv: line 4: 6 fields"):
        read_results(path)
    for args in (["report", str(out)], ["run", "--dataset", str(data), "--methods", "test-nearest", "--scales", "2",
                                        "--device", "cpu", "--out", str(out), "--metrics", "psnr-y"]):
        proc = _cli(args)
        assert proc.returncode == 2 and "results.csv: line 4" in proc.stderr and "Traceback" not in proc.stderr
    lines[3] = lines[4].replace(",psnr-y,", ",psnr-y,").replace(",ok,", ",okay,")
    path.write_text("".join(lines))
    with pytest.raises(ResultsError, match="line 4: status 'okay'"):
        read_results(path)


# 7. an added metric computes only that metric, from the saved output
def test_added_metric_is_computed_without_rerunning_the_method(tmp_path):
    data, out = _images(tmp_path / "d"), tmp_path / "out"
    run(_opts(data, out), render=False)
    fake_methods.CALLS.clear()
    summary = run(_opts(data, out, metrics=("psnr-y", "psnr-rgb")), render=False)
    assert (summary.n_run, summary.n_metrics_only, _calls()) == (3, 3, 0)
    df = read_results(out / "results.csv")
    assert len(_ends(df)) == 6  # two blocks per cell: the method's run, then the added metric
    assert df[df.metric != END_METRIC].groupby(CELL_KEY + ["metric"]).size().eq(1).all()
    assert df[df.metric == "psnr-rgb"].value.notna().all() and len(df[df.metric == "psnr-rgb"]) == 3
    # without saved outputs, the cell runs again whole (its old rows replaced, not doubled)
    out2 = tmp_path / "out2"
    run(_opts(data, out2, save_images=False), render=False)
    fake_methods.CALLS.clear()
    run(_opts(data, out2, save_images=False, metrics=("psnr-y", "psnr-rgb")), render=False)
    assert _calls() == 3
    assert read_results(out2 / "results.csv").groupby(CELL_KEY + ["metric"]).size().eq(1).all()


# 8. an image too small for LPIPS keeps its other metrics
def test_image_too_small_for_lpips(tmp_path):
    data, out = _images(tmp_path / "d", n=1, size=(24, 24)), tmp_path / "out"
    summary = run(_opts(data, out, metrics=("psnr-y", "lpips-alex")), render=False)
    assert summary.ok
    df = read_results(out / "results.csv").set_index("metric")
    assert np.isfinite(df.loc["psnr-y", "value"])
    assert np.isnan(df.loc["lpips-alex", "value"]) and df.loc["lpips-alex", "status"] == "n/a"
    assert "31 x 31" in df.loc["lpips-alex", "note"]


# 9. a method the user named that cannot run fails the run
def test_named_method_that_cannot_run(tmp_path):
    data = _images(tmp_path / "d", n=1)
    with pytest.raises(ValueError, match="missing.pth: no such file"):
        run(_opts(data, tmp_path / "o1", methods=("test-nearest", f"checkpoint:{tmp_path}/missing.pth")))
    (tmp_path / "random.pth").write_bytes(os.urandom(2048))
    with pytest.raises(ValueError, match="random.pth: cannot be read as a model"):
        run(_opts(data, tmp_path / "o2", methods=(f"checkpoint:{tmp_path}/random.pth",)))
    assert not (tmp_path / "o1" / "results.csv").exists()  # nothing ran
    proc = _cli(["run", "--dataset", str(data), "--methods", "test-nearest,test-missing-weights", "--scales", "2",
                 "--device", "cpu", "--out", str(tmp_path / "o3"), "--metrics", "psnr-y", "--no-report"])
    assert proc.returncode == 1 and "named in --methods" in proc.stderr


# 10. checks before any cell runs
def test_bad_options_are_errors_before_any_cell(tmp_path):
    data = _images(tmp_path / "d", n=1)
    fake_methods.CALLS.clear()
    with pytest.raises(ValueError, match="unknown metric 'foo'"):
        run(_opts(data, tmp_path / "o", metrics=("psnr-y", "foo")))
    with pytest.raises(ValueError, match="missing.mat"):
        run(_opts(data, tmp_path / "o", kernel=str(tmp_path / "missing.mat")))
    (tmp_path / "notmat.mat").write_bytes(b"no")
    with pytest.raises(ValueError, match="notmat.mat"):
        run(_opts(data, tmp_path / "o", kernel=str(tmp_path / "notmat.mat")))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        run(_opts(data, tmp_path / "afile"))
    with pytest.raises(ValueError, match="cuda"):
        run(_opts(data, tmp_path / "o").replace(device="cuda:7" if not _cuda() else "tpu"))
    assert _calls() == 0
    for args, expect in ((["--metrics", "foo"], "unknown metric"), (["--out", str(tmp_path / "afile")], "not a folder"),
                         (["--kernel", "/missing.mat"], "/missing.mat")):
        proc = _cli(["run", "--dataset", str(data), "--methods", "test-nearest", "--device", "cpu", *args])
        assert proc.returncode == 2 and expect in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_output_folder_that_cannot_be_made(tmp_path):
    data = _images(tmp_path / "d", n=1)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="afile/sub: cannot write there"):
        run(_opts(data, tmp_path / "afile" / "sub"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_folder(tmp_path):
    data = _images(tmp_path / "d", n=1)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot write there"):
            run(_opts(data, locked / "out"))
    finally:
        locked.chmod(0o700)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# 11. inputs: hidden files, GIFs, an empty dataset name
def test_hidden_files_skipped_gif_read_empty_name_refused(tmp_path):
    data = _images(tmp_path / "d", n=2)
    (data / "._im0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (data / ".ipynb_checkpoints").mkdir()
    _images(data / ".ipynb_checkpoints", n=1)
    (data / "notes.txt").write_text("not an image")
    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(data / "anim.gif", save_all=True, append_images=frames[1:])
    summary = run(_opts(data, tmp_path / "out"), render=False)
    df = read_results(tmp_path / "out" / "results.csv")
    assert sorted(set(df.image)) == ["anim", "im0", "im1"] and set(df.category) == {"d"}
    assert summary.ok and any("skipped 3 file(s)" in n and "notes.txt" in n for n in summary.notices)
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="no dataset given"):
            run(_opts(empty, tmp_path / "o"))


# 13 and 12 (report side): exclusions are said; memory is never "best"
def test_report_states_what_a_mean_leaves_out(tmp_path):
    data = _images(tmp_path / "d", n=3)
    Image.fromarray(np.full((48, 40, 3), 77, np.uint8)).save(data / "flat.png")  # nearest upscaling is exact: inf
    summary = run(_opts(data, tmp_path / "out", methods=("test-nearest", "bicubic")))
    md = summary.report["markdown"].read_text()
    assert "(n=3)" in md and "test-nearest, psnr-y: the mean is over 3 of 4 images; left out: 1 inf (flat)" in md
    html = summary.report["html"].read_text()
    import re

    memory_classes = re.findall(r'<td class="([^"]*)" data-metric="peak-memory-mb"', html)
    assert memory_classes and not any("best" in c for c in memory_classes)
    assert re.findall(r'<td class="([^"]*)" data-metric="psnr-y"', html).count("best") >= 1


# 14. a resumed run that computes nothing says so
def test_resumed_run_with_nothing_to_do(tmp_path):
    data, out = _images(tmp_path / "d", n=2), tmp_path / "out"
    args = ["run", "--dataset", str(data), "--methods", "test-nearest", "--scales", "2", "--device", "cpu", "--out",
            str(out), "--metrics", "psnr-y", "--no-report"]
    assert _cli(args).returncode == 0
    proc = _cli(args + ["--workers", "1"])
    assert proc.returncode == 0 and "nothing to run" in proc.stdout and "%" not in proc.stdout
    assert "options differ from this folder's previous run (workers None -> 1)" in proc.stderr


# identity: method version and configuration
def test_method_version_is_part_of_identity(tmp_path, monkeypatch):
    data, out = _images(tmp_path / "d", n=2), tmp_path / "out"
    run(_opts(data, out), render=False)
    monkeypatch.setattr(fake_methods.Nearest, "version", "2")
    assert run(_opts(data, out), render=False).n_run == 2


def test_results_header_of_an_older_version_is_refused_clearly(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("dataset,category,image,scale,method,config_id,protocol,profile,metric,value,native_scale,device,note\n")
    with pytest.raises(ResultsError, match="earlier version"):
        read_results(path)
    assert COLUMNS[:3] == ["dataset", "category", "image"]


# 15. installed without -e, run from anywhere
@pytest.mark.slow
def test_installed_copy_runs_from_any_directory(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(REPO)], check=True, capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{TESTS}"}
    proc = subprocess.run([sys.executable, "-m", "bench", "list"], capture_output=True, text=True, cwd=elsewhere,
                          env=env, timeout=300)
    assert proc.returncode == 0 and "set14" in proc.stdout and "builtin" in proc.stdout, proc.stderr
    data = _images(tmp_path / "imgs", n=1)
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--dataset", str(data), "--methods", "bicubic",
                           "--scales", "2", "--device", "cpu", "--metrics", "psnr-y"], capture_output=True, text=True,
                          cwd=elsewhere, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "reports" / "imgs" / "quick-rgb" / "results.csv").is_file()
    assert (elsewhere / "reports" / "imgs" / "quick-rgb" / "index.html").is_file()
    assert not (target / "reports").exists()


def test_method_tables_and_registry_agree():
    """The pretrained baselines and the ZSSR presets are tables; the registry names exactly their entries."""
    from baselines.methods import METHODS, PRETRAINED_NAMES, ZSSR_PRESETS, create_method
    from baselines.pretrained import PRETRAINED
    from baselines.zssr_method import QUICK_OVERRIDES

    assert set(PRETRAINED) == set(PRETRAINED_NAMES) and set(QUICK_OVERRIDES) == set(ZSSR_PRESETS)
    for name in PRETRAINED_NAMES:
        method = create_method(name)
        assert method.name == name and method.info is PRETRAINED[name].info
        assert method.weights == PRETRAINED[name].weights and METHODS.resolve(name) is type(method)
    for preset in ZSSR_PRESETS:
        method = create_method(f"zssr-{preset}", profile="quick")
        assert method.preset == preset and method.cfg.max_iters == QUICK_OVERRIDES[preset]["max_iters"]


def test_numpy_floats_are_written_as_numbers(tmp_path):
    """A value that is a numpy float (numpy 2 reprs it as "np.float64(...)") is written as the number itself and
    read back equal."""
    from bench.results import _line

    line = _line({"value": np.float64(25.125), "scale": 2})
    assert "np." not in line and "25.125" in line
    assert _line({"value": np.float32(0.5)}) == _line({"value": 0.5})
