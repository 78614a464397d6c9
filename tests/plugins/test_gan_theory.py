"""The theory of the GAN courses, checked numerically through the loss and regularizer plugins.

Goodfellow et al. 2014 (arXiv:1406.2661), Proposition 1 and Theorem 1: for a fixed G the optimal
discriminator is ``D*(x) = p_data(x) / (p_data(x) + p_G(x))`` and ``V(G, D*) = -2 log 2 +
2 JSD(p_data || p_G)``, minimal exactly at ``p_G = p_data``. On a finite set, expectations are sums,
and drawing each point as many times as its probability in twentieths makes the plugins' means
exact expectations. Also: the WGAN-GP penalty of a linear critic (Gulrajani et al. 2017), weight
clipping in a real trainer step (Arjovsky et al. 2017), and the saturation of the minimax generator
loss that the non-saturating one avoids (Goodfellow et al. 2014, section 3).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from ganforge import PenaltyContext, get_plugin_manager
from ganforge.config import load_config
from ganforge.training import Trainer
from torch import Tensor, nn

from tests.conftest import REPO, TINY

P_DATA = [6, 5, 4, 3, 2, 0]  # twentieths, over six points
P_G = [1, 2, 3, 5, 4, 5]


def build(family: str, name: str, **params: Any) -> Any:
    component = get_plugin_manager().get(family, name)
    return component.factory(component.config(**params))


def draws(counts: list[int]) -> Tensor:
    """Point indices, each repeated as many times as its probability in twentieths."""
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


def value(d_logits: Tensor, p_data: list[int], p_g: list[int]) -> Tensor:
    """``V(G, D) = E_data[log D] + E_G[log(1 - D)]``: the negated discriminator loss of the plugin."""
    loss = build("loss", "minimax")
    return -loss.discriminator_loss(d_logits[draws(p_data)], d_logits[draws(p_g)])


def optimal_logits(p_data: list[int], p_g: list[int]) -> Tensor:
    p, q = torch.tensor(p_data, dtype=torch.float64), torch.tensor(p_g, dtype=torch.float64)
    return torch.logit(p / (p + q))  # +-inf where only one distribution has mass


def jsd(p_data: list[int], p_g: list[int]) -> float:
    p, q = [c / sum(p_data) for c in p_data], [c / sum(p_g) for c in p_g]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda a, b: sum(x * math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0)  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def test_counts_are_distributions() -> None:
    assert sum(P_DATA) == sum(P_G) == 20


def test_value_at_the_optimal_discriminator_is_minus_log4_plus_twice_the_jsd() -> None:
    got = value(optimal_logits(P_DATA, P_G), P_DATA, P_G).item()
    assert 0 < jsd(P_DATA, P_G) < math.log(2)
    assert got == pytest.approx(-2 * math.log(2) + 2 * jsd(P_DATA, P_G), rel=1e-12)


def test_the_optimal_discriminator_beats_every_perturbed_one() -> None:
    star = optimal_logits(P_DATA, P_G)
    best = value(star, P_DATA, P_G)
    gen = torch.Generator().manual_seed(0)
    finite = torch.isfinite(star)
    for scale in (1e-3, 0.1, 1.0):
        for _ in range(100):
            delta = scale * torch.randn(len(star), generator=gen, dtype=torch.float64) * finite
            assert value(star + delta, P_DATA, P_G) < best
    # a discriminator that is not +-inf where only one distribution lives also does worse
    assert value(torch.where(finite, star, star.sign() * 5.0), P_DATA, P_G) < best


def test_a_numeric_optimiser_finds_the_optimal_discriminator() -> None:
    p_data, p_g = [6, 5, 4, 3, 1, 1], P_G  # both positive everywhere: D* has finite logits
    logits = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = -value(logits, p_data, p_g)
        loss.backward()
        return loss

    opt.step(closure)
    p, q = torch.tensor(p_data, dtype=torch.float64), torch.tensor(p_g, dtype=torch.float64)
    assert torch.allclose(torch.sigmoid(logits.detach()), p / (p + q), atol=1e-7)
    assert value(logits.detach(), p_data, p_g).item() == pytest.approx(-2 * math.log(2) + 2 * jsd(p_data, p_g),
                                                                       rel=1e-10)


def test_the_game_is_minimal_exactly_when_the_generator_matches_the_data() -> None:
    # C(G) = max_D V(G, D) = -log 4 at p_G = p_data, where D* = 1/2 everywhere ...
    same = value(optimal_logits(P_DATA, P_DATA)[torch.tensor(P_DATA) > 0], [c for c in P_DATA if c],
                 [c for c in P_DATA if c])
    assert same.item() == pytest.approx(-2 * math.log(2), rel=1e-12)
    assert torch.equal(torch.sigmoid(optimal_logits([1, 2], [1, 2])), torch.full((2,), 0.5, dtype=torch.float64))
    # ... and larger for every other generator, up to 0 for disjoint supports (JSD = log 2)
    for p_g in ([5, 5, 4, 3, 2, 1], P_G, [0, 0, 0, 0, 0, 20]):
        assert value(optimal_logits(P_DATA, p_g), P_DATA, p_g).item() > -2 * math.log(2) + 1e-3
    assert value(optimal_logits([10, 10, 0], [0, 0, 20]), [10, 10, 0], [0, 0, 20]).item() == 0.0


def test_jsd_saturates_where_the_wasserstein_estimate_does_not() -> None:
    # Arjovsky et al. 2017, example 1: P_0 = delta_0, P_theta = delta_theta. The GAN value at D* is 0
    # for every theta != 0 (JSD = log 2), while the WGAN critic estimate with the optimal 1-Lipschitz
    # critic f(x) = -x grows as |theta| and so still tells the generator where to go.
    wgan = build("loss", "wgan")
    for theta in (0.5, 1.0, 4.0):
        assert value(optimal_logits([20, 0], [0, 20]), [20, 0], [0, 20]).item() == 0.0
        real, fake = torch.tensor([0.0]), torch.tensor([theta])
        assert -wgan.discriminator_loss(-real, -fake).item() == pytest.approx(theta)


# -- WGAN-GP on a linear critic ------------------------------------------------------------------


class Linear(nn.Module):
    num_classes = None

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        return x @ self.w


@pytest.mark.parametrize("norm", [0.0, 0.3, 1.0, 2.5])
def test_gradient_penalty_of_a_linear_critic_is_lambda_norm_minus_one_squared(norm: float) -> None:
    gen = torch.Generator().manual_seed(int(10 * norm))
    w = torch.randn(2, generator=gen, dtype=torch.float64)
    w = w * norm / w.norm()
    d = Linear(w)
    real, fake = torch.randn(64, 2, generator=gen, dtype=torch.float64), 3 + torch.randn(64, 2, generator=gen)
    ctx = PenaltyContext(generator=nn.Identity(), discriminator=d, real=real, fake=fake.double(), labels=None,
                         fake_labels=None, latents=real, real_logits=None, fake_logits=None, step=0)
    for weight in (10.0, 1.0):
        gp = build("regularizer", "wgan-gp", weight=weight).penalty(ctx).item()
        assert gp == pytest.approx(weight * (norm - 1) ** 2, rel=1e-10, abs=1e-12)


# -- weight clipping in a real trainer step ------------------------------------------------------


def test_after_a_clipped_critic_step_every_weight_lies_in_the_clip_interval(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "wgan.toml", TINY)
    (reg,) = config.regularizers
    c = reg.params.clip
    assert reg.name == "weight-clipping" and c == 0.01 and config.train.n_critic == 5
    trainer = Trainer(config, tmp_path)
    opt_d = trainer.updates.optimizers["d"]
    assert isinstance(opt_d, torch.optim.RMSprop) and opt_d.defaults["lr"] == 5e-5
    d = trainer.network("discriminator")
    u = trainer.updates
    assert max(p.abs().max().item() for p in d.parameters()) > c  # DCGAN init: N(0, 0.02), BN scales ~1
    with u.phase("d"):  # one critic update, as the gan procedure makes it
        real = u.batch()["images"]
        with torch.no_grad():
            fake = u.net("generator")(u.latents())
        u.minimise(trainer.loss.discriminator_loss(u.net("discriminator")(real), u.net("discriminator")(fake)))
    for name, p in d.named_parameters():
        assert p.abs().max().item() <= c, name
    assert sum(int((p.abs() == c).sum()) for p in d.parameters()) > 0  # some weights sit on the boundary
    with u.phase("g"):  # the generator's step leaves the critic, and so the constraint, alone
        u.minimise(trainer.loss.generator_loss(u.net("discriminator")(u.net("generator")(u.latents())), None))
    assert all(p.abs().max().item() <= c for p in d.parameters())


# -- saturation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("d_fake", [1e-2, 1e-4, 1e-6])
def test_non_saturating_gradient_is_large_where_the_minimax_one_vanishes(d_fake: float) -> None:
    # G(z) = theta, D(x) = sigmoid(a x + b) fixed, theta placed so that D(G(z)) = d_fake (D rejects it).
    a = 2.0
    theta = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    b = math.log(d_fake / (1 - d_fake)) + a
    grads = {}
    for name in ("minimax", "non-saturating"):
        fake_logits = a * theta + b
        assert torch.sigmoid(fake_logits).item() == pytest.approx(d_fake)
        (grads[name],) = torch.autograd.grad(build("loss", name).generator_loss(fake_logits, None), theta)
    minimax, non_sat = grads["minimax"].item(), grads["non-saturating"].item()
    assert minimax == pytest.approx(-a * d_fake, rel=1e-9)  # d/dtheta log(1 - D) = -a D: vanishes with D
    assert non_sat == pytest.approx(-a * (1 - d_fake), rel=1e-9)  # d/dtheta -log D = -a (1 - D): about -a
    assert non_sat / minimax == pytest.approx((1 - d_fake) / d_fake, rel=1e-9)  # same direction, 1/D stronger
    assert abs(non_sat) > 0.95 * a and abs(minimax) < 0.05 * a
