"""DCGAN (Radford et al. 2016) at the paper's configuration and at small ones."""

from __future__ import annotations

import attrs
import pytest
import torch
from ganforge import ConfigError, DataSpec, load_config
from ganforge_plugins.models.dcgan import (
    DCGANDiscriminator,
    DCGANDiscriminatorConfig,
    DCGANGenerator,
    DCGANGeneratorConfig,
    widths,
)
from torch import nn


def test_paper_generator_at_64x64() -> None:
    # Figure 1: 100-d z -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3
    g = DCGANGenerator(DCGANGeneratorConfig(), DataSpec(shape=(3, 64, 64)))
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    channels = [(c.in_channels, c.out_channels) for c in convs]
    assert channels == [(100, 1024), (1024, 512), (512, 256), (256, 128), (128, 3)]
    shapes = []
    x = torch.randn(2, 100)[:, :, None, None]
    for m in g.net:
        x = m(x)
        if isinstance(m, nn.ConvTranspose2d):
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (3, 64, 64)]
    # no batch norm on the output layer, Tanh at the end
    assert isinstance(g.net[-1], nn.Tanh) and isinstance(g.net[-2], nn.ConvTranspose2d)


def test_paper_discriminator_mirrors_the_generator() -> None:
    d = DCGANDiscriminator(DCGANDiscriminatorConfig(), DataSpec(shape=(3, 64, 64)))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    channels = [(c.in_channels, c.out_channels) for c in convs]
    assert channels == [(3, 128), (128, 256), (256, 512), (512, 1024), (1024, 1)]
    assert not isinstance(d.net[1], nn.BatchNorm2d)  # no batch norm on the input layer
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert d(torch.randn(3, 3, 64, 64)).shape == (3,)


def test_widths_are_capped_and_scale_with_resolution() -> None:
    assert widths(16, 128, 1024) == [256, 128]
    assert widths(128, 64, 512) == [512, 512, 256, 128, 64]


def test_weights_follow_the_papers_initialisation() -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(DCGANGeneratorConfig(), DataSpec(shape=(3, 64, 64)))
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3


@pytest.mark.parametrize("shape", [(2,), (1, 12, 12), (1, 4, 4), (1, 16, 8)])
def test_unsupported_data_is_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="dcgan needs"):
        DCGANGenerator(DCGANGeneratorConfig(), DataSpec(shape=shape))


@pytest.mark.parametrize("norm", ["layer-norm", "none"])
def test_critic_without_batch_norm_scores_each_sample_on_its_own(norm: str) -> None:
    torch.manual_seed(0)
    config = load_config(None, ["discriminator.name=dcgan", f"discriminator.norm={norm}"]).discriminator.params
    d = DCGANDiscriminator(attrs.evolve(config, base_channels=8), DataSpec(shape=(1, 16, 16))).train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    x = torch.randn(6, 1, 16, 16)
    alone = torch.cat([d(x[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(d(x), alone)  # a gradient penalty per sample stays per sample
    # with batch norm in training mode a sample's score depends on the rest of its batch
    bn = DCGANDiscriminator(DCGANDiscriminatorConfig(base_channels=8), DataSpec(shape=(1, 16, 16))).train()
    assert not torch.allclose(bn(x)[:3], bn(x[:3]))


def test_unknown_critic_norm_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"discriminator\.norm\.name: unknown layer 'layer'; choose one of: .*"
                                          r"layer-norm"):
        load_config(None, ["discriminator.name=dcgan", "discriminator.norm=layer"])
