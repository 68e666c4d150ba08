"""Degradations: how LR images are made from HR ones, as named, versioned entries of a registry.

A degradation is written as steps joined with "+": one blur-and-downscale step (`bicubic`, the default;
`aniso-gaussian`; `kernel:<file.mat>`; the published Gaussians `gauss-var-direct:2.0` and the like, see
GAUSS_STEPS) then optional `noise[:sigma]` (Gaussian, sigma in grey levels of 255) and
`jpeg[:quality]`, e.g. `aniso-gaussian+jpeg:75`. What is drawn at random (a kernel, the noise) is seeded by the
image's content, the scale and the degradation, so a cell is reproducible anywhere, and differs between images.
A degradation's `id` (in every cell's key) names its steps with their parameters and versions: bump an entry's
version whenever its LR images change.

The subsampling grid (zssr.kernels.GRIDS) is half of what a blur step does, and is told with its kernel:
`kernel:` and `aniso-gaussian` use ZSSR's grid (the kernel re-centred by kernel_shift, LR pixel i centred at HR
s*i + (s - 1) / 2, as MATLAB bicubic); `gauss-*-direct` convolve and keep [0::s, 0::s] (MZSR's g^d, SRMD's direct
downsampler: LR pixel i centred at HR s*i); `gauss-*-bicubic` blur then MATLAB bicubic downscaling (MZSR's g^b).

`none` makes no LR image: the dataset's images are the LR inputs as they are (real photos, whose high-resolution
original does not exist), so its cells have no HR image and no known kernel; it stands alone.
"""
from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import realistic as _realistic
from bench.protocol import kernel_digest, make_pair


@dataclass(frozen=True)
class Realisation:
    """What one (image, scale) got: the true blur kernel (None for bicubic), the noise sigma (grey levels, None
    without noise), the JPEG quality (None without JPEG)."""

    kernel: np.ndarray | None = field(default=None, compare=False, repr=False)
    noise_sigma: float | None = None
    jpeg_quality: int | None = None
    grid: str = "zssr"  # the subsampling grid the kernel was applied on (zssr.kernels.GRIDS)


def _rng(*parts) -> np.random.Generator:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# -- the blur-and-downscale steps ----------------------------------------------------------------------------------

def aniso_gaussian_kernel(rng: np.random.Generator, scale: int, size: int = 21, noise_level: float = 0.25
                          ) -> np.ndarray:
    """A random anisotropic Gaussian as in the DIV2KRK recipe (Bell-Kligler et al., KernelGAN, NeurIPS 2019, and
    the authors' BlindSR dataset generator): covariance eigenvalues uniform in [0.175 s, 2.5 s] (s the scale),
    a uniform angle in [0, pi), multiplicative noise uniform in +-25 % per kernel pixel (the paper's "up to 25 %"),
    normalised to sum 1; 21 x 21 (the generator's size, room for the widest Gaussian). The mean is placed for the
    subsampling grid; the harness centres it again on use (zssr.kernels.kernel_shift), as for a given kernel."""
    lam = rng.uniform(0.175 * scale, 2.5 * scale, size=2)
    theta = rng.uniform(0.0, np.pi)
    noise = rng.uniform(-noise_level, noise_level, size=(size, size))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag(lam) @ rot.T)
    mu = size // 2 + 0.5 * (scale - size % 2)
    yy, xx = np.mgrid[0:size, 0:size]
    z = np.stack([xx - mu, yy - mu], axis=-1)
    raw = np.exp(-0.5 * np.einsum("...i,ij,...j->...", z, inv, z)) * (1.0 + noise)
    return raw / raw.sum()


def gaussian_kernel(variances: tuple[float, float], angle_deg: float = 0.0, size: int = 21) -> np.ndarray:
    """A Gaussian as MZSR's gkernel.anisotropic_Gaussian makes it: covariance R diag(v1, v2) R^T (v: VARIANCES, R a
    rotation by `angle_deg`, x first), sampled at integer offsets from the middle of a size x size grid, normalised
    to sum 1. MZSR's "g^d 2.0" (its Input/g20/kernel.mat) is variances (2, 2), 21 x 21."""
    theta = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag(np.asarray(variances, dtype=np.float64)) @ rot.T)
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    xx, yy = np.meshgrid(r, r)
    z = np.stack([xx, yy], axis=-1)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", z, inv, z))
    return k / k.sum()


