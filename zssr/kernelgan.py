"""KernelGAN: blind estimation of an image's SR kernel (Bell-Kligler, Shocher, Irani, NeurIPS 2019).

    from zssr.kernelgan import KernelGANConfig, estimate_kernel
    est = estimate_kernel(lr, KernelGANConfig.preset("paper"))   # lr: 1 x 3 x H x W float in [0, 1]
    est.kernel_x2, est.kernel_x4                                 # numpy, ready to hand to ZSSR

An internal GAN trained on the LR image alone. The generator G is a deep *linear* network (convolutions 7, 5, 3, 1,
1, 1 with 64 channels, no biases, no activations, stride 2 at the end) that downscales crops of the LR image by 2;
a fully convolutional patch discriminator D (a 7 x 7 receptive field, then 1 x 1 layers) learns to tell G's output
patches from patches of the LR image itself. When D can no longer tell, G downscales the way the camera did, and
being linear, G *is* a kernel: the 13 x 13 response of G to a delta. The kernel is kept plausible by terms on that
response (sum to 1, centred, zero near the boundaries, sparse), and G is first pulled towards bicubic downscaling.

Fidelity notes (the authors' release was read for its numbers; this is our own code):
- Iterations, learning rates, Adam betas (0.5, 0.999), the L1 GAN loss against 0/1 label maps, the regularisation
  weights and their schedule (bicubic weight 5 until the bicubic loss stays under 0.4 for three iterations, then
  divided by 100 every 200 iterations down to 5e-6, at which point centring 1 and sparsity 5 are switched on; both
  learning rates divided by 10 every 750 iterations), the crops (G 64 x 64, D the size of G's output, both drawn
  with probabilities following the local gradient energy), the noise on D's inputs (1/255), the 10-pixel edge shave
  of synthetic inputs (when the LR image is at least 2 crops + 20 pixels wide), the post-processing (values under 0.75 x the 41st largest zeroed, renormalised, centred)
  and the analytic x4 kernel follow the release.
- One deliberate difference: the release's bicubic-loss target convolves with a 3 -> 3 channel kernel, i.e. every
  channel's target is the bicubic downscaling of the *sum* of the three channels; here each channel's target is its
  own bicubic downscaling, which is what the loss is described as (G downscales each channel by itself).
- D's second forward pass of G (for D's update) runs without autograd (the release builds a graph and detaches).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.signal import convolve2d

from zssr.kernels import bicubic_kernel, kernel_shift
from zssr.precision import autocast, check_precision, resolve_precision


@dataclass(frozen=True)
class KernelGANConfig:
    crop_size: int = 64  # G's input crops; D's are the size of G's output (26 for these layers)
    g_structure: tuple[int, ...] = (7, 5, 3, 1, 1, 1)  # G's kernel sizes: the estimated kernel is 13 x 13
    g_channels: int = 64
    d_channels: int = 64
    d_layers: int = 7  # the 7 x 7 layer, 5 x (1 x 1 + batch norm + ReLU), the 1 x 1 output (sigmoid)
    d_kernel_size: int = 7
    max_iters: int = 3000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    lr_drop_every: int = 750  # both learning rates / lr_drop_factor every this many iterations
    lr_drop_factor: float = 10.0
    # regularisation of the kernel G imitates, and its schedule
    lambda_sum2one: float = 0.5
    lambda_bicubic: float = 5.0
    lambda_boundaries: float = 0.5
    lambda_centralized_end: float = 1.0  # switched on once lambda_bicubic < constraints_below
    lambda_sparse_end: float = 5.0
    constraints_below: float = 5e-3
    lambda_update_every: int = 200
    bicubic_similar_below: float = 0.4  # the bicubic loss must stay below this for 3 iterations in a row
    lambda_bicubic_decay: float = 100.0
    lambda_bicubic_min: float = 5e-6
    boundary_penalty: float = 30.0
    sparsity_power: float = 0.2
    n_filtering: int = 40  # post-processing keeps values above 0.75 x the (n + 1)-th largest
    edge_shave: int = 10  # pixels cut from each side of a synthetic LR image (0 for real images)
    # std of the noise on D's inputs: real crops get it in [0, 1] grey levels (2/255 in the networks' [-1, 1]),
    # G's output in the networks' range (1/255 there), as in the release
    d_input_noise: float = 1.0 / 255.0
    seed: int | None = 0
    precision: str = "fp32"  # G's and D's convolutions (zssr.precision); the kernel and its losses stay fp32
    channels_last: bool = True

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.max_iters < 1 or self.lr_drop_every < 1 or self.lambda_update_every < 1:
            raise ValueError("KernelGANConfig: max_iters, lr_drop_every and lambda_update_every must be >= 1")
        if any(k < 1 or k % 2 == 0 for k in self.g_structure) or self.g_structure[-1] != 1:
            raise ValueError("KernelGANConfig: g_structure must be odd sizes ending with 1 (the stride-2 layer)")

    @property
    def kernel_size(self) -> int:
        return sum(self.g_structure) - len(self.g_structure) + 1

    @classmethod
    def preset(cls, name: str) -> "KernelGANConfig":
        if name not in PRESETS:
            raise KeyError(f"unknown KernelGAN preset {name!r} (known: {', '.join(PRESETS)})")
        return cls(**PRESETS[name])

    def replace(self, **overrides: Any) -> "KernelGANConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"KernelGANConfig has no field(s) {unknown}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


# "quick": the paper's schedule compressed 3x (1000 iterations; learning-rate drops and regularisation updates
# 3x as often), for CPUs; labelled as such wherever it is used.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": dict(max_iters=1000, lr_drop_every=250, lambda_update_every=67),
}


# Whether "auto" may pick bf16 for KernelGAN's networks (see kernelgan_precision).
BF16_MEASURED_SAFE = False


def kernelgan_precision(requested: str, device: torch.device | str) -> str:
    """The precision KernelGAN's networks run in for a request ("auto": bf16 only where measured safe)."""
    return resolve_precision(requested, device, bf16_ok=BF16_MEASURED_SAFE)


