"""bench.report: rendering report.md and index.html from a synthetic run folder (fast, CPU, tmp_path only)."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.report import render_report

from bench.results import COLUMNS, Cell, curve_path, input_paths, sr_path
from results_helpers import IMAGE_SHA, write_results

METHODS = {
    "bicubic": "interpolation",
    "zssr-original": "internal",
    "zssr-modified": "internal",
    "realesrgan-x4plus": "external",
    "dat-x4": "external",
}
CATEGORIES = {"faces": ["face1", "face2"], "text": ["text1", "text2", "text3"], "solo": ["lonely"]}
FAILURE = ("zssr-modified", "text2", 4, "CUDA out of memory | tried to allocate 2 GiB")
QUALITY = ["psnr-y", "ssim-y", "psnr-rgb", "lpips-alex", "niqe"]
HR_SIZE = 48


def _spec():
    from bench.metrics import METRIC_TABLE

    return {k: v.to_json() for k, v in METRIC_TABLE.items()}


def make_run(root: Path, profile: str = "quick", protocol: str = "rgb", scales: tuple[int, ...] = (2, 4)) -> Path:
    """A small run folder: 6 images in 3 categories (one with a single image), x2 and x4, 5 methods,
    one failed cell, one NaN value, dat-x4 absent at x2, realesrgan at a non-native scale at x2,
    ZSSR curves for some images, one missing SR output."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows, outputs = [], {}
    yy, xx = np.mgrid[0:HR_SIZE, 0:HR_SIZE]
    for category, images in CATEGORIES.items():
        for k, image in enumerate(images):
            base = (128 + 60 * np.sin(xx / (3 + k)) * np.cos(yy / 5)).clip(0, 255)
            hr = np.stack([base, base[::-1], base.T], axis=-1).astype(np.uint8)
            for scale in scales:
                hr_rel, lr_rel = input_paths(Cell("synth", category, image, IMAGE_SHA, "bicubic", scale, "", ""))
                (root / hr_rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(hr).save(root / hr_rel)
                Image.fromarray(hr[::scale, ::scale]).save(root / lr_rel)
                for j, (method, family) in enumerate(METHODS.items()):
                    cell = Cell("synth", category, image, IMAGE_SHA, "bicubic", scale, method, f"{method}-cfg")
                    if method == "dat-x4" and scale == 2:
                        continue
                    common = {"dataset": "synth", "category": category, "image": image, "scale": scale,
                              "method": method, "config_id": f"{method}-cfg", "protocol": protocol,
                              "profile": profile, "device": "cpu", "note": "",
                              "native_scale": "False" if (method == "realesrgan-x4plus" and scale == 2) else "True"}
                    if (method, image, scale) == FAILURE[:3]:
                        rows.append({**common, "metric": "error", "value": "", "note": FAILURE[3]})
                        continue
                    noise = rng.normal(0, 4 + 3 * j, size=hr.shape)
                    noise[10:26, 10:26] *= 1 + 2 * j  # a region where the methods differ most
                    sr = np.clip(hr + noise, 0, 255).astype(np.uint8)
                    if not (method == "dat-x4" and image == "face2"):
                        (root / sr_path(cell)).parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(sr).save(root / sr_path(cell))
                        outputs[(method, image, scale)] = sr_path(cell)
                    values = {
                        "psnr-y": 30 - 2 * math.log2(scale) + rng.normal(0, 1) + (1.5 if family == "internal" else 0),
                        "ssim-y": 0.9 - 0.02 * j + rng.normal(0, 0.01),
                        "psnr-rgb": 29 - 2 * math.log2(scale) + rng.normal(0, 1),
                        "lpips-alex": 0.2 + 0.03 * j + rng.normal(0, 0.02),
                        "niqe": float("nan") if (method == "bicubic" and image == "text3") else 5 + rng.normal(0, 1),
                        "seconds-total": (0.01 if family == "interpolation" else 30 if family == "internal" else 2)
                                         * (1 + rng.uniform(0, 0.5)),
                        "peak-memory-mb": 100 + 50 * j + rng.uniform(0, 20),
                    }
                    if family == "internal":
                        values["iterations"] = 500
                        values["seconds-train"] = values["seconds-total"] * 0.9
                    for metric, value in values.items():
                        rows.append({**common, "metric": metric, "value": "" if math.isnan(value) else repr(value)})
                    if family == "internal" and category != "text":
                        it = np.arange(0, 500, 10)
                        curve = pd.DataFrame({"iteration": it, "loss": 0.1 * np.exp(-it / 150) + 0.01,
                                              "lr": np.where(it < 300, 1e-3, 1e-4),
                                              "rec_error": 0.05 * np.exp(-it / 200) + 0.005})
                        curve_file = root / curve_path(sr_path(cell))
                        curve_file.parent.mkdir(parents=True, exist_ok=True)
                        curve.to_csv(curve_file, index=False)
    write_results(root / "results.csv", rows, outputs)
    run = {
        "git_revision": "abc1234", "packages": {"numpy": np.__version__, "pandas": pd.__version__},
        "device": {"type": "cpu", "name": "synthetic CPU"},
        "dataset": {"name": "synth", "version": "1", "n_images": 6, "source": "generated in tests"},
        "profile": profile, "protocol": protocol,
        "protocol_text": "HR mod-cropped to a multiple of the scale, downscaled with MATLAB bicubic, rounded to uint8.",
        "seed": 0, "scales": list(scales),
        "methods": {m: {"config": {"name": m}, "info": {"family": f, "training_data": f"{m}-data",
                                                        "degradation": "bicubic", "licence": "MIT",
                                                        "parameters": 1234567, "paper": "Someone 2020",
                                                        "notes": ""}}
                    for m, f in reversed(list(METHODS.items()))},  # reversed: the report must reorder by family
        "metrics": _spec(), "started": "2024-01-01T00:00:00", "finished": "2024-01-01T01:00:00",
        "command": "zssr-bench run --dataset synth",
    }
    (root / "run.json").write_text(json.dumps(run, indent=1))
    return root


if __name__ == "__main__":  # render a demo folder: python tests/test_report.py OUT_DIR
    out = make_run(Path(sys.argv[1]), profile=sys.argv[2] if len(sys.argv) > 2 else "quick")
    print(render_report(out))


# --------------------------------------------------------------------------------------------------------------
# helpers that read the rendered files back, independently of bench.report


class _TableParser(HTMLParser):
    """Collects <td data-metric data-mean ...> cells with their row's method, and every <img src>."""

    def __init__(self):
        super().__init__()
        self.cells: list[dict] = []
        self.images: list[str] = []
        self.table_ids: list[str] = []
        self._table = None
        self._method = None
        self._td = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
            self.table_ids.append(self._table)
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "td" and "data-method" in a:
            self._method = a["data-method"]
        elif tag == "td" and "data-metric" in a:
            self._td = {**a, "table": self._table, "method": self._method, "text": ""}

    def handle_data(self, data):
        if self._td is not None:
            self._td["text"] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._td is not None:
            self.cells.append(self._td)
            self._td = None


def _expected(results: Path) -> pd.DataFrame:
    """Means over images, computed here with pandas from results.csv (errors and empty values excluded)."""
    df = pd.read_csv(results, dtype={"value": str})
    df = df[df["metric"] != "cell"].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df = df.dropna(subset=["value"])
    overall = df.groupby(["scale", "method", "metric"])["value"].agg(["mean", "max", "count"]).reset_index()
    overall["category"] = "all"
    per_cat = df.groupby(["scale", "category", "method", "metric"])["value"].agg(["mean", "max", "count"]).reset_index()
    return pd.concat([overall, per_cat], ignore_index=True)


def _md_section(md: str, heading: str) -> str:
    start = md.index(f"\n## {heading}\n")
    end = md.find("\n## ", start + 1)
    return md[start:end if end > 0 else None]


def _md_table_rows(block: str) -> dict[str, dict[str, str]]:
    """The first markdown table in block: {method: {header: cell text}}."""
    all_lines = block.splitlines()
    first = next(k for k, ln in enumerate(all_lines) if ln.startswith("| method |"))
    lines = []
    for ln in all_lines[first:]:
        if not ln.startswith("|"):
            break
        lines.append(ln)
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        row = dict(zip(header, cells))
        rows[row["method"].replace(" †", "")] = row
    return rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("quick") / "run")
    return run, render_report(run)


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("paper") / "run", profile="paper", protocol="y-only", scales=(4,))
    return run, render_report(run)


