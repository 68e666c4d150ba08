"""Checksums of weight files: of their bytes (sha256) or of their tensors (independent of the torch version)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

# --------------------------------------------------------------------------------------------------------------
# checksums

def tensor_digest(state: Mapping[str, Any]) -> str:
    """sha256 over a (possibly nested) state dict's tensors: key, dtype, shape and bytes, keys sorted.

    Independent of the serialisation (torch.save's zip layout, pickle protocol), so it is stable across versions.
    """
    flat = _flatten(state)
    h = hashlib.sha256()
    for key in sorted(flat):
        t = flat[key]
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a tensor's values (0-dim included)."""
    t = t.detach().cpu().contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _tensor_paths(state: Mapping[str, Any], prefix: tuple[str, ...] = ()
                  ) -> list[tuple[tuple[str, ...], torch.Tensor]]:
    """Every tensor of a nested state dict with its key path."""
    out = []
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out.append((prefix + (str(key),), value))
        elif isinstance(value, Mapping):
            out += _tensor_paths(value, prefix + (str(key),))
    return out


def _flatten(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {".".join(path): t for path, t in _tensor_paths(state)}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _split_checksum(checksum: str) -> tuple[str, str]:
    kind, _, value = checksum.partition(":")
    if kind not in ("sha256", "tensors") or len(value) < 8:
        raise ValueError(f"bad checksum {checksum!r}: expected 'sha256:<hex>' or 'tensors:<hex>'")
    return kind, value.lower()


def _sha_matches(actual: str, expected: str) -> bool:
    return actual.startswith(expected.lower()) if len(expected) < 64 else actual == expected.lower()


def verify_state(state: Mapping[str, Any], checksum: str) -> str | None:
    """`checksum` if the in-memory state dict matches it (a tensors: checksum), else None."""
    kind, value = _split_checksum(checksum)
    return checksum if kind == "tensors" and tensor_digest(state) == value else None


def verify(path: Path, checksums: Iterable[str]) -> str | None:
    """The first of `checksums` that `path` matches, else None (a file torch cannot read matches no tensors:)."""
    checksums = list(checksums)
    sha = None
    digest = None
    for checksum in checksums:
        kind, value = _split_checksum(checksum)
        if kind == "sha256":
            sha = sha or file_sha256(path)
            if _sha_matches(sha, value):
                return checksum
        else:
            if digest is None:
                try:
                    digest = tensor_digest(torch.load(path, map_location="cpu", weights_only=True))
                except Exception:  # noqa: BLE001 - a truncated or foreign file simply matches nothing
                    digest = ""
            if digest == value:
                return checksum
    return None
