"""Small x2 test pairs and the PSNR that the ZSSR quality tests compare (imported by test modules)."""
import numpy as np
import pytest
import torch

from zssr.resize import imresize


def x2_lr(hr: torch.Tensor) -> torch.Tensor:
    """The x1/2 MATLAB-bicubic LR of an HR tensor in [0, 1], rounded to uint8 levels (as the harness makes it)."""
    return (imresize(hr, 0.5) * 255).round().clamp(0, 255) / 255


def x2_pair(img: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(HR, LR) as 1 x 3 x H x W in [0, 1] from an H x W x 3 uint8 array."""
    hr = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return hr, x2_lr(hr)


def brick_pair(size: int = 48, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A size x size crop of scikit-image's brick texture (grey as RGB) and its x2 LR."""
    skimage_data = pytest.importorskip("skimage.data")
    hr, _ = x2_pair(np.stack([skimage_data.brick()[:size, :size]] * 3, -1))
    hr = hr.to(device)
    return hr, x2_lr(hr)


def psnr_inner(a: torch.Tensor, hr: torch.Tensor) -> float:
    """PSNR in dB on all channels inside a 2-pixel border (tensors in [0, 1])."""
    return 10 * np.log10(1 / torch.mean((a[..., 2:-2, 2:-2] - hr[..., 2:-2, 2:-2]) ** 2).item())


def gain_over_bicubic(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> float:
    """psnr_inner of an x2 output minus that of bicubic from the same LR."""
    return psnr_inner(sr, hr) - psnr_inner(imresize(lr, 2).clamp(0, 1), hr)