# The published Gaussians: step name -> (the parameter is a variance or a sigma, the subsampling grid)
GAUSS_STEPS = {"gauss-var-direct": ("var", "direct"), "gauss-sigma-direct": ("sigma", "direct"),
               "gauss-var-bicubic": ("var", "bicubic"), "gauss-sigma-bicubic": ("sigma", "bicubic")}
GAUSS_SIZE = 21  # MZSR's kernel size (Input/g20/kernel.mat)


def parse_gauss(name: str, param: str, spec: str) -> tuple[str, tuple[float, float], float]:
    """(normalised parameter, variances, angle in degrees) of a Gaussian step: `v` (isotropic) or `v1,v2,angle`
    (anisotropic: the two axes' values, then the rotation in degrees); a variance or a sigma as the name says."""
    try:
        values = [float(v) for v in param.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values) or not all(v > 0 for v in values[:2]):
        raise ValueError(f"degradation {spec!r}: {name} takes one positive number (isotropic) or three (two axes, "
                         f"then the angle in degrees), e.g. {name}:2.0 or {name}:4.0,1.0,30; got {param!r}")
    axes = (values[0], values[0]) if len(values) == 1 else (values[0], values[1])
    variances = axes if GAUSS_STEPS[name][0] == "var" else (axes[0] ** 2, axes[1] ** 2)
    angle = values[2] if len(values) == 3 else 0.0
    return ",".join(repr(v) for v in values), variances, angle


def grid_downscale_uint8(img: np.ndarray, kernel: np.ndarray, scale: int, grid: str) -> np.ndarray:
    """Blur (scipy convolve, reflect, per channel, in grey levels) then subsample on `grid`: "direct" keeps
    [0::s, 0::s] (MZSR's Input/g20 files exactly), "bicubic" downscales with MATLAB bicubic; rounded to uint8."""
    from scipy import ndimage

    planes = img.astype(np.float64)
    planes = planes[..., None] if planes.ndim == 2 else planes
    blurred = np.stack([ndimage.convolve(planes[..., c], kernel, mode="reflect") for c in range(planes.shape[2])],
                       axis=-1)
    if grid == "direct":
        out = blurred[::scale, ::scale]
    elif grid == "bicubic":
        from basicsr.utils.matlab_functions import imresize

        out = imresize(blurred / 255.0, 1.0 / scale) * 255.0
        out = out if out.ndim == 3 else out[..., None]
    else:
        raise ValueError(f"grid_downscale_uint8: unknown grid {grid!r}")
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out if img.ndim == 3 else out[..., 0]


@dataclass(frozen=True)
class Step:
    name: str
    param: str = ""

    @property
    def entry(self) -> "Entry":
        return REGISTRY[self.name]


@dataclass(frozen=True)
class Entry:
    """One registered step: its kind (blur steps replace bicubic; the others follow it), version, description."""

    name: str
    kind: str  # "blur" | "after" | "as-is" (none: the image is the LR input; no other step may join it)
    version: int
    describe: str
    default: str = ""

    def step_id(self, step: Step, kernel: np.ndarray | None = None) -> str:
        """The step's part of a degradation id; `kernel`: the loaded file of a kernel step (named by its values)."""
        if self.name == "bicubic":
            return "bicubic"
        if self.name == "kernel":
            return f"kernel-{kernel_digest(kernel)[:12]}"
        param = f"-{step.param or self.default}" if (step.param or self.default) else ""
        return f"{self.name}{param}.v{self.version}"


NONE = "none"  # the degradation of real photos: the images are the LR inputs as they are

def is_as_is(degradation_id: str) -> bool:
    """Whether a degradation id (the results' column) is `none`'s: its images were the LR inputs as they are."""
    return degradation_id == NONE or str(degradation_id).startswith(NONE + ".v")


