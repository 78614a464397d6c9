"""Least squares GAN: Mao et al. 2017, "Least Squares Generative Adversarial Networks" (arXiv:1611.04076).

With ``a`` the target for fake data, ``b`` for real data and ``c`` the value the generator wants the
discriminator to give its samples (the a-b-c coding, eq. 2), on the raw (linear) outputs:

    L_D = 1/2 E_x[(D(x) - b)^2] + 1/2 E_z[(D(G(z)) - a)^2],
    L_G = 1/2 E_z[(D(G(z)) - c)^2].

The defaults are the 0-1 binary coding ``a = 0, b = c = 1`` of eq. 9, which the paper uses in its
experiments. ``a = -1, b = 1, c = 0`` satisfies ``b - c = 1, b - a = 2``, under which minimising
``L_G`` minimises the Pearson chi^2 divergence between ``p_data + p_g`` and ``2 p_g`` (eq. 8,
Theorem 1). The squared error keeps penalising fakes that lie on the correct side of the decision
boundary but far from the data, which gives the generator gradients where the sigmoid cross-entropy
saturates. Means run over every prediction, so a PatchGAN map is averaged like one output per image.

Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): the objective of ``D(x|y)``, ``G(z|y)`` is
this same loss on the outputs of a conditional discriminator (the paper's section 3.3 conditions
both networks on labels); the engine passes the labels to the networks whenever their
``num_classes`` is set, so the loss needs no labels of its own.
"""

from __future__ import annotations

from typing import Any

import attrs
from ganforge import hookimpl
from torch import Tensor


def least_squares_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *, a: float = 0.0,
                                     b: float = 1.0) -> Tensor:
    """``1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]``."""
    return 0.5 * (real_logits - b).square().mean() + 0.5 * (fake_logits - a).square().mean()


def least_squares_generator_loss(fake_logits: Tensor, *, c: float = 1.0) -> Tensor:
    """``1/2 E[(D(G(z)) - c)^2]``."""
    return 0.5 * (fake_logits - c).square().mean()


def _distinct_targets(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value == instance.a:
        raise ValueError(
            f"'{attribute.name}' must differ from 'a' (got b = a = {value!r}): with equal targets for real "
            "and fake data the discriminator has nothing to tell apart"
        )


@attrs.frozen(kw_only=True)
class LeastSquaresLossConfig:
    a: float = 0.0  # target of D for fake data (0-1 coding, eq. 9)
    b: float = attrs.field(default=1.0, validator=_distinct_targets)  # target of D for real data
    c: float = 1.0  # value G wants D to assign to fake data


class LeastSquaresLoss:
    """LSGAN: D minimises (D(x) - b)^2/2 + (D(G(z)) - a)^2/2, G minimises (D(G(z)) - c)^2/2 (Mao et al. 2017)."""

    generator_needs_real = False

    def __init__(self, config: LeastSquaresLossConfig) -> None:
        self.config = config

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return least_squares_discriminator_loss(real_logits, fake_logits, a=self.config.a, b=self.config.b)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return least_squares_generator_loss(fake_logits, c=self.config.c)


@hookimpl
def ganforge_register_losses(register):
    register("lsgan", LeastSquaresLoss, LeastSquaresLossConfig)
