"""The documentation stays true: the generated reproduction record and the README's results block are what the
committed run folders give, and every command, option, variable and link the README names exists."""
import csv
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "reports" / "reproduce"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_reproduction_doc", REPO / "tools" / "make_reproduction_doc.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module")
def all_entries():
    return gen.entries(gen.load_folders(RUNS))


def test_reproduction_doc_is_current():
    committed = (REPO / "docs" / "reproduction.md").read_bytes()
    assert gen.render_doc(RUNS).encode("utf-8") == committed, \
        "docs/reproduction.md is not what reports/reproduce/ gives: run `make reproduction-doc` and commit it"


def test_readme_results_block_is_current(all_entries):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert gen.with_block(readme, gen.summary_block(all_entries)) == readme, \
        "README.md's results block is not what reports/reproduce/ gives: run `make reproduction-doc` and commit it"


def test_readme_study_tables_are_current():
    spec = importlib.util.spec_from_file_location("make_study_tables", REPO / "tools" / "make_study_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    stale = [p.relative_to(REPO).as_posix() for p in tables.stale_documents()]
    assert not stale, f"{stale}: study tables not what reports/studies/ gives: run `make reproduction-doc`, commit"


def _copy_folder(tmp_path: Path, name: str) -> Path:
    runs = tmp_path / "reproduce"
    shutil.copytree(RUNS / name, runs / name)
    return runs


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_only_complete_blocks_count(tmp_path):
    """A cell block cut short (metric rows, no end row: a run killed mid-write) changes nothing in the record;
    the same block completed with its end row does."""
    runs = _copy_folder(tmp_path, "set5-original-seed0")
    before = gen.render_doc(runs)
    results = runs / "set5-original-seed0" / "results.csv"
    rows = _rows(results)
    block = [dict(r) for r in rows if r["image"] == "baby" and r["scale"] == "3"]
    for r in block:
        r["image"], r["image_sha"] = "zz-extra", "0" * 16
        if r["metric"] == "psnr-y":
            r["value"] = "50.0"
    fields = list(rows[0])
    with results.open("a", newline="", encoding="utf-8") as fh:
        csv.DictWriter(fh, fieldnames=fields).writerows(r for r in block if r["metric"] != "cell")
    assert gen.render_doc(runs) == before

    with results.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows + block)
    after = gen.render_doc(runs)
    assert after != before and "zz-extra" in after and "50.000" in after


def test_numbers_come_from_the_results(tmp_path):
    """Raise one image's PSNR-Y by 5 dB in a copy: the summary's mean moves by 5 / n, computed here from the CSV."""
    runs = _copy_folder(tmp_path, "set5-original-seed0")
    results = runs / "set5-original-seed0" / "results.csv"
    rows = _rows(results)
    for r in rows:
        if r["image"] == "bird" and r["scale"] == "4" and r["metric"] == "psnr-y":
            r["value"] = str(float(r["value"]) + 5.0)
    with results.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    x4 = [float(r["value"]) for r in rows if r["scale"] == "4" and r["metric"] == "psnr-y"]
    x4_ssim = [float(r["value"]) for r in rows if r["scale"] == "4" and r["metric"] == "ssim-y"]
    summary = gen.summary_block(gen.entries(gen.load_folders(runs)))
    expected = f"{sum(x4) / len(x4):.3f} / {sum(x4_ssim) / len(x4_ssim):.4f}"
    line = next(l for l in summary.splitlines() if l.startswith("| set5 | x4 |"))
    assert expected in line, (expected, line)


def test_published_values_are_labelled(all_entries):
    block = gen.summary_block(all_entries)
    assert "published (ZSSR paper)" in block
    doc = (REPO / "docs" / "reproduction.md").read_text(encoding="utf-8")
    assert "declared targets" in doc and "Published values" in doc


# ---------------------------------------------------------------- commands, options, links

def _makefile_targets_and_variables() -> tuple[set[str], set[str]]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M))
    variables = set(re.findall(r"^(?:export )?([A-Z][A-Z_]*) \??=", text, flags=re.M))
    variables |= set(re.findall(r"\$\(if \$\(([A-Z_]+)\)", text))  # optional ones, e.g. TIME_BUDGET
    # the run options' variables, declared as one list (each becomes the `bench run` flag of the same name)
    listed = re.search(r"^RUN_VARIABLES :?= (.*?)(?<!\\)$", text, flags=re.M | re.S)
    if listed:
        variables |= set(re.findall(r"[A-Z][A-Z_]*", listed.group(1)))
    variables |= set(re.findall(r"\$\(filter [^,]+,\$\(([A-Z_]+)\)\)", text))  # switches, e.g. RESUME=0
    return targets, variables


def _cli_options() -> set[str]:
    import argparse

    from bench.cli import build_parser
    from bench.study import build_parser as build_study_parser

    options: set[str] = set()
    parsers = [build_parser(), build_study_parser()]  # `python -m bench` and `python -m bench.study`
    while parsers:
        p = parsers.pop()
        for action in p._actions:  # argparse has no public walk of subcommands
            options.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return options


def test_readme_make_targets_and_variables_exist():
    targets, variables = _makefile_targets_and_variables()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named_targets = set(re.findall(r"`?make ([a-z][\w-]*)", readme))
    assert named_targets and named_targets <= targets, sorted(named_targets - targets)
    used = set(re.findall(r"\b([A-Z][A-Z_]{2,})=", readme)) - {"ZSSR_BENCH_PLUGINS", "RAY_ADDRESS"}
    assert {"DATASET", "METHODS", "BATCH"} <= used
    assert used <= variables, sorted(used - variables)


def test_readme_cli_options_exist():
    options = _cli_options()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", readme)) - {"--check", "--help"}
    assert "--seed" in named and "--no-wait" in named
    assert named <= options, sorted(named - options)
    assert "--check" in (REPO / "tools" / "make_reproduction_doc.py").read_text(encoding="utf-8")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.exists(), f"{doc.relative_to(REPO)}: link {target} points at nothing"
        if anchor and dest.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, f"{doc.relative_to(REPO)}: no heading for #{anchor}"
