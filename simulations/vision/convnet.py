"""The few-shot convolutional backbone (Finn et al. 2017; Vinyals et al. 2016), with LinNet layers.

  f(x) = W_head · M_m ⋯ M_1 · flatten(B_L ∘ ⋯ ∘ B_1(x)) + b_head
  B_l(h) = maxpool₂(ReLU(BN(conv₃ₓ₃(h))))      (the pool only while the map is at least 2×2)
  M_j(z) = W_j z + b_j,  W_j = I, b_j = 0 at initialisation   (LinNet: ``linnet_layers`` of them)

Choices, each as the MAML / learn2learn literature makes it:
- 3×3 convolutions with padding 1 and ``width`` channels: 32 for mini-ImageNet and CIFAR-FS, 64 for
  Omniglot; depth 4 is standard, depth 2 the "shallow" failure case.
- Initialisation (learn2learn's ``maml_init_``): conv and head weights Xavier-uniform (gain 1), their
  biases 0; batch-norm scale 1 and shift 0 (PyTorch's default; learn2learn draws the scale from U(0, 1)).
- Batch normalisation with batch statistics always, in training and in evaluation, as MAML does
  (transductively over a task's support or query set): ``track_running_stats=False`` keeps no
  running buffers, so the forward is a pure function of (parameters, images) and ``torch.func.vmap``
  can batch it over tasks.
- 2×2 max-pooling (MAML's mini-ImageNet network; Finn et al. use strided convolutions on Omniglot
  instead). Small images: a block pools only while its map is at least 2×2, so 8×8 digits go
  8 → 4 → 2 → 1 → 1 and never reach an empty map; 28×28 gives 1×1, 32×32 gives 2×2, 84×84 gives 5×5.
- LinNet (as simulations.models.add_linear_layers for linear chains): square identity layers with zero
  bias before the head leave the function (and the capacity) unchanged at initialisation; only the
  geometry of the inner-loop gradient changes.

Build on the CPU and move with ``.to(device)``; nothing here names a device.
"""
from __future__ import annotations

import torch
from torch import nn

from theory.ground.errors import ParameterError, require_int


class BatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation with batch statistics, written out: γ (h − mean) / √(var + ε) + β per channel.

    Same parameters (``weight`` γ, ``bias`` β) as ``nn.BatchNorm2d(affine=True, track_running_stats=False)``
    and the same values, but composed of primitive operations: in torch 2.13 the fused batch_norm's
    second-order gradient under ``torch.func.vmap`` is wrong once its γ differs between tasks (percent-level
    errors in second-order MAML meta-gradients; compare pytorch/functorch#534), while the primitives'
    derivatives are exact to every order. tests/test_vision_models.py holds the batched path against
    the per-task loop.
    """

    def __init__(self, channels: int):
        super().__init__(channels, affine=True, track_running_stats=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (n, C, H, W) -> (n, C, H, W)
        mean = h.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1), over images and pixels
        centred = h - mean
        var = (centred * centred).mean(dim=(0, 2, 3), keepdim=True)  # biased, as BatchNorm normalises
        scaled = centred * torch.rsqrt(var + self.eps)
        return scaled * self.weight[:, None, None] + self.bias[:, None, None]


class ConvBlock(nn.Module):
    """conv 3×3 (padding 1) → BatchNorm (batch statistics) → ReLU → optional 2×2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = BatchNorm2d(out_channels)
        self.pool = pool
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, C, H, W) -> (n, width, H', W')
        x = torch.relu(self.norm(self.conv(x)))
        return nn.functional.max_pool2d(x, 2) if self.pool else x


def _pair(image_size) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    return tuple(int(s) for s in image_size)


class ConvNet(nn.Module):
    """The 4-block (``depth``) conv net with ``width`` channels, optional LinNet layers, and an N-way head."""

    def __init__(self, in_channels: int, image_size, ways: int, depth: int = 4, width: int = 32,
                 max_pool: bool = True, linnet_layers: int = 0):
        super().__init__()
        in_channels = require_int("in_channels", in_channels, 1)
        ways = require_int("ways", ways, 2)
        depth = require_int("depth", depth, 1)
        width = require_int("width", width, 1)
        linnet_layers = require_int("linnet_layers", linnet_layers, 0)
        height, wide = _pair(image_size)
        if min(height, wide) < 1:
            raise ParameterError("image_size", image_size, "positive height and width")
        blocks = []
        for i in range(depth):
            pool = max_pool and min(height, wide) >= 2  # stop pooling at a 1-pixel map
            blocks.append(ConvBlock(in_channels if i == 0 else width, width, pool))
            if pool:
                height, wide = height // 2, wide // 2
        self.blocks = nn.ModuleList(blocks)
        self.feature_shape = (width, height, wide)  # after the last block
        features = width * height * wide
        head = nn.Linear(features, ways)  # drawn before the LinNet layers: same head at any linnet_layers
        nn.init.xavier_uniform_(head.weight)
        nn.init.zeros_(head.bias)
        self.linnet = nn.ModuleList(nn.Linear(features, features) for _ in range(linnet_layers))
        for layer in self.linnet:
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.head = head  # registered last: parameters in forward order (blocks, linnet, head)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened conv features, before LinNet and head: (n, C, H, W) -> (n, features)."""
        for block in self.blocks:
            x = block(x)  # (n, width, H', W')
        return x.flatten(1)  # (n, width·H'·W')

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, C, H, W) -> logits (n, ways)
        z = self.embed(x)
        for layer in self.linnet:
            z = layer(z)  # (n, features)
        return self.head(z)

    @property
    def head_names(self) -> tuple[str, str]:
        """The parameters ANIL adapts: the head's weight and bias."""
        return "head.weight", "head.bias"


def standard_convnet(dataset: str, ways: int, image_shape, depth: int = 4, width: int | None = None,
                     linnet_layers: int = 0) -> ConvNet:
    """The literature's backbone for ``dataset``: 64 channels for Omniglot, 32 otherwise (unless ``width``).

    ``image_shape`` = (C, H, W) of the dataset's images; depth 2 gives the shallow failure case.
    """
    channels, height, wide = image_shape
    width = default_width(dataset) if width is None else width
    return ConvNet(channels, (height, wide), ways, depth=depth, width=width, linnet_layers=linnet_layers)


def default_width(dataset: str) -> int:
    """Channels per block in the literature: 64 on Omniglot (Finn et al. 2017), 32 elsewhere."""
    return 64 if dataset == "omniglot" else 32
