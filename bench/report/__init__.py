"""Reports rendered from a run folder alone (results.csv, run.json, curves/, sr/, inputs/); no model imports.

    from bench.report import render_report
    paths = render_report(Path("reports/set5/2024-01-01_1200"))   # {"markdown": .../report.md, "html": .../index.html}
"""
from __future__ import annotations

from pathlib import Path


def render_report(run_dir: Path) -> dict[str, Path]:
    """Render report.md and index.html into run_dir; returns {"markdown": path, "html": path}."""
    from bench.report.render import render_report as _render

    return _render(Path(run_dir))


__all__ = ["render_report"]
