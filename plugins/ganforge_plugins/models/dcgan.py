"""DCGAN: Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks" (arXiv:1511.06434).

The paper's architecture guidelines (section 3): no pooling, only strided (transposed)
convolutions; batch norm in both networks except the generator's output and the discriminator's
input layer; ReLU in the generator with Tanh at the output; LeakyReLU (slope 0.2) in the
discriminator; weights from N(0, 0.02). Its 64x64 generator projects z to 4x4x1024 and halves the
channels while doubling the resolution (1024, 512, 256, 128): here ``base_channels`` (128) is the
width next to the image and ``max_channels`` (1024) caps the width at 4x4, for any power-of-two
resolution from 8 up. The discriminator mirrors the generator.

Both take their normalisation by registered layer name (``norm``: the paper's ``batch-norm`` by
default; ``pixel-norm`` gives PGGAN's generator normalisation, ``layer-norm`` the critic WGAN-GP
recommends), their ``activation`` (``relu`` in the generator, ``leaky-relu`` with slope 0.2 in the
discriminator) and the discriminator an optional ``head`` before its last convolution
(``minibatch-stddev``, PGGAN's). A convolution followed by a normalisation has no bias.
"""

from __future__ import annotations

from itertools import pairwise

import attrs
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, LayerChoice, hookimpl
from torch import Tensor, nn

from ganforge_plugins.layers.activation import leaky_relu_choice, relu_choice
from ganforge_plugins.layers.normalization import batch_norm_choice, no_layer


@attrs.frozen(kw_only=True)
class DCGANGeneratorConfig:
    latent_dim: int = attrs.field(default=100, validator=v.ge(1))  # z in R^100 (section 4)
    base_channels: int = attrs.field(default=128, validator=v.ge(1))  # width at the last hidden layer
    max_channels: int = attrs.field(default=1024, validator=v.ge(1))  # width at 4x4
    norm: LayerChoice = attrs.field(factory=batch_norm_choice)  # after every hidden transposed conv
    activation: LayerChoice = attrs.field(factory=relu_choice)  # after every hidden layer (Tanh at the output)


@attrs.frozen(kw_only=True)
class DCGANDiscriminatorConfig:
    base_channels: int = attrs.field(default=128, validator=v.ge(1))  # width after the first conv
    max_channels: int = attrs.field(default=1024, validator=v.ge(1))  # width at 4x4
    activation: LayerChoice = attrs.field(factory=leaky_relu_choice)  # slope 0.2 (section 3)
    # batch norm is the paper's. A gradient penalty is per sample, which batch norm breaks: WGAN-GP
    # (Gulrajani et al. 2017, section 4) drops it from the critic and recommends layer norm instead.
    norm: LayerChoice = attrs.field(factory=batch_norm_choice)
    head: LayerChoice = attrs.field(factory=no_layer)  # before the last conv, e.g. minibatch-stddev


def widths(resolution: int, base: int, cap: int) -> list[int]:
    """Channel widths of the hidden feature maps at 4x4, 8x8, ..., resolution/2."""
    sizes = [4 << i for i in range((resolution // 8).bit_length())]  # 4 .. resolution/2
    return [min(cap, base * resolution // (2 * s)) for s in sizes]


def _check_image(data: DataSpec, who: str) -> None:
    if not data.is_image or data.shape[1] != data.shape[2]:
        raise ConfigError(f"{who}: dcgan needs square images, but the dataset yields samples of shape {data.shape}")
    r = data.resolution
    if r < 8 or r & (r - 1):
        raise ConfigError(f"{who}: dcgan needs a power-of-two resolution >= 8, got {r}")


def dcgan_init(module: nn.Module) -> None:
    """Weights from N(0, 0.02); batch-norm scales from N(1, 0.02) (Radford et al. 2016, section 4)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """DCGAN generator: z -> 4x4 -> fractionally-strided convs -> Tanh (Radford et al. 2016, fig. 1)."""

    def __init__(self, config: DCGANGeneratorConfig, data: DataSpec) -> None:
        super().__init__()
        _check_image(data, "generator")
        self.latent_spaces = (LatentSpace(name="z", shape=(config.latent_dim,)),)
        self.num_classes = None
        ch = widths(data.resolution, config.base_channels, config.max_channels)
        bias = config.norm.name == "none"
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.latent_dim, ch[0], 4, 1, 0, bias=bias),  # [N, ch0, 4, 4]
            config.norm.build(channels=ch[0]),
            config.activation.build(channels=ch[0]),
        ]
        for c_in, c_out in pairwise(ch):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias), config.norm.build(channels=c_out),
                       config.activation.build(channels=c_out)]
        layers += [nn.ConvTranspose2d(ch[-1], data.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z[:, :, None, None])  # [N, Z] -> [N, Z, 1, 1] -> [N, C, H, W]


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: strided convs with LeakyReLU and batch norm (or ``norm``) -> one logit per image."""

    def __init__(self, config: DCGANDiscriminatorConfig, data: DataSpec) -> None:
        super().__init__()
        _check_image(data, "discriminator")
        self.num_classes = None
        ch = widths(data.resolution, config.base_channels, config.max_channels)[::-1]  # r/2 .. 4
        act = config.activation
        layers: list[nn.Module] = [nn.Conv2d(data.channels, ch[0], 4, 2, 1), act.build(channels=ch[0])]
        for c_in, c_out in pairwise(ch):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=config.norm.name == "none"),
                       config.norm.build(channels=c_out), act.build(channels=c_out)]
        extra = 0
        if config.head.name != "none":  # only then a module of its own: the default keeps its weight names
            head = config.head.build(channels=ch[-1])
            extra = int(getattr(head, "extra_channels", 0))
            layers.append(head)
        layers += [nn.Conv2d(ch[-1] + extra, 1, 4, 1, 0)]  # [N, 1, 1, 1]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        return self.net(x).flatten()  # [N]


@hookimpl
def ganforge_register_generators(register):
    register("dcgan", DCGANGenerator, DCGANGeneratorConfig)


@hookimpl
def ganforge_register_discriminators(register):
    register("dcgan", DCGANDiscriminator, DCGANDiscriminatorConfig)
