"""What a study's cells will cost: seconds per cell from the seconds-total rows of results already under reports/
(measured on this kind of machine), with declared guesses where nothing is measured.

ZSSR-family methods (names starting with `zssr`) cost per cell: they train on crops of a fixed size for a number of
iterations, so their time depends little on the image's size. Every other method costs per LR megapixel (one
forward pass over the image). A method measured at another scale of the same profile is used at that scale's cost
(said in the basis); a method measured nowhere uses GUESSES, each labelled "guess" with where its number comes from.
"""
from __future__ import annotations

import functools
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Guess:
    """A cost declared, not measured: `like` a measured method, seconds per LR megapixel, or seconds per cell."""

    why: str
    like: str | None = None
    seconds_per_lr_mp: float | None = None
    seconds_per_cell: float | None = None


# Set5 x4 averages 7,100 LR pixels per image (HR sizes in the set5 declaration / 16).
GUESSES: dict[str, Guess] = {
    "zssr-fast+true-kernel": Guess("told the kernel, trains as zssr-fast does", like="zssr-fast"),
    # KernelGAN's cost hardly depends on the image (it trains on 64 x 64 crops): 93 s per 1000 quick iterations on
    # the 2-core AVX2 machine in fp32 (docs/experiments/2026-12-06-blind-kernel-decision.md), 3x for the paper's 3000;
    # ZSSR then trains on the estimate with the preset's quick schedule (150 iterations on 64-pixel crops: 7 s for
    # zssr-original on a 96-pixel image in the same note's schedule run), so the estimate is most of a cell
    "zssr-fast+kernelgan": Guess("KernelGAN at the paper profile (3000 iterations, 3x the 93 s its 1000 quick "
                                 "iterations took here) plus zssr-fast on its quick schedule (~10 s; docs/experiments/"
                                 "2026-12-06-blind-kernel-decision.md)", seconds_per_cell=290.0),
    "zssr-true-kernel": Guess("told the kernel, trains as zssr-original does", like="zssr-original"),
    "zssr-kernelgan": Guess("KernelGAN at the paper profile plus zssr-original on its quick schedule (as above)",
                            seconds_per_cell=290.0),
    "dat-light": Guess("0.80 s per Set5 x4 image in bf16 (docs/experiments/2026-12-01-pretrained-bf16.md)",
                       seconds_per_lr_mp=0.80 / 0.0071),
    "realesrgan-x4plus": Guess("2.46 s per Set5 x4 image in fp32, its `auto` precision (as above)",
                               seconds_per_lr_mp=2.46 / 0.0071),
    "realsr-df2k": Guess("RRDBNet like realesrgan-x4plus: its 2.46 s per Set5 x4 image in fp32 (as above)",
                         seconds_per_lr_mp=2.46 / 0.0071),
    "srmd": Guess("a 12-layer, 128-channel network at LR resolution (~1.5 M parameters, ~3 GFLOP per LR pixel) at "
                  "~100 GFLOP/s", seconds_per_lr_mp=30.0),
}
DEFAULT_GUESS = Guess("no measurement and no declared guess: 60 s per cell", seconds_per_lr_mp=None)
DEFAULT_SECONDS_PER_CELL = 60.0


