"""Uniform prior, lerp/slerp interpolation, truncation and style mixing."""

from __future__ import annotations

import math

import pytest
import torch
from ganforge import ConfigError, DataSpec, LatentSpace, get_plugin_manager
from ganforge_plugins.latent.interpolation import InterpolateSampler, InterpolateSamplerConfig, interpolate, lerp, slerp
from ganforge_plugins.latent.style import (
    mix_range,
    resolve_layers,
    sample_truncated,
    style_mix,
    style_mixing_grid,
    truncate,
    truncate_to_modes,
    truncation_modes,
)
from ganforge_plugins.models.dcgan import DCGANGenerator, DCGANGeneratorConfig
from ganforge_plugins.models.stylegan import StyleGANGenerator, StyleGANGeneratorConfig
from ganforge_plugins.samplers.uniform import UniformSampler, UniformSamplerConfig

CPU = torch.device("cpu")


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_stylegan(resolution: int = 32) -> StyleGANGenerator:
    torch.manual_seed(0)
    g = StyleGANGenerator(StyleGANGeneratorConfig(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                                                  channel_max=8), DataSpec(shape=(1, resolution, resolution)))
    with torch.no_grad():
        g.w_avg.copy_(torch.linspace(-1, 1, 8))
    return g.eval()


def test_samplers_are_registered() -> None:
    names = {c.name for c in get_plugin_manager().registries["sampler"]}
    assert {"uniform", "interpolate"} <= names


def test_uniform_sampler_range_and_moments() -> None:
    s = UniformSampler(UniformSamplerConfig(low=-2.0, high=4.0))
    x = s.sample(20000, LatentSpace(name="z", shape=(5,)), device=CPU, generator=rng())
    assert x.shape == (20000, 5) and x.min() >= -2.0 and x.max() < 4.0
    assert abs(float(x.mean()) - 1.0) < 0.03  # (low + high) / 2
    assert abs(float(x.var()) - 36 / 12) < 0.05  # (high - low)^2 / 12


def test_uniform_config_refuses_empty_interval() -> None:
    with pytest.raises(ValueError, match=r"'high'.*low = 1.0.*got 1.0"):
        UniformSamplerConfig(low=1.0, high=1.0)


def test_lerp_and_slerp_endpoints_and_norms() -> None:
    a, b = torch.randn(6, 32, generator=rng(1)), torch.randn(6, 32, generator=rng(2))
    for f in (lerp, slerp):
        torch.testing.assert_close(f(a, b, 0.0), a)
        torch.testing.assert_close(f(a, b, 1.0), b, atol=1e-5, rtol=1e-5)
    # slerp keeps the norm when both ends have the same norm; lerp's midpoint shrinks by cos(theta / 2)
    an, bn = a / a.norm(dim=1, keepdim=True) * 3, b / b.norm(dim=1, keepdim=True) * 3
    for t in (0.1, 0.5, 0.77):
        torch.testing.assert_close(slerp(an, bn, t).norm(dim=1), torch.full((6,), 3.0), atol=1e-4, rtol=1e-4)
    theta = torch.arccos((an * bn).sum(1) / 9)
    torch.testing.assert_close(lerp(an, bn, 0.5).norm(dim=1), 3 * torch.cos(theta / 2), atol=1e-4, rtol=1e-4)
    # orthogonal unit vectors: the midpoint is (a + b) / sqrt(2), a quarter of the way is (cos, sin)(pi / 8)
    e0, e1 = torch.eye(2)[0:1], torch.eye(2)[1:2]
    torch.testing.assert_close(slerp(e0, e1, 0.5), (e0 + e1) / math.sqrt(2))
    torch.testing.assert_close(slerp(e0, e1, 0.25), torch.tensor([[math.cos(math.pi / 8), math.sin(math.pi / 8)]]))


def test_slerp_per_row_weights_and_parallel_fallback() -> None:
    a = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [4.0, 0.0]])  # second row parallel: falls back to lerp
    out = slerp(a, b, torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(out[0], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    torch.testing.assert_close(out[1], torch.tensor([2.5, 0.0]))


def test_slerp_works_on_w_plus_shaped_latents() -> None:
    a, b = torch.randn(3, 4, 8, generator=rng(3)), torch.randn(3, 4, 8, generator=rng(4))
    out = slerp(a, b, 0.3)
    assert out.shape == (3, 4, 8)
    torch.testing.assert_close(slerp(a, b, 0.0), a)


def test_interpolate_strip_and_sampler() -> None:
    a, b = torch.randn(10, generator=rng(5)), torch.randn(10, generator=rng(6))
    strip = interpolate(a, b, 5, mode="lerp")
    assert strip.shape == (5, 10)
    torch.testing.assert_close(strip[2], (a + b) / 2)
    with pytest.raises(ConfigError, match="steps"):
        interpolate(a, b, 1)
    with pytest.raises(ConfigError, match="mode"):
        interpolate(a, b, 3, mode="cubic")
    s = InterpolateSampler(InterpolateSamplerConfig(mode="slerp"))
    x = s.sample(7, LatentSpace(name="z", shape=(10,)), device=CPU, generator=rng(0))
    assert x.shape == (7, 10)
    steps = (x[1:] - x[:-1]).norm(dim=1)  # the arc is cut into equal angles: near-equal chords
    assert float(steps.max() - steps.min()) < 0.35 * float(steps.mean())


def test_truncation_psi_zero_and_one() -> None:
    g = tiny_stylegan()
    w0 = sample_truncated(g, 4, 0.0, generator_rng=rng(1))
    torch.testing.assert_close(w0, g.w_avg.expand(4, -1))
    w1 = sample_truncated(g, 4, 1.0, generator_rng=rng(1))
    z = torch.randn(4, 8, generator=rng(1))
    torch.testing.assert_close(w1, g.mapping(z).detach())
    half = sample_truncated(g, 4, 0.5, generator_rng=rng(1), space="w+")
    assert half.shape == (4, g.num_ws, 8)
    torch.testing.assert_close(half[:, 0], (g.w_avg + w1) / 2)


def test_truncation_refuses_bad_psi_and_generators_without_mapping() -> None:
    g = tiny_stylegan()
    with pytest.raises(ConfigError, match=r"psi.*\[-1.0, 2.0\].*got 3"):
        sample_truncated(g, 2, 3, generator_rng=rng())
    with pytest.raises(ConfigError, match="space"):
        sample_truncated(g, 2, 0.5, generator_rng=rng(), space="z")
    dcgan = DCGANGenerator(DCGANGeneratorConfig(base_channels=4, latent_dim=8), DataSpec(shape=(1, 16, 16)))
    with pytest.raises(ConfigError, match=r"space: DCGANGenerator has no latent space 'w'.*mapping network"):
        sample_truncated(dcgan, 2, 0.5, generator_rng=rng())


def three_blobs(n: int = 900) -> tuple[torch.Tensor, torch.Tensor]:
    truth = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 8.0]])
    return truth[torch.arange(n) % 3] + 0.3 * torch.randn(n, 2, generator=rng(1)), truth


