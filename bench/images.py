"""Reading images into uint8 arrays (H x W x 3 RGB or H x W grayscale), with errors that name the file."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(ValueError):
    """An input image that cannot be used; the message names the file and what to do."""


def _png_bit_depth(path: Path) -> int | None:
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) == 26 and head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
        return head[24]
    return None


def _load_16bit(path: Path) -> np.ndarray:
    # Pillow truncates 16-bit RGB PNGs; OpenCV keeps all 16 bits.
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"{path}: cannot decode this 16-bit image; re-save it as an 8-bit or 16-bit PNG")
    if arr.ndim == 3:
        arr = arr[:, :, 2::-1] if arr.shape[2] >= 3 else arr[:, :, 0]
    scaled = np.round(arr.astype(np.float64) / 257.0) if arr.dtype == np.uint16 else arr
    return np.ascontiguousarray(np.clip(scaled, 0, 255).astype(np.uint8))


def load_image(path: str | Path) -> np.ndarray:
    """Load an image as uint8: RGB (H, W, 3) or grayscale (H, W).

    Accepts RGB, L, RGBA/LA (alpha dropped: the benchmark compares colour; a dataset says so once, see
    has_alpha), palette, 1-bit, CMYK and 16-bit images, and GIFs (the first frame).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file; check the dataset path or ZSSR_BENCH_DATA")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty; replace it with a valid image")
    try:
        if _png_bit_depth(path) == 16:
            return _load_16bit(path)
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:  # an animated GIF (or multi-page TIFF): its first frame
                warnings.warn(f"{path}: {im.n_frames} frames; the first one is used", stacklevel=2)
                im.seek(0)
            im.load()
            return _to_uint8_array(im, path)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{path}: not a readable image ({exc}); replace or remove the file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{path}: image data is corrupt or truncated ({exc}); replace the file") from exc


def _to_uint8_array(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGB" if mode != "LA" else "L")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        scale = 257.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 1.0
        return np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
    elif mode == "F":
        raise ImageError(f"{path}: floating-point images are not supported; convert to 8- or 16-bit first")
    elif mode not in ("RGB", "L"):
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def has_alpha(path: str | Path) -> bool:
    """Whether an image file has an alpha channel (read from its header; False when it cannot be read)."""
    path = Path(path)
    try:
        if _png_bit_depth(path) is not None:
            with open(path, "rb") as fh:
                color_type = fh.read(26)[25]
            if color_type in (4, 6):  # grey + alpha, RGB + alpha
                return True
        with Image.open(path) as im:
            return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    except (OSError, SyntaxError, ValueError, IndexError):
        return False


def save_image(path: str | Path, img: np.ndarray) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def is_gray(img: np.ndarray) -> bool:
    return img.ndim == 2
