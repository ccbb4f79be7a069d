"""MTCNN's cascade (P-Net, R-Net, O-Net), faster on CPU and without torchvision.

The networks and ``detect_face`` are facenet-pytorch 2.5.3's (MIT licence, copyright (c) 2019
Timothy Esler; https://github.com/timesler/facenet-pytorch), with the weights read from the
files its wheel ships (nothing is downloaded, and neither facenet-pytorch nor torchvision is
imported: together 1.4-1.6 s of every start, docs/video.md). Changed, each measured in
bench/RESULTS.md and docs/video.md:

- the candidate faces that R-Net and O-Net score are cut and resized for all candidates at once
  with torchvision's ``roi_align`` (2x2 bilinear samples averaged per output pixel) instead of
  one ``interpolate(mode="area")`` call per candidate;
- the image pyramid is resized with antialiased bilinear interpolation instead of
  ``mode="area"`` (adaptive average pooling, slow on CPU).

torchvision's ``roi_align`` and ``nms`` are its compiled kernels, called through ``torch.ops``
after loading its library alone (:func:`_ops`): importing ``torchvision.ops`` pulls in
``torch._dynamo``, 1.4 s.

Each function returns, per image, an array of boxes (x1, y1, x2, y2, score); O-Net's facial
landmarks are not computed. :func:`refine_faces` runs only the last stages on given boxes.
"""

# ruff: noqa
from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import torch
from torch import nn


def _weights(name: str) -> dict:
    """The state dict of P-Net, R-Net or O-Net from facenet-pytorch's wheel (found without
    importing the package)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("facenet-pytorch is not installed: pip install facenet-pytorch==2.5.3")
    folder = list(spec.submodule_search_locations)[0]
    return torch.load(os.path.join(folder, "data", f"{name}.pt"), weights_only=True)


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)
        self.load_state_dict(_weights("pnet"))

    def forward(self, x):
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)
        self.load_state_dict(_weights("rnet"))

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)
        self.load_state_dict(_weights("onet"))

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))


@functools.lru_cache(maxsize=1)
def _ops():
    """torchvision's compiled operators (``torch.ops.torchvision``), its library loaded
    without importing its Python package; where that fails, through the package."""
    try:
        spec = importlib.util.find_spec("torchvision")
        folder = list(spec.submodule_search_locations)[0]
        names = sorted(
            (f for f in os.listdir(folder) if f.startswith("_C") and f.endswith((".so", ".pyd"))),
            key=lambda f: "_stable" not in f,
        )
        torch.ops.load_library(os.path.join(folder, names[0]))
        torch.ops.torchvision.nms  # noqa: B018 - raises where the library did not register it
    except Exception:  # noqa: BLE001 - any layout this does not know: the package loads it
        import torchvision.ops  # noqa: F401
    return torch.ops.torchvision


def nms(boxes, scores, iou: float):
    """Indices of the boxes (x1, y1, x2, y2) kept by greedy non-maximum suppression, best
    score first (torchvision's ``nms``): numpy in, numpy out; tensors in, a tensor out."""
    if isinstance(boxes, np.ndarray) or isinstance(scores, np.ndarray):
        b = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4))
        s = torch.as_tensor(np.asarray(scores, np.float32).reshape(-1))
        return _ops().nms(b, s, float(iou)).numpy()
    return _ops().nms(boxes, scores, float(iou))


