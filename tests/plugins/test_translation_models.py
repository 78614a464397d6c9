"""The translation generators (U-Net, ResNet) and StarGAN's discriminator: shapes at several
power-of-two sizes, the U-Net's skip connections, dropout as the noise source, conditioning."""

from __future__ import annotations

import pytest
import torch
from ganforge import ConfigError, DataSpec, Generator, Translator, get_plugin_manager
from ganforge_plugins.layers.activation import relu_choice
from ganforge_plugins.layers.normalization import batch_norm_choice, no_layer
from ganforge_plugins.models.resnet_generator import ResidualBlock, ResNetGenerator, ResNetGeneratorConfig
from ganforge_plugins.models.stargan import StarGANDiscriminator, StarGANDiscriminatorConfig
from ganforge_plugins.models.unet import UNetConfig, UNetGenerator
from torch import nn

pytestmark = pytest.mark.usefixtures("one_thread")


def blocks(n: int, side: int, gen: torch.Generator) -> torch.Tensor:
    """``[n, 1, side, side]`` white rectangles at random places on black, in [-1, 1]."""
    x = -torch.ones(n, 1, side, side)
    for i in range(n):
        r, c = torch.randint(0, side - 4, (2,), generator=gen).tolist()
        h, w = torch.randint(2, 5, (2,), generator=gen).tolist()
        x[i, 0, r:r + h, c:c + w] = 1.0
    return x


def test_the_generators_are_registered_and_are_translators() -> None:
    manager = get_plugin_manager()
    for name in ("unet", "resnet-generator"):
        component = manager.get("generator", name)
        g = component.factory(component.config(base_channels=4), data=DataSpec(shape=(3, 16, 16)))
        assert isinstance(g, Generator) and isinstance(g, Translator)
        assert g.latent_spaces[0].name == "x" and g.latent_spaces[0].shape == (3, 16, 16)
    assert manager.get("discriminator", "stargan").factory is StarGANDiscriminator
    # the check can fail: a prior-sampling generator and a plain function are not translators
    dcgan = manager.get("generator", "dcgan")
    assert not isinstance(dcgan.factory(dcgan.config(base_channels=4), data=DataSpec(shape=(1, 16, 16))), Translator)
    assert not isinstance(lambda x, target=None: x, Translator)


@pytest.mark.parametrize("side", [4, 8, 16, 32, 64])
@pytest.mark.parametrize(("cin", "cout"), [(1, 1), (1, 3), (3, 3)])
def test_unet_shapes_at_every_power_of_two(side: int, cin: int, cout: int) -> None:
    g = UNetGenerator(UNetConfig(base_channels=4, in_channels=cin), DataSpec(shape=(cout, side, side)))
    assert g.depth == side.bit_length() - 1  # down to a 1x1 bottleneck by default
    y = g(torch.rand(2, cin, side, side) * 2 - 1)
    assert y.shape == (2, cout, side, side) and y.abs().max() <= 1.0


