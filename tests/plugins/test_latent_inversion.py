"""Inversion by optimisation on tiny generators: images with known latents are reconstructed to high PSNR."""

from __future__ import annotations

import math

import pytest
import torch
from ganforge import ConfigError, DataError, DataSpec
from ganforge_plugins.latent.inversion import InversionConfig, invert, psnr
from ganforge_plugins.latent.spaces import render, sample_latents
from ganforge_plugins.models.dcgan import DCGANGenerator, DCGANGeneratorConfig
from ganforge_plugins.models.stylegan import StyleGANGenerator, StyleGANGeneratorConfig


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_dcgan() -> DCGANGenerator:
    """A DCGAN whose batch-norm statistics are those of its own activations, so that its images depend on z
    (with the initial running statistics an untrained DCGAN draws nearly the same image for every z)."""
    torch.manual_seed(0)
    g = DCGANGenerator(DCGANGeneratorConfig(base_channels=4, latent_dim=8), DataSpec(shape=(1, 16, 16)))
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    with torch.no_grad():
        g.train()(torch.randn(512, 8, generator=rng(99)))
        g.net[-2].weight.mul_(40)  # images spanning [-1, 1] (DCGAN's N(0, 0.02) init draws faint ones)
    return g.eval()


def tiny_stylegan() -> StyleGANGenerator:
    torch.manual_seed(0)
    g = StyleGANGenerator(StyleGANGeneratorConfig(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                                                  channel_max=8), DataSpec(shape=(1, 16, 16))).eval()
    with torch.no_grad():
        g.w_avg.copy_(sample_latents(g, 1000, "w", generator_rng=rng(0)).mean(0))
    return g


pytestmark = pytest.mark.usefixtures("one_thread")


def test_psnr_formula() -> None:
    x = torch.zeros(2, 1, 4, 4)
    y = x.clone()
    y[0] += 0.02  # MSE 4e-4 -> 10 log10(4 / 4e-4) = 40 dB
    y[1] += 0.2  # -> 20 dB
    torch.testing.assert_close(psnr(x, y), torch.tensor([40.0, 20.0]))
    assert math.isinf(float(psnr(x, x)[0]))


def test_z_inversion_of_a_dcgan_reaches_30_db_and_leaves_the_weights_alone() -> None:
    g = tiny_dcgan()
    before = {k: t.clone() for k, t in g.state_dict().items()}
    z = torch.randn(4, 8, generator=rng(1))
    with torch.no_grad():
        target = g(z)
    assert float(psnr(g(torch.zeros(4, 8)).detach(), target).max()) < 25.0  # the start is far off
    latents, record = invert(g, target, InversionConfig(space="z", steps=200, lr=0.1))
    assert min(record["psnr"]) >= 30.0
    assert record["loss"][-1] < 1e-3 * record["loss"][0]
    with torch.no_grad():
        assert float(psnr(g(latents), target).min()) >= 30.0
    assert all(torch.equal(before[k], t) for k, t in g.state_dict().items())
    assert all(p.requires_grad for p in g.parameters())


def test_w_inversion_of_a_stylegan_with_restarts() -> None:
    """A random tiny StyleGAN has local minima: not every image reaches 30 dB (see the module docstring)."""
    g = tiny_stylegan()
    w = sample_latents(g, 2, "w", generator_rng=rng(1))
    with torch.no_grad():
        target = render(g, w, "w")
    start = psnr(render(g, g.w_avg.expand(2, -1), "w").detach(), target)
    cfg = InversionConfig(space="w", steps=100, lr=0.1, restarts=3, feature_weight=0.0)  # the pixel landscape
    _, record = invert(g, target, cfg, generator_rng=rng(5))
    assert max(record["psnr"]) >= 30.0 > float(start.max())
    assert all(p > s for p, s in zip(record["psnr"], start.tolist(), strict=True))
    assert record["steps"] == 300 and len(record["loss"]) == 300


def test_w_plus_inversion_improves_on_the_mean_latent() -> None:
    g = tiny_stylegan()
    ws = sample_latents(g, 2, "w+", generator_rng=rng(2))
    with torch.no_grad():
        target = render(g, ws, "w+")
    start = psnr(render(g, g.w_avg.expand(2, g.num_ws, -1), "w+").detach(), target)
    latents, record = invert(g, target, InversionConfig(space="w+", steps=100, lr=0.1))
    assert latents.shape == (2, g.num_ws, 8)
    assert all(p > s + 5 for p, s in zip(record["psnr"], start.tolist(), strict=True))


def test_inversion_refuses_bad_images_and_spaces() -> None:
    g = tiny_dcgan()
    cfg = InversionConfig(space="z", steps=1)
    with pytest.raises(DataError, match=r"images: the generator makes images of shape \[N, 1, 16, 16\].*\[2, 3, 16"):
        invert(g, torch.zeros(2, 3, 16, 16), cfg)
    with pytest.raises(DataError, match=r"images: .*\[N, 1, 16, 16\].*got \[2, 1, 28, 28\]"):
        invert(g, torch.zeros(2, 1, 28, 28), cfg)
    with pytest.raises(DataError, match=r"images: expected finite values in \[-1, 1\], got range \[0, 255\]"):
        invert(g, torch.full((1, 1, 16, 16), 255.0).index_fill_(2, torch.tensor([0]), 0.0), cfg)
    with pytest.raises(ConfigError, match=r"space: DCGANGenerator has no latent space 'w\+'"):
        invert(g, torch.zeros(1, 1, 16, 16), InversionConfig(space="w+", steps=1))
    with pytest.raises(DataError, match=r"start: expected latents \[1, 8\], got \[1, 5\]"):
        invert(g, torch.zeros(1, 1, 16, 16), cfg, start=torch.zeros(1, 5))
    with pytest.raises(ValueError, match="'restarts'"):
        InversionConfig(restarts=0)
