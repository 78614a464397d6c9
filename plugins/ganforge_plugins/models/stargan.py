"""StarGAN's networks: Choi, Choi, Kim, Ha, Kim & Choo 2018, "StarGAN: Unified Generative
Adversarial Networks for Multi-Domain Image-to-Image Translation" (arXiv:1711.09020), section 3 and
appendix 7.2 (Table 4).

**Generator** ``G(x, c)`` as the authors built it: the target domain ``c`` (a one-hot, multi-hot or
real-valued vector of ``num_domains`` entries, so that multi-attribute domains work) is tiled over the
image and joined to its channels; a 7x7 convolution to 64 channels, two 4x4 stride-2 down-sampling
convolutions (to 256), six residual blocks of two 3x3 convolutions, two 4x4 stride-2 transposed
convolutions back up and a 7x7 convolution to the image with tanh. Every convolution has zero
padding and no bias; every normalisation is an instance norm with affine parameters (and running
statistics, as in the authors' code). At 128x128 with 5 domains it has 8,430,528 parameters. The
variant with CycleGAN's ResNet blocks (reflection padding, 3x3 sampling convolutions, a domain
index) is ``resnet-generator`` with ``conditional = true``.

**Discriminator** with an auxiliary domain classifier:
A shared trunk of ``n_layers`` 4x4 stride-2 convolutions (64 channels doubling, leaky ReLU 0.01, no
normalisation, as WGAN-GP wants) with two heads: ``D_src``, a 3x3 convolution to a PatchGAN map of
real/fake scores, and ``D_cls``, a convolution over the whole remaining map to ``num_domains``
domain logits. ``forward`` returns ``D_src`` (what adversarial losses and penalties score);
``classify`` returns both, implementing :class:`ganforge.AuxiliaryClassifier`. The domains are the
data's classes; without classes the discriminator has no classifier head.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, hookimpl
from torch import Tensor, nn


@attrs.frozen(kw_only=True)
class StarGANGeneratorConfig:
    base_channels: int = attrs.field(default=64, validator=v.ge(1))  # conv_dim
    n_blocks: int = attrs.field(default=6, validator=v.ge(0))  # repeat_num
    in_channels: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))  # None: as the output


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.main(x)
        return out


class StarGANGenerator(nn.Module):
    """StarGAN's ``G(x, c)``: ``[N, C, H, W]`` and target domains ``[N]`` (indices) or ``[N, K]``
    (multi-hot or real-valued) -> ``[N, C, H, W]`` in ``[-1, 1]``."""

    def __init__(self, config: StarGANGeneratorConfig, data: DataSpec) -> None:
        super().__init__()
        if not data.is_image or not data.num_classes:
            raise ConfigError("generator: stargan translates between the domains of labelled images, but the "
                              f"dataset yields {'unlabelled images' if data.is_image else f'samples {data.shape}'}")
        c, h, w = data.shape
        if h % 4 or w % 4:
            raise ConfigError(f"generator: stargan samples down twice by 2 and needs sides divisible by 4, got {h}x{w}")
        self.num_classes = data.num_classes
        self.in_channels = config.in_channels or c
        self.latent_spaces = (LatentSpace(name="x", shape=(self.in_channels, h, w)),)
        n = config.base_channels
        layers: list[nn.Module] = [nn.Conv2d(self.in_channels + self.num_classes, n, 7, 1, 3, bias=False), _norm(n),
                                   nn.ReLU(inplace=True)]
        for _ in range(2):  # down-sampling
            layers += [nn.Conv2d(n, 2 * n, 4, 2, 1, bias=False), _norm(2 * n), nn.ReLU(inplace=True)]
            n *= 2
        layers += [_Residual(n) for _ in range(config.n_blocks)]
        for _ in range(2):  # up-sampling
            layers += [nn.ConvTranspose2d(n, n // 2, 4, 2, 1, bias=False), _norm(n // 2), nn.ReLU(inplace=True)]
            n //= 2
        layers += [nn.Conv2d(n, c, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.latent_spaces[0].shape:
            raise ValueError(f"stargan: expected images [N, {', '.join(map(str, self.latent_spaces[0].shape))}], "
                             f"got {tuple(x.shape)}")
        if target is None or len(target) != len(x):
            raise ValueError(f"stargan: G(x, c) needs a target domain per image [N={len(x)}]")
        c = F.one_hot(target, self.num_classes) if target.dim() == 1 else target
        c = c.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])  # tiled over the image
        out: Tensor = self.main(torch.cat([x, c], dim=1))
        return out


@attrs.frozen(kw_only=True)
class StarGANDiscriminatorConfig:
    base_channels: int = attrs.field(default=64, validator=v.ge(1))
    max_channels: int = attrs.field(default=2048, validator=v.ge(1))
    # None: down to a 2x2 map, at most 6 layers (StarGAN's at 128x128)
    n_layers: int | None = attrs.field(default=None, validator=v.optional([v.ge(1), v.le(10)]))
    leaky_slope: float = attrs.field(default=0.01, validator=[v.ge(0.0), v.lt(1.0)])


class StarGANDiscriminator(nn.Module):
    """``x [N, C, H, W] -> D_src [N, 1, h, w]``; ``classify(x) -> (D_src, D_cls [N, num_domains])``."""

    def __init__(self, config: StarGANDiscriminatorConfig, data: DataSpec) -> None:
        super().__init__()
        if not data.is_image:
            raise ConfigError(f"discriminator: stargan needs images, but the dataset yields samples of shape "
                              f"{data.shape}")
        c, h, w = data.shape
        n_layers = config.n_layers if config.n_layers is not None else max(1, min(6, int(math.log2(min(h, w))) - 1))
        if min(h, w) < 2**n_layers:
            raise ConfigError(f"discriminator.n_layers: {n_layers} stride-2 layers need images of at least "
                              f"{2**n_layers}x{2**n_layers}, got {h}x{w}")
        self.num_classes = data.num_classes
        layers: list[nn.Module] = []
        channels = c
        for i in range(n_layers):
            out = min(config.max_channels, config.base_channels * 2**i)
            layers += [nn.Conv2d(channels, out, 4, 2, 1), nn.LeakyReLU(config.leaky_slope)]
            channels = out
        self.trunk = nn.Sequential(*layers)
        self.src = nn.Conv2d(channels, 1, 3, 1, 1, bias=False)  # D_src: a patch map
        size = (h // 2**n_layers, w // 2**n_layers)
        self.cls = nn.Conv2d(channels, data.num_classes, size, bias=False) if data.num_classes else None  # D_cls

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        if condition is not None:
            raise ConfigError("discriminator: stargan scores images alone and takes no condition image")
        return self.src(self.trunk(x))  # [N, 1, h, w]

    def classify(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.cls is None:
            raise ConfigError("discriminator: this stargan discriminator was built on unlabelled data and has no "
                              "domain classifier")
        features = self.trunk(x)
        return self.src(features), self.cls(features).flatten(1)  # [N, 1, h, w], [N, num_domains]


@hookimpl
def ganforge_register_generators(register):
    register("stargan", StarGANGenerator, StarGANGeneratorConfig)


@hookimpl
def ganforge_register_discriminators(register):
    register("stargan", StarGANDiscriminator, StarGANDiscriminatorConfig)
