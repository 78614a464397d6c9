"""Conditional DCGAN: the contract on labelled data, both conditioning modes, and errors for
unlabelled data and bad labels."""

from __future__ import annotations

import attrs
import pytest
import torch
import torch.nn.functional as F
from ganforge import ConfigError, DataSpec, get_plugin_manager
from ganforge_plugins.models.cdcgan import (
    CDCGANDiscriminator,
    CDCGANDiscriminatorConfig,
    CDCGANGenerator,
    CDCGANGeneratorConfig,
)

from tests.plugins import test_contracts as contracts

LABELLED = [attrs.evolve(s, num_classes=10) for s in contracts.SPECS]


@pytest.mark.parametrize("spec", LABELLED, ids=["1x16x16", "3x32x32"])
@pytest.mark.parametrize("conditioning", ["concat", "projection"])
def test_contract_on_labelled_data(spec: DataSpec, conditioning: str) -> None:
    registries = get_plugin_manager().registries
    generator = next(c for c in registries["generator"] if c.name == "cdcgan")
    contracts.test_generator_contract(generator, spec)
    discriminator = next(c for c in registries["discriminator"] if c.name == "cdcgan")
    discriminator = attrs.evolve(discriminator, config=lambda: CDCGANDiscriminatorConfig(conditioning=conditioning))
    contracts.test_discriminator_contract(discriminator, spec)


SPEC = DataSpec(shape=(1, 16, 16), num_classes=10)


def test_generator_output_depends_on_the_label_through_the_embedding_joined_to_z() -> None:
    torch.manual_seed(0)
    g = CDCGANGenerator(CDCGANGeneratorConfig(base_channels=8, latent_dim=6, embedding_dim=4), SPEC).eval()
    assert g.num_classes == 10 and g.net[0].in_channels == 6 + 4
    z = torch.randn(1, 6).expand(10, -1)
    x = g(z, torch.arange(10))
    assert all(not torch.allclose(x[0], x[k]) for k in range(1, 10))
    torch.testing.assert_close(g(z[:3], torch.tensor([7, 7, 7])), x[7:8].expand(3, -1, -1, -1))


def test_concat_discriminator_sees_one_hot_label_maps() -> None:
    torch.manual_seed(0)
    d = CDCGANDiscriminator(CDCGANDiscriminatorConfig(conditioning="concat", base_channels=8), SPEC).eval()
    assert d.features[0].in_channels == 1 + 10
    x, y = torch.randn(3, 1, 16, 16), torch.tensor([0, 4, 9])
    maps = F.one_hot(y, 10).float()[:, :, None, None].expand(-1, -1, 16, 16)
    torch.testing.assert_close(d(x, y), d.head(d.features(torch.cat([x, maps], 1))).flatten())


def test_projection_discriminator_adds_the_inner_product_of_embedding_and_features() -> None:
    torch.manual_seed(0)
    d = CDCGANDiscriminator(CDCGANDiscriminatorConfig(conditioning="projection", base_channels=8), SPEC).eval()
    x, y = torch.randn(3, 1, 16, 16), torch.tensor([1, 2, 3])
    phi = d.features(x)
    expected = d.head(phi).flatten() + (d.embed(y) * phi.sum(dim=(2, 3))).sum(1)
    torch.testing.assert_close(d(x, y), expected)
    assert not torch.allclose(d(x, y), d(x, torch.tensor([5, 6, 7])))


def test_unlabelled_data_missing_and_out_of_range_labels_are_clear_errors() -> None:
    unlabelled = DataSpec(shape=(1, 16, 16))
    with pytest.raises(ConfigError, match=r"generator\.name: 'cdcgan' is class-conditional, .* unlabelled"):
        CDCGANGenerator(CDCGANGeneratorConfig(), unlabelled)
    with pytest.raises(ConfigError, match=r"discriminator.name: 'cdcgan' is class-conditional"):
        CDCGANDiscriminator(CDCGANDiscriminatorConfig(), unlabelled)
    g = CDCGANGenerator(CDCGANGeneratorConfig(base_channels=8), SPEC)
    with pytest.raises(ConfigError, match=r"class index out of range: labels must be in \[0, 9\], got min 0, max 10"):
        g(torch.randn(2, 100), torch.tensor([0, 10]))
    with pytest.raises(ConfigError, match=r"needs labels of shape \[2\]"):
        g(torch.randn(2, 100))
    with pytest.raises(ValueError, match="'conditioning' must be in"):
        CDCGANDiscriminatorConfig(conditioning="film")
