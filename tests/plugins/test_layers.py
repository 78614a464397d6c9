"""Contract tests over every registered layer (shape, gradients, second-order gradients for the ones a
discriminator uses, equality with the formula in its docstring, config round trip), networks that
take their blocks by name from a config alone, and every network's default forward unchanged for the
same weights (against outputs saved by the code before layers became plugins)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from ganforge import Trainer, get_plugin_manager, load_config, make_converter
from ganforge.registry import Component
from torch import Tensor, nn

from tests.conftest import TINY

MANAGER = get_plugin_manager()
LAYERS = list(MANAGER.registries["layer"])
CONTEXT = {"channels": 4, "w_dim": 6, "resolution": 8, "out_channels": 4, "kernel_size": 3}
STYLED = {"adain"}  # called as layer(x, w)
NOT_IN_A_DISCRIMINATOR = {"adain", "noise-injection"}  # generator-side blocks: no double backward needed

pytestmark = pytest.mark.usefixtures("one_thread")


def build(component: Component) -> nn.Module:
    module: nn.Module = component.factory(component.config(), **CONTEXT)
    return module.double()


def call(name: str, layer: nn.Module, x: Tensor, w: Tensor) -> Tensor:
    styled = name in STYLED or hasattr(layer, "styles") or getattr(layer, "replaces_conv", False)
    out: Tensor = layer(x, w) if styled else layer(x)
    return out


def inputs() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, 8, 8, generator=g, dtype=torch.float64)
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    return x.requires_grad_(True), w


def test_the_design_cards_layers_are_registered() -> None:
    names = {c.name for c in LAYERS}
    assert {"pixel-norm", "minibatch-stddev", "adain", "noise-injection", "equalized-lr", "batch-norm",
            "instance-norm", "layer-norm", "none", "relu", "leaky-relu", "silu", "elu"} <= names
    for component in LAYERS:  # a docstring with the formula or the paper, listed by `ganforge plugins`
        assert component.summary, component.name


@pytest.mark.parametrize("component", LAYERS, ids=[c.name for c in LAYERS])
def test_layer_contract(component: Component) -> None:
    layer = build(component).train()
    x, w = inputs()
    out = call(component.name, layer, x, w)
    extra = int(getattr(layer, "extra_channels", 0))
    assert out.shape == (4, 4 + extra, 8, 8) and out.dtype == torch.float64 and torch.isfinite(out).all()
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in layer.parameters():
        assert p.grad is not None, f"{component.name}: a parameter gets no gradient"
    # the config round-trips through the one converter
    conv = make_converter(MANAGER)
    config = component.config()
    assert conv.structure(conv.unstructure(config), component.config) == config


@pytest.mark.parametrize("component", [c for c in LAYERS if c.name not in NOT_IN_A_DISCRIMINATOR],
                         ids=[c.name for c in LAYERS if c.name not in NOT_IN_A_DISCRIMINATOR])
def test_discriminator_layers_have_exact_first_and_second_order_gradients(component: Component) -> None:
    layer = build(component).train()
    x = torch.randn(4, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    params = tuple(p for p in layer.parameters())

    def f(x: Tensor, *ps: Tensor) -> Tensor:
        return torch.func.functional_call(layer, dict(zip([n for n, _ in layer.named_parameters()], ps,
                                                          strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))
    assert torch.autograd.gradgradcheck(f, (x, *params))


def formula(name: str, layer: nn.Module, x: Tensor, w: Tensor) -> Tensor | None:
    """Each layer's docstring formula, written out independently of its implementation."""
    if name == "pixel-norm":
        return x / (x.square().mean(dim=1, keepdim=True) + layer.eps).sqrt()
    if name == "minibatch-stddev":
        n, _, h, wd = x.shape
        g = 4
        s = []
        for i in range(n // g):  # samples i, i + N/G, ... form a group
            group = x[i::n // g]
            s.append(((group.var(dim=0, unbiased=False) + 1e-8).sqrt() - math.sqrt(1e-8)).mean())
        std = torch.stack(s).repeat(g)[:, None, None, None].expand(n, 1, h, wd)
        return torch.cat([x, std], dim=1)
    if name == "adain":
        ys, yb = layer.styles(w)
        mu, sigma = x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), keepdim=True, unbiased=False)
        return ys[:, :, None, None] * (x - mu) / (sigma + 1e-8).sqrt() + yb[:, :, None, None]
    if name == "batch-norm":
        mu, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
        return (x - mu) / (var + 1e-5).sqrt()  # gamma = 1, beta = 0 at initialisation
    if name == "instance-norm":
        mu, var = x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), keepdim=True, unbiased=False)
        return (x - mu) / (var + 1e-5).sqrt()
    if name == "layer-norm":
        mu, var = x.mean(dim=(1, 2, 3), keepdim=True), x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return (x - mu) / (var + 1e-5).sqrt()
    if name == "none":
        return x
    if name == "relu":
        return torch.where(x > 0, x, torch.zeros_like(x))
    if name == "leaky-relu":
        return torch.where(x >= 0, x, 0.2 * x)
    if name == "silu":
        return x / (1 + torch.exp(-x))
    if name == "elu":
        return torch.where(x > 0, x, torch.exp(x) - 1)
    if name == "equalized-lr":
        weight = layer.weight * (math.sqrt(2) / math.sqrt(4 * 9))
        return torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(x, weight, layer.bias, padding=1), 0.2)
    if name == "noise-injection":
        with torch.no_grad():
            layer.strength.fill_(0.5)
        torch.manual_seed(7)
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], dtype=x.dtype)
        torch.manual_seed(7)
        return x + 0.5 * noise
    return None


