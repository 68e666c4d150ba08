"""Dataset registry: one declarative TOML file per dataset under datasets/, or a folder of images.

Where an image comes from, in order: the data root (ZSSR_BENCH_DATA/<dataset>/<file>), the cache
(ZSSR_BENCH_CACHE/datasets/<dataset>/<file>), then its public source, verified by checksum before caching.
`builtin` images are read from the installed scikit-image package. A folder given as DATASET is a dataset whose
subfolders are categories.
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

    @property
    def content_id(self) -> str:
        """What the image is, for a cell's identity: its declared pixel checksum (a declared image that differs is
        an error when loaded), or for a folder the file's checksum; 16 hex digits."""
        return (self.pixels_sha256 or self.sha256 or self.content_sha or "undeclared")[:16]


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

    @property
    def categories(self) -> list[str]:
        return sorted({im.category for im in self.images})

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
    return Dataset(
        name=spec.pop("name"), version=str(spec.pop("version")), description=spec.pop("description", ""),
        images=images, default_scales=tuple(spec.pop("default_scales", (2, 3, 4))),
        licence=spec.pop("licence", ""), source=spec.pop("source", ""), extra=spec,
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
