"""Dataset registry: one declarative TOML file per dataset under datasets/, or a folder of images.

Where an image comes from, in order: the data root (ZSSR_BENCH_DATA/<dataset>/<file>), the cache
(ZSSR_BENCH_CACHE/datasets/<dataset>/<file>), then its public source, verified by checksum before caching.
`builtin` images are read from the installed scikit-image package. A folder given as DATASET is a dataset whose
subfolders are categories.

A paired dataset gives the LR images too (BasicSR's dataroot_gt + dataroot_lq; MZSR's Input/g20, DIV2KRK, camera
pairs): its declaration has a [paired] table (the degradation's name for the results, e.g. given:g20; the scale;
optionally the blur kernel, its subsampling grid and the noise level that non-blind methods are told) and each image
an lr_file with its own checksums; a folder is paired when it holds HR/ and LR_x<s>/ (the same file names), or
<name>_GT.png beside <name>.png, with an optional paired.toml (degradation, grid, noise) and kernel.mat (per set)
or <name>.mat beside an LR image (per image). The identity of a paired image covers HR, LR and what is told.
"""
from __future__ import annotations

import difflib
import hashlib
import io
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench import paths
from bench.fetch import DownloadError, atomic_write, download, sha256_bytes, sha256_file
from bench.images import IMAGE_SUFFIXES, has_alpha, load_image

PACKAGE_SCHEME = "package:"  # package:<module>/<path inside the installed package>


class DatasetError(RuntimeError):
    pass