@pytest.mark.parametrize("component", LAYERS, ids=[c.name for c in LAYERS])
def test_layer_equals_the_formula_in_its_docstring(component: Component) -> None:
    layer = build(component).train()
    x, w = inputs()
    x = x.detach()
    expected = formula(component.name, layer, x, w)
    if expected is None:
        pytest.skip(f"{component.name}: a third-party layer; its own tests check its formula")
    got = call(component.name, layer, x, w)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_the_formula_check_can_fail() -> None:
    component = MANAGER.get("layer", "pixel-norm")
    layer = build(component)
    x, w = inputs()
    assert not torch.allclose(call("pixel-norm", layer, x.detach(), w), formula("layer-norm", layer, x.detach(), w))


# -- networks that take their blocks by name -----------------------------------------------------


def test_a_dcgan_critic_with_minibatch_stddev_and_a_pixel_norm_generator_train_from_a_config(tmp_path: Path) -> None:
    config = tmp_path / "blocks.toml"
    config.write_text('[generator]\nname = "dcgan"\nnorm = "pixel-norm"\n\n'
                      '[discriminator]\nname = "dcgan"\nhead = {name = "minibatch-stddev", group_size = 4}\n'
                      'norm = "layer-norm"\n')
    run = load_config(config, [*TINY, "train.steps=4"], MANAGER)
    assert run.generator.params.norm.name == "pixel-norm" and run.discriminator.params.head.name == "minibatch-stddev"
    t = Trainer(run, tmp_path / "run", manager=MANAGER)
    kinds = {type(m).__name__ for m in t.network("generator").modules()}
    assert "PixelNorm" in kinds and "BatchNorm2d" not in kinds
    assert any(type(m).__name__ == "MinibatchStdDev" for m in t.network("discriminator").modules())
    before = [p.detach().clone() for p in t.network("discriminator").parameters()]
    t.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, t.network("discriminator").parameters(), strict=True))
    assert load_config(tmp_path / "run" / "config.toml", (), MANAGER) == run  # names and settings round-trip


def test_a_pggan_generator_with_instance_norm_instead_of_pixel_norm_trains(tmp_path: Path) -> None:
    overrides = [*TINY, "train.steps=2", "generator.name=pggan", "discriminator.name=pggan", "generator.latent_dim=16",
                 "generator.channel_base=64", "generator.channel_max=16", "discriminator.channel_base=64",
                 "discriminator.channel_max=16", 'generator.norm = {name = "instance-norm", affine = true}']
    t = Trainer(load_config(None, overrides, MANAGER), tmp_path / "run", manager=MANAGER)
    kinds = [type(m).__name__ for m in t.network("generator").modules()]
    assert "InstanceNorm2d" in kinds and "PixelNorm" not in kinds
    t.fit()
    assert t.step == 2


def test_an_unknown_layer_is_a_config_error_with_the_choices() -> None:
    expected = r"generator\.norm\.name: unknown layer 'pixel-nrom'.*did you mean 'pixel-norm'"
    with pytest.raises(Exception, match=expected):
        load_config(None, ["generator.name=dcgan", "generator.norm=pixel-nrom"], MANAGER)


# -- default forwards unchanged ------------------------------------------------------------------

REFERENCE = Path(__file__).parent / "data" / "reference_forward.safetensors"


