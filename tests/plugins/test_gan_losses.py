"""The GAN losses of Goodfellow et al. 2014 against their formulas, on hand-computed values."""

from __future__ import annotations

import math

import torch
from ganforge_plugins.losses.gan import MinimaxGAN, MinimaxGANConfig, NonSaturatingGAN, NonSaturatingGANConfig


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_discriminator_loss_is_the_negated_value_function() -> None:
    real, fake = [2.0, -1.0], [0.5, -3.0]
    expected = -sum(math.log(sigmoid(r)) for r in real) / 2 - sum(math.log(1 - sigmoid(f)) for f in fake) / 2
    for loss in (MinimaxGAN(MinimaxGANConfig()), NonSaturatingGAN(NonSaturatingGANConfig())):
        got = loss.discriminator_loss(torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64))
        assert math.isclose(got.item(), expected, rel_tol=1e-12)


def test_generator_losses() -> None:
    fake = [0.5, -3.0]
    t = torch.tensor(fake, dtype=torch.float64)
    minimax = MinimaxGAN(MinimaxGANConfig()).generator_loss(t, None).item()
    non_sat = NonSaturatingGAN(NonSaturatingGANConfig()).generator_loss(t, None).item()
    assert math.isclose(minimax, sum(math.log(1 - sigmoid(f)) for f in fake) / 2, rel_tol=1e-12)
    assert math.isclose(non_sat, -sum(math.log(sigmoid(f)) for f in fake) / 2, rel_tol=1e-12)


def test_patch_maps_average_over_every_prediction() -> None:
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    loss = NonSaturatingGAN(NonSaturatingGANConfig())
    flat = loss.discriminator_loss(real.flatten(), fake.flatten())
    assert torch.allclose(loss.discriminator_loss(real, fake), flat)


def test_non_saturating_gradient_is_strong_where_minimax_saturates() -> None:
    # D confidently rejects the fake: D(G(z)) = sigmoid(-8) ~ 3e-4
    fake = torch.tensor([-8.0], requires_grad=True)
    (g_minimax,) = torch.autograd.grad(MinimaxGAN(MinimaxGANConfig()).generator_loss(fake, None), fake)
    (g_non_sat,) = torch.autograd.grad(NonSaturatingGAN(NonSaturatingGANConfig()).generator_loss(fake, None), fake)
    assert abs(g_minimax.item()) < 1e-3  # d/df log(1 - sigmoid(f)) = -sigmoid(f)
    assert abs(g_non_sat.item()) > 0.99  # d/df -log sigmoid(f) = sigmoid(f) - 1


def test_losses_stay_finite_for_extreme_logits() -> None:
    logits = torch.tensor([-200.0, 200.0])
    loss = MinimaxGAN(MinimaxGANConfig())
    assert torch.isfinite(loss.discriminator_loss(logits, logits)) and torch.isfinite(loss.generator_loss(logits, None))
