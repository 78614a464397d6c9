"""The hinge GAN loss: Lim & Ye 2017, "Geometric GAN" (arXiv:1705.02894), in the form used by
Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks" (arXiv:1802.05957,
eqs. 16 and 17).

The discriminator is trained as a soft-margin SVM on its raw outputs (logits): real samples are
pushed above ``+1``, fakes below ``-1``, and a prediction already beyond its margin costs nothing:

    L_D = E_x[relu(1 - D(x))] + E_z[relu(1 + D(G(z)))]

The generator moves its samples along the discriminator's normal direction, as in WGAN:

    L_G = -E_z[D(G(z))]

``margin`` replaces the 1 of L_D (1 in both papers); L_G does not depend on it. Means run over
every prediction, so a PatchGAN map of predictions per image is averaged like a scalar per image.
"""

from __future__ import annotations

import attrs
import torch.nn.functional as F
from attrs import validators as v
from ganforge import hookimpl
from torch import Tensor


@attrs.frozen(kw_only=True)
class HingeLossConfig:
    margin: float = attrs.field(default=1.0, validator=v.gt(0.0))


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, margin: float = 1.0) -> Tensor:
    """``E[relu(margin - D(x))] + E[relu(margin + D(G(z)))]``."""
    return F.relu(margin - real_logits).mean() + F.relu(margin + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-E[D(G(z))]``."""
    return -fake_logits.mean()


class HingeLoss:
    """The hinge GAN loss (Lim & Ye 2017; Miyato et al. 2018), from the example plugin."""

    generator_needs_real = False

    def __init__(self, config: HingeLossConfig) -> None:
        self.config = config

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return hinge_discriminator_loss(real_logits, fake_logits, self.config.margin)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return hinge_generator_loss(fake_logits)


@hookimpl
def ganforge_register_losses(register):
    register("example-hinge", HingeLoss, HingeLossConfig)
