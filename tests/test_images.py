"""The loader accepts the image kinds users have and rejects bad files with an error naming the file."""

import numpy as np
import pytest
from PIL import Image

from bench.protocol import make_pair
from bench.images import ImageError, load_image


def _rgb(h=40, w=48):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb_and_gray_roundtrip(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), rgb)
    gray = load_image(tmp_path / "g.png")
    assert gray.ndim == 2 and np.array_equal(gray, rgb[..., 0])


def test_rgba_drops_alpha_and_has_alpha_tells(tmp_path):
    """The alpha is dropped without a raw Python warning (the dataset notes it once: tests/test_trust.py)."""
    import warnings

    from bench.images import has_alpha

    rgba = np.dstack([_rgb(), np.full((40, 48), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(_rgb()).save(tmp_path / "b.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = load_image(tmp_path / "a.png")
    assert out.shape == (40, 48, 3) and np.array_equal(out, rgba[..., :3])
    assert has_alpha(tmp_path / "a.png") and not has_alpha(tmp_path / "b.png")


def test_palette_image(tmp_path):
    im = Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE, colors=16)
    im.save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    assert out.shape == (40, 48, 3) and np.array_equal(out, np.asarray(im.convert("RGB")))


def test_16bit_png_keeps_precision(tmp_path):
    import cv2

    rgb16 = (np.arange(40 * 48 * 3, dtype=np.uint32).reshape(40, 48, 3) * 37 % 65536).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    out = load_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (40, 48, 3)
    assert np.array_equal(out, np.round(rgb16 / 257.0).astype(np.uint8))
    gray16 = rgb16[..., 0]
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    assert np.array_equal(load_image(tmp_path / "g16.png"), np.round(gray16 / 257.0).astype(np.uint8))


@pytest.mark.parametrize("kind", ["truncated", "text", "empty"])
def test_bad_files_name_the_file(tmp_path, kind):
    path = tmp_path / f"bad_{kind}.png"
    if kind == "truncated":
        Image.fromarray(_rgb(200, 200)).save(path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "text":
        path.write_text("this is not an image\n")
    else:
        path.write_bytes(b"")
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


@pytest.mark.parametrize("size,scale", [((1, 1), 2), ((20, 20), 4), ((30, 100), 4)])
def test_too_small_for_scale(tmp_path, size, scale):
    path = tmp_path / "tiny.png"
    Image.fromarray(_rgb(*size)).save(path)
    img = load_image(path)
    with pytest.raises(ImageError, match="too small") as err:
        make_pair(img, scale, name=str(path))
    assert str(path) in str(err.value)


@pytest.mark.parametrize("scale", [1, 0, 2.5])
def test_wrong_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        make_pair(_rgb(64, 64), scale, name="x")
