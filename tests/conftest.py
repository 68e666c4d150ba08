import os
from pathlib import Path

import pytest


def _env_dir(var: str) -> Path | None:
    value = os.environ.get(var, "").strip()
    return Path(value) if value else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _env_dir("ZSSR_BENCH_DATA")
    if root is None:
        pytest.skip("ZSSR_BENCH_DATA is not set (point it at the shared datasets, e.g. ../shared/datasets)")
    assert root.is_dir(), f"ZSSR_BENCH_DATA={root} is not a folder"
    return root


@pytest.fixture(scope="session")
def reference_root() -> Path:
    root = _env_dir("ZSSR_BENCH_REFERENCE")
    if root is None:
        pytest.skip("ZSSR_BENCH_REFERENCE is not set (point it at the shared reference files)")
    assert root.is_dir(), f"ZSSR_BENCH_REFERENCE={root} is not a folder"
    return root


@pytest.fixture(autouse=True)
def test_plugins(monkeypatch):
    """Test methods (tests/fake_methods.py) are registered through the plugin variable, as users would do,
    so that worker processes see them too."""
    tests_dir = str(Path(__file__).parent)
    monkeypatch.setenv("ZSSR_BENCH_PLUGINS", "fake_methods")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH", "")) if p))


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ZSSR_BENCH_CACHE", str(cache))
    return cache


@pytest.fixture()
def folder(tmp_path) -> Path:
    """A folder dataset of 5 noise images (48 x 40) in categories a (3) and b (2); modules may define their own."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cat, n in (("a", 3), ("b", 2)):
        (tmp_path / "imgs" / cat).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / "imgs" / cat / f"{cat}{i}.png")
    return tmp_path / "imgs"
