"""The download path: fetch from a public address, verify by checksum, cache, and use the cache next time."""
import http.server
import threading
from functools import partial

import numpy as np
import pytest
from PIL import Image

from bench.datasets import Dataset, DatasetError, DatasetImage, load_dataset, pixels_sha256


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server naming)
        _Handler.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _images(n=3):
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (32 + 8 * i, 40, 3), dtype=np.uint8) for i in range(n)]


def _dataset(base_url, images):
    entries = tuple(DatasetImage(name=f"im{i}", category="c", file=f"HR/im{i}.png", pixels_sha256=pixels_sha256(img),
                                 url=f"{base_url}/im{i}.png") for i, img in enumerate(images))
    return Dataset(name="served", version="1", description="test", images=entries)


def test_download_verify_and_cache(server, isolated_cache, monkeypatch):
    monkeypatch.delenv("ZSSR_BENCH_DATA", raising=False)
    root, url = server
    images = _images()
    for i, img in enumerate(images):
        Image.fromarray(img).save(root / f"im{i}.png")
    dataset = _dataset(url, images)
    for image, expected in zip(dataset.images, images):
        assert np.array_equal(dataset.load(image), expected)
    assert len(_Handler.requests) == 3
    assert all((isolated_cache / "datasets" / "served" / im.file).is_file() for im in dataset.images)
    # second time: from the cache, no request
    for image, expected in zip(dataset.images, images):
        assert np.array_equal(dataset.load(image), expected)
    assert len(_Handler.requests) == 3


def test_corrupted_download_is_rejected_and_not_cached(server, isolated_cache, monkeypatch):
    monkeypatch.delenv("ZSSR_BENCH_DATA", raising=False)
    root, url = server
    images = _images(1)
    tampered = images[0].copy()
    tampered[0, 0, 0] ^= 1  # one bit differs from the published pixels
    Image.fromarray(tampered).save(root / "im0.png")
    dataset = _dataset(url, images)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        dataset.load(dataset.images[0])
    cached = isolated_cache / "datasets" / "served" / "HR" / "im0.png"
    assert not cached.exists()
    assert not list(cached.parent.glob("*")) if cached.parent.exists() else True
    # a truncated file is rejected too
    (root / "im0.png").write_bytes((root / "im0.png").read_bytes()[:100])
    with pytest.raises(Exception, match="im0"):
        dataset.load(dataset.images[0])
    assert not cached.exists()


def test_corrupted_cache_entry_is_fetched_again(server, isolated_cache, monkeypatch):
    monkeypatch.delenv("ZSSR_BENCH_DATA", raising=False)
    root, url = server
    images = _images(1)
    Image.fromarray(images[0]).save(root / "im0.png")
    dataset = _dataset(url, images)
    dataset.load(dataset.images[0])
    cached = isolated_cache / "datasets" / "served" / "HR" / "im0.png"
    Image.fromarray(images[0] // 2).save(cached)  # valid PNG, wrong pixels
    assert np.array_equal(dataset.load(dataset.images[0]), images[0])
    assert len(_Handler.requests) == 2


def test_unreachable_source_says_what_to_do(isolated_cache, monkeypatch):
    monkeypatch.delenv("ZSSR_BENCH_DATA", raising=False)
    dataset = _dataset("http://127.0.0.1:9", _images(1))
    with pytest.raises(DatasetError, match="ZSSR_BENCH_DATA"):
        dataset.load(dataset.images[0])


def test_data_root_copy_with_wrong_pixels_is_rejected(tmp_path, monkeypatch):
    images = _images(1)
    (tmp_path / "served" / "HR").mkdir(parents=True)
    Image.fromarray(images[0] // 3).save(tmp_path / "served" / "HR" / "im0.png")
    monkeypatch.setenv("ZSSR_BENCH_DATA", str(tmp_path))
    dataset = _dataset("http://127.0.0.1:9", images)
    with pytest.raises(DatasetError, match="pixel checksum mismatch"):
        dataset.load(dataset.images[0])


def test_declared_datasets_load():
    for name in ("set5", "set14", "bsd100", "urban100", "categories", "builtin"):
        d = load_dataset(name)
        assert d.images and d.version
        assert all(im.pixels_sha256 and im.category for im in d.images)
    assert len(load_dataset("urban100").images) == 100
    assert len(load_dataset("categories").categories) == 10


def test_builtin_needs_no_data(monkeypatch, isolated_cache):
    monkeypatch.delenv("ZSSR_BENCH_DATA", raising=False)
    d = load_dataset("builtin")
    assert len(d.categories) >= 6
    for im in d.images:
        assert d.load(im).shape[:2] == (192, 192) or im.name == "page"


def test_folder_dataset_categories(tmp_path):
    for cat in ("faces", "text"):
        (tmp_path / "mine" / cat).mkdir(parents=True)
        Image.fromarray(_images(1)[0]).save(tmp_path / "mine" / cat / f"{cat}1.png")
    d = load_dataset(str(tmp_path / "mine"))
    assert d.categories == ["faces", "text"] and d.version.startswith("folder-")


def test_unknown_dataset_suggests():
    with pytest.raises(DatasetError, match="did you mean set5|Did you mean set5"):
        load_dataset("set55")