def test_render_returns_both_files(quick_run):
    run, paths = quick_run
    assert paths["markdown"] == run / "report.md" and paths["markdown"].stat().st_size > 1000
    assert paths["html"] == run / "index.html" and paths["html"].stat().st_size > 1000


def test_every_method_and_category_present(quick_run):
    run, paths = quick_run
    md = paths["markdown"].read_text()
    page = paths["html"].read_text()
    for text in (md, page):
        for method in METHODS:
            assert method in text
        for category in CATEGORIES:
            assert f"category “{category}”" in text


def test_method_order_is_interpolation_internal_external(quick_run):
    _, paths = quick_run
    rows = list(_md_table_rows(_md_section(paths["markdown"].read_text(), "synth ×4")))
    families = [METHODS[m] for m in rows]
    assert families == sorted(families, key=["interpolation", "internal", "external"].index), rows


def test_html_table_numbers_equal_pandas_means(quick_run):
    """Every summary cell's data-mean equals the independently computed mean (max for peak memory), 1e-9."""
    run, paths = quick_run
    expected = _expected(run / "results.csv").set_index(["scale", "category", "method", "metric"])
    parser = _TableParser()
    parser.feed(paths["html"].read_text())
    checked = 0
    for cell in parser.cells:
        if cell["data-metric"] == "n":
            continue
        m = re.fullmatch(r"table-synth-x(\d)(?:-(.+))?", cell["table"])
        scale, category = int(m.group(1)), m.group(2) or "all"
        row = expected.loc[(scale, category, cell["method"], cell["data-metric"])]
        want = row["max"] if cell["data-metric"] == "peak-memory-mb" else row["mean"]
        assert float(cell["data-mean"]) == pytest.approx(want, rel=1e-9, abs=1e-12), cell
        assert int(cell["data-n"]) == row["count"], cell
        checked += 1
    # 2 scales x (overall + 3 categories) x methods (4 at x2, 5 at x4) x 7 table metrics
    assert checked == (4 * 4 + 4 * 5) * 7


