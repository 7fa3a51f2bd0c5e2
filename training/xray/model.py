"""The landmark network: a small encoder-decoder giving one heatmap per corner, read out by a soft-argmax.

Input (N, 1, H, W) standardised greyscale; outputs ``coords`` (N, 68, 2) as (x, y) in [0, 1] of the input,
``spread`` (N, 68) the standard deviation of each heatmap in the same units, and ``logits`` for the heatmap loss
(training only); the exported graph gives each heatmap's peak probability instead of the logits. Heatmaps are at 1/4 of the input resolution; the soft-argmax gives sub-cell
positions. Coordinate channels at the bottleneck let the network tell T1's corners from L5's by where they are.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

N_LANDMARKS = 68


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _coords(n: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    ys = torch.linspace(-1.0, 1.0, h, dtype=like.dtype, device=like.device)
    xs = torch.linspace(-1.0, 1.0, w, dtype=like.dtype, device=like.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy]).unsqueeze(0).expand(n, 2, h, w)


class LandmarkNet(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        c = [width, 2 * width, 4 * width, 6 * width, 8 * width]
        self.stem = nn.Sequential(_block(1, c[0], 2), _block(c[0], c[0]))             # 1/2
        self.e1 = nn.Sequential(_block(c[0], c[1], 2), _block(c[1], c[1]))             # 1/4
        self.e2 = nn.Sequential(_block(c[1], c[2], 2), _block(c[2], c[2]))             # 1/8
        self.e3 = nn.Sequential(_block(c[2], c[3], 2), _block(c[3], c[3]))             # 1/16
        self.e4 = nn.Sequential(_block(c[3] + 2, c[4], 2), _block(c[4], c[4], dilation=2),
                                _block(c[4], c[4], dilation=4))                         # 1/32
        self.l4 = nn.Conv2d(c[4], c[3], 1)
        self.d3 = _block(c[3], c[3])
        self.l3 = nn.Conv2d(c[3], c[2], 1)
        self.d2 = _block(c[2], c[2])
        self.l2 = nn.Conv2d(c[2], 3 * width, 1)
        self.s1 = nn.Conv2d(c[1], 3 * width, 1)
        self.d1 = _block(3 * width, 3 * width)
        self.head = nn.Conv2d(3 * width, N_LANDMARKS, 1)

    def forward(self, x: torch.Tensor):
        x0 = self.stem(x)
        x1 = self.e1(x0)
        x2 = self.e2(x1)
        x3 = self.e3(x2)
        n, _, h3, w3 = x3.shape
        x4 = self.e4(torch.cat([x3, _coords(n, h3, w3, x3)], dim=1))
        y = self.d3(F.interpolate(self.l4(x4), size=x3.shape[2:], mode="bilinear", align_corners=False) + x3)
        y = self.d2(F.interpolate(self.l3(y), size=x2.shape[2:], mode="bilinear", align_corners=False) + x2)
        y = self.d1(F.interpolate(self.l2(y), size=x1.shape[2:], mode="bilinear", align_corners=False)
                    + self.s1(x1))
        logits = self.head(y)
        coords, spread = soft_argmax(logits)
        return coords, spread, logits


def soft_argmax(logits: torch.Tensor):
    """Expected (x, y) of each softmax heatmap in [0, 1] (cell centres), and its standard deviation."""
    n, k, h, w = logits.shape
    prob = torch.softmax(logits.reshape(n, k, h * w), dim=-1).reshape(n, k, h, w)
    xs = (torch.arange(w, dtype=logits.dtype, device=logits.device) + 0.5) / w
    ys = (torch.arange(h, dtype=logits.dtype, device=logits.device) + 0.5) / h
    px = prob.sum(dim=2)        # (n, k, w)
    py = prob.sum(dim=3)        # (n, k, h)
    mx = (px * xs).sum(-1)
    my = (py * ys).sum(-1)
    vx = (px * (xs - mx.unsqueeze(-1)) ** 2).sum(-1)
    vy = (py * (ys - my.unsqueeze(-1)) ** 2).sum(-1)
    return torch.stack([mx, my], dim=-1), torch.sqrt(vx + vy + 1e-12)


class ExportWrapper(nn.Module):
    """What goes into ONNX: coordinates, spread, and each heatmap's peak probability (how concentrated it is:
    the run-time confidence check compares it with what validation radiographs give)."""

    def __init__(self, net: LandmarkNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        coords, spread, logits = self.net(x)
        peak = torch.softmax(logits.flatten(2), dim=-1).amax(dim=-1)
        return coords, spread, peak
