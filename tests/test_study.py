"""Declared studies (bench/study.py, bench/report/study.py): run through the harness, resume, reuse, estimate, and
a document that regenerates byte for byte from the results alone."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch.nn.functional as F

import fake_methods
from baselines.api import MethodInfo
from baselines.methods import METHODS
from bench import study as st
from bench.results import read_results

fake_methods.register()
REPO = Path(__file__).resolve().parent.parent


class FakeInternal(fake_methods.Nearest):
    """Bilinear, labelled as internal learning (the family is what the study's contests read)."""

    name = "test-internal"
    info = MethodInfo(family="internal", training_data="none", degradation="none")

    def upscale(self, lr, scale):
        fake_methods.CALLS.append((self.name, scale))
        return F.interpolate(lr, scale_factor=scale, mode="bilinear", align_corners=False)


class FakeExternal(fake_methods.Nearest):
    """Bicubic, labelled as external learning."""

    name = "test-external"
    info = MethodInfo(family="external", training_data="none", degradation="none")

    def upscale(self, lr, scale):
        fake_methods.CALLS.append((self.name, scale))
        return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


for _cls in (FakeInternal, FakeExternal):
    if _cls.name not in METHODS:
        METHODS.register(_cls.name, _cls)


def _study(root: Path, folder: Path, name: str = "tiny", extra: str = "", methods=None,
           degradations=("bicubic", "aniso-gaussian")) -> Path:
    methods = methods or ["test-nearest", "test-internal", "test-external"]
    (root / "studies").mkdir(parents=True, exist_ok=True)
    path = root / "studies" / f"{name}.toml"
    path.write_text(f"""title = "tiny"
datasets = [{str(folder)!r}]
degradations = {list(degradations)!r}
scales = [2]
methods = {methods!r}
profile = "quick"
precision = "fp32"
seeds = [0]
metrics = ["psnr-y", "ssim-y"]
{extra}
""".replace("'", '"'))
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (p.name in ("results.csv", "run.json", "plan.json") or "docs" in p.parts)}


def _run(args, capsys) -> tuple[int, str]:
    code = st.main(args)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_study_runs_resumes_and_renders_byte_for_byte(folder, tmp_path, capsys):
    root = tmp_path / "repo"
    _study(root, folder)
    fake_methods.CALLS.clear()
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 0, out
    # one ordinary run folder per dataset x degradation x seed x method, each with its own run.json
    for deg in ("bicubic", "aniso-gaussian"):
        for method in ("test-nearest", "test-internal", "test-external"):
            run_dir = root / "reports" / "studies" / "tiny" / f"imgs-{deg}-seed0" / method
            df = read_results(run_dir / "results.csv")
            assert set(df["method"]) == {method} and (run_dir / "run.json").is_file()
            assert df[df.metric == "psnr-y"]["image"].nunique() == 5
    from collections import Counter
    # each method once per image and degradation (an external one also warms up once per session: +2)
    assert Counter(name for name, _ in fake_methods.CALLS) == {"test-nearest": 10, "test-internal": 10,
                                                               "test-external": 12}
    doc = root / "docs" / "studies" / "tiny.md"
    first = _files(root)
    assert doc.is_file() and (root / "docs" / "studies" / "tiny.html").is_file()
    assert (root / "docs" / "studies" / "tiny" / "frontier.png").is_file()

    # finished: a second run plans, finds everything done, runs nothing and changes no committed byte
    calls = len(fake_methods.CALLS)
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 0 and "nothing to run" in out
    assert len(fake_methods.CALLS) == calls
    assert _files(root) == first
    # render alone, twice: the same bytes (markdown, HTML and the figure)
    for _ in range(2):
        assert _run(["render", "tiny", "--root", str(root)], capsys)[0] == 0
        assert _files(root) == first
    # the crops of the largest disagreements need the SR images: a page beside the results, not in the document
    crops = root / "reports" / "studies" / "tiny" / "crops"
    assert (crops / "index.html").is_file() and len(list(crops.glob("*.png"))) == 2 * 3
    # as from a fresh checkout (no SR images, no inputs, no crops): the document's bytes are the same
    for path in list((root / "reports" / "studies" / "tiny").rglob("*")):
        if path.is_dir() and path.name in ("sr", "inputs", "crops", "kernels", "curves"):
            shutil.rmtree(path)
    assert _run(["render", "tiny", "--root", str(root)], capsys)[0] == 0
    assert _files(root) == first and not crops.exists()

    # the answer table's numbers are the paired differences of the rows: recompute one by hand
    rows = pd_rows(root, "bicubic")
    psnr = rows[rows.metric == "psnr-y"].pivot_table(index="image", columns="method", values="value")
    family = {"test-nearest": "interpolation", "test-internal": "internal", "test-external": "external"}
    best = psnr.mean().idxmax()
    contrast = {"internal": "external", "external": "internal"}.get(family[best])
    other = psnr.mean()[[m for m in psnr if (family[m] == contrast if contrast else family[m] != family[best])]].idxmax()
    diff = (psnr[best] - psnr[other]).to_numpy()
    from scipy import stats
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))
    text = doc.read_text()
    expected = f"+{diff.mean():.2f} [{diff.mean() - half:.2f}, {diff.mean() + half:.2f}]"
    line = next(line for line in text.splitlines() if line.startswith("| bicubic | ×2 | **all** |"))
    assert f"| {best} | " in line and expected in line and f"| {int((diff > 0).sum())}/5 |" in line, line
    assert "## Where internal learning wins, and where it loses" in text
    assert re.search(r"Under bicubic ×2, on psnr-y, internal learning is ahead of every external network on \d of 2 "
                     r"categories", text)