@dataclass
class CostModel:
    # (method, profile, scale) -> [(seconds, LR megapixels or None)]
    samples: dict[tuple[str, str, int], list[tuple[float, float | None]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)
    here: str | None = None  # this machine's device name, where the model prefers its own measurements
    here_keys: set[tuple[str, str, int]] = field(default_factory=set)  # keys whose samples are this machine's

    def describe(self) -> str:
        return (f"median seconds-total of {sum(map(len, self.samples.values()))} cells in {len(self.sources)} "
                f"results.csv file(s) ({', '.join(sorted(self.devices)) or 'none'}), per cell for ZSSR methods, per LR "
                "megapixel otherwise; 'guess' marks declared numbers (bench/study_cost.py GUESSES)"
                + (f"; 'here': measured on this machine ({self.here}), used wherever it has such cells, 'elsewhere': "
                   "only on other machines" if self.here else ""))


def per_cell(method: str) -> bool:
    return method.startswith("zssr")


def measured_costs(reports_root: Path, device_prefix: str = "CPU", here: str | None = None) -> CostModel:
    """Every finished cell's seconds-total under reports_root whose device starts with `device_prefix`. With
    `here` (this machine's device name), a method, profile and scale measured on this machine costs what it cost
    here; other machines' seconds (another CPU can be 2x slower or faster) count only where this one has none."""
    from bench.results import read_results

    model = CostModel(here=here)
    by_device: dict[tuple[str, str, int], list[tuple[float, float | None, str]]] = {}
    for path in sorted(Path(reports_root).rglob("results.csv")):
        df = read_results(path)
        df = df[(df["metric"] == "seconds-total") & (df["status"] == "ok")]
        df = df[df["device"].str.startswith(device_prefix)]
        if not len(df):
            continue
        model.sources.append(str(path))
        model.devices.update(df["device"])
        for row in df.to_dict("records"):
            pixels = hr_pixels(row["dataset"], row["image"])
            lr_mp = pixels / row["scale"] ** 2 / 1e6 if pixels else None
            by_device.setdefault((row["method"], row["profile"], int(row["scale"])), []).append(
                (float(row["value"]), lr_mp, row["device"]))
    for key, found in by_device.items():
        mine = [f for f in found if here is not None and f[2] == here]
        if mine:
            model.here_keys.add(key)
        model.samples[key] = [(seconds, lr_mp) for seconds, lr_mp, _ in (mine or found)]
    return model


def _where(model: CostModel, key: tuple[str, str, int]) -> str:
    if model.here is None:
        return ""
    return " here" if key in model.here_keys else " elsewhere"


def _from_samples(method: str, samples: list, lr_mp: float | None) -> float:
    if not per_cell(method) and lr_mp:
        rates = [s / mp for s, mp in samples if mp]
        if rates:
            return statistics.median(rates) * lr_mp
    return statistics.median(s for s, _ in samples)


def cell_seconds(model: CostModel, method: str, profile: str, scale: int, dataset: str, image: str,
                 _depth: int = 0) -> tuple[float, str]:
    """(estimated seconds, basis) for one cell."""
    pixels = hr_pixels(dataset, image)
    lr_mp = pixels / scale ** 2 / 1e6 if pixels else None
    samples = model.samples.get((method, profile, scale))
    if samples:
        return (_from_samples(method, samples, lr_mp),
                f"measured{_where(model, (method, profile, scale))} {profile} x{scale}")
    others = sorted((abs(s - scale), s) for (m, p, s) in model.samples if m == method and p == profile)
    if others:
        near = others[0][1]
        return (_from_samples(method, model.samples[(method, profile, near)], lr_mp),
                f"measured{_where(model, (method, profile, near))} {profile} x{near}, used at x{scale}")
    guess = GUESSES.get(method)
    if guess and guess.like and _depth < 3:
        seconds, basis = cell_seconds(model, guess.like, profile, scale, dataset, image, _depth + 1)
        return seconds, f"guess: {guess.why} ({guess.like}: {basis})"
    if guess and guess.seconds_per_cell:
        return guess.seconds_per_cell, f"guess: {guess.why}"
    if guess and guess.seconds_per_lr_mp and lr_mp:
        return guess.seconds_per_lr_mp * lr_mp, f"guess: {guess.why}"
    return DEFAULT_SECONDS_PER_CELL, f"guess: {DEFAULT_GUESS.why}"


@functools.lru_cache(maxsize=None)
def hr_pixels(dataset: str, image: str) -> int | None:
    """An image's HR pixel count from its declaration (a crop) or its file's header; None where not at hand."""
    from bench import datasets as ds
    from bench import paths

    if dataset not in ds.available():
        return None
    found = [im for im in ds.load_dataset(dataset).images if im.name == image]
    if not found:
        return None
    im = found[0]
    crop = re.search(r"\bw=(\d+) h=(\d+)", im.processing or "")
    if crop:
        return int(crop.group(1)) * int(crop.group(2))
    for root in (paths.data_root(), paths.cache_root() / "datasets"):
        if root is not None and (root / dataset / im.file).is_file():
            from PIL import Image

            with Image.open(root / dataset / im.file) as opened:  # the header only: no decoding
                return opened.size[0] * opened.size[1]
    return None