def test_multimodal_truncation_pulls_each_w_to_its_own_mode() -> None:
    x, truth = three_blobs()
    for psi in (1.0, 0.5, 0.0):
        out = truncate_to_modes(x, truth, psi)
        torch.testing.assert_close(out, truth[torch.arange(len(x)) % 3].lerp(x, psi))
    # one mode, the mean, is ordinary truncation; W+ is truncated by its first style's mode
    mean = x.mean(0, keepdim=True)
    torch.testing.assert_close(truncate_to_modes(x, mean, 0.7), truncate(x, mean[0], 0.7))
    ws = x[:, None].expand(-1, 4, -1)
    own = truth[torch.arange(len(x)) % 3]
    torch.testing.assert_close(truncate_to_modes(ws, truth, 0.0), own[:, None].expand(-1, 4, -1))
    # ordinary truncation to psi 0 leaves every sample at the mean, between the modes, far from all of them
    far = torch.cdist(truncate(x, mean[0], 0.0), truth).min(1).values
    assert float(far.min()) > 2.0
    with pytest.raises(ConfigError, match="psi"):
        truncate_to_modes(x, truth, 7.0)


def test_truncation_modes_cluster_the_generators_w() -> None:
    g = tiny_stylegan()
    one = truncation_modes(g, 1, num_samples=500, generator_rng=rng(3))
    with torch.no_grad():
        w = g.mapping(torch.randn(500, 8, generator=rng(3)))
    torch.testing.assert_close(one, w.mean(0, keepdim=True))  # k = 1: the mean that w_avg tracks
    modes = truncation_modes(g, 8, num_samples=500, generator_rng=rng(3))
    assert modes.shape == (8, 8) and torch.isfinite(modes).all()
    with pytest.raises(ConfigError, match="space: DCGANGenerator has no latent space 'w'"):
        dcgan = DCGANGenerator(DCGANGeneratorConfig(base_channels=4, latent_dim=8), DataSpec(shape=(1, 16, 16)))
        truncation_modes(dcgan, 4, num_samples=50, generator_rng=rng())


def test_style_mixing_copies_b_in_the_named_range_only() -> None:
    g = tiny_stylegan()  # 32x32: 8 styles, coarse 0:4, middle 4:8, fine empty
    a = sample_truncated(g, 3, 1.0, generator_rng=rng(1), space="w+")
    b = sample_truncated(g, 3, 1.0, generator_rng=rng(2), space="w+")
    for name, r in (("coarse", range(0, 4)), ("middle", range(4, 8)), ("2:5", range(2, 5)), ("all", range(8))):
        mixed = style_mix(g, a, b, name)
        for i in range(g.num_ws):
            assert torch.equal(mixed[:, i], b[:, i] if i in r else a[:, i]), (name, i)
    with pytest.raises(ConfigError, match=r"layers: the 'fine' range is empty"):
        resolve_layers(g, "fine")
    with pytest.raises(ConfigError, match=r"layers: must be one of .*'coarse'.*got 'face'"):
        resolve_layers(g, "face")
    with pytest.raises(ConfigError, match=r"layers: '3:99' is not a non-empty range within 0:8"):
        resolve_layers(g, "3:99")
    with pytest.raises(ValueError, match="W\\+ batches"):
        mix_range(a, b[:, :3], range(0, 2))


def test_style_mixing_changes_the_image_only_through_the_copied_styles() -> None:
    g = tiny_stylegan()
    a = sample_truncated(g, 2, 1.0, generator_rng=rng(1), space="w+")
    b = sample_truncated(g, 3, 1.0, generator_rng=rng(2), space="w+")
    grid = style_mixing_grid(g, a, b, "coarse")
    assert grid.shape == (3, 2, 1, 32, 32)
    with torch.no_grad():
        plain = g.synthesis(a)
        same = g.synthesis(style_mix(g, a, a, "coarse"))
    torch.testing.assert_close(same, plain)  # mixing A with itself is A
    assert (grid[0] - plain).abs().mean() > 1e-4  # B's coarse styles change it
