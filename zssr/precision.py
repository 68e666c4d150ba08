"""Numeric precision of the networks: one setting, resolved against the device.

    resolve_precision("auto", device)  ->  "bf16" where the hardware has native bf16 matrix units, else "fp32"

"auto" asks `native_bf16(device)`: on a CPU, the processor flags `amx_bf16` or `avx512_bf16` (Linux /proc/cpuinfo;
oneDNN then runs bf16 convolutions on those units); on CUDA, compute capability 8.0 or newer (Ampere and later).
Anything else (no flags, another OS, an older GPU) resolves to fp32. "bf16" and "fp16" run the network under
autocast: convolutions and matrix products in the low precision, weights, losses, normalisations and everything
outside the network (resizing, back-projection, metrics) in fp32. fp16 is for CUDA only.
"""
from __future__ import annotations

import contextlib
import functools
from typing import ContextManager

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` has native bf16 matrix units (the capability probe behind "auto")."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return any(flag in _cpu_flags() for flag in _CPU_FLAGS)
    return False


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    return name


def resolve_precision(requested: str, device: torch.device | str, bf16_ok: bool = True) -> str:
    """The concrete precision ("fp32", "bf16" or "fp16") in force for `requested` on `device`.

    bf16_ok=False: the caller measured bf16 as not accurate enough, so "auto" stays fp32 (an explicit "bf16" is
    still honoured)."""
    check_precision(requested)
    device = torch.device(device)
    if requested == "auto":
        return "bf16" if bf16_ok and native_bf16(device) else "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise ValueError(f"precision fp16 is for CUDA devices only (device here: {device}); use bf16 or fp32")
    return requested


def torch_dtype(precision: str) -> torch.dtype:
    return _DTYPES[precision]


def autocast(precision: str, device: torch.device | str, cache: bool = True) -> ContextManager:
    """Autocast for a concrete precision; a no-op for fp32. cache=False: no cache of cast weights (as CUDA-graph
    capture needs)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision], cache_enabled=cache)


__all__ = ["PRECISIONS", "native_bf16", "check_precision", "resolve_precision", "torch_dtype", "autocast"]
