"""The learned labeller's network: a small 2D U-Net on a sagittal slab stack (3 channels, 2 mm pixels).

Outputs, per pixel: two centre heatmaps (vertebral bodies, discs; sigmoid) and the logits of the anchor class of a
vertebral body (:data:`training.levels.spine_model.REGIONS`: background, C2, C3-C7, thoracic, lumbar, sacrum). Sizes
are a multiple of 16. About 0.5 M parameters: a few MB of weights, fast on a CPU.
"""
from __future__ import annotations

import torch
from torch import nn

N_HEAT = 2
N_REGIONS = 6


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class LevelNet(nn.Module):
    def __init__(self, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        w = [width, width * 2, width * 3, width * 4, width * 6]
        self.enc = nn.ModuleList([_block(in_channels, w[0])] + [_block(w[i], w[i + 1]) for i in range(4)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in range(4)])
        self.dec = nn.ModuleList([_block(2 * w[i], w[i]) for i in range(4)])
        self.head = nn.Conv2d(w[0], N_HEAT + N_REGIONS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips[-1]
        for i in reversed(range(4)):
            x = self.dec[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        return self.head(x)  # heat logits (2) then region logits (6)