REGISTRY: dict[str, Entry] = {e.name: e for e in (
    Entry("bicubic", "blur", 1, "MATLAB bicubic downscaling (antialiased)"),
    Entry(NONE, "as-is", 1, "none: the images are the LR inputs as they are (no HR image, no known kernel; "
          "reference metrics are n/a)"),
    Entry("aniso-gaussian", "blur", 1, "a random anisotropic Gaussian blur per image and scale (DIV2KRK recipe), "
          "then subsampling"),
    Entry("kernel", "blur", 1, "a given blur kernel (MATLAB file, variable Kernel), then subsampling"),
    # blur, noise and JPEG drawn together per image (bench/realistic.py: the source and its ranges)
    Entry("realistic", "blur", 1, "realistic: " + _realistic.DESCRIPTION),
    Entry("noise", "after", 1, "additive white Gaussian noise, sigma in grey levels (of 255)", default="5"),
    Entry("jpeg", "after", 1, "JPEG compression (Pillow, 4:2:0) at the stated quality", default="75"),
    Entry("gauss-var-direct", "blur", 1, "a Gaussian of the stated variance (MZSR's kernels, 21 x 21), then direct "
          "subsampling [0::s] (MZSR's g^d, SRMD's direct downsampler)"),
    Entry("gauss-sigma-direct", "blur", 1, "a Gaussian of the stated sigma (MZSR's kernels, 21 x 21), then direct "
          "subsampling [0::s] (MZSR's g^d, SRMD's direct downsampler)"),
    Entry("gauss-var-bicubic", "blur", 1, "a Gaussian of the stated variance (21 x 21), then MATLAB bicubic "
          "downscaling (MZSR's g^b)"),
    Entry("gauss-sigma-bicubic", "blur", 1, "a Gaussian of the stated sigma (21 x 21), then MATLAB bicubic "
          "downscaling (MZSR's g^b)"),
)}


