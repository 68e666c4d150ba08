"""The device kit's compact weight copies: lossless, and found and verified by the weight store."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from baselines import weights as store

REPO = Path(__file__).resolve().parent.parent


def _state() -> dict:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 16, 16)
    mask[:, :8] = -100.0
    return {"params": {
        "conv.weight": torch.randn(8, 3, 3, 3, generator=g),  # not exact in fp16: stays fp32
        "fp16ish": torch.randn(32, generator=g).half().float(),  # exact in fp16
        "attn_mask": mask,  # integers: int8
        "relative_position_index": torch.arange(300).reshape(20, 15),  # int64 -> int16
        "num_batches": torch.tensor(7),  # 0-dim
        "signed_zero": torch.tensor([0.0, -0.0, 1.0]),  # integer-valued, but int8 would lose -0.0's sign
        "flag": torch.tensor([True, False]),
    }}


def test_compact_copy_is_lossless_and_smaller(tmp_path):
    state = _state()
    path = tmp_path / "w.pth.compact.gz"
    store.write_compact(state, path)
    back = store.expand_compact([path])
    assert store.tensor_digest(back) == store.tensor_digest(state)
    for key, t in state["params"].items():
        assert back["params"][key].dtype == t.dtype and torch.equal(back["params"][key], t), key
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    assert path.stat().st_size < raw.stat().st_size / 2


def test_weight_store_takes_the_kit_copy_offline(tmp_path, isolated_cache, monkeypatch):
    state = _state()
    digest = "tensors:" + store.tensor_digest(state)
    kit = tmp_path / "kit"
    store.write_compact(state, kit / "weights" / ("toy.pth" + store.COMPACT_SUFFIX))
    decl = store.WeightFile(name="toy", filename="toy.pth", checksum=None,
                            sources=(store.kit_copy("toy.pth", digest),
                                     store.Url("http://127.0.0.1:9/unreachable.pth", checksum=digest)))
    monkeypatch.setenv("ZSSR_BENCH_OFFLINE", "1")
    monkeypatch.delenv("ZSSR_BENCH_KIT", raising=False)
    with pytest.raises(store.WeightUnavailable, match="ZSSR_BENCH_KIT is not set"):
        store.fetch(decl)
    monkeypatch.setenv("ZSSR_BENCH_KIT", str(kit))
    path = store.fetch(decl)
    assert store.verify(path, [digest]) == digest
    assert "local file" in store.provenance(decl)["source"]
    # a tampered kit copy is rejected, never used
    path.unlink()
    bad = _state()
    bad["params"]["conv.weight"][0, 0, 0, 0] += 1
    store.write_compact(bad, kit / "weights" / ("toy.pth" + store.COMPACT_SUFFIX))
    with pytest.raises(store.WeightUnavailable, match="does not match"):
        store.fetch(decl)


def test_every_kit_weight_has_a_digest_checked_kit_source():
    import importlib.util

    spec = importlib.util.spec_from_file_location("device_kit", REPO / "tools" / "device_kit.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    for name in {w for contents in kit.KITS.values() for w in contents["weights"]}:
        decl = store.WEIGHTS[name]
        copies = [s for s in decl.sources if isinstance(s, store.LocalFile) and s.converter is store.expand_compact]
        assert len(copies) == 1 and copies[0].checksum.startswith("tensors:"), name
        assert decl.sources[0] is copies[0], f"{name}: the kit copy must come first (no network on the device)"


def test_device_scripts_parse():
    for script in ("device_run.sh", "device_rehearsal.sh", "device_collect.sh"):
        subprocess.run(["bash", "-n", str(REPO / "tools" / script)], check=True)
