"""dlib's face-recognition ResNet in PyTorch, its weights read from dlib's own file.

The network is ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp`` (Davis King, Boost
licence; the weights ``dlib_face_recognition_resnet_model_v1.dat``, CC0, come in the
``face-recognition-models`` package): a 7x7 convolution, max pooling, 29 residual 3x3
convolutions in five levels, global average pooling and a 128-number linear layer. dlib's
quirks are kept: stride-2 convolutions and pools have no padding, and a residual sum of two
maps of different sizes is taken on the larger one, the smaller padded with zeros. Its
``affine`` layers (batch norm frozen into scale and shift) are folded into the convolutions.

Run this way the descriptors equal dlib's to 1e-6 (tests/test_identity.py) at about a tenth
of the time on a CPU, in batches, and on a GPU where there is one (docs/identity.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: dlib's ``input_rgb_image`` subtracts these from each channel and divides by 256.
MEAN_RGB = (122.782, 117.001, 104.298)
#: residual blocks per level, from the input up; every level but the first starts by halving
#: the picture (a stride-2 block whose shortcut is a 2x2 average pool).
LEVELS = (3, 4, 3, 3, 1)
#: the filters of each level's convolutions (after a first 7x7 convolution of 32)
CHANNELS = (32, 64, 128, 256, 256)
#: the descriptor's length (dlib's ``fc_no_bias<128>``) and the features it is made from
DESCRIPTOR_SIZE, FEATURES = 128, 256
#: dlib's descriptor network's weights, in the ``face-recognition-models`` folder
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = (
    "re-identification needs dlib and its models: pip install dlib-bin face-recognition-models"
)
_LAYER = re.compile(rb"(con_4|affine_|fc_2)")


def _read_int(b: bytes, i: int) -> tuple[int, int]:
    """dlib's integer: one byte (sign bit 0x80, byte count in the low bits), then the bytes."""
    head = b[i]
    n = head & 0x0F
    v = int.from_bytes(b[i + 1 : i + 1 + n], "little")
    return (-v if head & 0x80 else v), i + 1 + n


def _read_tensor(b: bytes, i: int) -> tuple[np.ndarray, int]:
    version, i = _read_int(b, i)
    if version != 2:
        raise ValueError(f"tensor format {version}")
    dims = []
    for _ in range(4):
        v, i = _read_int(b, i)
        dims.append(v)
    n = int(np.prod(dims))
    return np.frombuffer(b, "<f4", n, i).reshape(dims), i + 4 * n


def read_layers(path: str | Path) -> list[tuple[str, np.ndarray, list[int]]]:
    """The parameter layers of a dlib network file, from the input up: (kind, parameters,
    the integers that follow them: filters, kernel, stride and padding for a convolution)."""
    b = Path(path).read_bytes()
    layers = []
    for m in _LAYER.finditer(b):
        name = m.group()
        if b[m.start() - 1] != len(name):  # a layer name is stored after its length
            continue
        i = m.end()
        if name == b"fc_2":  # its output and input counts come first
            i = _read_int(b, _read_int(b, i)[1])[1]
        params, i = _read_tensor(b, i)
        extra = []
        for _ in range(7):
            v, i = _read_int(b, i)
            extra.append(v)
        layers.append((name.decode(), params, extra))
    return layers


