"""Every adversarial loss against its formula on hand-computed values, on scalar and PatchGAN outputs,
and with a conditional discriminator (the conditional GAN of Mirza & Osindero 2014)."""

from __future__ import annotations

import math

import pytest
import torch
from ganforge import ConfigError, Loss, get_plugin_manager
from ganforge.config import load_config
from ganforge_plugins.losses.hinge import HingeLoss, HingeLossConfig
from ganforge_plugins.losses.lsgan import LeastSquaresLoss, LeastSquaresLossConfig
from ganforge_plugins.losses.wgan import WassersteinLoss, WassersteinLossConfig
from torch import Tensor, nn

REAL = [2.0, -0.5, 0.25, 3.0]
FAKE = [-1.5, 0.5, 1.25, -4.0]
NAMES = ["minimax", "non-saturating", "wgan", "hinge", "lsgan"]


def t(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_every_loss_is_registered_under_its_name() -> None:
    manager = get_plugin_manager()
    for name in NAMES:
        loss = manager.get("loss", name).factory(manager.get("loss", name).config())
        assert isinstance(loss, Loss) and loss.generator_needs_real is False


def test_wgan_critic_and_generator_losses() -> None:
    loss = WassersteinLoss(WassersteinLossConfig())
    # E[D(fake)] - E[D(real)] = (-3.75 / 4) - (4.75 / 4) = -2.125
    assert loss.discriminator_loss(t(REAL), t(FAKE)).item() == pytest.approx(-2.125, abs=1e-12)
    assert loss.generator_loss(t(FAKE), None).item() == pytest.approx(3.75 / 4, abs=1e-12)  # -E[D(fake)]


def test_hinge_losses() -> None:
    loss = HingeLoss(HingeLossConfig())
    # relu(1 - real) = [0, 1.5, 0.75, 0]; relu(1 + fake) = [0, 1.5, 2.25, 0]
    assert loss.discriminator_loss(t(REAL), t(FAKE)).item() == pytest.approx(2.25 / 4 + 3.75 / 4, abs=1e-12)
    assert loss.generator_loss(t(FAKE), None).item() == pytest.approx(3.75 / 4, abs=1e-12)
    wide = HingeLoss(HingeLossConfig(margin=2.0))
    expected = mean([max(0.0, 2 - r) for r in REAL]) + mean([max(0.0, 2 + f) for f in FAKE])
    assert wide.discriminator_loss(t(REAL), t(FAKE)).item() == pytest.approx(expected, abs=1e-12)


def test_hinge_ignores_outputs_beyond_the_margin() -> None:
    loss = HingeLoss(HingeLossConfig())
    real = torch.tensor([3.0, 0.5], requires_grad=True)
    fake = torch.tensor([-2.0, 0.0], requires_grad=True)
    d_real, d_fake = torch.autograd.grad(loss.discriminator_loss(real, fake), (real, fake))
    assert d_real.tolist() == [0.0, -0.5] and d_fake.tolist() == [0.0, 0.5]


def test_lsgan_default_is_the_0_1_coding() -> None:
    loss = LeastSquaresLoss(LeastSquaresLossConfig())
    assert (loss.config.a, loss.config.b, loss.config.c) == (0.0, 1.0, 1.0)
    # 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]
    expected_d = 0.5 * mean([(r - 1) ** 2 for r in REAL]) + 0.5 * mean([f**2 for f in FAKE])
    assert expected_d == pytest.approx(0.5 * (1 + 2.25 + 0.5625 + 4) / 4 + 0.5 * (2.25 + 0.25 + 1.5625 + 16) / 4)
    assert loss.discriminator_loss(t(REAL), t(FAKE)).item() == pytest.approx(expected_d, abs=1e-12)
    expected_g = 0.5 * mean([(f - 1) ** 2 for f in FAKE])  # (6.25 + 0.25 + 0.0625 + 25) / 8
    assert loss.generator_loss(t(FAKE), None).item() == pytest.approx(31.5625 / 8, abs=1e-12)
    assert expected_g == pytest.approx(31.5625 / 8)


def test_lsgan_a_b_c_coding() -> None:
    loss = LeastSquaresLoss(LeastSquaresLossConfig(a=-1.0, b=1.0, c=0.0))  # the Pearson chi^2 coding, eq. 8
    expected_d = 0.5 * mean([(r - 1) ** 2 for r in REAL]) + 0.5 * mean([(f + 1) ** 2 for f in FAKE])
    assert loss.discriminator_loss(t(REAL), t(FAKE)).item() == pytest.approx(expected_d, abs=1e-12)
    assert loss.generator_loss(t(FAKE), None).item() == pytest.approx(0.5 * mean([f**2 for f in FAKE]), abs=1e-12)


def test_lsgan_optimal_discriminator_matches_the_paper() -> None:
    # Mao et al. 2017, eq. 4: D*(x) = (b p_d(x) + a p_g(x)) / (p_d(x) + p_g(x)). Two points with
    # p_d = (3/4, 1/4) and p_g = (1/4, 3/4), as four equally likely draws each.
    a, b = -1.0, 1.0
    loss = LeastSquaresLoss(LeastSquaresLossConfig(a=a, b=b, c=0.0))
    d = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # D(x1), D(x2)
    real_draws, fake_draws = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 1, 1])
    opt = torch.optim.LBFGS([d], lr=1.0, max_iter=50)

    def closure() -> Tensor:
        opt.zero_grad()
        value = loss.discriminator_loss(d[real_draws], d[fake_draws])
        value.backward()
        return value

    opt.step(closure)
    assert d.tolist() == pytest.approx([(3 * b + a) / 4, (b + 3 * a) / 4], abs=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_patch_maps_average_over_every_prediction(name: str) -> None:
    manager = get_plugin_manager()
    component = manager.get("loss", name)
    loss = component.factory(component.config())
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 1, 3, 3, generator=gen), torch.randn(4, 1, 3, 3, generator=gen)
    assert torch.allclose(loss.discriminator_loss(real, fake), loss.discriminator_loss(real.flatten(), fake.flatten()))
    assert torch.allclose(loss.generator_loss(fake, None), loss.generator_loss(fake.flatten(), None))
    # a map whose predictions all equal one value per image scores like that value per image
    per_image = torch.randn(4, generator=gen)
    expanded = per_image[:, None, None, None].expand(4, 1, 5, 5)
    assert torch.allclose(loss.discriminator_loss(expanded, -expanded), loss.discriminator_loss(per_image, -per_image))