def batched_nms(boxes, scores, idxs, iou: float):
    """:func:`nms` within each image (``idxs``): kept indices, best first (torchvision's
    ``batched_nms``, by its coordinate offsets)."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou)


def fixed_batch_process(im_data, model):
    out = []
    for i in range(0, len(im_data), 512):
        out.append(model(im_data[i : i + 512]))
    return tuple(torch.cat(v, dim=0) for v in zip(*out))


def bbreg(boundingbox, reg):
    if reg.shape[1] == 1:
        reg = torch.reshape(reg, (reg.shape[2], reg.shape[3]))
    w = boundingbox[:, 2] - boundingbox[:, 0] + 1
    h = boundingbox[:, 3] - boundingbox[:, 1] + 1
    b1 = boundingbox[:, 0] + reg[:, 0] * w
    b2 = boundingbox[:, 1] + reg[:, 1] * h
    b3 = boundingbox[:, 2] + reg[:, 2] * w
    b4 = boundingbox[:, 3] + reg[:, 3] * h
    boundingbox[:, :4] = torch.stack([b1, b2, b3, b4]).permute(1, 0)
    return boundingbox


def generateBoundingBox(reg, probs, scale, thresh):
    stride, cellsize = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= thresh
    mask_inds = mask.nonzero()
    image_inds = mask_inds[:, 0]
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    bb = mask_inds[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    boundingbox = torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1)
    return boundingbox, image_inds


def _nms_min(boxes, scores, threshold):
    """Greedy suppression by intersection over the smaller box (areas with +1): O-Net's
    last step in facenet-pytorch (``nms_numpy`` with "Min")."""
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        idx = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        order = order[np.where(w * h / np.minimum(area[i], area[idx]) <= threshold)]
    return np.asarray(pick, np.int64)


def batched_nms_numpy(boxes, scores, idxs, threshold, method):
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    keep = _nms_min((boxes + offsets[:, None]).cpu().numpy(), scores.cpu().numpy(), threshold)
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


def pad(boxes, w, h):
    boxes = boxes.trunc().int().cpu().numpy()
    x, y, ex, ey = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def rerec(bboxA):
    h = bboxA[:, 3] - bboxA[:, 1]
    w = bboxA[:, 2] - bboxA[:, 0]
    l = torch.max(w, h)
    bboxA[:, 0] = bboxA[:, 0] + w * 0.5 - l * 0.5
    bboxA[:, 1] = bboxA[:, 1] + h * 0.5 - l * 0.5
    bboxA[:, 2:4] = bboxA[:, :2] + l.repeat(2, 1).permute(1, 0)
    return bboxA


def _resample(img, sz):
    return torch.nn.functional.interpolate(
        img, size=sz, mode="bilinear", align_corners=False, antialias=True
    ).contiguous(memory_format=torch.channels_last)


def _crops(imgs, image_inds, y, ey, x, ex, size):
    """All candidate boxes (1-based inclusive pixel bounds, as ``pad`` returns them) cut from
    their images and resized to ``size`` in one call."""
    keep = (ey > (y - 1)) & (ex > (x - 1))
    y, ey, x, ex = y[keep], ey[keep], x[keep], ex[keep]
    inds = image_inds[torch.as_tensor(keep, device=image_inds.device)].to(imgs.device)
    rois = torch.stack(
        [
            inds.to(imgs.dtype),
            torch.as_tensor(np.asarray(x - 1), dtype=imgs.dtype, device=imgs.device),
            torch.as_tensor(np.asarray(y - 1), dtype=imgs.dtype, device=imgs.device),
            torch.as_tensor(np.asarray(ex), dtype=imgs.dtype, device=imgs.device),
            torch.as_tensor(np.asarray(ey), dtype=imgs.dtype, device=imgs.device),
        ],
        dim=1,
    )
    return (
        _ops()
        .roi_align(imgs, rois, 1.0, size, size, 2, True)
        .contiguous(memory_format=torch.channels_last)
    )


def detect_face(imgs, minsize, pnet, rnet, onet, threshold, factor, device):
    imgs = torch.as_tensor(np.ascontiguousarray(imgs), device=device)

    model_dtype = next(pnet.parameters()).dtype
    imgs = imgs.permute(0, 3, 1, 2).type(model_dtype)

    batch_size = len(imgs)
    h, w = imgs.shape[2:4]
    m = 12.0 / minsize
    minl = min(h, w)
    minl = minl * m

    # Create scale pyramid
    scale_i = m
    scales = []
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor
    if not scales:  # the image is smaller than the smallest face sought: no face
        empty = np.empty(batch_size, dtype=object)
        for i in range(batch_size):
            empty[i] = np.zeros((0, 5), np.float32)
        return empty

    # First stage
    boxes = []
    image_inds = []

    scale_picks = []

    all_i = 0
    offset = 0
    level = imgs
    for scale in scales:
        # each level from the one above it (cheaper than from the full image every time)
        level = _resample(level, (int(h * scale + 1), int(w * scale + 1)))
        im_data = (level - 127.5) * 0.0078125
        reg, probs = pnet(im_data)

        boxes_scale, image_inds_scale = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes.append(boxes_scale)
        image_inds.append(image_inds_scale)

        pick = batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], image_inds_scale, 0.5)
        scale_picks.append(pick + offset)
        offset += boxes_scale.shape[0]

    boxes = torch.cat(boxes, dim=0)
    image_inds = torch.cat(image_inds, dim=0)

    scale_picks = torch.cat(scale_picks, dim=0)

    # NMS within each scale + image
    boxes, image_inds = boxes[scale_picks], image_inds[scale_picks]

    # NMS within each image
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]

    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0)
    return _stages_2_3(imgs, boxes, image_inds, rnet, onet, threshold, device, batch_size)


def refine_faces(imgs, candidates, image_inds, rnet, onet, threshold, device, skip_rnet=False):
    """R-Net and O-Net only, on given candidate boxes (x1, y1, x2, y2 per row; ``image_inds``
    says which image each is in): finding a face near where it is expected, without P-Net's
    image pyramid (``skip_rnet``: O-Net alone). Returns what :func:`detect_face` returns."""
    imgs = torch.as_tensor(np.ascontiguousarray(imgs), device=device)
    model_dtype = next(rnet.parameters()).dtype
    imgs = imgs.permute(0, 3, 1, 2).type(model_dtype)
    cand = torch.as_tensor(np.asarray(candidates, np.float32), device=device).reshape(-1, 4)
    boxes = torch.cat([cand, torch.ones(len(cand), 1, device=device)], dim=1)
    inds = torch.as_tensor(np.asarray(image_inds, np.int64), device=device)
    return _stages_2_3(
        imgs, boxes, inds, None if skip_rnet else rnet, onet, threshold, device, len(imgs), top=1
    )


def _stages_2_3(imgs, boxes, image_inds, rnet, onet, threshold, device, batch_size, top=None):
    """R-Net then O-Net on candidate boxes (x1, y1, x2, y2, score); per image, the faces.
    ``top``: only the best ``top`` R-Net boxes per image go on to O-Net (candidates placed
    around one expected face: R-Net's regression brings them onto it, and O-Net, the
    costly stage, needs to see only the best)."""
    h, w = imgs.shape[2:4]
    boxes = rerec(boxes)
    y, ey, x, ex = pad(boxes, w, h)
    # Second stage
    if len(boxes) > 0 and rnet is not None:
        im_data = _crops(imgs, image_inds, y, ey, x, ex, 24)
        im_data = (im_data - 127.5) * 0.0078125

        # This is equivalent to out = rnet(im_data) to avoid GPU out of memory.
        out = fixed_batch_process(im_data, rnet)

        out0 = out[0].permute(1, 0)
        out1 = out[1].permute(1, 0)
        score = out1[1, :]
        ipass = score > threshold[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)

        # NMS within each image
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, mv = boxes[pick], image_inds[pick], mv[pick]
        boxes = bbreg(boxes, mv)
        boxes = rerec(boxes)
        if top is not None and len(boxes):
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.5)
            pick = torch.cat([pick[image_inds[pick] == i][:top] for i in image_inds.unique()])
            boxes, image_inds = boxes[pick], image_inds[pick]

    # Third stage (O-Net's facial landmarks are not used: not computed)
    if len(boxes) > 0:
        y, ey, x, ex = pad(boxes, w, h)
        im_data = _crops(imgs, image_inds, y, ey, x, ex, 48)
        im_data = (im_data - 127.5) * 0.0078125

        # This is equivalent to out = onet(im_data) to avoid GPU out of memory.
        out = fixed_batch_process(im_data, onet)

        out0 = out[0].permute(1, 0)
        out2 = out[2].permute(1, 0)
        score = out2[1, :]
        ipass = score > threshold[2]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds = image_inds[ipass]
        mv = out0[:, ipass].permute(1, 0)
        boxes = bbreg(boxes, mv)

        # NMS within each image using "Min" strategy
        # pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds = boxes[pick], image_inds[pick]

    boxes = boxes.cpu().numpy()
    image_inds = image_inds.cpu().numpy()
    batch_boxes = np.empty(batch_size, dtype=object)
    for b_i in range(batch_size):
        batch_boxes[b_i] = boxes[image_inds == b_i].copy()
    return batch_boxes
