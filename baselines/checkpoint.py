"""`checkpoint:<path>`: any SR checkpoint spandrel recognises (.pth, .pt, .ckpt, .safetensors).

The architecture and native scale are detected from the file; other integer scales are produced at the native
scale and resized with MATLAB bicubic (`native_scale()` is False for them), as for the built-in networks.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from baselines.api import Method, MethodInfo, MethodUnavailable
from baselines.pretrained import check_image_model, choose_network_precision, move_for_inference, run_at_native_scale
from baselines.tiling import TileConfig

SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


def describe_checkpoint(path: Path) -> Any:
    """Load a checkpoint with spandrel on the CPU; MethodUnavailable with the reason when that is impossible."""
    import spandrel

    if not path.is_file():
        raise MethodUnavailable(f"checkpoint {path}: no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise MethodUnavailable(f"checkpoint {path}: unsupported file type {path.suffix!r} (use {', '.join(SUFFIXES)})")
    try:
        desc = spandrel.ModelLoader().load_from_file(path)
    except spandrel.UnsupportedModelError as exc:
        raise MethodUnavailable(f"checkpoint {path}: spandrel recognises no supported architecture in it "
                                f"({exc}); see spandrel's list of architectures") from exc
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: say which and why
        raise MethodUnavailable(f"checkpoint {path}: cannot be read as a model ({type(exc).__name__}: {exc})") from exc
    return check_image_model(desc, f"checkpoint {path}")


class CheckpointMethod(Method):
    scales = None  # any integer scale >= 2

    def __init__(self, path: str | Path, profile: str = "paper", precision: str = "auto", tile: int | None = 512,
                 tile_pad: int = 10) -> None:
        super().__init__(profile=profile, precision=precision)
        self.path = Path(path).expanduser()
        self.name = f"checkpoint:{self.path.name}"
        self.tile_config = TileConfig(tile=tile, pad=tile_pad)
        self.desc: Any = None
        self.dtype = torch.float32
        self._sha256: str | None = None

    def _describe(self) -> Any:
        if self.desc is None:
            self.desc = describe_checkpoint(self.path)
            arch = self.desc.architecture.name
            self.info = MethodInfo(
                family="external",
                training_data="unknown (user checkpoint)",
                degradation="unknown (user checkpoint)",
                licence="unknown",
                parameters=sum(p.numel() for p in self.desc.model.parameters()),
                notes=f"{arch} x{self.desc.scale} detected by spandrel from {self.path.name}",
            )
        return self.desc

    @property
    def model_scale(self) -> int:
        return int(self._describe().scale)

    def native_scale(self, scale: int) -> bool:
        return scale == self.model_scale

    def choose_precision(self, device: torch.device) -> str | None:
        try:
            arch = self._describe().architecture.name
        except MethodUnavailable:  # reported by setup(), cell by cell
            return None
        self.precision = choose_network_precision(self.precision_request, device, arch)
        return self.precision

    def prepare(self) -> None:
        """Read the checkpoint (MethodUnavailable when it is missing or not a model spandrel knows)."""
        self._describe()

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        desc = self._describe()
        precision = self.choose_precision(device)
        self.dtype = move_for_inference(desc, device, precision, self.name)
        for p in desc.model.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        desc = self._describe()
        native = int(desc.scale)
        x = lr.to(device=self.device, dtype=self.dtype)
        sr, self.last_stats = run_at_native_scale(desc, x, scale, native, self.tile_config, self.precision)
        return sr

    def config(self) -> dict[str, Any]:
        if self._sha256 is None and self.path.is_file():
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            self._sha256 = h.hexdigest()
        cfg: dict[str, Any] = {"path": str(self.path), "sha256": self._sha256, "tile": self.tile_config.tile,
                               "tile-pad": self.tile_config.pad, "precision": self.precision or self.precision_request,
                               "implementation": "spandrel"}
        if self.desc is not None:
            cfg.update({"architecture": self.desc.architecture.name, "native-scale": int(self.desc.scale)})
        return cfg
