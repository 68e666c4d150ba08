"""Every environment variable the suite reads, in one place (the lowest layer that reads any, so that every layer
can import it). Read at call time, so that tests and worker processes see the current environment.

| variable | meaning | default |
|---|---|---|
| ZSSR_BENCH_DATA | local copy of the datasets (`<root>/<dataset>/<file>`), e.g. ../shared/datasets | none |
| ZSSR_BENCH_REFERENCE | reference files (LPIPS calibration pairs, ZSSR example inputs and kernels) | none |
| ZSSR_BENCH_CACHE | downloads, converted weights and dataset images | $XDG_CACHE_HOME/zssr-bench |
| ZSSR_BENCH_REPORTS | where run folders go when `--out` is not given | ./reports (the current directory) |
| ZSSR_BENCH_KIT | a device kit's folder (compact weight copies for machines without network) | none |
| ZSSR_BENCH_OFFLINE | 1: never try a URL (package indexes and local files still are) | 0 |
| ZSSR_BENCH_URL_TIMEOUT | seconds per URL download attempt | 15 |
| ZSSR_BENCH_THREADS | torch threads per process | torch's default |
| ZSSR_BENCH_PLUGINS | comma-separated modules imported at start (they register methods) | none |
| TORCH_HOME, XDG_CACHE_HOME | where torch's and the user's caches live | ~/.cache/... |
"""
from __future__ import annotations

import os
from pathlib import Path


def _text(name: str) -> str:
    return os.environ.get(name, "").strip()


def _path(name: str) -> Path | None:
    value = _text(name)
    return Path(value).expanduser() if value else None


def _user_cache() -> Path:
    return Path(_text("XDG_CACHE_HOME") or Path.home() / ".cache")


def data_root() -> Path | None:
    return _path("ZSSR_BENCH_DATA")


def reference_root() -> Path | None:
    return _path("ZSSR_BENCH_REFERENCE")


def cache_root() -> Path:
    return _path("ZSSR_BENCH_CACHE") or _user_cache() / "zssr-bench"


def reports_root() -> Path:
    return _path("ZSSR_BENCH_REPORTS") or Path.cwd() / "reports"


def kit_root() -> Path | None:
    return _path("ZSSR_BENCH_KIT")


def torch_home() -> Path:
    return _path("TORCH_HOME") or _user_cache() / "torch"


def offline() -> bool:
    return _text("ZSSR_BENCH_OFFLINE") not in ("", "0")


def url_timeout_s() -> float:
    return float(_text("ZSSR_BENCH_URL_TIMEOUT") or 15)


def threads() -> int | None:
    value = _text("ZSSR_BENCH_THREADS")
    return int(value) if value else None


def plugins() -> list[str]:
    return [m.strip() for m in _text("ZSSR_BENCH_PLUGINS").split(",") if m.strip()]