def load_kernel_file(path: str) -> np.ndarray:
    from zssr.kernels import load_kernel

    p = Path(path).expanduser()
    try:
        kernel = load_kernel(p)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise ValueError(f"kernel {path}: {exc.args[0] if exc.args else exc}; give a .mat file holding a 2-D matrix "
                         "named 'Kernel'") from exc
    except Exception as exc:  # scipy's loadmat on a file that is not a MATLAB file
        raise ValueError(f"kernel {path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    if not np.isfinite(kernel).all() or kernel.sum() <= 0:
        raise ValueError(f"kernel {path}: the kernel must be finite with a positive sum")
    return kernel / kernel.sum()


@dataclass(frozen=True)
class Degradation:
    spec: str  # as written, normalised
    steps: tuple[Step, ...]
    id: str
    blur_id: str  # the blur step's part of `id`: what seeds a drawn kernel
    description: str
    kernel_file: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def blur(self) -> Step:
        return self.steps[0]

    @property
    def has_reference(self) -> bool:
        """False for `none`: the image is the LR input, there is no HR image to compare with and no true kernel."""
        return self.blur.name != NONE

    def realise(self, image_id: str, scale: int) -> Realisation:
        """What this image at this scale gets (deterministic)."""
        rng = _rng(self.blur_id, image_id, scale)  # the blur alone: aniso-gaussian+jpeg has aniso-gaussian's kernels
        kernel = None
        if self.blur.name == "aniso-gaussian":
            kernel = aniso_gaussian_kernel(rng, scale)
        elif self.blur.name == "kernel":
            kernel = self.kernel_file
        elif self.blur.name == "realistic":  # its own noise and JPEG too (parse() allows no further step)
            drawn = _realistic.draw(rng)
            return Realisation(kernel=drawn["kernel"], noise_sigma=drawn["noise_sigma"],
                               jpeg_quality=drawn["jpeg_quality"])
        grid = "zssr"
        if self.blur.name in GAUSS_STEPS:
            _, variances, angle = parse_gauss(self.blur.name, self.blur.param, self.spec)
            kernel, grid = gaussian_kernel(variances, angle, GAUSS_SIZE), GAUSS_STEPS[self.blur.name][1]
        after = {s.name: (s.param or s.entry.default) for s in self.steps[1:]}
        return Realisation(kernel=kernel,
                           noise_sigma=float(after["noise"]) if "noise" in after else None,
                           jpeg_quality=int(after["jpeg"]) if "jpeg" in after else None, grid=grid)

    def make_pair(self, hr: np.ndarray, scale: int, name: str, y_only: bool, image_id: str
                  ) -> tuple[np.ndarray, np.ndarray, Realisation]:
        """(mod-cropped HR, LR, what was drawn) as uint8 arrays; with `y_only` both are MATLAB Y. Under `none` the
        HR image is None and the LR image is `hr` as it is (the image is the input)."""
        if not self.has_reference:
            return None, as_is_input(hr, scale, name, y_only), Realisation()
        real = self.realise(image_id, scale)
        if real.grid == "zssr":
            hr, lr = make_pair(hr, scale, name=name, kernel=real.kernel, y_only=y_only)
        else:
            from bench.protocol import check_size, modcrop, rgb_to_y

            if scale < 2 or int(scale) != scale:
                raise ValueError(f"{name}: scale must be an integer >= 2, got {scale!r}")
            check_size(hr, scale, name)
            hr = rgb_to_y(modcrop(hr, scale)) if y_only else modcrop(hr, scale)
            lr = grid_downscale_uint8(hr, real.kernel, scale, real.grid)
        if real.noise_sigma:
            noise = _rng(self.id, image_id, scale, "noise").normal(0.0, real.noise_sigma, size=lr.shape)
            lr = np.clip(np.round(lr.astype(np.float64) + noise), 0, 255).astype(np.uint8)
        if real.jpeg_quality is not None:
            lr = _jpeg(lr, real.jpeg_quality)
        return hr, lr, real


def as_is_input(img: np.ndarray, scale: int, name: str, y_only: bool) -> np.ndarray:
    """An image used as the LR input (degradation none): not cropped, only checked to be large enough."""
    from bench.protocol import MIN_LR_SIDE, rgb_to_y

    if scale < 2 or int(scale) != scale:
        raise ValueError(f"{name}: scale must be an integer >= 2, got {scale!r}")
    h, w = img.shape[:2]
    if min(h, w) < MIN_LR_SIDE:
        raise ValueError(f"{name}: {w}x{h} is too small to upscale (degradation none uses it as the LR input, which "
                         f"needs at least {MIN_LR_SIDE} pixels per side); use a larger image")
    lr = rgb_to_y(img) if y_only else img
    return lr if lr.flags.writeable else lr.copy()  # torch.from_numpy warns on a read-only array


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L" if img.ndim == 2 else "RGB"), dtype=np.uint8).copy()


def parse(spec: str) -> Degradation:
    """A degradation from its written form; an unknown step or a malformed one is an error naming it."""
    import difflib

    text = str(spec).strip()
    if not text:
        raise ValueError("an empty degradation; use e.g. bicubic, aniso-gaussian, noise:5, jpeg:75 or kernel:k.mat")
    steps = []
    for part in text.split("+"):
        name, _, param = part.strip().partition(":")
        if name not in REGISTRY:
            close = difflib.get_close_matches(name, REGISTRY, n=1)
            raise ValueError(f"degradation {spec!r}: unknown step {name!r}"
                             + (f" (did you mean {close[0]}?)" if close else "") + f"; known: {', '.join(REGISTRY)}")
        if name == "kernel" and not param:
            raise ValueError(f"degradation {spec!r}: kernel needs a file, e.g. kernel:k.mat")
        if name in GAUSS_STEPS:
            param = parse_gauss(name, param, spec)[0]  # 2 and 2.0 are one degradation
        if name in ("noise", "jpeg") and param:
            try:
                value = float(param)
            except ValueError:
                raise ValueError(f"degradation {spec!r}: {name} takes a number, got {param!r}") from None
            if not math.isfinite(value):  # noise:inf (or 1e400) would make a pure 0/255 image, recorded as ok
                raise ValueError(f"degradation {spec!r}: {name} takes a finite number, got {param!r}")
            if (name == "noise" and not value > 0) or (name == "jpeg" and not (1 <= value <= 100 and value == int(value))):
                raise ValueError(f"degradation {spec!r}: noise sigma must be > 0 and jpeg quality an integer 1-100")
        if name == NONE and param:
            raise ValueError(f"degradation {spec!r}: none takes no parameter")
        steps.append(Step(name, param))
    if any(s.name == NONE for s in steps) and len(steps) > 1:
        raise ValueError(f"degradation {spec!r}: none uses the images as they are (they are the LR inputs); it "
                         "takes no other step: give none alone, or a synthetic degradation beside it "
                         "(e.g. --degradation bicubic,none)")
    if steps[0].name == NONE:
        entry = REGISTRY[NONE]
        return Degradation(spec=NONE, steps=(steps[0],), id=entry.step_id(steps[0]), blur_id=entry.step_id(steps[0]),
                           description=entry.describe)
    blurs = [s for s in steps if s.entry.kind == "blur"]
    if len(blurs) > 1:
        raise ValueError(f"degradation {spec!r}: at most one of the blur steps "
                         f"{', '.join(e.name for e in REGISTRY.values() if e.kind == 'blur')}")
    if blurs and blurs[0].name == "realistic" and len(steps) > 1:
        raise ValueError(f"degradation {spec!r}: realistic draws its own noise and JPEG per image; use it alone")
    after = sorted((s for s in steps if s.entry.kind == "after"), key=lambda s: ("noise", "jpeg").index(s.name))
    if len({s.name for s in after}) != len(after):
        raise ValueError(f"degradation {spec!r}: a step is given twice")
    steps = tuple((blurs or [Step("bicubic")]) + after)  # noise before JPEG, whatever the order written
    kernel = load_kernel_file(steps[0].param) if steps[0].name == "kernel" else None
    description = "; then ".join(s.entry.describe + (f" ({s.param or s.entry.default})" if s.entry.kind == "after"
                                                     else f" ({Path(s.param).name})" if s.param else "")
                                 for s in steps)
    ids = [s.entry.step_id(s, kernel) for s in steps]
    return Degradation(spec="+".join(s.name + (f":{s.param}" if s.param else "") for s in steps), steps=steps,
                       id="+".join(ids), blur_id=ids[0], description=description, kernel_file=kernel)



@dataclass(frozen=True)
class GivenDegradation:
    """A paired dataset's degradation: its LR images are given, not made. `id` (the results' degradation column)
    is the dataset's declared name, e.g. given:g20; each image's identity covers its HR, its LR and what it tells
    (bench.datasets.DatasetImage.content_id). What non-blind methods are told: the dataset's kernel (per image or
    per set) on its declared grid, and its noise level."""

    spec: str
    id: str
    description: str
    scale: int
    steps: tuple = ()
    blur_id: str = ""
    kernel_file: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def has_reference(self) -> bool:
        return True  # the dataset gives the HR image beside each LR one

    @classmethod
    def of(cls, dataset) -> "GivenDegradation":
        p = dataset.paired
        told = ", ".join(x for x in (("a kernel (" + str(p.grid) + " grid)") if p.kernel or any(
            im.kernel for im in dataset.images) else "", f"noise sigma {p.noise:g}" if p.noise else "") if x)
        return cls(spec=p.degradation, id=p.degradation, scale=p.scale,
                   description=f"LR images given by the dataset {dataset.name} (x{p.scale})"
                   + (f"; non-blind methods are told {told}" if told else ""))

    def given_pair(self, dataset, image, scale: int, y_only: bool) -> tuple[np.ndarray, np.ndarray, Realisation]:
        """(mod-cropped HR, given LR, what non-blind methods are told); a pair whose sizes do not match the scale
        is an error naming both files."""
        from bench.protocol import check_size, modcrop, rgb_to_y

        where = f"{dataset.name}: {image.file} / {image.lr_file}"
        if scale != self.scale:
            raise ValueError(f"{where}: the dataset gives LR images for x{self.scale}, not x{scale}")
        hr, lr = dataset.load(image), dataset.load_lr(image)
        check_size(hr, scale, f"{dataset.name}/{image.file}")
        hr = modcrop(hr, scale)
        want = (hr.shape[0] // scale, hr.shape[1] // scale)
        if lr.shape[:2] != want or (hr.ndim == 3) != (lr.ndim == 3):
            raise ValueError(f"{where}: the LR image is {lr.shape[1]}x{lr.shape[0]}"
                             f"{'' if lr.ndim == 3 else ' (grey)'}, the HR image {hr.shape[1]}x{hr.shape[0]}"
                             f"{'' if hr.ndim == 3 else ' (grey)'} (mod-cropped): at x{scale} the LR image must be "
                             f"{want[1]}x{want[0]} with the same channels; fix or remove the pair")
        if y_only:
            hr, lr = rgb_to_y(hr), rgb_to_y(lr)
        lr = lr if lr.flags.writeable else lr.copy()  # torch.from_numpy warns on a read-only array
        p = dataset.paired
        kernel = dataset.kernel_for(image)
        return hr, lr, Realisation(kernel=kernel, noise_sigma=p.noise, grid=(p.grid or "zssr") if kernel is not None
                                   else "zssr")