def test_markdown_table_numbers_equal_pandas_means(quick_run):
    run, paths = quick_run
    expected = _expected(run / "results.csv")
    md = paths["markdown"].read_text()
    for scale in (2, 4):
        rows = _md_table_rows(_md_section(md, f"synth ×{scale}"))
        assert set(rows) == {m for m in METHODS if not (m == "dat-x4" and scale == 2)}
        for method, row in rows.items():
            sel = expected[(expected["scale"] == scale) & (expected["category"] == "all")
                           & (expected["method"] == method)].set_index("metric")
            for metric, fmt in [("psnr-y", "{:.2f}"), ("ssim-y", "{:.4f}"), ("psnr-rgb", "{:.2f}"),
                                ("lpips-alex", "{:.4f}"), ("niqe", "{:.3f}")]:
                header = next(h for h in row if h.startswith(metric + " "))
                shown = row[header].strip("*").split(" ± ")[0]
                assert shown == fmt.format(sel.loc[metric, "mean"]), (scale, method, metric, row[header])


def test_best_is_bold_with_arrows(quick_run):
    run, paths = quick_run
    expected = _expected(run / "results.csv")
    rows = _md_table_rows(_md_section(paths["markdown"].read_text(), "synth ×4"))
    assert "psnr-y ↑ (dB)" in next(iter(rows.values())) and "lpips-alex ↓" in next(iter(rows.values()))
    sel = expected[(expected["scale"] == 4) & (expected["category"] == "all")]
    best_psnr = sel[sel["metric"] == "psnr-y"].sort_values("mean").iloc[-1]["method"]
    best_lpips = sel[sel["metric"] == "lpips-alex"].sort_values("mean").iloc[0]["method"]
    assert rows[best_psnr]["psnr-y ↑ (dB)"].startswith("**")
    assert rows[best_lpips]["lpips-alex ↓"].startswith("**")
    assert sum(r["psnr-y ↑ (dB)"].startswith("**") for r in rows.values()) == 1


def test_single_image_category_has_no_interval(quick_run):
    _, paths = quick_run
    md = paths["markdown"].read_text()
    block = md[md.index("category “solo” (1 image)"):]
    rows = _md_table_rows(block)
    assert rows and all("±" not in cell for row in rows.values() for cell in row.values())


def test_quick_warning_present_only_for_quick(quick_run, paper_run):
    for path in quick_run[1].values():
        text = path.read_text()
        assert "WARNING" in text and "not comparable with published" in text
    for path in paper_run[1].values():
        text = path.read_text()
        assert "WARNING" not in text and "not comparable with published" not in text