def test_unet_depth_and_size_errors() -> None:
    with pytest.raises(ConfigError, match="power-of-two"):
        UNetGenerator(UNetConfig(), DataSpec(shape=(1, 24, 24)))
    with pytest.raises(ConfigError, match=r"generator.depth: 5 .* at least 32x32, got 16x16"):
        UNetGenerator(UNetConfig(depth=5), DataSpec(shape=(1, 16, 16)))
    with pytest.raises(ValueError, match="depth"):
        UNetConfig(depth=1)
    g = UNetGenerator(UNetConfig(base_channels=4, depth=3), DataSpec(shape=(1, 32, 32)))
    probe = {}

    def record(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        probe["shape"] = output.shape

    g.bottleneck.register_forward_hook(record)
    g(torch.zeros(1, 1, 32, 32))
    assert probe["shape"] == (1, 16, 4, 4)  # 3 halvings, channels 4 -> 8 -> 16
    with pytest.raises(ValueError, match=r"expected images \[N, 1, 32, 32\]"):
        g(torch.zeros(1, 3, 32, 32))


def test_unet_skips_carry_the_input_to_the_output_when_the_bottleneck_is_zeroed() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(UNetConfig(base_channels=8, dropout=0.0), DataSpec(shape=(1, 16, 16)))
    g.bottleneck.register_forward_hook(lambda m, i, o: torch.zeros_like(o))  # nothing passes the bottleneck
    # untrained: the output still follows the input, through the skips alone
    x = blocks(2, 16, torch.Generator().manual_seed(3)).requires_grad_(True)
    g.eval()  # batch norm on running statistics: no coupling between the samples of a batch
    y = g(x)
    g.train()
    (grad,) = torch.autograd.grad(y[0].sum(), x)
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0  # each output depends on its own input only
    # trained to copy its input, it reproduces unseen patterns far better than any constant image
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(g.parameters(), 2e-3)
    for _ in range(300):
        x = blocks(16, 16, gen)
        loss = (g(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g.eval()
    test = blocks(64, 16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        error = (g(test) - test).abs().mean() / 2  # L1 for images in [0, 1]
    best_constant = (test.median(0, keepdim=True).values - test).abs().mean() / 2  # per-pixel median
    assert error < 0.4 * best_constant, (float(error), float(best_constant))


def test_unet_dropout_is_the_noise_source_in_training_only() -> None:
    g = UNetGenerator(UNetConfig(base_channels=4), DataSpec(shape=(1, 32, 32)))
    drops = [m for m in g.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 3 and all(m.p == 0.5 for m in drops)  # pix2pix: 3 decoder layers below the bottleneck
    assert all(any(m is d for m in g.up.modules()) for d in drops)  # in the decoder only
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    torch.manual_seed(0)
    a = g(x)
    b = g(x)
    assert (a - b).abs().max() > 1e-4
    g.eval()
    assert torch.equal(g(x), g(x))
    no_dropout = UNetGenerator(UNetConfig(dropout=0.0), DataSpec(shape=(1, 8, 8)))
    assert not any(isinstance(m, nn.Dropout) for m in no_dropout.modules())


@pytest.mark.parametrize("side", [8, 16, 32, 64])
@pytest.mark.parametrize("n_blocks", [6, 9])
def test_resnet_generator_shapes(side: int, n_blocks: int) -> None:
    g = ResNetGenerator(ResNetGeneratorConfig(base_channels=4, n_blocks=n_blocks, in_channels=1),
                        DataSpec(shape=(3, side, side)))
    assert sum(isinstance(m, ResidualBlock) for m in g.modules()) == n_blocks
    y = g(torch.rand(2, 1, side, side) * 2 - 1)
    assert y.shape == (2, 3, side, side) and y.abs().max() <= 1.0


def test_resnet_generator_uses_reflection_padding_and_instance_norm() -> None:
    g = ResNetGenerator(ResNetGeneratorConfig(base_channels=4, n_blocks=6), DataSpec(shape=(3, 32, 32)))
    pads = [m for m in g.modules() if isinstance(m, nn.ReflectionPad2d)]
    assert len(pads) == 2 + 2 * 6  # around the 7x7 convolutions and in every block
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 1 + 2 + 2 * 6 + 2 and not any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert not any(isinstance(m, nn.Conv2d) and m.padding != (0, 0) and m.stride == (1, 1) for m in g.modules())
    # instance norm: each image is normalised alone, so a batch neighbour cannot change an output
    x = torch.rand(2, 3, 32, 32)
    y1 = g(x)
    x2 = x.clone()
    x2[1] = torch.rand(3, 32, 32)
    assert torch.allclose(g(x2)[0], y1[0], atol=1e-6)


def test_resnet_generator_residual_block_is_identity_when_its_body_is_zero() -> None:
    block = ResidualBlock(4, no_layer(), relu_choice())
    for m in block.body:
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), x)


def test_resnet_generator_size_errors() -> None:
    with pytest.raises(ConfigError, match=r"n_downsampling: 2 .* at least 8x8"):
        ResNetGenerator(ResNetGeneratorConfig(), DataSpec(shape=(1, 4, 4)))
    with pytest.raises(ConfigError, match="needs labelled data"):
        ResNetGenerator(ResNetGeneratorConfig(conditional=True), DataSpec(shape=(1, 16, 16)))


def test_conditional_resnet_generator_follows_its_target_domain() -> None:
    spec = DataSpec(shape=(1, 16, 16), num_classes=4, class_names=("a", "b", "c", "d"))
    g = ResNetGenerator(ResNetGeneratorConfig(base_channels=4, n_blocks=2, conditional=True), spec)
    assert g.num_classes == 4
    assert g.stem[1].in_channels == 1 + 4  # x and the one-hot target planes
    x = torch.rand(3, 1, 16, 16)
    a, b = g(x, torch.tensor([0, 1, 2])), g(x, torch.tensor([1, 1, 2]))
    assert (a[0] - b[0]).abs().max() > 1e-5 and torch.allclose(a[1:], b[1:])
    with pytest.raises(ValueError, match="needs target domains"):
        g(x)


def test_stargan_discriminator_heads() -> None:
    spec = DataSpec(shape=(1, 32, 32), num_classes=4, class_names=("a", "b", "c", "d"))
    d = StarGANDiscriminator(StarGANDiscriminatorConfig(base_channels=4), spec)
    x = torch.randn(5, 1, 32, 32)
    src, cls = d.classify(x)
    assert src.shape == (5, 1, 2, 2) and cls.shape == (5, 4)  # 4 halvings to 2x2 at 32x32
    assert torch.equal(d(x), src)
    bare = StarGANDiscriminator(StarGANDiscriminatorConfig(base_channels=4), DataSpec(shape=(1, 32, 32)))
    with pytest.raises(ConfigError, match="no domain classifier"):
        bare.classify(x)


def test_the_paper_stargan_generator_has_the_authors_parameter_count() -> None:
    from ganforge_plugins.models.stargan import StarGANGenerator, StarGANGeneratorConfig

    # Choi et al. 2018, appendix 7.2: 128x128 CelebA with 5 attributes; the authors' model.py gives 8,430,528
    g = StarGANGenerator(StarGANGeneratorConfig(), DataSpec(shape=(3, 128, 128), num_classes=5))
    assert sum(p.numel() for p in g.parameters()) == 8_430_528
    assert not any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.bias is not None for m in g.modules())
    assert all(m.affine for m in g.modules() if isinstance(m, nn.InstanceNorm2d))


def test_the_paper_stargan_generator_takes_indices_or_multi_hot_domain_vectors() -> None:
    from ganforge_plugins.models.stargan import StarGANGenerator, StarGANGeneratorConfig

    torch.manual_seed(0)
    g = StarGANGenerator(StarGANGeneratorConfig(base_channels=4, n_blocks=1),
                         DataSpec(shape=(1, 8, 8), num_classes=3)).eval()
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    by_index = g(x, torch.tensor([0, 2]))
    by_vector = g(x, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert torch.equal(by_index, by_vector)
    multi = g(x, torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))  # two attributes at once
    assert multi.shape == (2, 1, 8, 8) and not torch.allclose(multi, by_index)
    with pytest.raises(ValueError, match="needs a target domain per image"):
        g(x)


# -- the reference configurations, counted on pytorch-CycleGAN-and-pix2pix's networks -------------------

def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_resnet_generators_match_the_reference_counts() -> None:
    rgb = DataSpec(shape=(3, 256, 256))
    assert count(ResNetGenerator(ResNetGeneratorConfig(), rgb)) == 11_378_179  # resnet_9blocks, instance norm
    assert count(ResNetGenerator(ResNetGeneratorConfig(n_blocks=6), DataSpec(shape=(3, 128, 128)))) == 7_837_699
    # batch norm: no bias before it, as the reference
    assert count(ResNetGenerator(ResNetGeneratorConfig(norm=batch_norm_choice()), rgb)) == 11_383_427


def test_the_unet_departs_from_the_reference_count_by_its_two_documented_biases() -> None:
    # unet_256 and unet_128 with batch norm count 54,413,955 and 41,828,995 there; here the first and
    # the innermost encoder convolutions keep a bias (64 + 512), as the module docstring says
    assert count(UNetGenerator(UNetConfig(), DataSpec(shape=(3, 256, 256)))) == 54_413_955 + 576
    assert count(UNetGenerator(UNetConfig(), DataSpec(shape=(3, 128, 128)))) == 41_828_995 + 576


@pytest.mark.parametrize(("side", "layers", "expected"),
                         [(256, None, [4, 5, 6]), (128, 2, [4, 5]), (128, None, [3, 4, 5])])
def test_unet_dropout_sits_where_the_docstring_says(side: int, layers: int | None, expected: list[int]) -> None:
    # the reference's dropout blocks read the 1024 channels of a 512-wide skip and produce 512: at 256x256
    # the three decoder layers below the bottleneck, at 128x128 two; ganforge keeps three unless told
    config = UNetConfig() if layers is None else UNetConfig(dropout_layers=layers)
    g = UNetGenerator(config, DataSpec(shape=(3, side, side)))
    dropped = [i for i, up in enumerate(g.up) if any(isinstance(m, nn.Dropout) for m in up.modules())]
    assert dropped == expected
    if side == 256 or layers == 2:  # the reference's layers
        assert all(g.up[i][1].in_channels == 1024 and g.up[i][1].out_channels == 512 for i in dropped)
