"""U-Net generator for image-to-image translation: Ronneberger, Fischer & Brox 2015, "U-Net:
Convolutional Networks for Biomedical Image Segmentation" (arXiv:1505.04597), as pix2pix uses it
(Isola, Zhu, Zhou & Efros 2017, arXiv:1611.07004, section 3.2.1 and appendix 6.1.1).

An encoder-decoder whose decoder layer ``i`` reads ``concat(e_i, d_{i+1})``: the encoder's feature
map at the same resolution is carried across, so low-level structure (edges, positions) bypasses the
bottleneck. Encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` (4x4 convolutions, stride 2, leaky
ReLU 0.2, batch norm except on the first and the innermost layer); decoder mirrored with ReLU and
transposed convolutions, ``tanh`` on the output. Dropout 0.5 on the decoder layers next to the
bottleneck is the generator's only noise (pix2pix found an input ``z`` ignored).

``depth`` (the number of stride-2 layers) defaults to ``log2(min(H, W))``, which reduces any
power-of-two image to a 1x1 bottleneck as ``unet_256`` does at 256x256. The network is
image-conditional: as a member of the generator family its one latent space ``x`` is the source
image ``[in_channels, H, W]``, so ``g(x)`` is both :class:`ganforge.Generator` and
:class:`ganforge.Translator`.

The normalisation (``norm``, batch norm by default) and the encoder's and decoder's activations
(``encoder_activation``: leaky ReLU 0.2, ``decoder_activation``: ReLU) are layers named in the
config. A convolution before batch norm has no bias, as in pix2pix's code. Departures from that
code (pytorch-CycleGAN-and-pix2pix ``UnetGenerator``), each kept so that small images train well:

- the two encoder convolutions that no normalisation follows (the first and the innermost) keep
  their biases, where the reference drops them with batch norm: +576 parameters at ``unet_256``
  (54,414,531 here, 54,413,955 there) and at ``unet_128``;
- dropout sits on the ``dropout_layers = 3`` decoder layers right below the bottleneck at every
  depth; the reference puts it on ``num_downs - 5`` layers (3 at 256x256, the same layers as here,
  but 2 at 128x128 and none below 64x64, where the generator would then have no noise at all). Set
  ``dropout_layers = 2`` for the reference's ``unet_128``.
"""

from __future__ import annotations

import math

import attrs
import torch
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins.layers.activation import leaky_relu_choice, relu_choice
from ganforge_plugins.layers.normalization import batch_norm_choice


@attrs.frozen(kw_only=True)
class UNetConfig:
    in_channels: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))  # None: as the output
    base_channels: int = attrs.field(default=64, validator=v.ge(1))  # C64 first
    max_channels: int = attrs.field(default=512, validator=v.ge(1))  # C512 cap
    depth: int | None = attrs.field(default=None, validator=v.optional([v.ge(2), v.le(12)]))  # None: to 1x1
    norm: LayerChoice = attrs.field(factory=batch_norm_choice)  # all but the outermost and innermost encoder layer
    encoder_activation: LayerChoice = attrs.field(factory=leaky_relu_choice)  # leaky ReLU 0.2 (appendix 6.1.1)
    decoder_activation: LayerChoice = attrs.field(factory=relu_choice)
    dropout: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.lt(1.0)])
    dropout_layers: int = attrs.field(default=3, validator=v.ge(0))  # decoder layers below the bottleneck


def widths(base: int, cap: int, depth: int) -> list[int]:
    """Channels of the encoder's ``depth`` layers: ``base * 2^i`` capped at ``cap``."""
    return [min(cap, base * 2**i) for i in range(depth)]


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: ``[N, in_channels, H, W] -> [N, C, H, W]`` in ``[-1, 1]``."""

    def __init__(self, config: UNetConfig, data: DataSpec) -> None:
        super().__init__()
        if not data.is_image:
            raise ConfigError(f"generator: unet needs images, but the dataset yields samples of shape {data.shape}")
        c, h, w = data.shape
        side = min(h, w)
        if side & (side - 1) or h != w:
            raise ConfigError(f"generator: unet needs square power-of-two images, got {h}x{w}")
        depth = config.depth if config.depth is not None else int(math.log2(side))
        if 2**depth > side:
            raise ConfigError(f"generator.depth: {depth} stride-2 layers need images of at least "
                              f"{2**depth}x{2**depth}, got {h}x{w}")
        self.num_classes = None
        self.in_channels = config.in_channels or c
        self.depth = depth
        self.latent_spaces = (LatentSpace(name="x", shape=(self.in_channels, h, w)),)
        width = widths(config.base_channels, config.max_channels, depth)
        norm, down_act, up_act = config.norm, config.encoder_activation, config.decoder_activation
        bias = norm.name != "batch-norm"
        self.down = nn.ModuleList()
        for i in range(depth):
            if i == 0:
                self.down.append(nn.Conv2d(self.in_channels, width[0], 4, 2, 1))
                continue
            inner = i == depth - 1  # the bottleneck: no norm (a 1x1 map of one sample has no statistics)
            conv = nn.Conv2d(width[i - 1], width[i], 4, 2, 1, bias=bias or inner)
            after = nn.Identity() if inner else norm.build(channels=width[i])
            self.down.append(nn.Sequential(down_act.build(channels=width[i - 1]), conv, after))
        self.up = nn.ModuleList()  # up[i] produces the map at level i - 1 (the image for i = 0)
        for i in range(depth):
            in_ch = width[i] if i == depth - 1 else 2 * width[i]  # the innermost has no skip to read
            if i == 0:
                self.up.append(nn.Sequential(up_act.build(channels=in_ch), nn.ConvTranspose2d(in_ch, c, 4, 2, 1),
                                             nn.Tanh()))
                continue
            layers: list[nn.Module] = [up_act.build(channels=in_ch),
                                       nn.ConvTranspose2d(in_ch, width[i - 1], 4, 2, 1, bias=bias),
                                       norm.build(channels=width[i - 1])]
            if depth - 1 - config.dropout_layers <= i < depth - 1 and config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))  # pix2pix: the 3 decoder layers below the bottleneck
            self.up.append(nn.Sequential(*layers))
        for m in self.modules():  # pix2pix: N(0, 0.02) weights, N(1, 0.02) norm scales
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    @property
    def bottleneck(self) -> nn.Module:
        """The innermost encoder layer, whose output is the ``[N, C, H/2^depth, W/2^depth]`` code."""
        return self.down[-1]

    def forward(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != self.latent_spaces[0].shape:
            raise ValueError(f"unet: expected images [N, {', '.join(map(str, self.latent_spaces[0].shape))}], "
                             f"got {tuple(x.shape)}")
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        y = self.up[-1](skips[-1])
        for i in range(self.depth - 2, -1, -1):
            y = self.up[i](torch.cat([skips[i], y], dim=1))  # [N, 2 width_i, ...]: the skip connection
        return y


@hookimpl
def ganforge_register_generators(register):
    register("unet", UNetGenerator, UNetConfig)
