"""Pretrained baselines: tiling, scale handling, checkpoint loading, Lanczos, and the real Real-ESRGAN weights on Set5."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from baselines.api import MethodUnavailable
from baselines.interpolation import Lanczos, matlab_bicubic, matlab_resize
from baselines.methods import create_method
from baselines.tiling import TileConfig, tiled_forward


def random_compact_state(nf: int = 8, num_conv: int = 2, scale: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A small random SRVGGNetCompact (BasicSR key names) that spandrel recognises."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    chans = [3] + [nf] * (num_conv + 1)
    for i in range(num_conv + 1):
        sd[f"body.{2 * i}.weight"] = torch.randn(nf, chans[i], 3, 3, generator=g) * 0.2
        sd[f"body.{2 * i}.bias"] = torch.randn(nf, generator=g) * 0.05
        sd[f"body.{2 * i + 1}.weight"] = torch.full((nf,), 0.25)
    last = 2 * (num_conv + 1)
    sd[f"body.{last}.weight"] = torch.randn(3 * scale * scale, nf, 3, 3, generator=g) * 0.05
    sd[f"body.{last}.bias"] = torch.zeros(3 * scale * scale)
    return sd


@pytest.fixture(scope="module")
def compact():
    import spandrel

    desc = spandrel.ModelLoader().load_from_state_dict(random_compact_state())
    desc.model.eval()
    return desc


def _image(h: int, w: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=g), size=(h, w),
                                             mode="bicubic", align_corners=False)
    return (0.7 * smooth + 0.3 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


# ---- tiling -------------------------------------------------------------------------------------------------

def test_one_tile_is_reflect_pad_run_crop(compact):
    x = _image(40, 36)
    with torch.inference_mode():
        tiled, used = tiled_forward(compact.model, x, 4, TileConfig(tile=64, pad=10))
        padded = torch.nn.functional.pad(x, (10, 10, 10, 10), mode="reflect")
        plain = compact.model(padded)[..., 40:-40, 40:-40]
    assert used == 40 and tiled.shape == (1, 3, 160, 144)
    assert torch.equal(tiled, plain)


def test_tiled_and_untiled_agree_within_half_a_grey_level(compact):
    """Many 12-pixel tiles (10 pixels of context) vs the whole image in one piece: < 0.5 / 255 everywhere."""
    x = _image(40, 36)
    with torch.inference_mode():
        whole, _ = tiled_forward(compact.model, x, 4, TileConfig(tile=None, pad=10))
        tiled, used = tiled_forward(compact.model, x, 4, TileConfig(tile=12, pad=10))
    assert used == 12
    assert (whole - tiled).abs().max().item() * 255 < 0.5


def test_out_of_memory_halves_the_tile():
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[-1])
        if t.shape[-1] > 40:  # tile 64 (+ 2 x 4 context) does not "fit", 32 does
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")

    x = torch.rand(1, 3, 64, 64)
    out, used = tiled_forward(fn, x, 2, TileConfig(tile=64, pad=4, min_tile=16))
    assert used == 32 and calls[0] == 72 and out.shape == (1, 3, 128, 128)
    assert torch.equal(out, torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        tiled_forward(fn, x, 2, TileConfig(tile=64, pad=4, min_tile=64))


def test_tile_shape_mismatch_is_reported():
    with pytest.raises(RuntimeError, match="expected x4"):
        tiled_forward(lambda t: t, torch.rand(1, 3, 8, 8), 4, TileConfig(tile=8, pad=2))


# ---- methods: scales, info, availability ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3",
                                  "esrgan", "rrdb-psnr"])
def test_x4_models_label_other_scales_as_resized(name):
    method = create_method(name)
    assert method.scales == (2, 3, 4)
    assert method.native_scale(4) and not method.native_scale(2) and not method.native_scale(3)
    assert method.info.family == "external" and method.info.training_data and method.info.degradation


def test_dat_light_is_native_at_every_scale():
    method = create_method("dat-light")
    assert all(method.native_scale(s) for s in (2, 3, 4))
    assert method.info.degradation == "bicubic"


def test_real_esrgan_info_says_out_of_distribution():
    info = create_method("realesrgan-x4plus").info
    assert "not bicubic" in info.degradation and "out of distribution" in info.notes


def test_unreachable_official_weights_raise_method_unavailable(isolated_cache, monkeypatch):
    monkeypatch.setenv("ZSSR_BENCH_OFFLINE", "1")
    for name in ("esrgan", "rrdb-psnr"):
        with pytest.raises(MethodUnavailable, match="sources tried") as info:
            create_method(name).setup(torch.device("cpu"))
        assert "ZSSR_BENCH_OFFLINE" in str(info.value)


def test_non_native_scale_resizes_native_output(monkeypatch, compact):
    """An x4 network asked for x2: x4 output then MATLAB bicubic by 1/2, so the output has the x2 size."""
    from baselines import pretrained

    method = pretrained.method_class("realesr-animevideov3")()
    method.models = {4: compact}
    x = _image(20, 18)
    out = method.upscale(x, 2)
    assert out.shape == (1, 3, 40, 36) and method.last_stats["native-scale"] == 4
    with torch.inference_mode():
        x4, _ = tiled_forward(compact, x, 4, method.tile_config)
    assert torch.allclose(out, matlab_bicubic(x4.clamp(0, 1), 0.5).clamp(0, 1), atol=1e-6)


# ---- checkpoint:<path> ---------------------------------------------------------------------------------------

def test_checkpoint_missing_and_unrecognised(tmp_path):
    with pytest.raises(MethodUnavailable, match="no such file"):
        create_method(f"checkpoint:{tmp_path / 'nope.pth'}").setup(torch.device("cpu"))
    torch.save({"foo.weight": torch.zeros(3, 3)}, tmp_path / "foo.pth")
    with pytest.raises(MethodUnavailable, match="recognises no supported architecture"):
        create_method(f"checkpoint:{tmp_path / 'foo.pth'}").setup(torch.device("cpu"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MethodUnavailable, match="cannot be read"):
        create_method(f"checkpoint:{tmp_path / 'junk.pth'}").setup(torch.device("cpu"))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_checkpoint_detects_architecture_and_scale(tmp_path, suffix):
    sd = random_compact_state()
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".pth":
        torch.save({"params": sd}, path)
    else:
        from safetensors.torch import save_file

        save_file(sd, str(path))
    method = create_method(f"checkpoint:{path}")
    method.setup(torch.device("cpu"))
    assert method.model_scale == 4 and method.native_scale(4) and not method.native_scale(2)
    assert method.config()["architecture"] == "RealESRGAN Compact"
    assert method.upscale(_image(16, 12), 4).shape == (1, 3, 64, 48)
    assert method.upscale(_image(16, 12), 3).shape == (1, 3, 48, 36)


# ---- Lanczos ---------------------------------------------------------------------------------------------------

def test_matlab_resize_machinery_reproduces_basicsr_bicubic():
    """Same contributions() code with the cubic kernel equals basicsr's MATLAB port (1e-5), so lanczos3 is MATLAB's."""
    x = _image(37, 29)
    for s in (2.0, 3.0, 4.0, 0.5, 1 / 3, 0.25):
        assert torch.allclose(matlab_resize(x, s, "cubic"), matlab_bicubic(x, s), atol=1e-5), s


def test_lanczos_method():
    method = Lanczos()
    x = _image(20, 16)
    out = method.upscale(x, 3)
    assert out.shape == (1, 3, 60, 48) and 0 <= out.min() and out.max() <= 1
    flat = torch.full((1, 3, 9, 7), 0.4)
    assert torch.allclose(method.upscale(flat, 4), torch.full((1, 3, 36, 28), 0.4), atol=1e-6)
    assert torch.allclose(matlab_resize(x, 1.0), x, atol=1e-6)
    # lanczos3 is sharper than cubic: it reconstructs a smooth image's downscale at least as well
    big = _image(64, 64, seed=3)
    small = matlab_bicubic(big, 0.25)
    err_l = (matlab_resize(small, 4.0) - big).pow(2).mean()
    err_c = (matlab_bicubic(small, 4.0) - big).pow(2).mean()
    assert err_l <= err_c * 1.02


# ---- real weights on Set5 --------------------------------------------------------------------------------------

def _y(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64) / 255
    return np.round(16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2])


def _psnr_y(a: np.ndarray, b: np.ndarray, border: int) -> float:
    d = (_y(a) - _y(b))[border:-border, border:-border]
    return float(10 * np.log10(255.0**2 / np.mean(d**2)))


def _sharpness(rgb: np.ndarray) -> float:
    y = _y(rgb)
    return float(np.abs(4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]).mean())


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy().astype(np.uint8)


@pytest.mark.slow
def test_realesrgan_x4plus_on_set5(data_root):
    """Set5 'head' x4 (LR: MATLAB bicubic 1/4 of the whole image, rounded; a 40 x 40 LR crop and its HR region).

    Measured: PSNR-Y 29.75 dB, sharpness 4.37 (bicubic 1.6). Thresholds: PSNR-Y > 27 dB (random weights reach
    11.8 dB, reversed block order 19.6, two RDB convolutions swapped 24.8) and sharpness > 2x bicubic's.
    """
    from PIL import Image

    try:
        method = create_method("realesrgan-x4plus")
        method.setup(torch.device("cpu"))
    except MethodUnavailable as exc:
        pytest.skip(f"realesrgan-x4plus weights unavailable here: {exc}")
    hr = np.array(Image.open(data_root / "set5" / "HR" / "head.png").convert("RGB"))
    hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
    lr = _u8(matlab_bicubic(torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].float() / 255, 0.25))
    lr, hr = lr[15:55, 15:55], hr[60:220, 60:220]
    x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float() / 255
    sr = _u8(method.upscale(x, 4))
    bic = _u8(matlab_bicubic(x, 4.0))
    assert sr.shape == hr.shape == bic.shape
    assert _psnr_y(sr, hr, 4) > 27.0
    assert _sharpness(sr) > 2.0 * _sharpness(bic)
