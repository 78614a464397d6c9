"""PatchGAN (Isola et al. 2017): receptive field from the layer arithmetic, the patch map, and
image-conditional use."""

from __future__ import annotations

import pytest
import torch
from ganforge import ConfigError, DataSpec, load_config
from ganforge_plugins.layers.normalization import batch_norm_choice, instance_norm_choice, no_layer
from ganforge_plugins.models.patchgan import PatchGANConfig, PatchGANDiscriminator, receptive_field
from torch import nn


def field_by_probing(d: PatchGANDiscriminator, size: int) -> int:
    """The receptive field measured: the input pixels that move the centre prediction."""
    d.eval()
    x = torch.randn(1, 3, size, size, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad.abs().sum(dim=(0, 1, 3)) > 0).nonzero()
    return int(rows.max() - rows.min() + 1)


def test_default_is_the_70x70_patchgan() -> None:
    d = PatchGANDiscriminator(PatchGANConfig(), DataSpec(shape=(3, 256, 256)))
    convs = [(m.kernel_size[0], m.stride[0]) for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]  # C64-C128-C256-C512 + 1-channel conv
    assert [m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)] == [64, 128, 256, 512, 1]
    assert receptive_field(convs) == 70 and d.receptive_field == 70
    assert d(torch.randn(2, 3, 256, 256)).shape == (2, 1, 32, 32)


@pytest.mark.parametrize(("n_layers", "field"), [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_receptive_field_grows_with_n_layers_as_measured(n_layers: int, field: int) -> None:
    torch.manual_seed(0)
    d = PatchGANDiscriminator(PatchGANConfig(n_layers=n_layers, base_channels=4, norm=no_layer()),
                              DataSpec(shape=(3, 256, 256)))
    assert d.receptive_field == field
    assert field_by_probing(d, 256) == field


def test_patch_map_at_small_sizes_and_image_conditional_use() -> None:
    d = PatchGANDiscriminator(PatchGANConfig(base_channels=8), DataSpec(shape=(1, 16, 16)))
    assert d(torch.randn(4, 1, 16, 16)).shape == (4, 1, 2, 2)
    cond = PatchGANDiscriminator(PatchGANConfig(base_channels=8, condition_channels=3), DataSpec(shape=(3, 32, 32)))
    assert cond.net[0].in_channels == 6
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(cond(b, condition=a), cond.net(torch.cat([a, b], 1)))  # scores concat(A, B)
    with pytest.raises(ConfigError, match="needs a condition image of that many channels, got none"):
        cond(b)
    with pytest.raises(ConfigError, match=r"set discriminator\.condition_channels"):
        d(torch.randn(4, 1, 16, 16), condition=torch.randn(4, 1, 16, 16))


def test_too_small_images_and_bad_config_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"discriminator\.n_layers: 5 stride-2 layers need images of at least 32x32"):
        PatchGANDiscriminator(PatchGANConfig(n_layers=5), DataSpec(shape=(1, 16, 16)))
    with pytest.raises(ConfigError, match=r"discriminator\.norm\.name: unknown layer 'layer'.*'layer-norm'"):
        load_config(None, ["discriminator.name=patchgan", "discriminator.norm=layer"])


# Counted on pytorch-CycleGAN-and-pix2pix's NLayerDiscriminator (n_layers = 3, ndf = 64): batch norm
# without biases before it; instance norm without affine parameters, biases kept.
REFERENCE = {("batch", 3): 2_765_633, ("batch", 6): 2_768_705, ("instance", 3): 2_764_737, ("instance", 6): 2_767_809}


@pytest.mark.parametrize(("norm", "channels"), list(REFERENCE))
def test_parameter_counts_equal_the_reference_implementations(norm: str, channels: int) -> None:
    choice = batch_norm_choice() if norm == "batch" else instance_norm_choice()
    d = PatchGANDiscriminator(PatchGANConfig(norm=choice), DataSpec(shape=(channels, 256, 256)))
    assert sum(p.numel() for p in d.parameters()) == REFERENCE[norm, channels]


def test_the_cyclegan_recipe_uses_the_references_instance_norm() -> None:
    run = load_config(None, ["procedure.name=cyclegan"])
    assert run.discriminator.params.norm.name == "instance-norm"
    assert run.discriminator.params.norm.params.affine is False