def pixels_sha256(img: np.ndarray) -> str:
    """Checksum of decoded pixel content (shape + uint8 bytes), independent of how the file was encoded."""
    h = hashlib.sha256(f"{img.shape}".encode())
    h.update(np.ascontiguousarray(img, dtype=np.uint8).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class DatasetImage:
    name: str
    category: str
    file: str
    pixels_sha256: str | None = None
    sha256: str | None = None  # of the file as published (for direct downloads)
    url: str | None = None
    processing: str = "none"
    content_sha: str | None = None  # folder datasets: sha256 of the file as found
    # paired datasets: the given LR image, as the HR one (file, checksums, source), and its own kernel file
    lr_file: str | None = None
    lr_pixels_sha256: str | None = None
    lr_sha256: str | None = None
    lr_url: str | None = None
    lr_content_sha: str | None = None
    kernel: str | None = None  # a per-image kernel (.mat, beside the LR file in a folder; declared: a file name)
    kernel_sha256: str | None = None
    kernel_url: str | None = None
    told_sha: str | None = None  # paired: the checksum of what non-blind methods are told (kernel, grid, noise)

    @property
    def content_id(self) -> str:
        """What the image is, for a cell's identity: its declared pixel checksum (a declared image that differs is
        an error when loaded), or for a folder the file's checksum; 16 hex digits. A paired image: of HR, LR and
        what is told, together."""
        hr = (self.pixels_sha256 or self.sha256 or self.content_sha or "undeclared")[:16]
        if self.lr_file is None:
            return hr
        lr = self.lr_pixels_sha256 or self.lr_sha256 or self.lr_content_sha or "undeclared"
        return hashlib.sha256(f"{hr}|{lr}|{self.told_sha or ''}".encode()).hexdigest()[:16]

    @property
    def lr(self) -> "DatasetImage":
        """The LR image as an image of its own (for loading and checking it like an HR one)."""
        if self.lr_file is None:
            raise DatasetError(f"{self.name}: not a paired image (no lr_file)")
        return DatasetImage(name=self.name, category=self.category, file=self.lr_file,
                            pixels_sha256=self.lr_pixels_sha256, sha256=self.lr_sha256, url=self.lr_url,
                            content_sha=self.lr_content_sha)


@dataclass(frozen=True)
class Paired:
    """What a paired dataset declares about its LR images: the degradation's name (the results' degradation
    column, e.g. given:g20), the scale, and what non-blind methods are told: a kernel file for the whole set (each
    image may have its own), its subsampling grid (zssr.kernels.GRIDS) and the noise sigma (grey levels)."""

    degradation: str
    scale: int
    kernel: str | None = None
    kernel_sha256: str | None = None
    kernel_url: str | None = None
    grid: str | None = None
    noise: float | None = None

    def told_sha(self, image: DatasetImage, kernel_sha: str | None) -> str:
        return hashlib.sha256(f"{kernel_sha}|{self.grid}|{self.noise}".encode()).hexdigest()


@dataclass(frozen=True)
class Dataset:
    name: str
    version: str
    description: str
    images: tuple[DatasetImage, ...]
    default_scales: tuple[int, ...] = (2, 3, 4)
    licence: str = ""
    source: str = ""
    folder: Path | None = None  # set for folder datasets
    extra: dict = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # folder datasets: files left out (hidden, not an image), said once in the log
    notes: tuple[str, ...] = ()  # folder datasets: one-line remarks for the log and the report (alpha, links, ...)
    paired: Paired | None = None  # set for datasets whose LR images are given

    @property
    def categories(self) -> list[str]:
        return sorted({im.category for im in self.images})

    def load_lr(self, image: DatasetImage) -> np.ndarray:
        """The verified uint8 LR image of a paired dataset's image."""
        return self.load(image.lr)

    def kernel_for(self, image: DatasetImage) -> np.ndarray | None:
        """The kernel non-blind methods are told for `image` (its own, else the set's; None: none declared),
        normalised to sum 1. A .mat file holding one 2-D matrix, named Kernel (ZSSR) or kernel (MZSR)."""
        if self.paired is None:
            return None
        if image.kernel:
            return _load_kernel(self._file(image.kernel, image.kernel_sha256, image.kernel_url))
        if self.paired.kernel:
            return _load_kernel(self._file(self.paired.kernel, self.paired.kernel_sha256, self.paired.kernel_url))
        return None

    def _file(self, file: str, sha256: str | None, url: str | None) -> Path:
        """A declared non-image file (a kernel): in the folder, the data root or the cache, else downloaded; its
        checksum verified where declared."""
        if self.folder is not None:
            return paths.inside(self.folder, file)
        root = paths.data_root()
        candidates = [paths.inside(root / paths.safe_component(self.name), file)] if root is not None else []
        cache = paths.cache_root() / "datasets"
        cached = paths.inside(cache / paths.safe_component(self.name), file)
        for p in candidates + [cached]:
            if p.is_file():
                if sha256 and sha256_file(p) != sha256:
                    raise DatasetError(f"{p}: checksum mismatch for {file} (expected {sha256[:12]}..., got "
                                       f"{sha256_file(p)[:12]}...); replace it or remove it to download it again")
                return p
        if not url:
            raise DatasetError(f"{self.name}/{file}: not under ZSSR_BENCH_DATA nor in the cache, and it has no "
                               "public source")
        try:
            data = download(url)
        except DownloadError as exc:
            raise DatasetError(f"{self.name}/{file}: not found locally and the download failed ({exc})") from exc
        if sha256 and sha256_bytes(data) != sha256:
            raise DatasetError(f"{self.name}/{file}: checksum mismatch for the file downloaded from {url}; not cached")
        atomic_write(cached, data)
        return cached

    def load(self, image: DatasetImage) -> np.ndarray:
        """The verified uint8 HR image."""
        if self.folder is not None:
            return load_image(self.folder / image.file)
        if image.url and image.url.startswith(PACKAGE_SCHEME):
            img = _apply_processing(_load_package_file(image.url), image.processing, image.url)
            _verify_pixels(img, image, image.url)
            return img
        root = paths.data_root()
        if root is not None and (local := paths.inside(root / paths.safe_component(self.name), image.file)).is_file():
            img = load_image(local)
            _verify_pixels(img, image, str(local))
            return img
        cache = paths.cache_root() / "datasets"
        cached = paths.inside(cache / paths.safe_component(self.name), image.file)
        if cached.is_file():
            img = load_image(cached)
            try:
                _verify_pixels(img, image, str(cached))
                return img
            except DatasetError:
                if not paths.is_within(cached, cache):  # a link out of the cache: never delete what it points to
                    raise
                cached.unlink()  # corrupt cache entry: fetch again
        return self._download(image, cached)

    def _download(self, image: DatasetImage, cached: Path) -> np.ndarray:
        if not image.url:
            raise DatasetError(
                f"{self.name}/{image.file}: not under ZSSR_BENCH_DATA ({paths.data_root()}) nor in the cache, and it "
                "has no public source; point ZSSR_BENCH_DATA at a folder holding "
                f"{self.name}/{image.file}"
            )
        try:
            data = download(image.url)
        except DownloadError as exc:
            raise DatasetError(
                f"{self.name}/{image.file}: not found locally and the download failed ({exc}); set ZSSR_BENCH_DATA "
                "to a local copy of the datasets or check the network"
            ) from exc
        # Pixels are authoritative (a lossless re-encode is fine); the file checksum only when no pixel one exists.
        if not image.pixels_sha256 and image.sha256 and sha256_bytes(data) != image.sha256:
            raise DatasetError(
                f"{self.name}/{image.file}: checksum mismatch for the file downloaded from {image.url} "
                f"(expected {image.sha256}, got {sha256_bytes(data)}); it was not cached"
            )
        tmp = cached.with_name(cached.name + ".download")
        atomic_write(tmp, data)
        try:
            img = _apply_processing(load_image(tmp), image.processing, image.url)
            _verify_pixels(img, image, image.url)
        finally:
            tmp.unlink(missing_ok=True)
        buf = io.BytesIO()
        from PIL import Image

        Image.fromarray(img).save(buf, format="PNG")
        atomic_write(cached, buf.getvalue())
        return img


def _verify_pixels(img: np.ndarray, image: DatasetImage, where: str) -> None:
    if image.pixels_sha256 and pixels_sha256(img) != image.pixels_sha256:
        raise DatasetError(
            f"{where}: pixel checksum mismatch for {image.file} (expected {image.pixels_sha256[:12]}..., got "
            f"{pixels_sha256(img)[:12]}...); the file differs from the published one: replace it or remove it "
            "to download it again"
        )


_CROP = re.compile(r"crop x=(\d+) y=(\d+) w=(\d+) h=(\d+)")


def _apply_processing(img: np.ndarray, processing: str, where: str) -> np.ndarray:
    if processing in ("", "none", "none (lossless copy)"):
        return img
    match = _CROP.search(processing)
    if match and processing.startswith("crop"):
        x, y, w, h = map(int, match.groups())
        return np.ascontiguousarray(img[y : y + h, x : x + w])
    raise DatasetError(f"{where}: processing {processing!r} cannot be reproduced automatically; use ZSSR_BENCH_DATA")


def _load_package_file(url: str) -> np.ndarray:
    import importlib.util

    module, _, rel = url[len(PACKAGE_SCHEME):].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"{url}: package {module!r} is not installed")
    return load_image(Path(list(spec.submodule_search_locations)[0]) / rel)


