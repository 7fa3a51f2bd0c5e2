"""The refinement network: one vertebra crop (CROP x CROP) in, the four corners of the vertebra nearest the crop's
centre out, each as the soft-argmax of a heatmap at 1/4 of the crop's resolution.

Coordinate channels go in with the image: "nearest the centre" needs to know where the centre is.
Outputs ``corners`` (N, 4, 2) in crop pixels (x, y) and ``logits`` (N, 4, h, w) for the heatmap loss (training only).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.xray.model import _block, _coords, soft_argmax


class RefineNet(nn.Module):
    def __init__(self, width: int = 16, crop: int = 128):
        super().__init__()
        self.crop = crop
        c = [width, 2 * width, 4 * width, 6 * width]
        self.stem = nn.Sequential(_block(3, c[0], 2), _block(c[0], c[0]))                        # 1/2
        self.e1 = nn.Sequential(_block(c[0], c[1], 2), _block(c[1], c[1]))                      # 1/4
        self.e2 = nn.Sequential(_block(c[1], c[2], 2), _block(c[2], c[2]))                      # 1/8
        self.e3 = nn.Sequential(_block(c[2], c[3], 2), _block(c[3], c[3], dilation=2),
                                _block(c[3], c[3], dilation=2))                                  # 1/16
        self.l3 = nn.Conv2d(c[3], c[2], 1)
        self.d2 = _block(c[2], c[2])
        self.l2 = nn.Conv2d(c[2], c[1], 1)
        self.d1 = nn.Sequential(_block(c[1] + 2, c[1]), _block(c[1], c[1]))
        self.head = nn.Conv2d(c[1], 4, 1)

    def forward(self, x: torch.Tensor):
        n, _, h, w = x.shape
        x0 = self.stem(torch.cat([x, _coords(n, h, w, x)], dim=1))
        x1 = self.e1(x0)
        x2 = self.e2(x1)
        x3 = self.e3(x2)
        y = self.d2(F.interpolate(self.l3(x3), size=x2.shape[2:], mode="bilinear", align_corners=False) + x2)
        y = F.interpolate(self.l2(y), size=x1.shape[2:], mode="bilinear", align_corners=False) + x1
        n1, _, h1, w1 = y.shape
        y = self.d1(torch.cat([y, _coords(n1, h1, w1, y)], dim=1))
        logits = self.head(y)
        coords, _ = soft_argmax(logits)
        return coords * torch.tensor([w, h], dtype=coords.dtype), logits


class RefineExport(nn.Module):
    """What goes into ONNX: the corners only."""

    def __init__(self, net: RefineNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        return self.net(x)[0]
