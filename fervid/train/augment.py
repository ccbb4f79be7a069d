"""Batch augmentation on tensors: one random affine (resized crop, flip, rotation) per image,
colour jitter, random grayscale and random erasing, all vectorised so they run on the training
device; :class:`FootageAugment`, the degradations of real footage (resolution, blur, light,
noise, JPEG); and :class:`BatchMix`, mixup and CutMix of images and their targets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class BatchAugment:
    """Random resized crop + horizontal flip + small rotation, colour jitter, random
    grayscale (``gray``: the probability that a colour image is turned to its luma, so that
    a colour model also reads grayscale footage), the degradations of :class:`FootageAugment`
    (``footage``: their probability each), random erasing.

    Works on float images in [0, 1], BxCxHxW, with an explicit generator so that an epoch's
    augmentation depends only on its seed.
    """

    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rotate: float = 10.0
    jitter: float = 0.3
    erase: float = 0.25
    gray: float = 0.0
    footage: float = 0.0

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
        if self.gray > 0 and c == 3:
            luma = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand(-1, 3, -1, -1)
            on = (rand(b) < self.gray).view(b, 1, 1, 1)
            x = torch.where(on, luma, x)
        return FootageAugment(self.footage)(x, g)

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


@dataclass
class FootageAugment:
    """Degradations of real footage, each applied to an image with probability ``p``:
    resolution loss (down- then up-sampled to 25-100% of the side), Gaussian or motion blur,
    low light and gamma, sensor noise and JPEG artefacts (quality 15-75), in that order, as a
    camera and a codec would. Float images in [0, 1], BxCxHxW; one blur kernel and one
    resolution per batch, every other amount per image; ``p = 0`` returns ``x`` unchanged."""

    p: float = 0.0

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.p <= 0:
            return x
        b = x.shape[0]

        def pick() -> torch.Tensor:
            return (torch.rand(b, generator=g) < self.p).to(x.device).view(b, 1, 1, 1)

        def rand(n: int = b) -> torch.Tensor:
            return torch.rand(n, generator=g).to(x.device)

        x = torch.where(pick(), _resample(x, 0.25 + 0.75 * float(rand(1))), x)
        x = torch.where(pick(), _blur(x, float(rand(1)), float(rand(1)), float(rand(1))), x)
        light = (0.35 + 0.65 * rand()).view(b, 1, 1, 1)
        gamma = torch.exp((2 * rand() - 1) * math.log(2.0)).view(b, 1, 1, 1)
        x = torch.where(pick(), (x.clamp(min=1e-4) ** gamma) * light, x)
        sigma = (0.06 * rand()).view(b, 1, 1, 1)
        noise = torch.randn(x.shape, generator=g).to(x.device) * sigma
        x = torch.where(pick(), (x + noise).clamp(0, 1), x)
        on = pick().view(b).nonzero().flatten().tolist()
        if on:
            quality = int(15 + 60 * float(rand(1)))
            x = x.clone()
            x[on] = _jpeg(x[on], quality)
        return x


def _resample(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Down-sample to ``factor`` of the side (area), then back up (bilinear)."""
    h, w = x.shape[2:]
    size = (max(4, round(h * factor)), max(4, round(w * factor)))
    small = F.interpolate(x, size=size, mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def _blur(x: torch.Tensor, kind: float, amount: float, angle: float) -> torch.Tensor:
    """Gaussian blur (sigma 0.5-2 px) or, half the time, motion blur (3-9 px at any angle)."""
    c = x.shape[1]
    k = 9
    r = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    if kind < 0.5:
        sigma = 0.5 + 1.5 * amount
        g1 = torch.exp(-(r**2) / (2 * sigma**2))
        kernel = g1[:, None] * g1[None, :]
    else:
        length = 3 + 6 * amount
        a = math.pi * angle
        yy, xx = torch.meshgrid(r, r, indexing="ij")
        along = xx * math.cos(a) + yy * math.sin(a)
        across = -xx * math.sin(a) + yy * math.cos(a)
        kernel = ((along.abs() <= length / 2) & (across.abs() <= 0.5)).to(x.dtype)
    kernel = (kernel / kernel.sum()).expand(c, 1, k, k)
    padded = F.pad(x, (k // 2,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=c)


def _jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """Encode and decode as JPEG at ``quality`` (on the CPU, where torchvision's codec is)."""
    from torchvision.io import decode_jpeg, encode_jpeg  # only for the JPEG degradation

    u8 = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu()
    decoded = decode_jpeg(encode_jpeg(list(u8), quality=int(quality)))
    return torch.stack(decoded).to(x.device, x.dtype) / 255


@dataclass
class BatchMix:
    """Mixup (``mixup`` = Beta alpha) and CutMix (``cutmix`` = Beta alpha) of a batch with a
    shuffled copy of itself, one mixing ratio per batch; applied with probability ``prob``,
    choosing between the two at random when both are on. Returns the images and the mixed
    target distributions (class indices are turned into one-hot targets first)."""

    num_classes: int
    mixup: float = 0.0
    cutmix: float = 0.0
    prob: float = 1.0

    @property
    def enabled(self) -> bool:
        return (self.mixup > 0 or self.cutmix > 0) and self.prob > 0

    def __call__(
        self, x: torch.Tensor, targets: torch.Tensor, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t = (
            F.one_hot(targets, self.num_classes).to(x.dtype)
            if not targets.is_floating_point()
            else targets.to(x.dtype)
        )
        u = torch.rand(3, generator=g).tolist()
        if not self.enabled or u[0] >= self.prob:
            return x, t
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or u[1] < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        lam = float(np.random.default_rng(seed).beta(alpha, alpha))
        perm = torch.randperm(x.shape[0], generator=g).to(x.device)
        if use_cutmix:
            h, w = x.shape[2:]
            ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
            cy, cx = (torch.rand(2, generator=g) * torch.tensor([h, w])).long().tolist()
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x = x.clone()
            x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            x = lam * x + (1 - lam) * x[perm]
        return x, lam * t + (1 - lam) * t[perm]