def _load_kernel(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        data = loadmat(str(path))
    except Exception as exc:
        raise DatasetError(f"kernel {path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    name = next((n for n in ("Kernel", "kernel") if n in data), None)
    kernel = np.asarray(data[name], dtype=np.float64) if name else None
    if kernel is None or kernel.ndim != 2 or not np.isfinite(kernel).all() or kernel.sum() <= 0:
        raise DatasetError(f"kernel {path}: needs a finite 2-D matrix with a positive sum named Kernel or kernel "
                           f"(found {[n for n in data if not n.startswith('__')]})")
    return kernel / kernel.sum()


def _paired_from(table: dict, where: str) -> Paired:
    table = dict(table)
    unknown = set(table) - {f for f in Paired.__dataclass_fields__}
    if unknown or "degradation" not in table or "scale" not in table:
        raise DatasetError(f"{where}: [paired] needs degradation and scale (and may have kernel, kernel_sha256, "
                           f"kernel_url, grid, noise); got {sorted(table)}")
    degradation = str(table["degradation"])
    if not re.fullmatch(r"given:[A-Za-z0-9._-]+", degradation):
        raise DatasetError(f"{where}: [paired] degradation {degradation!r} must read given:<name> (letters, digits, "
                           "'.', '_' or '-'), e.g. given:g20")
    scale = table["scale"]
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise DatasetError(f"{where}: [paired] scale must be an integer >= 2, got {scale!r}")
    grid = table.get("grid")
    if grid is not None and grid not in GRIDS:
        raise DatasetError(f"{where}: [paired] grid {grid!r}: one of {', '.join(GRIDS)}")
    noise = table.get("noise")
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0):
        raise DatasetError(f"{where}: [paired] noise must be a sigma >= 0 in grey levels, got {noise!r}")
    return Paired(degradation=degradation, scale=scale, kernel=table.get("kernel"),
                  kernel_sha256=table.get("kernel_sha256"), kernel_url=table.get("kernel_url"), grid=grid,
                  noise=None if not noise else float(noise))


GRIDS = ("zssr", "direct", "bicubic")  # zssr.kernels.GRIDS (that module loads torch; this one must not)


def _with_told(images: tuple[DatasetImage, ...], paired: Paired, kernel_sha: "callable") -> tuple[DatasetImage, ...]:
    """Paired images with the checksum of what they tell (their kernel's, the grid, the noise) in their identity;
    a kernel without a grid is an error (the grid is half of what a kernel says)."""
    out = []
    for im in images:
        if im.lr_file is None:
            raise DatasetError(f"paired dataset: image {im.name!r} ({im.file}) has no lr_file")
        sha = kernel_sha(im)
        if sha is not None and paired.grid is None:
            raise DatasetError(f"paired dataset: a kernel is given ({im.kernel or paired.kernel}) but no grid; "
                               f"declare grid = one of {', '.join(GRIDS)} (how the LR images were subsampled)")
        out.append(replace(im, told_sha=paired.told_sha(im, sha)))
    return tuple(out)


def available() -> list[str]:
    return sorted(p.stem for p in paths.DATASET_DEFS.glob("*.toml"))


def is_registered_name(name: str) -> bool:
    """A name that can only mean a registered dataset: no path separator, no `..`, nothing but safe characters."""
    return paths.safe_component(name) == name and "/" not in name and os.sep not in name


def load_dataset(name_or_path: str) -> Dataset:
    """A dataset is a registered name (a file of bench/dataset_defs, see `available()`) or an existing folder;
    anything else (a path to a .toml file, a name with separators or `..`) is an error."""
    if not str(name_or_path).strip():
        raise DatasetError("no dataset given (DATASET is empty); name one (`python -m bench list`) or give a folder")
    candidate = Path(name_or_path).expanduser()
    if name_or_path not in available() and candidate.is_dir():
        return folder_dataset(candidate)
    if not is_registered_name(name_or_path):
        raise DatasetError(f"dataset {name_or_path!r}: not a registered dataset name (those have no path separators "
                           f"or ..; known: {', '.join(available())}) and not an existing folder")
    definition = paths.DATASET_DEFS / f"{name_or_path}.toml"
    if not definition.is_file():
        close = difflib.get_close_matches(name_or_path, available(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Known: {', '.join(available())}."
        raise DatasetError(f"unknown dataset {name_or_path!r} (and no such folder).{hint}")
    spec = tomllib.loads(definition.read_text())
    images = tuple(DatasetImage(**im) for im in spec.pop("images"))
    _check_definition(spec.get("name"), images, definition)
    _check_unique(images, name_or_path)
    paired = _paired_from(spec.pop("paired"), str(definition)) if "paired" in spec else None
    if paired is not None:  # declared checksums identify the kernels
        images = _with_told(images, paired, lambda im: im.kernel_sha256 if im.kernel else paired.kernel_sha256
                            if paired.kernel else None)
    return Dataset(
        name=spec.pop("name"), version=str(spec.pop("version")), description=spec.pop("description", ""),
        images=images, default_scales=tuple(spec.pop("default_scales", (paired.scale,) if paired else (2, 3, 4))),
        licence=spec.pop("licence", ""), source=spec.pop("source", ""), extra=spec, paired=paired,
    )


def select_images(dataset: Dataset, names: tuple[str, ...]) -> Dataset:
    """The dataset restricted to the named images, in the dataset's order (no names: all of it). The dataset's name
    stays, so each cell's identity and seed are those of a run over the whole dataset: a selection fills in part of
    a folder that a later full run completes."""
    if not names:
        return dataset
    known = {im.name for im in dataset.images}
    unknown = [n for n in names if n not in known]
    if unknown:
        hints = [f"{n!r} (did you mean {', '.join(close)}?)" if (close := difflib.get_close_matches(n, known, n=2))
                 else repr(n) for n in unknown]
        raise DatasetError(f"dataset {dataset.name!r} has no image {', '.join(hints)}; its images: "
                           f"{', '.join(im.name for im in dataset.images)}")
    wanted = set(names)
    return replace(dataset, images=tuple(im for im in dataset.images if im.name in wanted))


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)  # ._img.png, .ipynb_checkpoints/, .DS_Store


RUN_FOLDER_MARKERS = ("run.json", ".lock")  # what this suite writes into every run folder


def is_run_folder(folder: Path) -> bool:
    return any((Path(folder) / marker).is_file() for marker in RUN_FOLDER_MARKERS)


def _walk(folder: Path) -> tuple[list[Path], list[str], list[str], list[str]]:
    """(files, run folders skipped, symlinked folders followed, links skipped: into the dataset or above it), relative to `folder`.
    A symlinked category folder is followed (a category kept elsewhere is a common layout); a link back into a
    folder already walked is not (it would list the same images twice, or for ever)."""
    files, runs, linked, loops = [], [], [], []
    seen: set[Path] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        here = Path(root)
        for d in sorted(dirs):
            sub = here / d
            rel = sub.relative_to(folder)
            if is_run_folder(sub):  # an --out inside the dataset: its crops and outputs are not images to rate
                runs.append(str(rel))
                dirs.remove(d)
            elif sub.is_symlink():
                real = sub.resolve()
                if real in seen or paths.is_within(real, folder) or paths.is_within(folder, real):
                    loops.append(str(rel))  # inside the dataset (walked anyway) or above it (a loop)
                    dirs.remove(d)
                else:
                    seen.add(real)
                    linked.append(str(rel))
        dirs.sort()
        files += [here / n for n in sorted(names)]
    return sorted(files), runs, linked, loops


def folder_dataset(folder: Path) -> Dataset:
    """A user's folder: images directly inside get the folder's name as category; subfolders are categories.
    Hidden files and folders are skipped, and so are files that are not images (both listed in `skipped`), and
    run folders of this suite inside it (an --out in the dataset). Symlinked folders are followed."""
    folder = folder.resolve()
    if is_run_folder(folder):
        raise DatasetError(f"{folder}: this is a run folder of this suite (it holds run.json or .lock), not a "
                           "dataset; give the folder of images")
    paired = paired_folder_dataset(folder)
    if paired is not None:
        return paired
    found, runs, linked, loops = _walk(folder)
    files, skipped = [], []
    for p in found:
        if not p.is_file():
            continue
        rel = p.relative_to(folder)
        if _hidden(rel) or p.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(str(rel))
        else:
            files.append(p)
    if not files:
        raise DatasetError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
                           + (f"; skipped {len(skipped)} other or hidden file(s)" if skipped else "") + ")")
    images = []
    for p in files:
        rel = p.relative_to(folder)
        category = rel.parts[0] if len(rel.parts) > 1 else folder.name
        images.append(DatasetImage(name=p.stem, category=category, file=str(rel), content_sha=sha256_file(p)))
    images_t = tuple(images)
    _check_unique(images_t, str(folder))
    notes = []
    if runs:
        notes.append(f"skipped {len(runs)} run folder(s) of this suite inside the dataset (they hold run.json or "
                     f".lock; their outputs are not images to rate): {', '.join(runs[:5])}")
    if linked:
        notes.append(f"followed {len(linked)} symlinked folder(s): {', '.join(linked[:5])}")
    if loops:
        notes.append(f"skipped {len(loops)} symlinked folder(s) that lead into or above the dataset (their images would count twice): {', '.join(loops[:5])}")
    alpha = [im.file for im in images_t if has_alpha(folder / im.file)]
    if alpha:
        notes.append(f"{len(alpha)} image(s) have an alpha channel, dropped (RGB is compared): "
                     f"{', '.join(alpha[:5])}" + (" ..." if len(alpha) > 5 else ""))
    digest = hashlib.sha256("\n".join(f"{im.file}:{im.content_sha}" for im in images_t).encode())
    return Dataset(name=folder.name, version=f"folder-{digest.hexdigest()[:12]}", description=f"images under {folder}",
                   images=images_t, default_scales=(2, 4), source=str(folder), folder=folder,
                   skipped=tuple(skipped), notes=tuple(notes))


_LR_FOLDER = re.compile(r"LR_x(\d+)")


def _image_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
            and p.suffix.lower() in IMAGE_SUFFIXES}


