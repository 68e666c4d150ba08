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

The decision made from the estimates (baselines.kernel_decision: use, re-estimate, bicubic) is shared the same way
(`EstimateCache.decision`, files decision-<key>.json): every preset that reuses an estimate reuses its decision and
reason, and is charged the seconds of every KernelGAN run the decision took.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from baselines.kernel_decision import KernelDecision

FORMAT = 2  # bump when the file layout changes (older files are then ignored, not misread); 2: the raw kernel


@dataclass(frozen=True)
class SharedEstimate:
    """A KernelGAN x2 kernel (and G's raw kernel, which the checks look at) with what computing it cost, and
    whether this caller reused it."""

    kernel_x2: np.ndarray
    seconds: float  # KernelGAN's own clock when it was computed
    reused: bool
    raw_kernel: np.ndarray


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
        self._memory: dict[str, dict[str, Any]] = {}  # file name -> its JSON content
        self.computed = 0  # estimates this cache computed (tests count them)
        self.decided = 0  # decisions this cache made

    def estimate(self, key: str, compute: Callable[[], tuple[np.ndarray, float, np.ndarray]]) -> SharedEstimate:
        """The estimate of `key`: reused when known, else compute() -> (x2 kernel, seconds, raw kernel), stored and
        returned."""
        name = f"kernelgan-{key}"
        known = self._known(name, key)
        if known is not None:
            return SharedEstimate(np.asarray(known["kernel_x2"], dtype=np.float64), float(known["seconds"]),
                                  reused=True, raw_kernel=np.asarray(known["raw_kernel"], dtype=np.float64))
        kernel, seconds, raw = compute()
        kernel, raw = np.asarray(kernel, dtype=np.float64), np.asarray(raw, dtype=np.float64)
        self.computed += 1
        # repr of a Python float round-trips exactly through JSON
        self._store(name, {"format": FORMAT, "key": key, "seconds": float(seconds), "kernel_x2": kernel.tolist(),
                           "raw_kernel": raw.tolist()})
        return SharedEstimate(kernel, float(seconds), reused=False, raw_kernel=raw)

    def decision(self, key: str, decide: Callable[[], "KernelDecision"]) -> "KernelDecision":
        """The decision of `key` (baselines.kernel_decision): reused when known (then `reused` is True), else
        decide(), stored and returned."""
        from baselines.kernel_decision import KernelDecision

        name = f"decision-{key}"
        known = self._known(name, key)
        if known is not None:
            return KernelDecision.from_json(known, reused=True)
        made = decide()
        self.decided += 1
        self._store(name, {"format": FORMAT, "key": key, **made.to_json()})
        return made

    def _known(self, name: str, key: str) -> dict[str, Any] | None:
        data = self._memory.get(name) or self._read(name, key)
        if data is not None:
            self._memory[name] = data
        return data

    def _store(self, name: str, data: dict[str, Any]) -> None:
        self._memory[name] = data
        self._write(name, data)

    def _path(self, name: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{name}.json"

    def _read(self, name: str, key: str) -> dict[str, Any] | None:
        path = self._path(name)
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("key") != key:
                return None
            # parsed once here, so that a damaged file raises now and is made again, not later in a cell
            if name.startswith("decision-"):
                from baselines.kernel_decision import KernelDecision

                KernelDecision.from_json(data, reused=True)
            else:
                for field in ("kernel_x2", "raw_kernel"):
                    np.asarray(data[field], dtype=np.float64)
                float(data["seconds"])
            return data
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: computed again and rewritten
            return None

    def _write(self, name: str, data: dict[str, Any]) -> None:
        path = self._path(name)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(data)
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
