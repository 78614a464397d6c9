"""StarGAN's discriminator with an auxiliary domain classifier: Choi, Choi, Kim, Ha, Kim & Choo 2018,
"StarGAN: Unified Generative Adversarial Networks for Multi-Domain Image-to-Image Translation"
(arXiv:1711.09020), section 3 and appendix 7.2.

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
from attrs import validators as v
from ganforge import ConfigError, DataSpec, hookimpl
from torch import Tensor, nn


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
def ganforge_register_discriminators(register):
    register("stargan", StarGANDiscriminator, StarGANDiscriminatorConfig)