def paired_folder_dataset(folder: Path) -> Dataset | None:
    """A folder laid out as a paired dataset (HR/ + LR_x<s>/, or <name>_GT.png beside <name>.png), else None.
    Every HR image needs its LR partner and the other way round (an error names both files); the scale is the
    LR_x<s> folder's, or, for the _GT layout, paired.toml's `scale` (default: the HR/LR size ratio, the same for
    every pair). paired.toml may also set degradation (default given:<folder name>), grid and noise."""
    lr_dirs = [d for d in sorted(folder.iterdir()) if d.is_dir() and _LR_FOLDER.fullmatch(d.name)]
    gts = sorted(p for p in folder.iterdir() if p.is_file() and p.stem.endswith("_GT")
                 and p.suffix.lower() in IMAGE_SUFFIXES)
    if (folder / "HR").is_dir() and lr_dirs:
        if len(lr_dirs) > 1:
            raise DatasetError(f"{folder}: one LR_x<s> folder per paired dataset, found "
                               f"{', '.join(d.name for d in lr_dirs)}; make one dataset folder per scale")
        hr_files, lr_files = _image_files(folder / "HR"), _image_files(lr_dirs[0])
        scale = int(_LR_FOLDER.fullmatch(lr_dirs[0].name).group(1))
        pairs = {n: (hr_files.get(n), lr_files.get(n)) for n in sorted(set(hr_files) | set(lr_files))}
        where_lr = lr_dirs[0]
    elif gts:
        lrs = _image_files(folder)
        pairs = {}
        for gt in gts:
            name = gt.stem[: -len("_GT")]
            pairs[name] = (gt, lrs.get(name))
        for name, p in lrs.items():
            if not name.endswith("_GT") and name not in pairs:
                pairs[name] = (None, p)
        scale, where_lr = None, folder
    else:
        return None
    for name, (hr, lr) in pairs.items():
        if hr is None or lr is None:
            have, missing = (hr, "its LR image") if lr is None else (lr, "its HR image")
            raise DatasetError(f"{folder}: {have.relative_to(folder)} has no partner ({missing} "
                               f"{name!r} is missing); a paired dataset needs both of every pair")
    settings = tomllib.loads((folder / "paired.toml").read_text()) if (folder / "paired.toml").is_file() else {}
    if scale is None:
        scale = settings.get("scale") or _size_ratio(folder, pairs)
    if settings.get("scale", scale) != scale:
        raise DatasetError(f"{folder}: paired.toml says scale {settings['scale']}, the folder {where_lr.name} "
                           f"x{scale}")
    set_kernel = where_lr / "kernel.mat"
    table = {"degradation": f"given:{paths.safe_component(folder.name)}", "scale": scale, **settings}
    if set_kernel.is_file():
        table["kernel"] = str(set_kernel.relative_to(folder))
    paired = _paired_from(table, str(folder / "paired.toml"))
    images = []
    for name, (hr, lr) in pairs.items():
        own = lr.with_suffix(".mat")
        images.append(DatasetImage(
            name=name, category=folder.name, file=str(hr.relative_to(folder)), content_sha=sha256_file(hr),
            lr_file=str(lr.relative_to(folder)), lr_content_sha=sha256_file(lr),
            kernel=str(own.relative_to(folder)) if own.is_file() else None))
    kernel_sha = lambda im: (sha256_file(folder / im.kernel) if im.kernel else
                             sha256_file(folder / paired.kernel) if paired.kernel else None)
    images_t = _with_told(tuple(images), paired, kernel_sha)
    _check_unique(images_t, str(folder))
    digest = hashlib.sha256("\n".join(f"{im.file}:{im.lr_file}:{im.content_id}" for im in images_t).encode())
    return Dataset(name=folder.name, version=f"folder-{digest.hexdigest()[:12]}",
                   description=f"image pairs under {folder} (LR given, x{scale})", images=images_t,
                   default_scales=(scale,), source=str(folder), folder=folder, paired=paired)


