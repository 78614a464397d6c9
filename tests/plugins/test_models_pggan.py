"""PGGAN (Karras et al. 2018): Table 2 layer by layer, its pieces against their formulas, the
progressive fade-in and its schedule, and an exact resume mid-fade."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ganforge import ConfigError, DataSpec, Trainer, load_checkpoint, load_config
from ganforge_plugins.layers.equalized import EqualizedConv2d
from ganforge_plugins.layers.minibatch_stddev import MinibatchStdDev
from ganforge_plugins.layers.pixel_norm import PixelNorm
from ganforge_plugins.models.pggan import (
    PGGANDiscriminator,
    PGGANDiscriminatorConfig,
    PGGANGenerator,
    PGGANGeneratorConfig,
    growth_phase,
)
from torch import nn

FULL = DataSpec(shape=(3, 1024, 1024))


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def paper_networks() -> tuple[PGGANGenerator, PGGANDiscriminator]:
    with torch.device("meta"):
        return (PGGANGenerator(PGGANGeneratorConfig.paper(), FULL),
                PGGANDiscriminator(PGGANDiscriminatorConfig.paper(), FULL))


def test_table2_parameter_counts_on_the_meta_device() -> None:
    g, d = paper_networks()
    assert round(count(g) / 1e6, 1) == 23.1 and count(g) == 23_071_507
    assert round(count(d) / 1e6, 1) == 23.1 and count(d) == 23_077_137
    assert next(g.parameters()).device.type == "meta"


def record_outputs(net: nn.Module, rows: list[tuple[str, nn.Module]], *inputs: torch.Tensor) -> list[tuple[str, tuple]]:
    seen: list[tuple[str, tuple]] = []
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: seen.append((name, tuple(out.shape[1:]))))
             for name, m in rows]
    net(*inputs)
    for h in hooks:
        h.remove()
    return seen


# PGGAN Table 2, generator for CelebA-HQ: (layer, output shape, parameters)
TABLE2_G = [("Conv 4x4", (512, 4, 4), 4_194_816), ("Conv 3x3", (512, 4, 4), 2_359_808)]
for res, c_in, c_out in [(8, 512, 512), (16, 512, 512), (32, 512, 512), (64, 512, 256), (128, 256, 128),
                         (256, 128, 64), (512, 64, 32), (1024, 32, 16)]:
    TABLE2_G += [("Upsample", (c_in, res, res), 0), ("Conv 3x3", (c_out, res, res), c_in * c_out * 9 + c_out),
                 ("Conv 3x3", (c_out, res, res), c_out * c_out * 9 + c_out)]
TABLE2_G += [("Conv 1x1", (3, 1024, 1024), 16 * 3 + 3)]

TABLE2_D = [("Conv 1x1", (16, 1024, 1024), 3 * 16 + 16)]
for res, c, c_out in [(1024, 16, 32), (512, 32, 64), (256, 64, 128), (128, 128, 256), (64, 256, 512), (32, 512, 512),
                      (16, 512, 512), (8, 512, 512)]:
    TABLE2_D += [("Conv 3x3", (c, res, res), c * c * 9 + c), ("Conv 3x3", (c_out, res, res), c * c_out * 9 + c_out),
                 ("Downsample", (c_out, res // 2, res // 2), 0)]
TABLE2_D += [("Minibatch stddev", (513, 4, 4), 0), ("Conv 3x3", (512, 4, 4), 513 * 512 * 9 + 512),
             ("Conv 4x4", (512, 1, 1), 512 * 512 * 16 + 512), ("Fully-connected", (1,), 513)]


def test_table2_generator_rows_shapes_and_parameters() -> None:
    g, _ = paper_networks()
    first = g.blocks[0]
    rows: list[tuple[str, nn.Module, int]] = [("Conv 4x4", first.norm0, count(first.dense) + first.bias.numel()),
                                                ("Conv 3x3", first.norm1, count(first.conv))]
    for block in g.blocks[1:]:
        rows += [("Upsample", block.upsample, 0), ("Conv 3x3", block.norm0, count(block.conv0)),
                 ("Conv 3x3", block.norm1, count(block.conv1))]
    rows += [("Conv 1x1", g.to_rgb["1024"], count(g.to_rgb["1024"]))]
    with torch.device("meta"):
        shapes = record_outputs(g, [(n, m) for n, m, _ in rows], torch.empty(2, 512))
    assert [(n, s, p) for (n, s), (_, _, p) in zip(shapes, rows, strict=True)] == TABLE2_G
    assert sum(p for _, _, p in TABLE2_G) == count(g)


def test_table2_discriminator_rows_shapes_and_parameters() -> None:
    _, d = paper_networks()
    rows: list[tuple[str, nn.Module, int]] = [("Conv 1x1", d.from_rgb["1024"], count(d.from_rgb["1024"]))]
    for block in list(d.blocks[1:])[::-1]:
        rows += [("Conv 3x3", block.conv0, count(block.conv0)), ("Conv 3x3", block.conv1, count(block.conv1)),
                 ("Downsample", block.downsample, 0)]
    epilogue = d.blocks[0]
    rows += [("Minibatch stddev", epilogue.head, 0), ("Conv 3x3", epilogue.conv, count(epilogue.conv)),
             ("Conv 4x4", epilogue.conv4x4, count(epilogue.conv4x4)),
             ("Fully-connected", epilogue.fc, count(epilogue.fc))]
    with torch.device("meta"):
        shapes = record_outputs(d, [(n, m) for n, m, _ in rows], torch.empty(2, 3, 1024, 1024))
    assert [(n, s, p) for (n, s), (_, _, p) in zip(shapes, rows, strict=True)] == TABLE2_D
    assert sum(p for _, _, p in TABLE2_D) == count(d)


def test_equalized_learning_rate_stores_unit_normal_weights_and_scales_by_he_at_run_time() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(256, 64, 3, act="linear")
    assert abs(conv.weight.std().item() - 1.0) < 0.01 and abs(conv.weight.mean().item()) < 0.01
    assert conv.weight_gain == pytest.approx(math.sqrt(2 / (256 * 9)))
    x = torch.randn(3, 256, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * math.sqrt(2 / (256 * 9)), conv.bias, padding=1))


def test_pixel_norm_layer_gives_unit_mean_square_and_minibatch_stddev_of_identical_images_is_zero() -> None:
    x = torch.randn(4, 16, 3, 3) * 5
    torch.testing.assert_close(PixelNorm()(x).square().mean(1), torch.ones(4, 3, 3), atol=1e-5, rtol=0)
    same = x[:1].expand(8, -1, -1, -1)
    out = MinibatchStdDev(group_size=4)(same)
    assert out.shape == (8, 17, 3, 3) and torch.equal(out[:, 16], torch.zeros(8, 3, 3))
    assert (MinibatchStdDev(group_size=4)(torch.randn(8, 16, 3, 3))[:, 16] > 0.5).all()


def test_growth_schedule() -> None:
    images = (0, 19, 20, 25, 30, 49, 50, 57, 60, 999)
    at = [growth_phase(n, phases=3, fade_images=10, stabilize_images=20) for n in images]
    assert at == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0), (2, 0.0), (2, 0.7), (2, 1.0), (2, 1.0)]
    assert growth_phase(10**9, phases=1, fade_images=10, stabilize_images=20) == (0, 1.0)


SMALL = DataSpec(shape=(1, 16, 16))


def small_growing(**kw: object) -> tuple[PGGANGenerator, PGGANDiscriminator]:
    torch.manual_seed(0)
    common = {"progressive": True, "channel_base": 128, "channel_max": 16, **kw}
    return (PGGANGenerator(PGGANGeneratorConfig(latent_dim=8, **common), SMALL),  # type: ignore[arg-type]
            PGGANDiscriminator(PGGANDiscriminatorConfig(**common), SMALL))  # type: ignore[arg-type]


def test_generator_fade_in_at_alpha_0_is_the_old_output_upsampled_and_at_1_the_new_block() -> None:
    g, _ = small_growing()
    z = torch.randn(5, 8)
    h4 = g.blocks[0](z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8))  # pixel-normalised latent
    old = F.interpolate(torch.tanh(g.to_rgb["4"](h4)), size=(16, 16), mode="nearest")
    new_rgb = g.to_rgb["8"](g.blocks[1](h4))
    new = F.interpolate(torch.tanh(new_rgb), size=(16, 16), mode="nearest")
    g.set_phase(4)
    torch.testing.assert_close(g(z), old, rtol=0, atol=0)  # 4x4 phase: the 4x4 output, upsampled
    g.set_phase(8, alpha=0.0)
    torch.testing.assert_close(g(z), old, rtol=0, atol=0)
    g.set_phase(8, alpha=1.0)
    torch.testing.assert_close(g(z), new, rtol=0, atol=0)
    g.set_phase(8, alpha=0.25)
    up_old = F.interpolate(g.to_rgb["4"](h4), scale_factor=2, mode="nearest")
    mixed = F.interpolate(torch.tanh(up_old + 0.25 * (new_rgb - up_old)), size=(16, 16), mode="nearest")
    torch.testing.assert_close(g(z), mixed)
    assert g(z).shape == (5, 1, 16, 16)


def test_discriminator_mirrors_the_fade() -> None:
    _, d = small_growing()
    x = torch.randn(4, 1, 16, 16)
    x8, x4 = F.avg_pool2d(x, 2), F.avg_pool2d(x, 4)
    old = d.from_rgb["4"](x4)
    new = d.blocks[1](d.from_rgb["8"](x8))
    d.set_phase(8, alpha=0.0)
    torch.testing.assert_close(d(x), d.blocks[0](old))
    d.set_phase(8, alpha=1.0)
    torch.testing.assert_close(d(x), d.blocks[0](new))
    d.set_phase(8, alpha=0.75)
    torch.testing.assert_close(d(x), d.blocks[0](torch.lerp(old, new, 0.75)))
    d.set_phase(16, alpha=1.0)
    torch.testing.assert_close(d(x), d.blocks[0](d.blocks[1](d.blocks[2](d.from_rgb["16"](x)))))


def test_phase_and_alpha_follow_the_schedule_and_live_in_the_state_dict() -> None:
    g, d = small_growing(fade_images=100, stabilize_images=100)
    for net in (g, d):
        assert net.current_phase() == (0, 1.0)  # a fresh network starts at 4x4
        net.set_training_progress(150)
        assert net.current_phase() == (1, 0.5)
        assert net.state_dict()["phase"].item() == 1 and net.state_dict()["alpha"].item() == 0.5
    fresh, _ = small_growing(fade_images=100, stabilize_images=100)
    fresh.load_state_dict(g.state_dict())
    assert fresh.current_phase() == (1, 0.5)
    z = torch.randn(3, 8)
    torch.testing.assert_close(fresh(z), g(z))
    g.set_training_progress(10**7)
    assert g.current_phase() == (2, 1.0)


def test_without_growing_it_is_the_full_network_and_set_training_progress_is_a_no_op() -> None:
    g = PGGANGenerator(PGGANGeneratorConfig(latent_dim=8, channel_base=128, channel_max=16), SMALL)
    assert list(g.to_rgb) == ["16"] and g.phase.item() == 2 and g.alpha.item() == 1.0
    g.set_training_progress(0)
    assert g.current_phase() == (2, 1.0)
    with pytest.raises(ConfigError, match="progressive = false"):
        g.set_phase(8)


@pytest.mark.parametrize("shape", [(1, 24, 24), (3, 48, 48), (1, 16, 8), (1, 2, 2)])
def test_resolution_that_is_not_a_square_power_of_two_is_a_config_error(shape: tuple[int, ...]) -> None:
    for factory, config in ((PGGANGenerator, PGGANGeneratorConfig()), (PGGANDiscriminator, PGGANDiscriminatorConfig())):
        with pytest.raises(ConfigError, match=r"pggan needs (a power-of-two resolution|square images)"):
            factory(config, DataSpec(shape=shape))


def test_bad_growth_settings_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"generator\.start_resolution: 32 is above the data resolution 16"):
        PGGANGenerator(PGGANGeneratorConfig(progressive=True, start_resolution=32), SMALL)
    with pytest.raises(ValueError, match="'start_resolution' must be a power of two"):
        PGGANGeneratorConfig(start_resolution=12)
    g, _ = small_growing()
    with pytest.raises(ConfigError, match="resolution 32 is not a level"):
        g.set_phase(32)
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\]"):
        g.set_phase(8, 1.5)


GROWING_RUN = [
    "data.resolution=8", "generator.name=pggan", "discriminator.name=pggan", "loss.name=non-saturating",
    "train.batch_size=8", "output.progress=false", "output.log_every=1", "output.sample_every=100",
    "output.checkpoint_every=2", "output.preview_samples=4",
    *[f"{net}.{k}" for net in ("generator", "discriminator")
      for k in ("progressive=true", "channel_base=64", "channel_max=8", "fade_images=32", "stabilize_images=8")],
    "generator.latent_dim=8",
]


def test_generator_and_discriminator_must_grow_on_one_schedule(tmp_path: Path) -> None:
    assert Trainer(load_config(None, [*GROWING_RUN, "train.steps=1"]), tmp_path / "same").config  # the same: built
    with pytest.raises(ConfigError, match=r"discriminator\.fade_images: 16, but the generator's is 32"):
        Trainer(load_config(None, [*GROWING_RUN, "discriminator.fade_images=16"]), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"discriminator\.progressive: the generator grows progressively and the "
                                          r"discriminator does not"):
        Trainer(load_config(None, [*GROWING_RUN, "discriminator.progressive=false"]), tmp_path / "b")
    with pytest.raises(ConfigError, match=r"generator\.progressive: the discriminator grows progressively"):
        Trainer(load_config(None, [*GROWING_RUN, "generator.name=dcgan", "generator.latent_dim=8"]), tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_run_resumed_mid_fade_continues_the_same_schedule_bit_identically(tmp_path: Path) -> None:
    straight = Trainer(load_config(None, [*GROWING_RUN, "train.steps=4"]), tmp_path / "straight")
    straight.fit()
    first = Trainer(load_config(None, [*GROWING_RUN, "train.steps=2"]), tmp_path / "resumed")
    first.fit()
    assert first.network("generator").current_phase() == (1, 0.25)  # 16 images: 8 stabilising at 4x4, 8 of 32 fading
    resumed = Trainer(load_config(None, [*GROWING_RUN, "train.steps=4"]), tmp_path / "resumed")
    resumed.load_training_state(load_checkpoint(tmp_path / "resumed"))
    assert resumed.network("generator").current_phase() == (1, 0.25)
    assert resumed.network("discriminator").current_phase() == (1, 0.25)
    resumed.fit()
    assert resumed.network("generator").current_phase() == straight.network("generator").current_phase() == (1, 0.75)
    for a, b in ((straight.network("generator"), resumed.network("generator")),
                 (straight.network("discriminator"), resumed.network("discriminator"))):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