def test_cells_of_another_configuration_are_not_shown_but_named(folder, tmp_path, capsys):
    """A unit folder can hold cells computed before the method's version or options changed (another config_id):
    the document shows only the configuration the plan records, and says how many others it left out."""
    root = tmp_path / "repo"
    _study(root, folder, degradations=("bicubic",))
    assert _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)[0] == 0
    doc = root / "docs" / "studies" / "tiny.md"
    before = doc.read_text()
    results = root / "reports" / "studies" / "tiny" / "imgs-bicubic-seed0" / "test-internal" / "results.csv"
    lines = results.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    df = read_results(results)
    current = df["config_id"].iloc[0]
    image = df["image"].iloc[0]
    # one cell of the same method and image under an older configuration, with a number nobody could miss
    stale = [line.replace(current, "0ldc0nf1g0") for line in body
             if f",{image}," in line and current in line]
    stale = [re.sub(r",psnr-y,[^,]*,", ",psnr-y,87.654,", line) for line in stale]
    assert stale and any(",cell," in line for line in stale)
    results.write_text(header + "".join(body + stale))
    assert _run(["render", "tiny", "--root", str(root)], capsys)[0] == 0
    text = doc.read_text()
    assert "0ldc0nf1g0" in text and "87.65" not in text and "[0ldc0nf1g0]" not in text
    assert re.search(r"Not shown: 1 cell\(s\) of test-internal \[bicubic\] in `[^`]+` computed under another "
                     r"configuration \(0ldc0nf1g0\) than the study's \(" + current + r"\)", text)
    # everything else is what it was: the stale cell changed no number
    assert [line for line in text.splitlines() if "Not shown" not in line] == before.splitlines()


def pd_rows(root: Path, degradation: str):
    import pandas as pd

    frames = [read_results(p) for p in (root / "reports" / "studies" / "tiny").glob(f"imgs-{degradation}-seed0/*/results.csv")]
    return pd.concat(frames, ignore_index=True)


def test_another_machines_run_adds_its_costs_and_nothing_else(folder, tmp_path, capsys):
    """`run --out-root` (a lent GPU's run of the same study) writes its unit folders there and renders nothing;
    committed under reports/studies/<name>/machines/<label>/, the document gains a cost table, quality unchanged."""
    root = tmp_path / "repo"
    _study(root, folder, degradations=("bicubic",))
    assert _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)[0] == 0
    doc = root / "docs" / "studies" / "tiny.md"
    before = doc.read_text()
    assert "## Cost on other machines" not in before

    # a budget that is spent before the first unit: nothing starts, and it says how to go on
    other = tmp_path / "gpu-run"
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu", "--out-root", str(other),
                      "--time-budget", "0.5"], capsys)
    assert code == 0 and "time budget spent" in out and not list(other.rglob("results.csv"))
    # only some methods now (what the lent machine has weights for)
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu", "--out-root", str(other),
                      "--methods", "test-internal"], capsys)
    assert code == 0 and [p.parent.name for p in other.rglob("results.csv")] == ["test-internal"]
    code, out = _run(["run", "tiny", "--root", str(root), "--out-root", str(other), "--methods", "nope"], capsys)
    assert code == 2 and "--methods nope: not among the study's methods" in out
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu", "--out-root", str(other)], capsys)
    assert code == 0 and "not rendered" in out and doc.read_text() == before
    assert len(list(other.rglob("results.csv"))) == 3  # one unit folder per method, as at home
    # seconds made exact: 3 s per image here, 1.5 s there; there, one image's PSNR-Y 0.25 dB higher
    for base, seconds in ((root / "reports" / "studies" / "tiny", 3.0), (other, 1.5)):
        for path in base.rglob("results.csv"):
            df = read_results(path)
            df.loc[df.metric == "seconds-total", "value"] = seconds
            if base == other:
                df.loc[(df.metric == "psnr-y") & (df.image == sorted(set(df.image))[0]), "value"] += 0.25
            df.to_csv(path, index=False)
    assert _run(["render", "tiny", "--root", str(root)], capsys)[0] == 0
    before = doc.read_text()
    shutil.copytree(other, root / "reports" / "studies" / "tiny" / "machines" / "gpu-x")
    assert _run(["render", "tiny", "--root", str(root)], capsys)[0] == 0
    text = doc.read_text()
    section = text.split("## Cost on other machines", 1)[1].split("## Caveats", 1)[0]
    assert "**gpu-x**" in section
    lines = [line for line in section.splitlines() if line.startswith("| test-")]
    assert len(lines) == 3 and all(line.endswith("| bicubic | ×2 | 5 | 3 | 1.5 | 2.0× | +0.05 (0.25) |")
                                   for line in lines), lines
    assert text.split("## Cost on other machines")[0] == before.split("## Caveats")[0]  # the answer is untouched
    assert "Cost on other machines" in doc.with_suffix(".html").read_text()


