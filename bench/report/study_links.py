"""Which declared studies answer the question a run's report raises: a quick run's findings are about reduced
methods on a few images, so its report points to the study (studies/<name>.toml, rendered to
docs/studies/<name>.md) that covers the same dataset and degradation at the paper profile, where one exists.

Read from the checkout's files alone (the study declarations and their rendered documents); nothing is run."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def _degradation_id(spec: str) -> str | None:
    from bench.degradations import parse

    try:
        return parse(spec).id
    except ValueError:  # declared ahead of its step: no run can have it
        return None


def study_answers(pairs: set[tuple[str, str]], report_dir: Path, checkout: Path = CHECKOUT) -> list[dict]:
    """For each (dataset, degradation id) of a run, the paper-profile studies declaring both whose document exists:
    name, title,
    what they cover, and the document's path relative to the report folder (absolute where it is elsewhere)."""
    answers = []
    for path in sorted((checkout / "studies").glob("*.toml")):
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue  # a broken declaration is `make study`'s error to report, not the report's
        doc = checkout / "docs" / "studies" / f"{path.stem}.md"
        if not doc.is_file() or spec.get("profile") != "paper":
            continue  # a quick study (a smoke test of the machinery) answers nothing
        degradations = {_degradation_id(str(d)): str(d) for d in spec.get("degradations", [])}
        covered = sorted({(ds, degradations[deg]) for ds, deg in pairs
                          if ds in spec.get("datasets", []) and deg in degradations})
        if not covered:
            continue
        try:
            link = Path(os.path.relpath(doc, Path(report_dir).resolve())).as_posix()
        except ValueError:  # another drive
            link = doc.as_posix()
        answers.append({"name": path.stem, "title": str(spec.get("title", path.stem)),
                        "profile": str(spec.get("profile", "")), "link": link,
                        "covers": ", ".join(f"{ds} [{deg}]" for ds, deg in covered)})
    return answers
