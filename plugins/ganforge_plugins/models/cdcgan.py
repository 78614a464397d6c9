"""Class-conditional DCGAN: DCGAN's networks (Radford et al. 2016, arXiv:1511.06434) conditioned on
a class label as in conditional GANs (Mirza & Osindero 2014, arXiv:1411.1784).

Generator: ``G(z, y) = DCGAN([z, E(y)])``, a learned label embedding ``E`` joined to the latent.
Discriminator, selected by ``conditioning``:

- ``"concat"``: the label joined to the input image as ``num_classes`` one-hot feature maps
  (Mirza & Osindero, section 4.1, for convolutional nets);
- ``"projection"``: the projection discriminator of Miyato & Koyama 2018 (arXiv:1802.05637, eq. 3),
  ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>`` with ``phi(x)`` the last feature map summed over
  positions.

``num_classes`` comes from the dataset; an unlabelled dataset is a ConfigError, as is a label
outside ``[0, num_classes)`` (checked for labels on the CPU, without a GPU sync).
"""

from __future__ import annotations

import itertools

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, hookimpl
from torch import Tensor, nn

from ganforge_plugins.models.dcgan import _check_image, dcgan_init, widths


@attrs.frozen(kw_only=True)
class CDCGANGeneratorConfig:
    latent_dim: int = attrs.field(default=100, validator=v.ge(1))
    embedding_dim: int = attrs.field(default=50, validator=v.ge(1))  # size of E(y), joined to z
    base_channels: int = attrs.field(default=128, validator=v.ge(1))
    max_channels: int = attrs.field(default=1024, validator=v.ge(1))


@attrs.frozen(kw_only=True)
class CDCGANDiscriminatorConfig:
    conditioning: str = attrs.field(default="projection", validator=v.in_(("concat", "projection")))
    base_channels: int = attrs.field(default=128, validator=v.ge(1))
    max_channels: int = attrs.field(default=1024, validator=v.ge(1))
    leaky_slope: float = attrs.field(default=0.2, validator=[v.ge(0.0), v.lt(1.0)])


def require_classes(data: DataSpec, who: str) -> int:
    """The dataset's class count, or a ConfigError when it is unlabelled."""
    if data.num_classes is None or data.num_classes < 1:
        raise ConfigError(
            f"{who}.name: 'cdcgan' is class-conditional, but the dataset (samples of shape {data.shape}) is "
            "unlabelled (num_classes is None); use a labelled dataset (mnist, fashion-mnist, digits, "
            f"image-folder with class sub-folders) or the unconditional 'dcgan' {who}"
        )
    return data.num_classes


def check_labels(labels: Tensor | None, n: int, num_classes: int, who: str) -> Tensor:
    if labels is None:
        raise ConfigError(f"{who}: cdcgan is class-conditional and needs labels of shape [{n}]")
    if labels.shape != (n,) or labels.dtype != torch.long:
        raise ConfigError(f"{who}: expected int64 labels of shape [{n}], got {labels.dtype} {tuple(labels.shape)}")
    if labels.device.type == "cpu" and n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ConfigError(f"{who}: class index out of range: labels must be in [0, {num_classes - 1}], "
                          f"got min {int(labels.min())}, max {int(labels.max())}")
    return labels


def one_hot_maps(labels: Tensor, num_classes: int, size: int, dtype: torch.dtype) -> Tensor:
    """``[N] -> [N, K, size, size]``: channel ``y`` is ones, the rest zeros."""
    return F.one_hot(labels, num_classes).to(dtype)[:, :, None, None].expand(-1, -1, size, size)


class CDCGANGenerator(nn.Module):
    """DCGAN generator on ``[z, E(y)]``."""

    def __init__(self, config: CDCGANGeneratorConfig, data: DataSpec) -> None:
        super().__init__()
        self.num_classes = require_classes(data, "generator")
        _check_image(data, "generator")
        self.latent_spaces = (LatentSpace(name="z", shape=(config.latent_dim,)),)
        self.embed = nn.Embedding(self.num_classes, config.embedding_dim)
        ch = widths(data.resolution, config.base_channels, config.max_channels)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(config.latent_dim + config.embedding_dim, ch[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in itertools.pairwise(ch):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(ch[-1], data.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)  # on the scale of z

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        labels = check_labels(labels, z.shape[0], self.num_classes, "generator")
        h = torch.cat([z, self.embed(labels)], dim=1)  # [N, Z + E]
        return self.net(h[:, :, None, None])


class CDCGANDiscriminator(nn.Module):
    """DCGAN discriminator conditioned by one-hot input maps or a projection head."""

    def __init__(self, config: CDCGANDiscriminatorConfig, data: DataSpec) -> None:
        super().__init__()
        self.num_classes = require_classes(data, "discriminator")
        _check_image(data, "discriminator")
        self.conditioning = config.conditioning
        ch = widths(data.resolution, config.base_channels, config.max_channels)[::-1]  # r/2 .. 4
        slope = config.leaky_slope
        c_in = data.channels + (self.num_classes if self.conditioning == "concat" else 0)
        layers: list[nn.Module] = [nn.Conv2d(c_in, ch[0], 4, 2, 1), nn.LeakyReLU(slope, inplace=True)]
        for a, b in itertools.pairwise(ch):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(slope, inplace=True)]
        self.features = nn.Sequential(*layers)  # [N, ch[-1], 4, 4]
        self.head = nn.Conv2d(ch[-1], 1, 4, 1, 0)  # psi: [N, 1, 1, 1]
        self.apply(dcgan_init)
        if self.conditioning == "projection":
            self.embed = nn.Embedding(self.num_classes, ch[-1])
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        labels = check_labels(labels, x.shape[0], self.num_classes, "discriminator")
        if self.conditioning == "concat":
            x = torch.cat([x, one_hot_maps(labels, self.num_classes, x.shape[-1], x.dtype)], dim=1)
        h = self.features(x)
        out = self.head(h).flatten()  # [N]
        if self.conditioning == "projection":
            out = out + (self.embed(labels) * h.sum(dim=(2, 3))).sum(dim=1)  # <embed(y), phi(x)>
        return out


@hookimpl
def ganforge_register_generators(register):
    register("cdcgan", CDCGANGenerator, CDCGANGeneratorConfig)


@hookimpl
def ganforge_register_discriminators(register):
    register("cdcgan", CDCGANDiscriminator, CDCGANDiscriminatorConfig)
