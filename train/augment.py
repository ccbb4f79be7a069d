"""Batch augmentation on tensors: one random affine (resized crop, flip, rotation) per image,
colour jitter and random erasing, all vectorised so they run on the training device."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class BatchAugment:
    """Random resized crop + horizontal flip + small rotation, colour jitter, random erasing.

    Works on float images in [0, 1], BxCxHxW, with an explicit generator so that an epoch's
    augmentation depends only on its seed.
    """

    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rotate: float = 10.0
    jitter: float = 0.3
    erase: float = 0.25

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, c, h, w = x.shape

        def rand(*shape):
            return torch.rand(*shape, generator=g).to(x.device)

        area = self.scale[0] + (self.scale[1] - self.scale[0]) * rand(b)
        logr = math.log(self.ratio[0]) + (math.log(self.ratio[1]) - math.log(self.ratio[0])) * rand(
            b
        )
        r = torch.exp(logr)
        cw = torch.sqrt(area * r).clamp(max=1.0)
        ch = torch.sqrt(area / r).clamp(max=1.0)
        tx = (1 - cw) * (2 * rand(b) - 1)
        ty = (1 - ch) * (2 * rand(b) - 1)
        ang = torch.deg2rad((2 * rand(b) - 1) * self.rotate)
        flip = torch.where(rand(b) < self.hflip, -1.0, 1.0)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack(
            [
                torch.stack([cos * cw * flip, -sin * ch, tx], dim=1),
                torch.stack([sin * cw * flip, cos * ch, ty], dim=1),
            ],
            dim=1,
        ).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

        if self.jitter > 0:
            j = self.jitter
            bright = (1 - j + 2 * j * rand(b)).view(b, 1, 1, 1)
            contrast = (1 - j + 2 * j * rand(b)).view(b, 1, 1, 1)
            x = x * bright
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * contrast + mean
            if c == 3:
                sat = (1 - j + 2 * j * rand(b)).view(b, 1, 1, 1)
                gray = x.mean(dim=1, keepdim=True)
                x = (x - gray) * sat + gray
            x = x.clamp(0, 1)
        return x

    def erase_normalized(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random erasing (after normalisation: erased pixels become 0 = the mean)."""
        if self.erase <= 0:
            return x
        b, _, h, w = x.shape

        def rand(*shape):
            return torch.rand(*shape, generator=g).to(x.device)

        area = 0.02 + 0.2 * rand(b)
        logr = math.log(0.3) + (math.log(3.3) - math.log(0.3)) * rand(b)
        eh = (torch.sqrt(area / torch.exp(logr)) * h).clamp(1, h)
        ew = (torch.sqrt(area * torch.exp(logr)) * w).clamp(1, w)
        y0 = rand(b) * (h - eh)
        x0 = rand(b) * (w - ew)
        on = rand(b) < self.erase
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        mask = (
            (ys >= y0.view(b, 1, 1))
            & (ys < (y0 + eh).view(b, 1, 1))
            & (xs >= x0.view(b, 1, 1))
            & (xs < (x0 + ew).view(b, 1, 1))
            & on.view(b, 1, 1)
        )
        return x.masked_fill(mask.unsqueeze(1), 0.0)
