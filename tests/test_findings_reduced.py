"""A quick run's findings say in the line itself which methods the quick profile reduced, and its report points to
the paper-profile study that answers the same question (bench/report/findings.py, bench/report/study_links.py)."""
from __future__ import annotations

import json

from results_helpers import write_results

from bench.report import render_report, study_links
from bench.report.findings import findings, headline
from bench.report.load import load_run


def _quick_run(tmp_path, dataset="set5"):
    rows = []
    for i in range(4):
        base = {"dataset": dataset, "category": "c", "image": f"im{i}", "scale": 2, "protocol": "rgb",
                "profile": "quick"}
        for method, psnr in (("bicubic", 30.0), ("zssr-x", 30.5 + 0.01 * i), ("net-y", 32.0 + 0.01 * i)):
            for metric, value in (("psnr-y", psnr), ("lpips-alex", 0.3 - psnr / 200), ("seconds-total", 1.0)):
                rows.append({**base, "method": method, "config_id": method, "metric": metric, "value": value})
    run_dir = tmp_path / "quick-run"
    run_dir.mkdir()
    write_results(run_dir / "results.csv", rows)
    run = {"profile": "quick", "methods": {
        "bicubic": {"info": {"family": "interpolation"}, "config": {}},
        "zssr-x": {"info": {"family": "internal"}, "config": {"profile": "quick", "quick_overrides": {"max_iters": 8}}},
        "net-y": {"info": {"family": "external"}, "config": {"profile": "quick", "quick_overrides": {}}}}}
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


def test_a_finding_about_a_reduced_method_says_so_in_the_line(tmp_path):
    data = load_run(_quick_run(tmp_path))
    assert data.reduced("zssr-x") and not data.reduced("net-y") and not data.reduced("bicubic")
    lines = [line for line in headline(findings(data)) if ", psnr-y:" in line]
    assert len(lines) == 1
    assert "net-y (external) is ahead of zssr-x (internal, reduced by the quick profile)" in lines[0]


def _checkout(tmp_path, profile="paper", datasets=("set5",), degradations=("bicubic", "aniso-gaussian")):
    root = tmp_path / "checkout"
    (root / "studies").mkdir(parents=True)
    (root / "docs" / "studies").mkdir(parents=True)
    (root / "studies" / "answer.toml").write_text(
        f'title = "The answer"\ndatasets = {json.dumps(list(datasets))}\n'
        f'degradations = {json.dumps(list(degradations))}\nprofile = "{profile}"\n')
    (root / "docs" / "studies" / "answer.md").write_text("# The answer\n")
    return root


def test_the_report_links_the_paper_study_for_its_dataset_and_degradation(tmp_path, monkeypatch):
    root = _checkout(tmp_path)
    report_dir = root / "reports" / "quick-run"
    found = study_links.study_answers({("set5", "bicubic"), ("set14", "bicubic")}, report_dir, root)
    assert [(a["name"], a["covers"], a["link"]) for a in found] == \
        [("answer", "set5 [bicubic]", "../../docs/studies/answer.md")]
    # ids with a version match the spec the study declares; other datasets and quick studies answer nothing
    assert study_links.study_answers({("set5", "aniso-gaussian.v1")}, report_dir, root)[0]["covers"] == \
        "set5 [aniso-gaussian]"
    assert study_links.study_answers({("set14", "bicubic")}, report_dir, root) == []
    assert study_links.study_answers({("set5", "bicubic")}, report_dir, _checkout(tmp_path / "q", "quick")) == []

    monkeypatch.setattr(study_links, "CHECKOUT", root)
    monkeypatch.setattr(study_links.study_answers, "__defaults__", (root,))
    md = render_report(_quick_run(tmp_path))["markdown"].read_text()
    findings_section = md[md.index("## Findings"):md.index("## Contents")]
    assert "The study [The answer](" in findings_section and "answer.md)" in findings_section
    assert "(this run's quick profile reduces ZSSR)" in findings_section