def model_dir() -> str:
    """The ``face-recognition-models`` package's folder of model files (found without
    importing it: its ``__init__`` imports pkg_resources, which new setuptools lack)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(INSTALL_HINT)
    return os.path.join(spec.submodule_search_locations[0], "models")


def conv_specs() -> list[tuple[int, int, int, int, int]]:
    """(inputs, filters, kernel, stride, padding) of each convolution, from the input up:
    dlib pads a stride-1 convolution by half its kernel and a stride-2 one not at all."""
    specs = [(3, CHANNELS[0], 7, 2, 0)]
    inputs = CHANNELS[0]
    for level, (blocks, filters) in enumerate(zip(LEVELS, CHANNELS)):
        for k in range(blocks):
            down = level > 0 and k == 0
            specs.append((inputs, filters, 3, 2 if down else 1, 0 if down else 1))
            specs.append((filters, filters, 3, 1, 1))
            inputs = filters
    return specs


class DlibFaceNet(nn.Module):
    """``forward(chips)``: (N, 3, 150, 150) float RGB in 0-255 -> (N, 128) descriptors.
    Made with random weights; :meth:`from_file` reads dlib's."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, f, k, s, p) for i, f, k, s, p in conv_specs())
        self.fc = nn.Linear(FEATURES, DESCRIPTOR_SIZE, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))

    def load_layers(self, layers: list[tuple[str, np.ndarray, list[int]]]) -> None:
        """Take the weights of a dlib network file's layers (:func:`read_layers`)."""
        convs = [(p, e) for kind, p, e in layers if kind == "con_4"]
        scales = [p for kind, p, _ in layers if kind == "affine_"]
        fc = [p for kind, p, _ in layers if kind == "fc_2"]
        if len(convs) != len(self.convs) or len(scales) != len(convs) or len(fc) != 1:
            raise ValueError(f"{len(convs)} convolutions, {len(fc)} linear layers")
        for conv, (p, e), s in zip(self.convs, convs, scales):
            folded = _folded_conv(p, e, s)
            if folded.weight.shape != conv.weight.shape or folded.stride != conv.stride:
                raise ValueError(f"a convolution of shape {tuple(folded.weight.shape)}")
            conv.weight.data, conv.bias.data = folded.weight.data, folded.bias.data
        weight = torch.from_numpy(fc[0].reshape(FEATURES, -1).T.copy())
        if weight.shape != self.fc.weight.shape:
            raise ValueError(f"a linear layer of shape {tuple(weight.shape)}")
        self.fc.weight.data = weight

    @classmethod
    def from_file(cls, path: str | Path) -> DlibFaceNet:
        net = cls()
        try:
            net.load_layers(read_layers(path))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}: not dlib's face-recognition network ({exc})") from None
        return net.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 256): the pooled features the descriptor is made from."""
        x = (x - self.mean) / 256.0
        convs = iter(self.convs)
        x = F.max_pool2d(F.relu(next(convs)(x)), 3, 2)
        for level, blocks in enumerate(LEVELS):
            for k in range(blocks):
                first, second = next(convs), next(convs)
                y = second(F.relu(first(x)))
                down = level > 0 and k == 0
                x = F.relu(_add_padded(F.avg_pool2d(x, 2, 2), y) if down else x + y)
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class DlibEmotionNet(nn.Module):
    """dlib's face network as a classifier: its convolutions (random, or dlib's face-trained
    weights with :meth:`from_dlib`), a linear head on the pooled 256 features in place of the
    identity descriptor. ``forward`` takes images normalised as fervid's other networks take
    them (``(x / 255 - mean) / std``, ImageNet's mean and std) and turns them into what dlib's
    layers were trained on (0-255 less dlib's mean, over 256)."""

    def __init__(self, num_classes: int, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__()
        self.body = DlibFaceNet()
        self.head = nn.Linear(FEATURES, num_classes)
        m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.register_buffer("scale", s * 255.0)
        self.register_buffer("shift", m * 255.0)

    @classmethod
    def from_dlib(cls, num_classes: int, path: str | Path | None = None) -> DlibEmotionNet:
        """With dlib's face-recognition weights (``path``: dlib's file; by default the one in
        the ``face-recognition-models`` package)."""
        net = cls(num_classes)
        net.body = DlibFaceNet.from_file(path or os.path.join(model_dir(), DESCRIPTOR_FILE))
        return net.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body.features(x * self.scale + self.shift))


def _folded_conv(params: np.ndarray, extra: list[int], affine: np.ndarray) -> nn.Conv2d:
    filters, kh, kw, sy, sx, py, px = extra
    flat = params.reshape(-1)
    inputs = (flat.size - filters) // (filters * kh * kw)
    conv = nn.Conv2d(inputs, filters, (kh, kw), (sy, sx), (py, px))
    gamma, beta = (torch.from_numpy(a.copy()) for a in affine.reshape(2, filters))
    weight = torch.from_numpy(flat[:-filters].reshape(conv.weight.shape).copy())
    bias = torch.from_numpy(flat[-filters:].copy())
    conv.weight.data = weight * gamma[:, None, None, None]
    conv.bias.data = bias * gamma + beta
    return conv


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b on the larger of their shapes, each padded with zeros (dlib's ``add_prev``)."""
    c, h, w = (max(a.shape[d], b.shape[d]) for d in (1, 2, 3))

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1]))

    return pad(a) + pad(b)