# -- networks ------------------------------------------------------------------------------------------------------

class Generator(nn.Module):
    """Deep linear downscaler: each colour channel is downscaled by itself (channels become the batch)."""

    def __init__(self, cfg: KernelGANConfig) -> None:
        super().__init__()
        sizes, ch = cfg.g_structure, cfg.g_channels
        chans = [1] + [ch] * (len(sizes) - 1) + [1]
        self.layers = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], k, stride=2 if i == len(sizes) - 1 else 1, bias=False)
            for i, k in enumerate(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = x.reshape(n * c, 1, h, w)
        for layer in self.layers:
            y = layer(y)
        return y.reshape(n, c, *y.shape[-2:])

    def output_size(self, size: int) -> int:
        for layer in self.layers:
            size = (size - layer.kernel_size[0]) // layer.stride[0] + 1
        return size

    def kernel(self) -> torch.Tensor:
        """The kernel k G applies (G(x) = correlate(x, k) sampled every 2nd pixel, valid), in fp32, with gradients:
        G's response to a delta, flipped (the response of a correlation chain is the flipped kernel)."""
        size = sum(layer.kernel_size[0] - 1 for layer in self.layers) + 1
        weights = [layer.weight if layer.weight.dtype == torch.float64 else layer.weight.float()
                   for layer in self.layers]
        y = F.pad(torch.ones(1, 1, 1, 1, device=weights[0].device, dtype=weights[0].dtype), (size - 1,) * 4)
        for w in weights:
            y = F.conv2d(y, w)
        return y[0, 0].flip((0, 1))


class Discriminator(nn.Module):
    """Patch discriminator: one 7 x 7 layer, then 1 x 1 layers; spectral norm on every convolution."""

    def __init__(self, cfg: KernelGANConfig) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        ch = cfg.d_channels
        layers: list[nn.Module] = [sn(nn.Conv2d(3, ch, cfg.d_kernel_size, bias=True))]
        for _ in range(cfg.d_layers - 2):
            layers += [sn(nn.Conv2d(ch, ch, 1, bias=True)), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        layers += [sn(nn.Conv2d(ch, 1, 1, bias=True)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _init_weights(module: nn.Module) -> None:
    """Xavier-normal with gain 0.1 for every convolution (zero biases); batch-norm scales ~ N(1, 0.02)."""
    if isinstance(module, nn.Conv2d):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.xavier_normal_(weight, 0.1)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# -- the kernel's regularisation -----------------------------------------------------------------------------------

def boundary_mask(size: int, penalty: float) -> np.ndarray:
    """Weights growing towards the kernel's border (1 - a wide Gaussian), zero in the central region."""
    z = np.arange(-size // 2 + 1, size // 2 + 1, dtype=np.float64)
    g = np.exp(-z ** 2 / (2.0 * size ** 2))
    mask = 1.0 - np.outer(g, g) / np.outer(g, g).max()
    margin = (size - (size // 2 + size % 2)) // 2 - 1
    mask[margin:-margin, margin:-margin] = 0.0
    return penalty * mask


class KernelPrior:
    """The terms on the kernel and the bicubic term on G's output, with their current weights."""

    def __init__(self, cfg: KernelGANConfig, device: torch.device) -> None:
        size = cfg.kernel_size
        self.cfg = cfg
        self.mask = torch.tensor(boundary_mask(size, cfg.boundary_penalty), dtype=torch.float32, device=device)
        self.indices = torch.arange(size, dtype=torch.float32, device=device)
        self.center = size // 2 + 0.5 * (2 - size % 2)  # where kernel_shift puts the centre for x2
        # MATLAB's antialiased cubic for x2 (8 x 8, centred between pixels), applied per channel at stride 2
        self.bicubic = torch.tensor(bicubic_kernel(2, odd=False), dtype=torch.float32, device=device)[None, None]
        self.weights = dict(bicubic=cfg.lambda_bicubic, sum2one=cfg.lambda_sum2one,
                            boundaries=cfg.lambda_boundaries, centralized=0.0, sparse=0.0)

    def bicubic_loss(self, g_in: torch.Tensor, g_out: torch.Tensor) -> torch.Tensor:
        n, c, h, w = g_in.shape
        pad = (self.bicubic.shape[-1] - 1) // 2
        down = F.conv2d(g_in.reshape(n * c, 1, h, w).float(), self.bicubic, stride=2, padding=pad)
        down = down.reshape(n, c, *down.shape[-2:])
        dh, dw = down.shape[-2] - g_out.shape[-2], down.shape[-1] - g_out.shape[-1]
        down = down[..., dh // 2: down.shape[-2] - (dh - dh // 2), dw // 2: down.shape[-1] - (dw - dw // 2)]
        return F.mse_loss(g_out.float(), down)

    def terms(self, k: torch.Tensor) -> dict[str, torch.Tensor]:
        total = k.sum()
        com = torch.stack((k.sum(dim=1) @ self.indices / total, k.sum(dim=0) @ self.indices / total))
        return dict(sum2one=(1.0 - total).abs(),
                    boundaries=(k * self.mask).abs().mean(),
                    centralized=F.mse_loss(com, torch.full_like(com, self.center)),
                    sparse=(k.abs() + 1e-12).pow(self.cfg.sparsity_power).mean())


# -- crops: where the image has structure --------------------------------------------------------------------------

def _zero_edges(a: np.ndarray, edge: int) -> np.ndarray:
    out = np.zeros_like(a)
    out[edge:-edge, edge:-edge] = a[edge:-edge, edge:-edge]
    return out


def _clip_top(a: np.ndarray, percent: float) -> np.ndarray:
    """Values below the `percent` quantile become 0, those above it are clipped to (almost) it: a mask of the
    strongest gradients, softened."""
    flat = np.sort(a.ravel())
    pivot = int(percent * flat.size)
    lo = flat[pivot]
    hi = flat[pivot + 1] if flat[pivot + 1] > lo else lo + 1e-5
    return np.clip(a, lo, hi) - lo


def gradient_map(gray: np.ndarray, window: int = 5, percent: float = 0.97) -> np.ndarray:
    gy, gx = np.gradient(gray)
    maps = [_clip_top(_zero_edges(m, window), percent) for m in (np.abs(gx), np.abs(gy), np.hypot(gx, gy))]
    combined = sum(m / m.sum() if m.sum() > 0 else m for m in maps)
    blurred = convolve2d(combined, np.ones((window, window)), mode="same") / window ** 2
    mean = blurred.mean()
    return blurred / mean if mean > 0 else np.ones_like(blurred)


def crop_probabilities(energy: np.ndarray, crop: int) -> np.ndarray:
    """P(crop centre at each pixel) proportional to the energy around it; zero where the crop would not fit."""
    half = crop // 2
    blurred = convolve2d(energy, np.ones((half, half)), mode="same") / half ** 2
    prob = _zero_edges(blurred, half).ravel()
    return prob / prob.sum() if prob.sum() > 0 else np.full(prob.size, 1.0 / prob.size)


class CropSampler:
    """Draws G's and D's crops (top-left corners, even) from the LR image, following the gradient energy: G's from
    the image's x2 bicubic downscaling energy brought back to full size, D's from the image's own."""

    def __init__(self, image: np.ndarray, g_size: int, d_size: int, rng: np.random.Generator) -> None:
        from zssr.resize import imresize_np

        self.h, self.w = image.shape[:2]
        self.g_size, self.d_size, self.rng = g_size, d_size, rng
        gray = image @ np.array([0.299, 0.587, 0.114])
        small = imresize_np(image, scale=0.5) @ np.array([0.299, 0.587, 0.114])
        small_energy = np.kron(gradient_map(small), np.ones((2, 2)))[: self.h, : self.w]
        if small_energy.shape != (self.h, self.w):  # odd sizes: pad the last row/column
            small_energy = np.pad(small_energy, ((0, self.h - small_energy.shape[0]), (0, self.w - small_energy.shape[1])),
                                  mode="edge")
        self.p_g = crop_probabilities(small_energy, g_size)
        self.p_d = crop_probabilities(gradient_map(gray), d_size)

    def _corner(self, p: np.ndarray, size: int) -> tuple[int, int]:
        centre = int(self.rng.choice(p.size, p=p))
        row, col = divmod(centre, self.w)
        top = min(max(0, row - size // 2), self.h - size)
        left = min(max(0, col - size // 2), self.w - size)
        return top - top % 2, left - left % 2

    def draw(self, n: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        return [(self._corner(self.p_g, self.g_size), self._corner(self.p_d, self.d_size)) for _ in range(n)]


# -- the estimate --------------------------------------------------------------------------------------------------

@dataclass
class KernelEstimate:
    kernel_x2: np.ndarray  # post-processed, centred for x2 (as ZSSR takes a given kernel)
    raw_kernel: np.ndarray  # G's kernel at the end, 13 x 13, unprocessed
    stats: dict[str, Any]

    @property
    def kernel_x4(self) -> np.ndarray:
        return analytic_x4(self.kernel_x2)

    def for_scale(self, scale: int) -> np.ndarray:
        if scale == 2:
            return self.kernel_x2
        if scale == 4:
            return self.kernel_x4
        raise ValueError(f"KernelGAN estimates x2 kernels (and x4 from them); x{scale} is not supported")


def kept_kernel(k: np.ndarray, n: int) -> np.ndarray:
    """The first half of post_process: the values under 0.75 x the (n + 1)-th largest zeroed, the rest lowered by
    that floor and renormalised, on G's canvas (not re-centred: zssr.kernel_checks looks at where G put it)."""
    k = np.asarray(k, dtype=np.float64)
    floor = 0.75 * np.sort(k.ravel())[-n - 1]
    kept = np.clip(k - floor, 0.0, None)
    if kept.sum() <= 0:
        raise RuntimeError("KernelGAN: the estimated kernel has no positive mass (training diverged)")
    return kept / kept.sum()


def post_process(k: np.ndarray, n: int) -> np.ndarray:
    """Zero the values under 0.75 x the (n + 1)-th largest, renormalise, centre for x2."""
    return kernel_shift(kept_kernel(k, n), 2)


def analytic_x4(k2: np.ndarray) -> np.ndarray:
    """The x4 kernel implied by applying the x2 kernel twice (k2 * (k2 upsampled by 2)), edges cropped."""
    k2 = np.asarray(k2, dtype=np.float64)
    size = k2.shape[0]
    big = np.zeros((3 * size - 2, 3 * size - 2))
    for r in range(size):
        for c in range(size):
            big[2 * r:2 * r + size, 2 * c:2 * c + size] += k2[r, c] * k2
    crop = size // 2
    big = big[crop:-crop, crop:-crop]
    return big / big.sum()


def _to_model_range(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0 - 1.0  # G and D see images in [-1, 1]


def estimate_kernel(lr: torch.Tensor, cfg: KernelGANConfig = KernelGANConfig(),
                    callback: Callable[[int, dict], None] | None = None) -> KernelEstimate:
    """Train KernelGAN on one LR image (1 x C x H x W, C = 1 or 3, float in [0, 1], on its device) and return its
    kernel. Deterministic for a given seed on a given device and precision."""
    if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1] not in (1, 3):
        raise ValueError(f"KernelGAN takes one image, 1 x 3 x H x W; got {tuple(lr.shape)}")
    device = lr.device
    precision = kernelgan_precision(cfg.precision, device)
    start = time.perf_counter()
    image = lr[0].detach().float().clamp(0, 1)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    shave = cfg.edge_shave if min(image.shape[1:]) - 2 * cfg.edge_shave >= 2 * cfg.crop_size else 0
    if shave:
        image = image[:, shave:-shave, shave:-shave]
    h, w = image.shape[1] - image.shape[1] % 2, image.shape[2] - image.shape[2] % 2
    image = image[:, :h, :w]
    if min(h, w) < cfg.crop_size:
        raise ValueError(f"KernelGAN needs an LR image of at least {cfg.crop_size} x {cfg.crop_size} pixels; got "
                         f"{w} x {h} (after trimming)")

    seed = cfg.seed if cfg.seed is not None else torch.seed() % 2 ** 63  # None: a fresh one, used throughout
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the caller's RNG untouched
        torch.manual_seed(seed)
        G, D = Generator(cfg), Discriminator(cfg)  # built and initialised on the CPU: the same on every device
        G.apply(_init_weights)
        D.apply(_init_weights)
    G, D = G.to(device), D.to(device)
    if cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
    prior = KernelPrior(cfg, device)
    d_size = G.output_size(cfg.crop_size)
    sampler = CropSampler(image.permute(1, 2, 0).cpu().double().numpy(), cfg.crop_size, d_size, rng)
    corners = sampler.draw(cfg.max_iters)
    real_noise, fake_noise = cfg.d_input_noise * 2.0, cfg.d_input_noise  # see KernelGANConfig.d_input_noise
    model_image = _to_model_range(image)[None]
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    similar_count, similar, constraints_on = 0, False, False
    curve: list[dict] = []

    def crop(top: int, left: int, size: int) -> torch.Tensor:
        return model_image[..., top:top + size, left:left + size].contiguous(memory_format=fmt)

    for it in range(cfg.max_iters):
        (gt, gl), (dt, dl) = corners[it]
        g_in = crop(gt, gl, cfg.crop_size)
        d_real = crop(dt, dl, d_size)
        d_real = d_real + torch.randn(d_real.shape, generator=gen).to(device) * real_noise
        # G: fool D, stay a plausible kernel
        opt_g.zero_grad(set_to_none=True)
        with autocast(precision, device):
            g_out = G(g_in)
            fooled = D(g_out)
        loss_gan = (fooled.float() - 1.0).abs().mean()
        k = G.kernel()
        terms = prior.terms(k)
        loss_bic = prior.bicubic_loss(g_in, g_out)
        loss = loss_gan + prior.weights["bicubic"] * loss_bic + sum(prior.weights[n] * v for n, v in terms.items())
        loss.backward()
        opt_g.step()
        # D: real patches -> 1, G's (noisy) patches -> 0
        opt_d.zero_grad(set_to_none=True)
        with torch.no_grad(), autocast(precision, device):
            fake = G(g_in).float()
        fake = fake + torch.randn(fake.shape, generator=gen).to(device) * fake_noise
        with autocast(precision, device):
            p_real, p_fake = D(d_real), D(fake.contiguous(memory_format=fmt))
        loss_d = 0.5 * ((p_real.float() - 1.0).abs().mean() + p_fake.float().abs().mean())
        loss_d.backward()
        opt_d.step()
        # the schedule (after the step, as the release's learner)
        bic = float(loss_bic.detach())
        if it > 0:
            if it % cfg.lr_drop_every == 0:
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] /= cfg.lr_drop_factor
            if not similar:
                similar_count = similar_count + 1 if bic < cfg.bicubic_similar_below else 0
                similar = similar_count >= 3
            elif it % cfg.lambda_update_every == 0 and prior.weights["bicubic"] > cfg.lambda_bicubic_min:
                prior.weights["bicubic"] = max(prior.weights["bicubic"] / cfg.lambda_bicubic_decay,
                                               cfg.lambda_bicubic_min)
                if not constraints_on and prior.weights["bicubic"] < cfg.constraints_below:
                    prior.weights.update(centralized=cfg.lambda_centralized_end, sparse=cfg.lambda_sparse_end)
                    constraints_on = True
        if it % 50 == 0 or it == cfg.max_iters - 1:
            curve.append(dict(iteration=it, loss_g_gan=float(loss_gan.detach()), loss_d=float(loss_d.detach()), loss_bicubic=bic))
        if callback is not None:
            callback(it, curve[-1])
    raw = G.kernel().detach().cpu().double().numpy()
    kernel = post_process(raw, cfg.n_filtering)
    stats = dict(seconds=time.perf_counter() - start, iterations=cfg.max_iters, precision=precision, curve=curve,
                 d_crop=d_size, edge_shave=shave)
    return KernelEstimate(kernel_x2=kernel, raw_kernel=raw, stats=stats)


__all__ = ["KernelGANConfig", "KernelEstimate", "PRESETS", "estimate_kernel", "kernelgan_precision", "analytic_x4", "post_process",
           "kept_kernel", "Generator", "Discriminator"]
