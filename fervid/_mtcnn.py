"""MTCNN's cascade (P-Net, R-Net, O-Net), faster on CPU.

This is ``detect_face`` from facenet-pytorch 2.5.3 (MIT licence, copyright (c) 2019 Timothy
Esler; https://github.com/timesler/facenet-pytorch), changed in two ways, both measured in
bench/RESULTS.md:

- the candidate faces that R-Net and O-Net score are cut and resized for all candidates at once
  with ``torchvision.ops.roi_align`` (2x2 bilinear samples averaged per output pixel) instead of
  one ``interpolate(mode="area")`` call per candidate;
- the image pyramid is resized with antialiased bilinear interpolation instead of
  ``mode="area"`` (adaptive average pooling, slow on CPU).

The networks and their weights are facenet-pytorch's own, taken from its ``MTCNN`` module.
Each function returns, per image, an array of boxes (x1, y1, x2, y2, score); O-Net's facial
landmarks are not computed. :func:`refine_faces` runs only the last stages on given boxes.
"""

# ruff: noqa
from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import roi_align
from torchvision.ops.boxes import batched_nms
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    fixed_batch_process,
    generateBoundingBox,
    pad,
    rerec,
)


def _resample(img, sz):
    return torch.nn.functional.interpolate(
        img, size=sz, mode="bilinear", align_corners=False, antialias=True
    ).contiguous(memory_format=torch.channels_last)


def _crops(imgs, image_inds, y, ey, x, ex, size):
    """All candidate boxes (1-based inclusive pixel bounds, as facenet-pytorch's ``pad``
    returns them) cut from their images and resized to ``size`` in one call."""
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
    return roi_align(
        imgs, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True
    ).contiguous(memory_format=torch.channels_last)


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