def networks() -> dict[str, Any]:
    from ganforge import DataSpec
    from ganforge_plugins.layers.normalization import instance_norm_choice
    from ganforge_plugins.models import cdcgan, dcgan, mlp, patchgan, pggan, resnet_generator, stargan, stylegan, unet

    img, rgb = DataSpec(shape=(1, 16, 16)), DataSpec(shape=(3, 16, 16))
    lab = DataSpec(shape=(1, 16, 16), num_classes=10)
    layer_norm = load_config(None, ["generator.name=dcgan", "discriminator.name=dcgan",
                                    "discriminator.norm=layer-norm"], MANAGER).discriminator.params.norm
    return {
        "dcgan-g": lambda: dcgan.DCGANGenerator(dcgan.DCGANGeneratorConfig(latent_dim=8, base_channels=8), img),
        "dcgan-d": lambda: dcgan.DCGANDiscriminator(dcgan.DCGANDiscriminatorConfig(base_channels=8), img),
        "dcgan-d-layer": lambda: dcgan.DCGANDiscriminator(
            dcgan.DCGANDiscriminatorConfig(base_channels=8, norm=layer_norm), img),
        "cdcgan-g": lambda: cdcgan.CDCGANGenerator(cdcgan.CDCGANGeneratorConfig(latent_dim=8, base_channels=8), lab),
        "cdcgan-d": lambda: cdcgan.CDCGANDiscriminator(cdcgan.CDCGANDiscriminatorConfig(base_channels=8), lab),
        "pggan-g": lambda: pggan.PGGANGenerator(
            pggan.PGGANGeneratorConfig(latent_dim=16, channel_base=64, channel_max=16), img),
        "pggan-d": lambda: pggan.PGGANDiscriminator(pggan.PGGANDiscriminatorConfig(channel_base=64, channel_max=16),
                                                    img),
        "stylegan-g": lambda: stylegan.StyleGANGenerator(stylegan.StyleGANGeneratorConfig(
            latent_dim=16, w_dim=16, mapping_layers=2, channel_base=64, channel_max=16), img),
        "stylegan-d": lambda: stylegan.StyleGANDiscriminator(
            stylegan.StyleGANDiscriminatorConfig(channel_base=64, channel_max=16), img),
        "unet": lambda: unet.UNetGenerator(unet.UNetConfig(base_channels=8), img),
        "resnet-generator": lambda: resnet_generator.ResNetGenerator(
            resnet_generator.ResNetGeneratorConfig(base_channels=8, n_blocks=2), img),
        "patchgan": lambda: patchgan.PatchGANDiscriminator(patchgan.PatchGANConfig(base_channels=8, n_layers=2), img),
        "patchgan-instance": lambda: patchgan.PatchGANDiscriminator(
            patchgan.PatchGANConfig(base_channels=8, n_layers=2, norm=instance_norm_choice(affine=True)), rgb),
        "stargan-d": lambda: stargan.StarGANDiscriminator(stargan.StarGANDiscriminatorConfig(base_channels=8),
                                                          DataSpec(shape=(1, 16, 16), num_classes=4)),
        "mlp-g": lambda: mlp.MLPGenerator(mlp.MLPGeneratorConfig(latent_dim=4, width=16, depth=2),
                                          DataSpec(shape=(2,))),
        "mlp-d": lambda: mlp.MLPDiscriminator(mlp.MLPDiscriminatorConfig(width=16, depth=2), DataSpec(shape=(2,))),
    }


def saved(name: str) -> tuple[dict[str, Tensor], list[Tensor], Tensor]:
    flat = safetensors.torch.load_file(str(REFERENCE))
    weights = {k.split("/weights/", 1)[1]: v for k, v in flat.items() if k.startswith(f"{name}/weights/")}
    inputs = [flat[f"{name}/input{i}"] for i in range(2) if f"{name}/input{i}" in flat]
    return weights, inputs, flat[f"{name}/output"]


# Identical up to float32 rounding: the reduction order of a convolution depends on the thread count and on
# the kernels oneDNN picks for the CPU (CI's differed from ours by up to 4.7e-6 on StyleGAN's outputs, which
# are of order 1); a 1e-3 change of the weights moves the output by more than 1e-4.
UNCHANGED = {"rtol": 1e-5, "atol": 2e-5}


@pytest.mark.parametrize("name", list(networks()))
def test_every_networks_default_forward_is_unchanged_for_the_same_weights(name: str) -> None:
    net = networks()[name]().eval()
    weights, inputs, expected = saved(name)
    net.load_state_dict(weights, strict=True)  # the same weight names too: old checkpoints still load
    torch.manual_seed(2)  # StyleGAN's random noise, drawn as when the reference was saved
    with torch.no_grad():
        got = net(*inputs)
    torch.testing.assert_close(got, expected, **UNCHANGED)


def test_the_reference_comparison_can_fail() -> None:
    net = networks()["dcgan-g"]().eval()
    weights, inputs, expected = saved("dcgan-g")
    weights = {k: v + 1e-3 if k.endswith("weight") else v for k, v in weights.items()}
    net.load_state_dict(weights)
    with torch.no_grad():
        with pytest.raises(AssertionError, match="not close"):
            torch.testing.assert_close(net(*inputs), expected, **UNCHANGED)

