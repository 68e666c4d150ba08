"""Device selection, synchronised timing and peak-memory measurement (CUDA when present, CPU otherwise)."""
from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from typing import Iterator

import torch


def select_device(name: str = "auto") -> torch.device:
    """The device a run asks for; one that does not exist here is an error saying what does."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"DEVICE={name}: not a device name ({exc}); use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"DEVICE={name} asked for, but CUDA is not available here; use DEVICE=cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"DEVICE={name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"DEVICE={name}: the harness runs on cpu or cuda")
    return device


# The CPU features that decide how fast a step runs here, best first: AMX and AVX512-BF16 run bf16 matrix products
# in hardware, AVX2-only CPUs emulate bf16 (so `auto` precision is fp32 there).
_CPU_FEATURES = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"), ("avx2", "AVX2"))


def cpu_model() -> str:
    """The CPU's model name and its best matrix-math feature, e.g. "AMD EPYC 7B12, AVX2", read from /proc/cpuinfo
    (platform.processor() elsewhere). Seconds measured on two CPUs are not comparable, so rows name the CPU, not
    only its architecture (rows written before this carry "CPU (x86_64, N cores)")."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = " ".join(value.split())
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    best = next((label for flag, label in _CPU_FEATURES if flag in flags), None)
    return f"{model}, {best}" if best else model


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({cpu_model()}, {os.cpu_count()} cores)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory of a block. CUDA: the allocator's peak. CPU (Linux): the process's peak resident set over the
    block, after resetting the kernel's high-water mark (/proc/self/clear_refs); `baseline_mb` is the resident set
    at the start, which the peak includes (memory freed earlier but still held by the process is reused without
    growing it, so a difference would read 0 for most cells). Where the mark cannot be reset, no figure (None)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mb: float | None = None
        self.baseline_mb: float | None = None
        self._reset = False

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w") as fh:
                    fh.write("5")  # resets VmHWM to the current RSS
                self._reset = True
            except OSError:
                self._reset = False
            start = _rss_kib("VmRSS")
            self.baseline_mb = None if start is None else start / 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._reset:
            peak = _rss_kib("VmHWM")
            self.mb = None if peak is None else peak / 1024


@contextmanager
def timed(device: torch.device, out: dict, key: str) -> Iterator[None]:
    """Wall seconds of a block with the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    try:
        yield
    finally:
        synchronize(device)
        out[key] = time.perf_counter() - start


def configure_threads(threads: int | None = None) -> int:
    """Threads for this process: an explicit count (workers share the cores), else ZSSR_BENCH_THREADS, else
    torch's default (all cores). Returns the count in force."""
    from baselines import settings

    value = threads or settings.threads()
    if value:
        torch.set_num_threads(max(1, int(value)))
    return torch.get_num_threads()
