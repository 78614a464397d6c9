"""The original GAN objective: Goodfellow et al. 2014, "Generative Adversarial Nets" (arXiv:1406.2661).

The value function (eq. 1) is ``V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]`` with
``D = sigmoid(logits)``. The discriminator maximises V, i.e. minimises

    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))] = E[softplus(-real)] + E[softplus(fake)].

The **minimax** generator minimises V itself: ``L_G = E_z[log(1 - D(G(z)))] = -E[softplus(fake)]``;
its gradient vanishes when D confidently rejects the fakes (``D(G(z)) -> 0``), early in training.
The **non-saturating** generator (section 3 of the paper) instead maximises ``log D(G(z))``:
``L_G = -E_z[log D(G(z))] = E[softplus(-fake)]``, same fixed point, strong gradients early on.
``softplus`` keeps both exact and finite for any logit. Means run over every prediction, so a
PatchGAN map of predictions per image is averaged like a scalar per image.

Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784, eq. 2): ``V(D, G) = E_x[log D(x|y)] +
E_z[log(1 - D(G(z|y)|y))]`` is this same objective on the outputs of a conditional discriminator;
the engine passes the labels to the networks whenever their ``num_classes`` is set, so the loss
needs no labels of its own.
"""

from __future__ import annotations

import attrs
import torch.nn.functional as F
from ganforge import hookimpl
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-E[log D(x)] - E[log(1 - D(G(z)))]``, the negated value function."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """``E[log(1 - D(G(z)))]``: the saturating generator loss of the minimax game."""
    return -F.softplus(fake_logits).mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-E[log D(G(z))]``: the non-saturating generator loss."""
    return F.softplus(-fake_logits).mean()


@attrs.frozen(kw_only=True)
class MinimaxGANConfig:
    pass


@attrs.frozen(kw_only=True)
class NonSaturatingGANConfig:
    pass


class MinimaxGAN:
    """The minimax GAN loss with the saturating generator loss (Goodfellow et al. 2014, eq. 1)."""

    generator_needs_real = False

    def __init__(self, config: MinimaxGANConfig) -> None:
        self.config = config

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return minimax_generator_loss(fake_logits)


class NonSaturatingGAN(MinimaxGAN):
    """The GAN loss with the non-saturating generator loss -log D(G(z)) (Goodfellow et al. 2014, sec. 3)."""

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return non_saturating_generator_loss(fake_logits)


@hookimpl
def ganforge_register_losses(register):
    register("minimax", MinimaxGAN, MinimaxGANConfig)
    register("non-saturating", NonSaturatingGAN, NonSaturatingGANConfig)