def test_protocol_section(quick_run, paper_run):
    md = quick_run[1]["markdown"].read_text()
    protocol = _md_section(md, "Protocol")
    assert "downscaled with MATLAB bicubic" in protocol
    assert "LPIPS v0.1, AlexNet" in protocol  # metric definitions from run.json
    assert "realesrgan-x4plus at ×2" in protocol  # non-native scale labelled
    assert "classic bicubic-table protocol" not in md
    assert "classic bicubic-table protocol" in paper_run[1]["markdown"].read_text()
    methods = _md_section(md, "Methods")
    for method in METHODS:
        assert f"{method}-data" in methods  # training data per method


def test_failure_listed(quick_run):
    method, image, scale, message = FAILURE
    for path in quick_run[1].values():
        text = path.read_text()
        section = text[text.index('id="failures"'):]
        assert method in section and image in section and f"×{scale}" in section
        assert "CUDA out of memory" in section
    assert "CUDA out of memory \\| tried" in quick_run[1]["markdown"].read_text()  # pipe escaped in the table


def test_images_referenced_in_html_exist(quick_run):
    run, paths = quick_run
    parser = _TableParser()
    parser.feed(paths["html"].read_text())
    assert len(parser.images) >= 12 + 6  # crops for 6 images x 2 scales, plus figures
    for src in parser.images:
        assert not src.startswith(("/", "http:", "https:", "file:")), src
        assert (run / src).is_file(), src
    for kind in ("tradeoff", "categories", "paired", "curves", "crops/"):
        assert any(kind in src for src in parser.images), kind
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", paths["markdown"].read_text())
    assert md_images and all((run / src).is_file() for src in md_images)


def test_no_network_references(quick_run):
    page = quick_run[1]["html"].read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page


def test_robust_to_sparse_runs(tmp_path):
    """No run.json, no curves, no images, one method with only NaN values, one image: still renders."""
    run = tmp_path / "sparse"
    run.mkdir()
    rows = [
        {"dataset": "d", "category": "", "image": "a", "scale": 3, "method": "bicubic", "config_id": "c",
         "protocol": "rgb", "profile": "paper", "metric": "psnr-y", "value": "25.0", "native_scale": "True",
         "device": "cpu", "note": ""},
        {"dataset": "d", "category": "", "image": "a", "scale": 3, "method": "zssr-x", "config_id": "c",
         "protocol": "rgb", "profile": "paper", "metric": "psnr-y", "value": "", "native_scale": "True",
         "device": "cpu", "note": ""},
        {"dataset": "d", "category": "", "image": "a", "scale": 3, "method": "esrgan", "config_id": "c",
         "protocol": "rgb", "profile": "paper", "metric": "error", "value": "", "native_scale": "",
         "device": "cpu", "note": "weights missing"},
    ]
    write_results(run / "results.csv", rows)
    paths = render_report(run)
    md = paths["markdown"].read_text()
    assert "weights missing" in md and "n/a" in md and "25.00" in md


def test_empty_results(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "results.csv").write_text(",".join(COLUMNS) + "\n")
    paths = render_report(run)
    text = paths["markdown"].read_text()
    assert "No cells" in text and "every cell finished" not in text  # zero cells is not "all finished"
    assert paths["html"].is_file() and "every cell finished" not in paths["html"].read_text()


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.csv"):
        render_report(tmp_path)


def test_large_sets_get_crops_for_the_most_instructive_images(tmp_path):
    """Over 20 images per scale, crops are made only for the images where the methods disagree most."""
    from bench.report.crops import render_crops
    from bench.report.load import load_run

    run = tmp_path / "big"
    rows, outputs = [], {}
    for k in range(25):
        for method, psnr in (("a", 30.0), ("b", 30.0 + k / 10)):
            rows.append({"dataset": "d", "category": "c", "image": f"im{k:02d}", "scale": 2, "method": method,
                         "config_id": "c", "protocol": "rgb", "profile": "paper", "metric": "psnr-y",
                         "value": psnr, "native_scale": "True", "device": "cpu", "note": ""})
            img = np.full((16, 16, 3), 100 if method == "a" else 120, np.uint8)
            rel = sr_path(Cell("d", "c", f"im{k:02d}", IMAGE_SHA, "bicubic", 2, method, "c"))
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(run / rel)
            outputs[(method, f"im{k:02d}", 2)] = rel
    write_results(run / "results.csv", rows, outputs)
    figures = render_crops(load_run(run), run / "crops", max_images=5)
    assert sorted(f.image for f in figures) == [f"im{k}" for k in range(20, 25)]


