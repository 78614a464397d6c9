"""The Wasserstein GAN critic loss: Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN" (arXiv:1701.07875).

The critic ``f`` (the discriminator's raw output, no sigmoid) estimates the Kantorovich-Rubinstein
dual of the Wasserstein-1 distance (section 3, eqs. 2-3):

    W(P_r, P_g) = max_{||f||_L <= 1}  E_x[f(x)] - E_z[f(G(z))].

Both players minimise (Algorithm 1):

    L_D = E_z[f(G(z))] - E_x[f(x)],        L_G = -E_z[f(G(z))].

The estimate is only meaningful for a Lipschitz critic: pair this loss with a regularizer that
enforces it, ``weight-clipping`` (the paper's) or ``wgan-gp`` (Gulrajani et al. 2017), and with
``n_critic = 5`` (configs/wgan.toml, configs/wgan-gp.toml). Means run over every prediction, so a
PatchGAN map of critic values per image is averaged like one value per image.

Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): the objective of ``D(x|y)``, ``G(z|y)`` is
this same loss on the outputs of a conditional discriminator; the engine passes the labels to the
networks whenever their ``num_classes`` is set, so the loss needs no labels of its own.
"""

from __future__ import annotations

import attrs
from ganforge import hookimpl
from torch import Tensor


def critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``E[f(G(z))] - E[f(x)]``: the negated Wasserstein estimate the critic minimises."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-E[f(G(z))]``: the generator lowers the estimate by raising the critic's score of its samples."""
    return -fake_scores.mean()


@attrs.frozen(kw_only=True)
class WassersteinLossConfig:
    pass


class WassersteinLoss:
    """WGAN critic loss E[D(fake)] - E[D(real)], generator loss -E[D(fake)] (Arjovsky et al. 2017)."""

    generator_needs_real = False

    def __init__(self, config: WassersteinLossConfig) -> None:
        self.config = config

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return critic_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return wasserstein_generator_loss(fake_logits)


@hookimpl
def ganforge_register_losses(register):
    register("wgan", WassersteinLoss, WassersteinLossConfig)