def _size_ratio(folder: Path, pairs: dict) -> int:
    from PIL import Image

    ratios = set()
    for hr, lr in pairs.values():
        with Image.open(hr) as a, Image.open(lr) as b:
            ratios.add((a.size[0] // b.size[0]) if b.size[0] else 0)
    if len(ratios) != 1 or min(ratios) < 2:
        raise DatasetError(f"{folder}: the HR/LR size ratios differ or are < 2 ({sorted(ratios)}); give the scale "
                           "in paired.toml (scale = 2)")
    return ratios.pop()


def _check_definition(name, images: tuple[DatasetImage, ...], where: Path) -> None:
    """A dataset file's names become paths (cache, data root, run folder): each must stay where it is put."""
    if not isinstance(name, str) or not is_registered_name(name):
        raise DatasetError(f"{where}: dataset name {name!r} must be letters, digits, '.', '_' or '-' (no separators "
                           "or ..)")
    for im in images:
        try:
            paths.inside(Path("."), im.file)
        except ValueError as exc:
            raise DatasetError(f"{where}: image {im.name!r}: file {exc}") from None
        if not str(im.name).strip():
            raise DatasetError(f"{where}: an image has an empty name (file {im.file})")


def _check_unique(images: tuple[DatasetImage, ...], where: str) -> None:
    seen: dict[str, str] = {}
    for im in images:
        if im.name in seen:
            raise DatasetError(f"{where}: two images are both named {im.name!r} ({seen[im.name]}, {im.file}); rename one")
        seen[im.name] = im.file