def test_bad_loss_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"loss\.margin: must be > 0.0: -1"):
        load_config(None, ["loss.name=hinge", "loss.margin=-1.0"])
    with pytest.raises(ConfigError, match=r"loss\.b: must differ from 'a'"):
        load_config(None, ["loss.name=lsgan", "loss.a=1.0", "loss.b=1.0"])
    with pytest.raises(ConfigError, match=r"loss: unknown key\(s\) weight"):
        load_config(None, ["loss.name=wgan", "loss.weight=1.0"])


# -- the conditional GAN (Mirza & Osindero 2014): a conditional D, the same losses --------------


class ConditionalCritic(nn.Module):
    """A small projection discriminator (Miyato & Koyama 2018): ``D(x|y) = psi(h) + <embed(y), h>``."""

    def __init__(self, shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 3, width: int = 16) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), width), nn.LeakyReLU(0.2))
        self.head = nn.Linear(width, 1)
        self.embed = nn.Embedding(num_classes, width)

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        if labels is None:
            raise ValueError("ConditionalCritic needs labels")
        h = self.features(x)
        return self.head(h).flatten() + (self.embed(labels) * h).sum(dim=1)  # [N]


@pytest.mark.parametrize("name", NAMES)
def test_losses_train_a_conditional_discriminator_through_its_labels(name: str) -> None:
    torch.manual_seed(0)
    manager = get_plugin_manager()
    loss = manager.get("loss", name).factory(manager.get("loss", name).config())
    d = ConditionalCritic()
    real, fake = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    d_loss = loss.discriminator_loss(d(real, labels), d(fake, labels))
    assert d_loss.shape == () and torch.isfinite(d_loss)
    d_loss.backward()
    grad = d.embed.weight.grad
    assert grad is not None and (grad.abs().sum(dim=1) > 0).all()  # every class embedding learns
    # the outputs, and so the loss, depend on the labels: D(x|y) is a function of y
    other = loss.discriminator_loss(d(real, (labels + 1) % 3), d(fake, (labels + 1) % 3))
    assert not torch.isclose(d_loss.detach(), other.detach())
