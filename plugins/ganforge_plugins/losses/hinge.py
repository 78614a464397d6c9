"""The hinge GAN loss: Lim & Ye 2017, "Geometric GAN" (arXiv:1705.02894), as used by Miyato et al.
2018, "Spectral Normalization for GANs" (arXiv:1802.05957, section 4), SAGAN and BigGAN.

The discriminator is a soft-margin SVM on its raw outputs (margin ``m``, 1 in the papers):

    L_D = E_x[max(0, m - D(x))] + E_z[max(0, m + D(G(z)))],

and the generator moves its samples along the normal of the separating hyperplane:

    L_G = -E_z[D(G(z))].

Outputs that clear the margin no longer contribute to ``L_D``, so the discriminator stops pushing
samples that it already classifies confidently. Means run over every prediction, so a PatchGAN map
of predictions per image is averaged like one prediction per image.

Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): the objective of ``D(x|y)``, ``G(z|y)`` is
this same loss on the outputs of a conditional discriminator; the engine passes the labels to the
networks whenever their ``num_classes`` is set, so the loss needs no labels of its own.
"""

from __future__ import annotations

import attrs
import torch.nn.functional as F
from attrs import validators as v
from ganforge import hookimpl
from torch import Tensor


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *, margin: float = 1.0) -> Tensor:
    """``E[max(0, m - D(x))] + E[max(0, m + D(G(z)))]``."""
    return F.relu(margin - real_logits).mean() + F.relu(margin + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-E[D(G(z))]``."""
    return -fake_logits.mean()


@attrs.frozen(kw_only=True)
class HingeLossConfig:
    margin: float = attrs.field(default=1.0, validator=v.gt(0.0))  # m = 1 in both papers


class HingeLoss:
    """Hinge loss: D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))]."""

    generator_needs_real = False

    def __init__(self, config: HingeLossConfig) -> None:
        self.config = config

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return hinge_discriminator_loss(real_logits, fake_logits, margin=self.config.margin)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return hinge_generator_loss(fake_logits)


@hookimpl
def ganforge_register_losses(register):
    register("hinge", HingeLoss, HingeLossConfig)
