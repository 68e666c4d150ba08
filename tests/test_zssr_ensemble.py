"""zssr.ensemble: geometric self-ensemble and back-projection."""
import numpy as np
import torch

from zssr.ensemble import back_projection, ensemble_indices, inverse_transform, median, self_ensemble, transform
from zssr.resize import imresize


def _cubic_down(x, sf, out_hw):
    return imresize(x, (1 / sf[0], 1 / sf[1]), out_hw)


def test_transforms_invert_and_match_numpy():
    x = torch.rand(1, 3, 5, 7)
    a = x[0, 0].numpy()
    for k in range(8):
        ref = np.rot90(a, k) if k < 4 else np.fliplr(np.rot90(a, k))
        assert np.array_equal(transform(x, k)[0, 0].numpy(), ref)
        assert torch.equal(inverse_transform(transform(x, k), k), x)


def test_equivariant_function_is_unchanged():
    # MATLAB cubic upscaling by an integer factor commutes with rotations and flips
    x = torch.rand(1, 3, 12, 9, dtype=torch.float64)

    def fn(t):
        return imresize(t, 2)

    out = self_ensemble(fn, x, (2.0, 2.0), _cubic_down, bp_iters=0, enabled=True)
    assert torch.allclose(out, fn(x), atol=1e-12)


def test_indices_and_median():
    assert ensemble_indices((2.0, 2.0), True) == list(range(8))
    assert ensemble_indices((1.5, 2.0), True) == [0, 2, 4, 6]
    assert ensemble_indices((2.0, 2.0), False) == [0]
    stack = torch.rand(8, 2, 3, 4, 4)
    assert torch.allclose(median(stack), torch.from_numpy(np.median(stack.numpy(), axis=0)))
    assert torch.allclose(median(stack[:5]), torch.from_numpy(np.median(stack[:5].numpy(), axis=0)))


def test_back_projection_reduces_reconstruction_error():
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    lr = imresize(hr, 0.5)
    guess = (imresize(lr, 2) + 0.05 * torch.randn_like(hr)).clamp(0, 1)

    def err(sr):
        return torch.mean((_cubic_down(sr, (2.0, 2.0), (16, 16)) - lr) ** 2).item()

    e0 = err(guess)
    e1 = err(back_projection(guess, lr, (2.0, 2.0), _cubic_down, iters=1))
    e10 = err(back_projection(guess, lr, (2.0, 2.0), _cubic_down, iters=10))
    assert e1 < 0.5 * e0 and e10 < 0.1 * e0
