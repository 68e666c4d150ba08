"""Where data, reference files and caches live. Everything is overridable by environment variables."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASET_DEFS = REPO_ROOT / "datasets"


def data_root() -> Path | None:
    """Local copy of the datasets (`ZSSR_BENCH_DATA`), e.g. ../shared/datasets; None when unset."""
    value = os.environ.get("ZSSR_BENCH_DATA", "").strip()
    return Path(value).expanduser() if value else None


def reference_root() -> Path | None:
    """Reference files (calibration pairs, ZSSR examples): `ZSSR_BENCH_REFERENCE`; None when unset."""
    value = os.environ.get("ZSSR_BENCH_REFERENCE", "").strip()
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """Downloads and converted weights: `ZSSR_BENCH_CACHE`, else the user's cache directory (one for both)."""
    from baselines.weights import cache_root as weights_cache_root

    return weights_cache_root()


def reports_root() -> Path:
    return REPO_ROOT / "reports"
