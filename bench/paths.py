"""Where the suite's own files live (package data) and where its inputs and outputs go (baselines.settings); how a
name becomes part of a path is bench.pathnames (re-exported here)."""
from __future__ import annotations

from pathlib import Path

from baselines.settings import cache_root, data_root, reference_root, reports_root  # noqa: F401 (re-exported)
from bench.pathnames import MARK, inside, is_within, safe_component, unique_names  # noqa: F401 (re-exported)

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent  # a checkout's root; in an installed copy, site-packages (git_revision: unknown)
DATASET_DEFS = PACKAGE_ROOT / "dataset_defs"  # one TOML declaration per dataset, installed as package data
