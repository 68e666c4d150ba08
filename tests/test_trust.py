"""Issue 36 (a hostile-input probe): eight bugs and eleven weak spots, one regression test each. Tiny images and
`bicubic` only; every test here failed on the code before the fix (commit 143afa3)."""
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import datasets as ds
from bench import paths
from bench.results import COLUMNS, END_METRIC, Cell, ResultsError, ResultsWriter, input_paths, read_results, sr_path
from bench.runner import RunOptions, run

REPO = Path(__file__).resolve().parent.parent


def _images(folder: Path, names=("i0", "i1", "i2"), size=(24, 32), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def _opts(dataset, out, **kw):
    kw.setdefault("methods", ("bicubic",))
    kw.setdefault("scales", (2,))
    kw.setdefault("metrics", ("psnr-y",))
    return RunOptions(dataset=str(dataset), profile="quick", device="cpu", out=out, **kw)


def _inside(root: Path, rel: str) -> bool:
    return (root / rel).resolve().is_relative_to(root.resolve())


@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, run folder): bicubic x2 over three tiny images, run once for the tests that copy it."""
    base = tmp_path_factory.mktemp("trust")
    _images(base / "ds" / "cat1")
    out = base / "run"
    assert run(_opts(base / "ds", out), render=False).ok
    return base / "ds", out


def _copy_run(done_run, tmp_path) -> tuple[Path, Path]:
    data, out = done_run
    shutil.copytree(data, tmp_path / "ds")
    shutil.copytree(out, tmp_path / "run")
    return tmp_path / "ds", tmp_path / "run"


# -- bug 1: a dataset name is a path ------------------------------------------------------------------------------

def test_dataset_name_with_separators_is_not_loaded_as_a_definition(tmp_path):
    (tmp_path / "evil.toml").write_text('name = "evil"\nversion = "1"\n[[images]]\nname = "x"\ncategory = "c"\n'
                                        'file = "x.png"\n')
    relative = os.path.relpath(tmp_path / "evil", paths.DATASET_DEFS)
    with pytest.raises(ds.DatasetError, match="not a registered dataset name"):
        ds.load_dataset(relative)


def test_dataset_definition_with_escaping_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DATASET_DEFS", tmp_path)
    (tmp_path / "evil.toml").write_text(f'name = "evil"\nversion = "1"\n[[images]]\nname = "x"\ncategory = "c"\n'
                                        f'file = "{tmp_path / "victim.png"}"\npixels_sha256 = "{"0" * 64}"\n')
    with pytest.raises(ds.DatasetError, match="not a relative path"):
        ds.load_dataset("evil")


def test_cache_never_deletes_outside_the_cache(tmp_path, monkeypatch):
    """A declared file with a wrong checksum is a "corrupt cache entry"; one that points outside the cache (an
    absolute path, or a link) must never be deleted."""
    monkeypatch.setenv("ZSSR_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ZSSR_BENCH_DATA", raising=False)
    victim = _images(tmp_path / "victims", names=("victim",)) / "victim.png"
    wrong = "0" * 64
    absolute = ds.Dataset("evil", "1", "", (ds.DatasetImage("x", "c", str(victim), pixels_sha256=wrong),))
    with pytest.raises((ValueError, ds.DatasetError)):
        absolute.load(absolute.images[0])
    assert victim.is_file()
    link_dir = tmp_path / "cache" / "datasets" / "evil"
    link_dir.mkdir(parents=True)
    (link_dir / "x.png").symlink_to(victim)
    linked = ds.Dataset("evil", "1", "", (ds.DatasetImage("x", "c", "x.png", pixels_sha256=wrong),))
    with pytest.raises(ds.DatasetError):
        linked.load(linked.images[0])
    assert victim.is_file() and (link_dir / "x.png").is_symlink()


def test_names_from_a_dataset_stay_inside_the_run_folder(tmp_path):
    """An image or category or degradation called ../../../x writes its inputs inside the run folder."""
    cell = Cell("../../d", "../c", "../../../x", "0123456789abcdef", "../../deg", 2, "../../m", "cfg")
    for rel in (sr_path(cell), *input_paths(cell)):
        assert _inside(tmp_path, rel), rel


# -- bug 2: a relative checkpoint path writes outside --out -------------------------------------------------------

def test_checkpoint_method_name_stays_inside_the_run_folder(tmp_path):
    cell = Cell("d", "c", "img", "0123456789abcdef", "bicubic", 2, "checkpoint:../../../../evilckpt/a.pth", "cfg")
    assert _inside(tmp_path, sr_path(cell))
    assert paths.safe_component("checkpoint:../a.pth") != paths.safe_component("checkpoint:/a.pth")


# -- bug 3: a duplicated block is counted twice -------------------------------------------------------------------

def test_duplicated_block_counts_once_and_is_rewritten(done_run, tmp_path):
    data, out = _copy_run(done_run, tmp_path)
    results = out / "results.csv"
    lines = results.read_text().splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if f",{END_METRIC}," in line)
    results.write_text("".join(lines + lines[1:end + 1]))  # the first block appended again
    df = read_results(results)
    psnr = df[df.metric == "psnr-y"]
    assert len(psnr) == 3 and psnr.image.nunique() == 3  # one row per image: the mean is over 3 rows, not 4
    summary = run(_opts(data, out), render=False)
    assert summary.n_run == 0
    assert any("written twice" in n for n in summary.notices)
    assert len(results.read_text().splitlines()) == len(lines)  # rewritten without the repeat


# -- bug 4: rows of deleted or renamed images stay in the report --------------------------------------------------

def test_renamed_image_is_recognised_and_deleted_image_superseded(done_run, tmp_path):
    data, out = _copy_run(done_run, tmp_path)
    (data / "cat1" / "i0.png").rename(data / "cat1" / "renamed.png")
    (data / "cat1" / "i2.png").unlink()
    summary = run(_opts(data, out), render=False)
    assert summary.n_run == 0  # the renamed content is not computed again
    assert any("renamed" in n and "i0 -> renamed" in n for n in summary.notices)
    assert any("superseded.csv" in n for n in summary.notices)
    ends = read_results(out / "results.csv").query("metric == @END_METRIC")
    assert sorted(ends.image) == ["i1", "renamed"]
    assert set(read_results(out / "superseded.csv").image) == {"i2"}


# -- bug 5: two images share one crop file ------------------------------------------------------------------------

def test_images_whose_names_slug_alike_get_their_own_crops(tmp_path):
    from bench.report.crops import render_crops
    from bench.report.load import load_run

    data, out = _images(tmp_path / "ds", names=("a b", "a-b"), size=(40, 40)), tmp_path / "run"
    assert run(_opts(data, out), render=False).ok
    figures = render_crops(load_run(out), out / "crops")
    assert sorted(f.image for f in figures) == ["a b", "a-b"]
    assert len({f.path for f in figures}) == 2 and all(f.path.is_file() for f in figures)


# -- bug 6: orphaned workers ----------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc (Linux)")
def test_workers_die_with_their_killed_driver(tmp_path):
    """EXECUTOR=local-gpus with two CPU workers: SIGKILL the driver once cells are being written; both workers
    must exit within a few seconds (they used to wait on their inbox for ever)."""
    data = _images(tmp_path / "ds", names=[f"i{k:02d}" for k in range(24)], size=(24, 24))
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    driver = subprocess.Popen([sys.executable, "-m", "bench", "run", "--dataset", str(data), "--methods", "bicubic",
                               "--scales", "2,3,4", "--metrics", "psnr-y", "--device", "cpu", "--profile", "quick",
                               "--executor", "local-gpus", "--workers", "2", "--no-report", "--out", str(out)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            workers = [p for p in _children(driver.pid) if "spawn_main" in _cmdline(p)]
            results = out / "results.csv"
            if len(workers) == 2 and results.is_file() and f",{END_METRIC}," in results.read_text():
                break
            time.sleep(0.02)
        assert driver.poll() is None, "the run ended before the workers were busy; give it more cells"
        assert len(workers) == 2, "the two workers never started"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.05)
        assert not [p for p in workers if _alive(p)], "workers outlived their driver"
    finally:
        if driver.poll() is None:
            driver.kill()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


# -- bug 7: an --out inside the dataset folder is read back as images ----------------------------------------------

def test_run_folder_inside_the_dataset_is_skipped(done_run, tmp_path):
    data, _ = _copy_run(done_run, tmp_path)
    inner = data / "out"
    assert run(_opts(data, inner), render=False).ok  # the run folder lives inside the dataset
    again = ds.load_dataset(str(data))
    assert {im.category for im in again.images} == {"cat1"} and len(again.images) == 3
    assert any("run folder" in n and "out" in n for n in again.notes)


# -- bug 8: an empty --methods runs the default suite --------------------------------------------------------------

@pytest.mark.parametrize("value", [",", "", " , "])
def test_empty_method_list_is_an_error(value, capsys):
    from bench.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--methods", value])
    assert "empty list" in capsys.readouterr().err


# -- weak spots -----------------------------------------------------------------------------------------------------

def test_no_resume_moves_old_results_aside(done_run, tmp_path):
    data, out = _copy_run(done_run, tmp_path)
    before = (out / "results.csv").read_text()
    summary = run(_opts(data, out, resume=False), render=False)
    kept = list(out.glob("results.csv.*.bak"))
    assert len(kept) == 1 and kept[0].read_text() == before
    assert any("moved aside" in n and kept[0].name in n for n in summary.notices)


def test_non_empty_folder_that_is_not_a_run_folder_is_refused(done_run, tmp_path):
    data, _ = done_run
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a run folder.*--force-out"):
        run(_opts(data, foreign), render=False)
    assert run(_opts(data, foreign, force_out=True), render=False).ok
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_foreign_results_file_is_named_as_such(done_run, tmp_path):
    data, _ = done_run
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ResultsError, match="not a results table of this suite") as err:
        run(_opts(data, other), render=False)
    assert "earlier version" not in str(err.value)


def test_results_of_another_dataset_are_not_merged(done_run, tmp_path):
    _, out = _copy_run(done_run, tmp_path)
    second = _images(tmp_path / "second" / "c", names=("z0",), seed=5).parent
    with pytest.raises(ResultsError, match="belongs to another run.*'ds'"):
        run(_opts(second, out), render=False)


@pytest.mark.parametrize("argv", [["--out", ""], ["--out", "  "]])
def test_empty_out_is_refused_by_the_command_line(argv):
    from bench.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", *argv])


@pytest.mark.parametrize("out", ["/", "", "//"])
def test_root_or_empty_out_is_refused(out):
    with pytest.raises(ValueError, match="--out"):
        RunOptions(out=out if out == "" else Path(out))


@pytest.mark.parametrize("spec", ["noise:inf", "noise:1e400", "noise:nan", "jpeg:inf", "bicubic+noise:-inf"])
def test_non_finite_degradation_parameters_are_refused(spec):
    from bench.degradations import parse

    with pytest.raises(ValueError, match="degradation"):
        parse(spec)


@pytest.mark.parametrize("budget", [math.nan, math.inf, -math.inf])
def test_non_finite_time_budget_is_refused(budget):
    with pytest.raises(ValueError, match="time budget"):
        RunOptions(time_budget=budget)


def test_symlinked_category_is_followed_and_said(tmp_path):
    elsewhere = _images(tmp_path / "elsewhere" / "linked", names=("l0",), seed=3)
    data = _images(tmp_path / "ds" / "plain", names=("p0",)).parent
    (data / "linked").symlink_to(elsewhere, target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)  # a link back up is not walked (for ever)
    d = ds.load_dataset(str(data))
    assert sorted((im.category, im.name) for im in d.images) == [("linked", "l0"), ("plain", "p0")]
    assert any("followed 1 symlinked folder" in n and "linked" in n for n in d.notes)
    assert any("loop" in n for n in d.notes)


def test_rgba_alpha_and_raw_html_names(tmp_path):
    """RGBA: the alpha is said once (log and report notes), with no raw Python warning; raw HTML in image and
    category names is escaped in report.md as in index.html."""

    data = tmp_path / "ds"
    _images(data / "<em>cat", names=("<b>bold",))
    rgba = np.dstack([np.full((24, 32, 3), 90, np.uint8), np.full((24, 32), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(data / "<em>cat" / "alpha.png")
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        summary = run(_opts(data, out), render=True)
    assert summary.ok
    alpha_notes = [n for n in summary.notices if "alpha channel" in n]
    assert len(alpha_notes) == 1 and "alpha.png" in alpha_notes[0]
    assert (out / "bench.log").read_text().count("alpha channel") == 1
    md = (out / "report.md").read_text()
    assert "alpha channel" in md and "alpha channel" in (out / "index.html").read_text()
    assert "<b>bold" not in md and "<em>cat" not in md
    assert "&lt;b&gt;bold" in md and "&lt;em&gt;cat" in md


def test_results_with_a_byte_order_mark_are_read(done_run, tmp_path):
    _, out = _copy_run(done_run, tmp_path)
    results = out / "results.csv"
    plain = read_results(results)
    results.write_bytes(b"\xef\xbb\xbf" + results.read_bytes())
    assert read_results(results).equals(plain)
    ResultsWriter(results)  # the writer accepts it too, and rewrites it without the mark
    assert not results.read_bytes().startswith(b"\xef\xbb\xbf")


def test_report_of_a_header_only_results_file_says_no_cells(tmp_path, capsys):
    from bench.cli import main

    (tmp_path / "results.csv").write_text(",".join(COLUMNS) + "\n")
    assert main(["report", str(tmp_path)]) == 0
    assert "no cells" in capsys.readouterr().err
    md = (tmp_path / "report.md").read_text()
    assert "No cells" in md and "every cell finished" not in md


def test_fetching_is_announced_and_the_wait_counts_in_wall_time(done_run, tmp_path, monkeypatch, capsys):
    import urllib.request

    import bench.runner as runner
    from bench.fetch import DownloadError, http_get

    def black_hole(*_a, **_k):
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", black_hole)
    with pytest.raises(DownloadError):
        http_get("https://example.invalid/x.png", timeout=15)
    assert "fetching https://example.invalid/x.png" in capsys.readouterr().err

    slow_setup = 1.0
    build = runner.build_session

    def slow_build(options):  # a download during set-up (prepare() fetching weights)
        time.sleep(slow_setup)
        return build(options)

    monkeypatch.setattr(runner, "build_session", slow_build)
    data, out = _copy_run(done_run, tmp_path)
    summary = run(_opts(data, out, resume=False), render=False)
    assert summary.timing["wall_seconds"] >= summary.timing["cells_seconds"] + slow_setup


def test_explicit_batch_above_one_on_a_cpu_warns_with_the_measured_reason(done_run):
    from bench.session import build_session

    data, _ = done_run
    session = build_session(_opts(data, None, batch="2"))
    assert any("BATCH=2 on a CPU" in n and "6.96" in n and "3.21" in n for n in session.notices)
    assert not build_session(_opts(data, None)).notices  # auto: nothing to say


# -- the helper itself ----------------------------------------------------------------------------------------------

def test_safe_component_keeps_safe_names_and_separates_the_rest():
    assert paths.safe_component("baby") == "baby" and paths.safe_component("zssr-original") == "zssr-original"
    names = ["a b", "a-b", "a/b", "a\\b", "..", ".", "", "a:b", "café", "-x", "a..b"]
    made = [paths.safe_component(n) for n in names]
    assert len(set(made)) == len(made)
    for m in made:
        assert "/" not in m and "\\" not in m and m not in ("", ".", "..") and not m.startswith((".", "-"))
    clash = paths.unique_names(["x", "y"], lambda k: "same.png")
    assert len(set(clash.values())) == 2 and all(v.endswith(".png") for v in clash.values())
    assert clash == paths.unique_names(["x", "y"], lambda k: "same.png")  # deterministic
    assert paths.unique_names(["x"], lambda k: "only.png") == {"x": "only.png"}
