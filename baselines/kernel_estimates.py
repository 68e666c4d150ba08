"""KernelGAN estimates shared between the methods (and runs) that ask for the same one.

An estimate depends only on the LR image it is trained on (so on the image's content, the degradation and the
scale, which made that LR image), KernelGAN's configuration (its seed and precision included) and the device kind.
`EstimateCache.estimate` computes it once per such key and hands it to every later caller: from memory within a
process, from a JSON file in the cache's folder across processes and runs (the harness puts the folder in the run
folder, kernels-estimated/shared/). Files are written atomically (a temporary file, then a rename), so a reader never
sees half an estimate; two processes that miss at once both compute it and the second rename wins (the same
numbers on the same device kind).

What a reuse costs is recorded, not hidden: a reused estimate carries the seconds (and FLOPs) its computation took,
and the ZSSR adapters charge them to every cell that uses it (see baselines.zssr_method).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

FORMAT = 1  # bump when the file layout changes (older files are then ignored, not misread)


@dataclass(frozen=True)
class SharedEstimate:
    """A KernelGAN x2 kernel with what computing it cost, and whether this caller reused it."""

    kernel_x2: np.ndarray
    seconds: float  # KernelGAN's own clock when it was computed
    reused: bool


def estimate_key(lr, config: dict[str, Any], device_type: str) -> str:
    """The key of an estimate: the LR image's exact values and shape, KernelGAN's configuration (seed and precision
    included) and the device kind (KernelGAN is deterministic per device kind and precision)."""
    import torch

    pixels = lr.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256()
    h.update(json.dumps({"shape": list(pixels.shape), "config": config, "device": device_type, "format": FORMAT},
                        sort_keys=True, default=str).encode())
    h.update(pixels.numpy().tobytes())
    return h.hexdigest()[:32]


class EstimateCache:
    """Estimates by key, in memory and (with a folder) on disk."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[str, tuple[np.ndarray, float]] = {}
        self.computed = 0  # estimates this cache computed (tests count them)

    def estimate(self, key: str, compute: Callable[[], tuple[np.ndarray, float]]) -> SharedEstimate:
        """The estimate of `key`: reused when known, else compute() -> (x2 kernel, seconds), stored and returned."""
        known = self._memory.get(key) or self._read(key)
        if known is not None:
            self._memory[key] = known
            return SharedEstimate(known[0], known[1], reused=True)
        kernel, seconds = compute()
        kernel = np.asarray(kernel, dtype=np.float64)
        self.computed += 1
        self._memory[key] = (kernel, float(seconds))
        self._write(key, kernel, float(seconds))
        return SharedEstimate(kernel, float(seconds), reused=False)

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"kernelgan-{key}.json"

    def _read(self, key: str) -> tuple[np.ndarray, float] | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("key") != key:
                return None
            return np.asarray(data["kernel_x2"], dtype=np.float64), float(data["seconds"])
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: computed again and rewritten
            return None

    def _write(self, key: str, kernel: np.ndarray, seconds: float) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # repr of a Python float round-trips exactly through JSON
        text = json.dumps({"format": FORMAT, "key": key, "seconds": seconds, "kernel_x2": kernel.tolist()})
        fd, tmp = tempfile.mkstemp(prefix=".kernelgan-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# the cache of methods the harness gave none (direct API use): estimates shared within the process
PROCESS_CACHE = EstimateCache()

__all__ = ["EstimateCache", "PROCESS_CACHE", "SharedEstimate", "estimate_key"]
