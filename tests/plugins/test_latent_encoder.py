"""Feature losses, the learned encoder and hybrid inversion (Zhu et al. 2016) on tiny generators, and the
files of encoders and inverted latents bound to their generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from ganforge import ConfigError, DataError
from ganforge_plugins.latent.encoder import (
    METHODS,
    EncoderConfig,
    build_encoder,
    encode,
    invert_images,
    load_encoder,
    load_inverted,
    save_encoder,
    save_inverted,
    train_encoder,
)
from ganforge_plugins.latent.feature_loss import VGG_LAYERS, build_feature_network, feature_mse
from ganforge_plugins.latent.inversion import InversionConfig, invert
from ganforge_plugins.latent.spaces import render, sample_latents

from tests.plugins.test_latent_inversion import rng, tiny_dcgan, tiny_stylegan

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dcgan_and_encoder():
    g = tiny_dcgan()
    encoder, history = train_encoder(g, EncoderConfig(space="z", base_channels=8, steps=300, batch_size=32),
                                     generator_rng=rng(0))
    return g, encoder, history


# -- feature losses -------------------------------------------------------------------------------


def test_classifier_feature_loss_is_zero_on_equal_images_and_differentiable() -> None:
    net = build_feature_network("auto", channels=1)
    assert net.name == "mnist-classifier"
    x = torch.rand(3, 1, 16, 16, generator=rng(1)) * 2 - 1
    y = torch.rand(3, 1, 16, 16, generator=rng(2)) * 2 - 1
    fx = net(x)
    assert [f.shape for f in fx] == [torch.Size([3, 128])]
    assert float(feature_mse(fx, net(x))) == 0.0
    xg = x.clone().requires_grad_(True)
    loss = net.loss(xg, [t.detach() for t in net(y)])
    loss.backward()
    assert float(loss.detach()) > 0 and float(xg.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())  # the network stays frozen
    assert build_feature_network("auto", channels=3).name == "cifar10-classifier"
    with pytest.raises(ConfigError, match="feature_network: no default feature network for 2-channel images"):
        build_feature_network("auto", channels=2)
    with pytest.raises(ConfigError, match=r"feature_network: .*takes 3-channel images, the generator makes 1"):
        build_feature_network("cifar10-classifier", channels=1)
    with pytest.raises(ConfigError, match="feature_network: unknown feature-extractor 'vgg19'"):
        build_feature_network("vgg19", channels=1)
    with pytest.raises(DataError, match=r"feature_network: 'mnist-classifier' takes \[N, 1, H, W\] images"):
        net(torch.zeros(2, 3, 16, 16))


def test_vgg16_is_loaded_only_from_a_local_file(tmp_path: Path) -> None:
    import torchvision

    with pytest.raises(ConfigError, match="feature_weights: feature_network = 'vgg16' needs a local VGG16 weights"):
        build_feature_network("vgg16", channels=1)
    with pytest.raises(ConfigError, match=r"feature_weights: file .*nope.safetensors' does not exist"):
        build_feature_network("vgg16", channels=1, weights=str(tmp_path / "nope.safetensors"))
    torch.manual_seed(0)
    features = torchvision.models.vgg16().features[:21]
    path = tmp_path / "vgg16.safetensors"
    safetensors.torch.save_file({f"features.{k}": t for k, t in features.state_dict().items()}, str(path))
    net = build_feature_network("vgg16", channels=1, weights=str(path))
    out = net(torch.rand(2, 1, 16, 16) * 2 - 1)  # resized to 64x64
    assert [tuple(f.shape) for f in out] == [(2, 64, 64, 64), (2, 64, 64, 64), (2, 256, 16, 16), (2, 512, 8, 8)]
    assert len(out) == len(VGG_LAYERS)
    torch.testing.assert_close(net.body[0].weight, features[0].weight)
    bad = tmp_path / "bad.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(1)}, str(bad))
    with pytest.raises(ConfigError, match="is not a VGG16 state dict"):
        build_feature_network("vgg16", channels=3, weights=str(bad))


def test_inversion_with_the_feature_loss_recovers_a_dcgan_image() -> None:
    g = tiny_dcgan()
    z = torch.randn(2, 8, generator=rng(1))
    with torch.no_grad():
        target = g(z)
    _, record = invert(g, target, InversionConfig(space="z", steps=150, lr=0.1, feature_weight=1.0))
    assert min(record["psnr"]) >= 30.0


# -- the encoder and hybrid inversion --------------------------------------------------------------


def test_encoder_learns_latent_and_image_reconstruction(dcgan_and_encoder) -> None:
    g, encoder, history = dcgan_and_encoder
    assert history["latent"][-1] < 0.3 * history["latent"][0]
    assert history["image"][-1] < 0.3 * history["image"][0]
    z = torch.randn(16, 8, generator=rng(3))
    with torch.no_grad():
        x = g(z)
    predicted = encode(encoder, x, generator=g)
    assert float((predicted - z).square().mean()) < 0.3  # the prior's variance is 1
    assert all(p.requires_grad for p in g.parameters())


def test_hybrid_beats_optimisation_from_the_mean_and_the_encoder_is_fast(dcgan_and_encoder) -> None:
    g, encoder, _ = dcgan_and_encoder
    z = torch.randn(8, 8, generator=rng(4))
    with torch.no_grad():
        x = g(z)
    cfg = InversionConfig(space="z", steps=30, lr=0.1, feature_weight=0.0)
    records = {m: invert_images(g, x, m, cfg, encoder=encoder)[1] for m in METHODS}
    mean = {m: sum(r["psnr"]) / len(r["psnr"]) for m, r in records.items()}
    assert mean["hybrid"] > mean["optimise"] + 3  # same number of steps, better start
    assert mean["hybrid"] > mean["encoder"]
    assert records["encoder"]["steps"] == 0 and records["hybrid"]["steps"] == 30
    assert records["encoder"]["seconds"] < records["optimise"]["seconds"] / 3
    assert {r["method"] for r in records.values()} == set(METHODS)


def test_w_plus_encoder_starts_at_the_mean_latent() -> None:
    g = tiny_stylegan()
    encoder = build_encoder(g, EncoderConfig(space="w+", base_channels=4))
    x = render(g, sample_latents(g, 3, "w+", generator_rng=rng(1)), "w+").detach()
    torch.testing.assert_close(encode(encoder, x, generator=g), g.w_avg.expand(3, g.num_ws, -1))


def test_encoder_and_latent_files_are_bound_to_their_generator(dcgan_and_encoder, tmp_path: Path) -> None:
    g, encoder, _ = dcgan_and_encoder
    path = save_encoder(tmp_path / "enc.safetensors", encoder, g)
    side = json.loads((tmp_path / "enc.safetensors.json").read_text())
    assert side["kind"] == "encoder" and side["space"] == "z" and side["image_shape"] == [1, 16, 16]
    loaded = load_encoder(path, g)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(encode(loaded, x, generator=g), encode(encoder, x, generator=g))
    other = tiny_stylegan()
    with pytest.raises(ConfigError, match="belongs to another generator"):
        load_encoder(path, other)
    latents = torch.randn(2, 8)
    lp = save_inverted(tmp_path / "lat.safetensors", latents, g, space="z", meta={"method": "hybrid"})
    back, meta = load_inverted(lp, g)
    torch.testing.assert_close(back, latents)
    assert meta["method"] == "hybrid" and meta["space"] == "z"
    with pytest.raises(ConfigError, match="belongs to another generator"):
        load_inverted(lp, other)
    with pytest.raises(ConfigError, match=r"holds 'inverted-latents'.*expected a 'encoder' file"):
        load_encoder(lp, g)
    with pytest.raises(ConfigError, match="never pickle"):
        save_encoder(tmp_path / "enc.pt", encoder, g)


def test_bad_input(dcgan_and_encoder) -> None:
    g, encoder, _ = dcgan_and_encoder
    with pytest.raises(ConfigError, match=r"space: DCGANGenerator has no latent space 'w\+'.*mapping network"):
        build_encoder(g, EncoderConfig(space="w+"))
    with pytest.raises(DataError, match=r"images: the generator makes images of shape \[N, 1, 16, 16\].*\[2, 3, 16"):
        encode(encoder, torch.zeros(2, 3, 16, 16), generator=g)
    with pytest.raises(DataError, match=r"images: .*got \[1, 1, 28, 28\]"):
        invert_images(g, torch.zeros(1, 1, 28, 28), "hybrid", InversionConfig(space="z"), encoder=encoder)
    with pytest.raises(ConfigError, match="method: must be one of"):
        invert_images(g, torch.zeros(1, 1, 16, 16), "gradient", InversionConfig(space="z"))
    with pytest.raises(ConfigError, match="encoder: method 'hybrid' needs a trained encoder"):
        invert_images(g, torch.zeros(1, 1, 16, 16), "hybrid", InversionConfig(space="z"))
    s = tiny_stylegan()
    s_encoder = build_encoder(s, EncoderConfig(space="w", base_channels=4))
    with pytest.raises(ConfigError, match=r"space: the encoder predicts 'w' latents, the inversion is in 'w\+'"):
        invert_images(s, torch.zeros(1, 1, 16, 16), "encoder", InversionConfig(space="w+"), encoder=s_encoder)
    with pytest.raises(ValueError, match="cannot both be 0"):
        EncoderConfig(latent_weight=0.0, image_weight=0.0)
