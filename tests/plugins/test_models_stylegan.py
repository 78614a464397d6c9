"""StyleGAN (Karras et al. 2019): parameter count, AdaIN, truncation, style mixing and the
latent-space interface editors rely on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ganforge import ConfigError, DataSpec, StyleGenerator, load_config
from ganforge_plugins import ops
from ganforge_plugins.layers.adain import AdaIN
from ganforge_plugins.models.pggan import PGGANDiscriminator, PGGANDiscriminatorConfig
from ganforge_plugins.models.stylegan import (
    StyleGANDiscriminator,
    StyleGANDiscriminatorConfig,
    StyleGANGenerator,
    StyleGANGeneratorConfig,
    mix_styles,
    truncate,
)
from torch import nn

FULL = DataSpec(shape=(3, 1024, 1024))


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def small(resolution: int = 64, **kw: object) -> StyleGANGenerator:
    torch.manual_seed(0)
    config = StyleGANGeneratorConfig(latent_dim=16, w_dim=16, channel_base=256, channel_max=16, **kw)  # type: ignore[arg-type]
    return StyleGANGenerator(config, DataSpec(shape=(1, resolution, resolution)))


def test_paper_generator_has_26_2m_parameters_on_the_meta_device() -> None:
    with torch.device("meta"):
        g = StyleGANGenerator(StyleGANGeneratorConfig.paper(), FULL)
        d = StyleGANDiscriminator(StyleGANDiscriminatorConfig.paper(), FULL)
        pg = PGGANDiscriminator(PGGANDiscriminatorConfig.paper(), FULL)
    assert round(count(g) / 1e6, 1) == 26.2 and count(g) == 26_212_019
    assert count(g.mapping_net) == 8 * (512 * 512 + 512)
    assert count(d) == count(pg)  # PGGAN's discriminator; the FIR filter has no parameters
    assert g.num_ws == 18 and g.w_avg.shape == (512,)
    assert g.layer_ranges == {"coarse": range(0, 4), "middle": range(4, 8), "fine": range(8, 18)}
    assert [(s.name, s.shape) for s in g.latent_spaces] == [("z", (512,)), ("w", (512,)), ("w+", (18, 512))]
    assert isinstance(g, StyleGenerator)


def test_mapping_network_uses_lr_multiplier_0_01() -> None:
    g = StyleGANGenerator(StyleGANGeneratorConfig(), DataSpec(shape=(1, 16, 16)))
    layers = list(g.mapping_net.layers)
    assert len(layers) == 8
    for layer in layers:
        assert abs(layer.weight.std().item() - 100.0) < 2.0  # N(0, 1) / lr_mul
        assert layer.weight_gain == pytest.approx(math.sqrt(2) / math.sqrt(512) * 0.01)
        assert layer.bias_gain == 0.01
    z = torch.randn(4, 512)
    assert g.mapping(z).shape == (4, 512)
    # z is normalised first: scaling z does not change w
    torch.testing.assert_close(g.mapping(3 * z), g.mapping(z), rtol=1e-4, atol=1e-5)


def test_adain_layer_output_has_per_channel_mean_y_b_and_std_abs_y_s() -> None:
    g = small()
    layer = g.blocks[2].layer1
    with torch.no_grad():
        layer.style.affine.weight.normal_()  # make the styles far from their initial (1, 0)
        x = torch.randn(3, layer.channels, 16, 16)
        w = torch.randn(3, 16)
        y_s, y_b = layer.style.styles(w)
        y = layer(x, w, "none")
        adain = AdaIN(layer.channels, 16)
        assert adain.affine.bias.tolist() == [1.0] * layer.channels + [0.0] * layer.channels  # y_s = 1, y_b = 0 + A w
        scale, shift = adain.styles(w)
        torch.testing.assert_close(adain(x, w).mean(dim=(2, 3)), shift, atol=1e-4, rtol=0)
        torch.testing.assert_close(adain(x, w).std(dim=(2, 3), unbiased=False), scale.abs(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y.mean(dim=(2, 3)), y_b, atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(dim=(2, 3), unbiased=False), y_s.abs(), atol=1e-4, rtol=1e-4)


def trained_w_avg(g: StyleGANGenerator) -> None:
    g.train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(8, 16))
    g.eval()


def test_w_avg_is_a_running_mean_of_w_updated_only_in_training() -> None:
    g = small(style_mixing_prob=0.0)
    z = torch.randn(8, 16)
    with torch.no_grad():
        g(z)
        torch.testing.assert_close(g.w_avg, (1 - 0.995) * g.mapping(z).mean(0))
        g.eval()
        before = g.w_avg.clone()
        g(z)
    assert torch.equal(g.w_avg, before)


def test_truncation_psi_0_gives_the_average_image_and_psi_1_leaves_w_unchanged() -> None:
    g = small()
    trained_w_avg(g)
    assert g.w_avg.abs().sum() > 0
    z = torch.randn(5, 16)
    with torch.no_grad():
        average = g.synthesis(g.w_avg.expand(5, g.num_ws, -1))
        out = g(z, psi=0.0)
        torch.testing.assert_close(out, average, rtol=0, atol=0)  # G(w_avg) for every z
        # the same image for every sample, up to float32 rounding: a CPU's convolution kernels need not
        # treat the batch's elements alike (an AVX-512 EPYC's differed by 1.4e-5 on outputs of order 1)
        torch.testing.assert_close(out, out[:1].expand_as(out), rtol=1e-5, atol=5e-5)
        w = g.mapping(z)
        assert truncate(w, g.w_avg, 1.0) is w
        torch.testing.assert_close(g.mapping(z, truncation_psi=0.0), g.w_avg.expand(5, -1))
        torch.testing.assert_close(g(z, truncation_psi=0.0), out, rtol=0, atol=0)
        torch.testing.assert_close(g(z, psi=1.0), g.synthesis(w[:, None].expand(-1, g.num_ws, -1)), rtol=0, atol=0)
        half = truncate(w, g.w_avg, 0.5)
        torch.testing.assert_close(half, g.w_avg + 0.5 * (w - g.w_avg))
        ws = truncate(w[:, None].expand(-1, g.num_ws, -1), g.w_avg, 0.0, cutoff=4)
        torch.testing.assert_close(ws[:, :4], g.w_avg.expand(5, 4, -1))
        torch.testing.assert_close(ws[:, 4:], w[:, None].expand(-1, g.num_ws - 4, -1))


def test_truncation_psi_out_of_range_is_a_clear_error() -> None:
    g = small()
    with pytest.raises(ConfigError, match=r"truncation psi must be a number in \[-1.0, 2.0\].*got 3"):
        g(torch.randn(2, 16), psi=3.0)
    with pytest.raises(ConfigError, match="got nan"):
        g.truncate(torch.randn(2, 16), float("nan"))
    with pytest.raises(ValueError, match=r"'truncation_psi' must be in \[-1.0, 2.0\]"):
        StyleGANGeneratorConfig(truncation_psi=-1.5)
    with pytest.raises(ConfigError, match=r"generator.truncation_psi"):
        load_config(None, ["generator.name=stylegan", "generator.truncation_psi=2.5"])


def test_swapping_coarse_styles_changes_the_output_and_swapping_none_is_bit_identical() -> None:
    g = small()
    g.eval()
    with torch.no_grad():
        wa, wb = g.mapping(torch.randn(2, 16)), g.mapping(torch.randn(2, 16))
        ws_a = wa[:, None].repeat(1, g.num_ws, 1)
        ws_b = wb[:, None].repeat(1, g.num_ws, 1)
        base = g.synthesis(ws_a)
        for name, layers in g.layer_ranges.items():
            mixed = ws_a.clone()
            mixed[:, layers] = ws_b[:, layers]
            assert not torch.allclose(g.synthesis(mixed), base), name
        unchanged = ws_a.clone()
        unchanged[:, []] = ws_b[:, []]
        assert torch.equal(g.synthesis(unchanged), base)


def test_style_mixing_takes_the_second_latent_from_a_random_crossover() -> None:
    w1, w2 = torch.zeros(3, 4), torch.ones(3, 4)
    cutoffs = set()
    for seed in range(40):
        torch.manual_seed(seed)
        ws = mix_styles(w1, w2, 6, prob=1.0)
        from_second = ws[0, :, 0] == 1
        k = int((~from_second).sum())
        assert 1 <= k <= 5 and torch.equal(from_second, torch.arange(6) >= k)  # a prefix of w1, the rest w2
        assert torch.equal(ws[:, :, 0], ws[:1, :, 0].expand(3, -1))  # one crossover per batch
        cutoffs.add(k)
    assert cutoffs == {1, 2, 3, 4, 5}
    assert torch.equal(mix_styles(w1, w2, 6, prob=0.0), w1[:, None].expand(-1, 6, -1))
    torch.manual_seed(0)
    mixed = sum(bool((mix_styles(w1, w2, 6, prob=0.9) == 1).any()) for _ in range(400))
    assert 330 < mixed < 390  # about 90% of batches are mixed


def test_noise_modes_and_per_channel_noise_strength() -> None:
    g = small()
    ws = g.mapping(torch.randn(2, 16))[:, None].expand(-1, g.num_ws, -1)
    with torch.no_grad():
        for layer in g.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.5)
        assert not torch.equal(g.synthesis(ws, noise_mode="random"), g.synthesis(ws, noise_mode="random"))
        assert torch.equal(g.synthesis(ws, noise_mode="const"), g.synthesis(ws, noise_mode="const"))
        assert not torch.equal(g.synthesis(ws, noise_mode="const"), g.synthesis(ws, noise_mode="none"))
    g.eval()  # evaluation defaults to the fixed noise
    assert torch.equal(g.synthesis(ws), g.synthesis(ws, noise_mode="const"))
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        g.synthesis(ws, noise_mode="fresh")
    with pytest.raises(ValueError, match=r"expected ws of shape \[N, 10, 16\]"):
        g.synthesis(ws[:, :3])


def test_discriminator_downsamples_with_the_121_filter() -> None:
    config = StyleGANDiscriminatorConfig(channel_base=128, channel_max=16)
    d = StyleGANDiscriminator(config, DataSpec(shape=(1, 16, 16)))
    for block in list(d.blocks)[1:]:
        torch.testing.assert_close(block.resample_filter, ops.setup_filter([1, 2, 1]))
    block = d.blocks[2]
    x = torch.randn(2, 8, 16, 16)
    expected = block.conv1(ops.downsample2d(block.conv0(x), ops.setup_filter([1, 2, 1])))
    torch.testing.assert_close(block(x), expected)
    assert d(torch.randn(4, 1, 16, 16)).shape == (4,)


def test_optional_progressive_growing_fades_like_pggan() -> None:
    g = small(resolution=16, progressive=True)
    g.eval()
    ws = g.mapping(torch.randn(2, 16))[:, None].expand(-1, g.num_ws, -1)
    with torch.no_grad():
        h4 = g.blocks[0](None, ws[:, 0:2], "const")
        old = F.interpolate(torch.tanh(g.to_rgb["4"](h4)), size=(16, 16), mode="nearest")
        new = F.interpolate(torch.tanh(g.to_rgb["8"](g.blocks[1](h4, ws[:, 2:4], "const"))), size=(16, 16))
        g.set_phase(8, alpha=0.0)
        torch.testing.assert_close(g.synthesis(ws), old, rtol=0, atol=0)
        g.set_phase(8, alpha=1.0)
        torch.testing.assert_close(g.synthesis(ws), new, rtol=0, atol=0)


def test_not_a_power_of_two_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="stylegan needs a power-of-two resolution >= 4, got 48"):
        StyleGANGenerator(StyleGANGeneratorConfig(), DataSpec(shape=(3, 48, 48)))
    with pytest.raises(ConfigError, match="stylegan needs a power-of-two resolution >= 4, got 12"):
        StyleGANDiscriminator(StyleGANDiscriminatorConfig(), DataSpec(shape=(3, 12, 12)))