def test_reused_cells_are_read_not_run_and_a_mismatch_is_refused(folder, tmp_path, capsys):
    from bench.options import RunOptions
    from bench.runner import run

    root = tmp_path / "repo"
    old = root / "reports" / "old-run"
    run(RunOptions(dataset=str(folder), methods=("test-internal",), scales=(2,), profile="quick", device="cpu",
                   out=old, precision="fp32", metrics=("psnr-y", "ssim-y")), render=False)
    _study(root, folder, degradations=("bicubic",),
           extra='[method."test-internal"]\nreuse = "reports/old-run"\n')
    fake_methods.CALLS.clear()
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 0, out
    assert not [c for c in fake_methods.CALLS if c[0] == "test-internal"]  # read from the old folder, not run
    assert not (root / "reports" / "studies" / "tiny" / "imgs-bicubic-seed0" / "test-internal").exists()
    text = (root / "docs" / "studies" / "tiny.md").read_text()
    assert "test-internal (bicubic ×2) is read from `reports/old-run`" in text
    # its rows are in the document, as those of the methods the study ran
    old_psnr = read_results(old / "results.csv").query("metric == 'psnr-y'")["value"].mean()
    assert re.search(rf"\| test-internal \| internal \| {old_psnr:.2f} ± ", text)

    # a reused cell whose identity differs (here its config id) is refused, never recomputed
    csv = old / "results.csv"
    cid = read_results(csv)["config_id"].iloc[0]
    lines = csv.read_text().splitlines(keepends=True)
    first_image = lines[1].split(",")[2]
    csv.write_text("".join(lines[:1] + [ln.replace(cid, "0000000000") if ln.split(",")[2] == first_image else ln
                                        for ln in lines[1:]]))
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 2 and "do not match what the study would compute" in out
    assert f"config_id 0000000000 there, {cid} here" in out
    assert not [c for c in fake_methods.CALLS if c[0] == "test-internal"]
    code, out = _run(["estimate", "tiny", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 0 and "1 reused cell(s) missing or different" in out
    # accepted on request: still not recomputed, and the document says they differ
    code, out = _run(["run", "tiny", "--accept-reuse-mismatch", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 0, out
    assert not [c for c in fake_methods.CALLS if c[0] == "test-internal"]
    assert "Reused cells of test-internal differ from what the study would compute (1, e.g." in \
        (root / "docs" / "studies" / "tiny.md").read_text()


def test_estimate_names_what_does_not_exist_yet_and_runs_nothing(folder, tmp_path, capsys):
    root = tmp_path / "repo"
    _study(root, folder, methods=["test-nearest", "zssr-fast+not-yet"], degradations=("bicubic", "realistic-later"))
    fake_methods.CALLS.clear()
    code, out = _run(["run", "tiny", "--dry-run", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 0, out
    assert "unknown method zssr-fast+not-yet (not registered yet)" in out
    assert "unknown degradation realistic-later (not registered yet)" in out
    assert fake_methods.CALLS == [] and not (root / "reports" / "studies").exists()
    # declared cells are still counted and estimated (a guess, labelled as such): 5 images x 2 degradations
    line = next(line for line in out.splitlines() if line.startswith("zssr-fast+not-yet"))
    assert line.split()[1:6] == ["10", "0", "0", "10", f"{10 * 60 / 3600:.2f}"] and "guess" in line
    # `run` runs what exists and says what it could not run
    code, out = _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)
    assert code == 1 and "not run: zssr-fast+not-yet" in out
    text = (root / "docs" / "studies" / "tiny.md").read_text()
    assert "Not run: zssr-fast+not-yet" in text


def test_stratified_subset_is_per_category_by_checksum_and_stated(folder, tmp_path, capsys):
    from bench.datasets import load_dataset

    root = tmp_path / "repo"
    _study(root, folder, degradations=("bicubic",), extra='[method."test-internal"]\nper_category = 1\n')
    study = st.load_study("tiny", root)
    unit = next(u for u in st.study_units(study) if u.method == "test-internal")
    images = load_dataset(str(folder)).images
    expected = sorted(min((im for im in images if im.category == c), key=lambda im: im.content_id).name
                      for c in ("a", "b"))
    assert list(unit.images) == expected and "1 image(s) per category" in unit.subset_rule
    assert _run(["run", "tiny", "--root", str(root), "--device", "cpu"], capsys)[0] == 0
    df = read_results(unit.out / "results.csv")
    assert sorted(set(df["image"])) == expected
    text = (root / "docs" / "studies" / "tiny.md").read_text()
    assert "test-internal (bicubic) ran on a declared subset: 1 image(s) per category" in text
    assert "(n=1)" in text or "(1)" in text  # the doc marks the smaller image count

    # restricted to categories: only their images (all of them without per_category); an unknown one is an error
    _study(root, folder, degradations=("bicubic",), extra='[method."test-internal"]\ncategories = ["b"]\n')
    unit = next(u for u in st.study_units(st.load_study("tiny", root)) if u.method == "test-internal")
    assert unit.images == ("b0", "b1") and unit.subset_rule == "categories b: 2 of 5 images"
    _study(root, folder, degradations=("bicubic",), extra='[method."test-internal"]\ncategories = ["c"]\n')
    with pytest.raises(ValueError, match="has no category c; its categories: a, b"):
        st.study_units(st.load_study("tiny", root))


def test_a_degradation_can_restrict_the_scales_of_every_method(folder, tmp_path):
    root = tmp_path / "repo"
    path = _study(root, folder, extra='[degradation."aniso-gaussian"]\nscales = [2]\n')
    path.write_text(path.read_text().replace("scales = [2]\nmethods", "scales = [2, 4]\nmethods"))
    study = st.load_study("tiny", root)
    scales = {(u.degradation, u.method): u.scales for u in st.study_units(study)}
    assert scales[("bicubic", "test-internal")] == (2, 4) and scales[("aniso-gaussian", "test-internal")] == (2,)
    # with a method rule that leaves no scale, the method has no unit under that degradation
    path.write_text(path.read_text() + '[method."test-external"]\nscales = [4]\n')
    units = st.study_units(st.load_study("tiny", root))
    assert [u.degradation for u in units if u.method == "test-external"] == ["bicubic"]
    for extra, message in (('[degradation."realistic"]\nscales = [2]\n', "not one of the study's degradations"),
                           ('[degradation."bicubic"]\nscales = [3]\n', r"scales \[3\] are not among"),
                           ('[degradation."bicubic"]\nfoo = 1\n', "declares `scales` only")):
        _study(root, folder, extra=extra)
        with pytest.raises(ValueError, match=message):
            st.load_study("tiny", root)


def test_a_method_can_declare_its_own_precision(folder, tmp_path):
    """E.g. reused cells computed at another precision than the study's: the method's rule says which."""
    root = tmp_path / "repo"
    _study(root, folder, extra='[method."test-internal"]\nprecision = "bf16"\n')
    units = {u.method: u for u in st.study_units(st.load_study("tiny", root)) if u.degradation == "bicubic"}
    study = st.load_study("tiny", root)
    assert units["test-internal"].options(study).precision == "bf16"
    assert units["test-external"].options(study).precision == "fp32"  # the study's
    _study(root, folder, extra='[method."test-internal"]\nprecision = "fp64"\n')
    with pytest.raises(ValueError, match="precision 'fp64': use auto, fp32, bf16, fp16"):
        st.load_study("tiny", root)


def test_bad_declarations_are_errors_naming_the_key(folder, tmp_path):
    root = tmp_path / "repo"
    _study(root, folder, extra='[method."test-internal"]\nscales = [3]\n')
    with pytest.raises(ValueError, match=r"scales \[3\] are not among the study's scales"):
        st.load_study("tiny", root)
    _study(root, folder, extra='[method."test-internal"]\nreuse = "reports/none"\n')
    with pytest.raises(ValueError, match="no results.csv there"):
        st.load_study("tiny", root)
    _study(root, folder, extra='typo = 1\n')
    with pytest.raises(ValueError, match="unknown key"):
        st.load_study("tiny", root)
    with pytest.raises(ValueError, match="no study 'absent'"):
        st.load_study("absent", root)


def test_committed_zssr_original_cells_match_the_study_on_every_machine(monkeypatch):
    """The study reuses reports/reproduce/categories-original-seed0 (bf16, as `auto` resolved on the machine that ran
    it) and declares that precision for the method: the identities match whether or not the machine has native
    bf16; declared `auto` instead, they would not match where it resolves to fp32 (every cell named as differing)."""
    import dataclasses

    import zssr.precision

    study = st.load_study("internal-vs-external", REPO)
    unit = next(u for u in st.study_units(study) if u.reused)
    assert unit.out == REPO / "reports" / "reproduce" / "categories-original-seed0" and unit.precision == "bf16"
    for native in (True, False):
        monkeypatch.setattr(zssr.precision, "native_bf16", lambda device, native=native: native)
        state = st.unit_state(study, unit, "cpu")
        assert state.status == "ready" and state.n_cells == 44 and state.problems == []
    state = st.unit_state(study, dataclasses.replace(unit, precision="auto"), "cpu")
    assert len(state.problems) == 44 and all("config_id 97c5d8b47f there" in p for p in state.problems)


def test_cost_model_measures_per_cell_and_per_megapixel_and_labels_guesses(tmp_path):
    from bench.study_cost import cell_seconds, measured_costs

    src = REPO / "reports" / "reproduce" / "categories-fast-seed0" / "results.csv"
    (tmp_path / "r").mkdir()
    shutil.copy(src, tmp_path / "r" / "results.csv")
    model = measured_costs(tmp_path)
    df = read_results(src)
    seconds = df[(df.metric == "seconds-total") & (df.method == "zssr-fast")]["value"]
    got, basis = cell_seconds(model, "zssr-fast", "paper", 2, "categories", "astronaut")
    assert got == pytest.approx(float(np.median(seconds))) and basis == "measured paper x2"
    got4, basis4 = cell_seconds(model, "zssr-fast", "paper", 4, "categories", "astronaut")
    assert got4 == got and "used at x4" in basis4
    kg, kg_basis = cell_seconds(model, "zssr-fast+kernelgan", "paper", 2, "categories", "astronaut")
    assert kg == 290.0 and kg_basis.startswith("guess: KernelGAN")  # the estimate, then a quick-schedule ZSSR
    told, told_basis = cell_seconds(model, "zssr-fast+true-kernel", "paper", 2, "categories", "astronaut")
    assert told == pytest.approx(got) and "(zssr-fast: measured paper x2)" in told_basis  # like zssr-fast
    none, none_basis = cell_seconds(model, "no-such", "paper", 2, "categories", "astronaut")
    assert none == 60.0 and none_basis.startswith("guess:")


def test_run_takes_the_cheapest_units_first(tmp_path):
    """A study stopped after a few hours holds every cheap method's answer, not a slice of an expensive one's."""
    from types import SimpleNamespace

    from bench.study_cost import measured_costs

    src = REPO / "reports" / "reproduce" / "categories-fast-seed0" / "results.csv"
    (tmp_path / "r").mkdir()
    shutil.copy(src, tmp_path / "r" / "results.csv")
    model = measured_costs(tmp_path)

    def state(method, n, status="ready"):
        unit = st.Unit("categories", "bicubic", 0, method, (2,), (), tmp_path / method, False, "", None)
        todo = [SimpleNamespace(cell=SimpleNamespace(image="astronaut", scale=2))] * n
        return st.UnitState(unit, status, todo=todo)

    states = [state("zssr-fast", 3), state("zssr-fast", 1), state("no-such", 0, "unknown-method"),
              state("zssr-fast", 0)]
    order = st.cheapest_first(states, model)
    assert [len(s.todo) for s in order] == [0, 0, 1, 3]
    assert order[0].status == "unknown-method"  # declared order kept among equals


TOLD_GAIN = {"test-internal-told": 2.0, "test-external-told": 1.0}  # PSNR-Y above test-external on every image


# zssr-fast+kernelgan minus zssr-fast per builtin image (kernel_sources=True); the image at index 5 fell back to bicubic
KERNELGAN_GAIN = np.array([1.0, 2.0, -0.4, 1.5, 0.5, 0.0, 0.8])


def _fixture_study(root: Path, told: bool = False, kernel_sources: bool = False) -> tuple[np.ndarray, list[str]]:
    """A committed-style study written by hand: results.csv and run.json of two methods on the 7 builtin images,
    with seconds and flops rows; returns the paired PSNR-Y differences (internal - external) and the images.
    told=True adds an internal and an external method told the kernel (non-blind), TOLD_GAIN dB above;
    kernel_sources=True adds zssr-fast and zssr-fast+kernelgan (KERNELGAN_GAIN above it, with kernel-decision rows)."""
    import json

    from bench.datasets import load_dataset
    from bench.results import COLUMNS, END_METRIC, ResultsWriter

    (root / "studies").mkdir(parents=True)
    methods = [("test-internal", "internal", 30.0, 2e12), ("test-external", "external", 1.0, 5e11)]
    if told:
        methods += [("test-internal-told", "internal", 30.0, 2e12), ("test-external-told", "external", 1.0, 5e11)]
    if kernel_sources:
        methods += [("zssr-fast", "internal", 30.0, 2e12), ("zssr-fast+kernelgan", "internal", 200.0, 3e13)]
    (root / "studies" / "fix.toml").write_text('datasets = ["builtin"]\ndegradations = ["bicubic"]\nscales = [2]\n'
                                              f'methods = {[m[0] for m in methods]!r}\nprofile = "quick"\n'
                                              .replace("'", '"'))
    images = load_dataset("builtin").images
    gains = np.array([0.5, 0.3, 0.4, -0.1, 0.2, 0.6, 0.1])
    for method, family, seconds, flops in methods:
        folder = root / "reports" / "studies" / "fix" / "builtin-bicubic-seed0" / method
        writer = ResultsWriter(folder / "results.csv")
        for k, im in enumerate(images):
            psnr = float(30 + 0.1 * k + (gains[k] if method == "test-internal" else TOLD_GAIN.get(method, 0.0))
                         + (KERNELGAN_GAIN[k] if method == "zssr-fast+kernelgan" else 0.0))
            base = dict(dataset="builtin", category=im.category, image=im.name, image_sha=im.content_id,
                        degradation="bicubic", scale=2, method=method, config_id=f"cfg-{family}", protocol="rgb",
                        profile="quick", native_scale="True", device="fixture CPU", session="s", output="", note="")
            writer.append([{**base, "metric": "psnr-y", "value": psnr, "status": "ok"},
                           {**base, "metric": "seconds-total", "value": seconds, "status": "ok"},
                           {**base, "metric": "flops", "value": flops, "status": "ok"},
                           *([{**base, "metric": "kernel-decision", "value": 2.0 if k == 5 else 0.0, "status": "ok"}]
                             if method == "zssr-fast+kernelgan" else []),
                           {**base, "metric": END_METRIC, "value": 3.0, "status": "ok"}])
        (folder / "run.json").write_text(json.dumps({
            "git_revision": "fixture", "device": {"type": "cpu", "name": "fixture CPU"},
            "degradations": [{"id": "bicubic", "spec": "bicubic"}],
            "methods": {method: {"precision": "fp32", "info": {"family": family}}},
            "methods_told": {method: "the LR image and the degradation's true kernel and noise (non-blind)"
                             if method in TOLD_GAIN else "the LR image only (blind)"}}))
    assert COLUMNS  # the writer validated every block against the columns
    return gains, [im.name for im in images]


def test_fixture_study_numbers_flops_and_sentences(tmp_path, capsys):
    from scipy import stats

    root = tmp_path / "repo"
    gains, images = _fixture_study(root)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    text = (root / "docs" / "studies" / "fix.md").read_text()
    first = _files(root)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    assert _files(root) == first  # byte for byte

    half = stats.t.ppf(0.975, len(gains) - 1) * gains.std(ddof=1) / math.sqrt(len(gains))
    interval = f"+{gains.mean():.2f} [{gains.mean() - half:.2f}, {gains.mean() + half:.2f}]"
    line = next(line for line in text.splitlines() if line.startswith("| bicubic | ×2 | **all** |"))
    # best on PSNR-Y: the internal method, at 30 s and 2 TFLOP per image; 6 of 7 images better
    assert line.startswith(f"| bicubic | ×2 | **all** | 7 | test-internal | internal | 30 | 2 | test-external | "
                           f"{interval} | 6/7 |"), line
    # per category (one image each): the one loss is the category of the image with a negative gain
    lost = images[int(np.argmin(gains))]
    assert "internal learning is ahead of every external network on 6 of 7 categories" in text
    assert "behind on 1 (by -0.10 dB; clearly on 0)" in text
    assert f"Over all images test-internal against test-external: {interval} dB (95 % interval), better on 6 of 7 " \
           "images, at 30 s against 1 s per image." in text
    assert "No plan.json" in text and "fixture CPU" in text and lost
    assert (root / "docs" / "studies" / "fix" / "frontier.png").is_file()


def test_kernel_source_effects_pair_each_source_with_its_preset(tmp_path, capsys):
    """What the kernel source does: zssr-fast+kernelgan against zssr-fast, paired per image, with the worst image
    and the cells that used the estimate; methods without a kernel source are not paired."""
    from scipy import stats

    root = tmp_path / "repo"
    _, images = _fixture_study(root, kernel_sources=True)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    text = (root / "docs" / "studies" / "fix.md").read_text()
    g = KERNELGAN_GAIN
    half = stats.t.ppf(0.975, len(g) - 1) * g.std(ddof=1) / math.sqrt(len(g))
    worst = images[int(np.argmin(g))]
    assert "## What the kernel source does" in text
    assert (f"- Under bicubic ×2, psnr-y: zssr-fast+kernelgan against zssr-fast: +{g.mean():.2f} "
            f"[{g.mean() - half:.2f}, {g.mean() + half:.2f}] dB, better on 5 of 7 images, worst -0.40 dB ({worst}); "
            "the estimate used on 6 of 7 cells, bicubic on 1.") in text, text
    assert "test-internal against" not in text.split("## What the kernel source does")[1].split("##")[0]
    html = (root / "docs" / "studies" / "fix.html").read_text()
    assert 'id="kernel-source"' in html and "zssr-fast+kernelgan against zssr-fast" in html


def test_no_kernel_source_section_without_kernel_sources(tmp_path, capsys):
    root = tmp_path / "repo"
    _fixture_study(root)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    assert "What the kernel source does" not in (root / "docs" / "studies" / "fix.md").read_text()


COMMITTED_DOCS = sorted((REPO / "docs" / "studies").glob("*.md"))


@pytest.mark.parametrize("doc", COMMITTED_DOCS, ids=[d.stem for d in COMMITTED_DOCS])
def test_committed_study_documents_are_current(doc, tmp_path):
    """Each committed docs/studies/<name>.md (and .html) is what its committed results render to, byte for byte,
    in a copy that holds only what git keeps (results.csv, run.json, plan.json, the declaration)."""
    from bench.report.study import render_study

    study = st.load_study(doc.stem, REPO)
    root = tmp_path / "repo"
    (root / "studies").mkdir(parents=True)
    shutil.copy(study.path, root / "studies" / study.path.name)
    folders = {u.out for u in st.study_units(study)}
    if study.machines_dir.is_dir():  # other machines' runs of the same cells (their costs are in the document)
        folders |= {p.parent for name in ("results.csv", "run.json") for p in study.machines_dir.rglob(name)}
    for folder in folders | {study.out_root}:
        for name in ("results.csv", "run.json", "plan.json"):
            if (folder / name).is_file():
                target = root / folder.relative_to(REPO) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(folder / name, target)
    render_study(st.load_study(doc.stem, root), crops=False)
    fresh = root / "docs" / "studies" / doc.name
    assert fresh.read_text() == doc.read_text(), f"{doc} is stale: run `make study STUDY={doc.stem} RENDER_ONLY=1`"
    assert fresh.with_suffix(".html").read_bytes() == doc.with_suffix(".html").read_bytes()


def test_readme_answer_block_is_the_overall_family_contest(tmp_path, capsys):
    """The README's answer table (tools/make_study_tables.py answer_block): per degradation and scale, the best
    internal method against the best external one over all images, the paired interval, wins and both costs."""
    import importlib.util

    from scipy import stats

    root = tmp_path / "repo"
    gains, _ = _fixture_study(root)
    spec = importlib.util.spec_from_file_location("make_study_tables", REPO / "tools" / "make_study_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    block = tables.answer_block("fix", root=root)
    half = stats.t.ppf(0.975, len(gains) - 1) * gains.std(ddof=1) / math.sqrt(len(gains))
    interval = f"+{gains.mean():.2f} [{gains.mean() - half:.2f}, {gains.mean() + half:.2f}]"
    assert (f"| bicubic | x2 | psnr-y | `test-internal` | `test-external` | {interval} | 6/7 | 30 / 1 | 2 / 0.5 |"
            in block.splitlines()), block
    assert "lpips-alex" not in block  # a metric the study has no rows of gets no row
    assert "no plan.json" in block and "the 7 images of `builtin` in 7 categories" in block
    assert "told the true kernel" not in block  # neither method is non-blind


def test_sentences_compare_methods_of_equal_knowledge(tmp_path, capsys):
    """Beside the best internal against the best external method, the document compares within equal knowledge:
    the methods told the kernel with each other, and the methods told nothing with each other."""
    root = tmp_path / "repo"
    gains, _ = _fixture_study(root, told=True)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    text = (root / "docs" / "studies" / "fix.md").read_text()
    # overall the told internal method wins (+1.00 dB over the told external one, on every image)
    assert "Over all images test-internal-told against test-external-told: +1.00 [1.00, 1.00] dB" in text
    # the told pair is the overall one (not repeated); the methods told nothing are compared with each other
    assert ("Within equal knowledge: told nothing, test-internal against test-external: +0.29 [0.06, 0.51] dB, "
            "better on 6 of 7 images.") in text, text
    assert f"{gains.mean():.2f}" == "0.29" and "told the kernel, " not in text


def test_a_method_without_flops_rows_is_named_in_the_caveats(tmp_path, capsys):
    """TFLOP n/a for one method (e.g. reused cells computed before FLOPs were counted) is said, not left silent."""
    from bench.results import read_results

    root = tmp_path / "repo"
    _fixture_study(root)
    path = root / "reports" / "studies" / "fix" / "builtin-bicubic-seed0" / "test-external" / "results.csv"
    rows = read_results(path)
    rows[rows["metric"] != "flops"].to_csv(path, index=False)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    text = (root / "docs" / "studies" / "fix.md").read_text()
    assert "No `flops` rows for test-external (cells computed before" in text
    assert "test-internal (cells" not in text


def test_seconds_from_another_machine_are_marked_and_named(tmp_path, capsys):
    """Cells timed on two CPUs (a study resumed on another machine): the seconds of a method that ran, even in part,
    elsewhere than most cells are marked in the answer, the sentences and the README block, and the caveats say
    which method, degradation and scales each other machine timed."""
    import importlib.util

    from bench.results import read_results

    root = tmp_path / "repo"
    _fixture_study(root)
    path = root / "reports" / "studies" / "fix" / "builtin-bicubic-seed0" / "test-internal" / "results.csv"
    rows = read_results(path)
    moved = rows["image"].isin(sorted(set(rows["image"]))[:3])
    rows.loc[moved, "device"] = "CPU (Other Xeon, AMX, 2 cores)"
    rows.to_csv(path, index=False)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    text = (root / "docs" / "studies" / "fix.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("| bicubic | ×2 | **all** |"))
    assert "| test-internal | internal | 30‡ | 2 |" in line, line
    assert "at 30‡ s against 1 s per image." in text
    assert "most were measured on fixture CPU" in text and "is how rows were labelled" not in text
    assert "Timed on CPU (Other Xeon, AMX, 2 cores): test-internal [bicubic ×2] (3 cell(s))." in text
    spec = importlib.util.spec_from_file_location("make_study_tables", REPO / "tools" / "make_study_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    block = tables.answer_block("fix", root=root)
    assert "| 30‡ / 1 |" in block and "on another machine than fixture CPU" in block

    rows.loc[moved, "device"] = "fixture CPU"  # one machine again: no mark anywhere
    rows.to_csv(path, index=False)
    assert _run(["render", "fix", "--root", str(root)], capsys)[0] == 0
    text = (root / "docs" / "studies" / "fix.md").read_text()
    assert "30‡" not in text and "Timed on" not in text and "‡" not in tables.answer_block("fix", root=root)


def test_cpu_rows_name_the_cpu_model_and_its_best_feature(monkeypatch, tmp_path):
    """Seconds of two CPUs are not comparable, so a CPU row names the model and its matrix-math feature."""
    import builtins

    import torch

    from bench import device as dev

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx2 fma\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx2 fma\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: real_open(cpuinfo if f == "/proc/cpuinfo" else f,
                                                                        *a, **k))
    monkeypatch.setattr(dev.os, "cpu_count", lambda: 2)
    assert dev.device_name(torch.device("cpu")) == "CPU (AMD EPYC 7B12, AVX2, 2 cores)"
    cpuinfo.write_text("model name\t: Intel(R) Xeon(R) Processor\nflags\t: avx2 avx512f avx512_bf16 amx_bf16\n")
    assert dev.cpu_model() == "Intel(R) Xeon(R) Processor, AMX"
    cpuinfo.unlink()  # no /proc/cpuinfo (another OS): the platform's name, no feature
    assert dev.cpu_model() in (dev.platform.processor() or dev.platform.machine(), "unknown CPU")


def test_cost_model_prefers_what_cells_cost_on_this_machine(tmp_path):
    """Two CPUs' seconds differ by 2x: where this machine has measured a method, its own seconds are the cost."""
    from bench.study_cost import cell_seconds, measured_costs

    src = REPO / "reports" / "reproduce" / "categories-fast-seed0" / "results.csv"
    rows = read_results(src)
    rows = rows[rows["method"] == "zssr-fast"]
    (tmp_path / "a").mkdir()
    rows.to_csv(tmp_path / "a" / "results.csv", index=False)
    (tmp_path / "c").mkdir()  # a method measured on the other CPU only
    rows.assign(method="zssr-elsewhere").to_csv(tmp_path / "c" / "results.csv", index=False)
    fast = rows[rows["scale"] == 2].copy()  # the same cells at half the seconds on "this" machine
    fast.loc[fast["metric"] == "seconds-total", "value"] /= 2
    fast["device"] = "CPU (This CPU, AMX, 2 cores)"
    (tmp_path / "b").mkdir()
    fast.to_csv(tmp_path / "b" / "results.csv", index=False)
    everywhere = cell_seconds(measured_costs(tmp_path), "zssr-fast", "paper", 2, "categories", "astronaut")[0]
    model = measured_costs(tmp_path, here="CPU (This CPU, AMX, 2 cores)")
    mine = fast[fast["metric"] == "seconds-total"]["value"]
    got, basis = cell_seconds(model, "zssr-fast", "paper", 2, "categories", "astronaut")
    assert got == pytest.approx(float(np.median(mine))) and got < everywhere and basis == "measured here paper x2"
    other, other_basis = cell_seconds(model, "zssr-elsewhere", "paper", 2, "categories", "astronaut")
    slow = rows[(rows["scale"] == 2) & (rows["metric"] == "seconds-total")]["value"]
    assert other == pytest.approx(float(np.median(slow))) and other_basis == "measured elsewhere paper x2"
    assert "'here': measured on this machine (CPU (This CPU, AMX, 2 cores))" in model.describe()