# --------------------------------------------------------------------------------------------------------------
# the page in a real browser

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t.tagName ? 'failed to load ' + t.tagName + ' ' + (t.src || t.href) : String(e.message));
}, true);
['error', 'warn'].forEach(function (k) {
  var orig = console[k];
  console[k] = function () { window.__errors.push('console.' + k + ': ' + Array.from(arguments).join(' ')); orig.apply(console, arguments); };
});
window.addEventListener('load', function () {
  var broken = Array.from(document.images).filter(function (i) { return !i.complete || i.naturalWidth === 0; })
    .map(function (i) { return i.getAttribute('src'); });
  var out = document.createElement('pre');
  out.id = 'probe-result';
  out.textContent = JSON.stringify({images: document.images.length, broken: broken, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run_browser(binary: str, profile: Path, args: list[str], timeout: int = 90) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "HOME": str(profile)})


def probed_page(html_path: Path, tmp_path: Path, scripts: str = PROBE) -> tuple[str, str]:
    """(chromium binary, the DOM after load) of `html_path` opened with `scripts` injected into its head; skips
    the test, saying why, where chromium is missing or cannot run. The probe page is written beside the report (so
    that relative links resolve the same way) and removed afterwards."""
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    probe = html_path.parent / f"_probe_{html_path.stem}.html"
    probe.write_text(html_path.read_text().replace("<head>", "<head>\n" + scripts, 1))
    try:
        try:
            dom = _run_browser(binary, tmp_path / "profile", ["--virtual-time-budget=10000", "--dump-dom",
                                                              probe.as_uri()])
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"chromium could not run here: {exc}")
        if dom.returncode != 0 or "<html" not in dom.stdout:
            pytest.skip(f"chromium could not start (rc {dom.returncode}): {dom.stderr[-500:]}")
    finally:
        probe.unlink()
    return binary, dom.stdout


def probe_json(dom: str, element_id: str) -> dict:
    """The JSON a probe script left in <pre id=element_id>."""
    import html as html_mod

    match = re.search(rf'<pre id="{element_id}">(.*?)</pre>', dom, re.S)
    assert match, f"no #{element_id} in the page: its load event never fired"
    return json.loads(html_mod.unescape(match.group(1)))


def test_index_html_in_headless_chromium(quick_run, tmp_path):
    run, paths = quick_run
    binary, dom = probed_page(paths["html"], tmp_path)
    result = probe_json(dom, "probe-result")
    assert result["images"] >= 18
    assert result["broken"] == [], result["broken"]
    assert result["errors"] == [], result["errors"]

    shot = tmp_path / "screenshot.png"
    proc = _run_browser(binary, tmp_path / "profile2", ["--window-size=1400,2400", f"--screenshot={shot}",
                                                        paths["html"].as_uri()])
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-500:]
    with Image.open(shot) as im:
        arr = np.asarray(im.convert("L"), dtype=float)
    assert im.size == (1400, 2400)
    assert arr.std() > 10  # not a blank page


def test_report_package_imports_no_model_code():
    code = ("import sys, bench.report, bench.report.render, bench.report.context; "
            "bad = [m for m in ('torch', 'torchvision', 'basicsr', 'lpips', 'spandrel', 'zssr', 'baselines') "
            "if m in sys.modules]; assert not bad, bad")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_unavailable_methods_listed_once_not_as_failures(tmp_path):
    """Cells of a method that cannot run here are summarised per method, apart from the failed cells."""
    run = tmp_path / "unavailable"
    run.mkdir()
    base = {"dataset": "d", "category": "c", "scale": 4, "config_id": "c", "protocol": "rgb", "profile": "paper",
            "native_scale": "", "device": "cpu"}
    rows = [{**base, "image": "a", "method": "bicubic", "metric": "psnr-y", "value": "25.0", "note": ""}]
    rows += [{**base, "image": im, "method": "esrgan", "metric": "error", "value": "",
              "note": "MethodUnavailable: no source of ESRGAN_x4.pth worked"} for im in ("a", "b", "c")]
    rows += [{**base, "image": "a", "method": "lanczos", "metric": "error", "value": "", "note": "RuntimeError: boom"}]
    write_results(run / "results.csv", rows)
    paths = render_report(run)
    for path in paths.values():
        section = path.read_text().split('id="failures"')[1]
        assert section.count("no source of ESRGAN_x4.pth worked") == 1 and "3 cells" in section
        assert "boom" in section
    md_section = paths["markdown"].read_text().split('id="failures"')[1]
    table = md_section[md_section.index("| method |"):]
    assert "esrgan" not in table.split("<a id=")[0] and "lanczos" in table
