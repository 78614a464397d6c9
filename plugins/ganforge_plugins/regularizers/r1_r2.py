"""The R1 and R2 gradient penalties: Mescheder, Geiger & Nowozin 2018, "Which Training Methods for
GANs do actually Converge?" (arXiv:1801.04406), section 4.1, eqs. 9-10.

Zero-centred penalties on the discriminator's input gradient, on the data (R1) or on the
generator's samples (R2):

    R1 = gamma/2 E_{x ~ p_data}[||grad_x D(x)||^2],     R2 = gamma/2 E_{x ~ p_G}[||grad_x D(x)||^2].

Near the Nash equilibrium they remove the rotational component of the gradient field that makes
unregularised GAN training oscillate (Theorem 4.1, local convergence). The paper uses ``gamma = 10``
for most experiments. ``every`` is the lazy interval of StyleGAN2 (Karras et al. 2020,
arXiv:1912.04958, section 3.2: 16 there): the engine evaluates the penalty on every ``every``-th
discriminator update and multiplies it by ``every``.

Any discriminator works: a conditional one is scored with ``ctx.labels`` for R1 and
``ctx.fake_labels`` for R2; a PatchGAN map is reduced to each sample's mean prediction (the value
the losses average) before differentiating, and a PacGAN discriminator's gradient is taken per pack;
a batch-norm discriminator is differentiated through its batch statistics; the gradient is taken in
float32 with autocast off (see ``wgan_gp.input_gradient``).
"""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v
from ganforge import PenaltyContext, hookimpl
from torch import Tensor

from ganforge_plugins.regularizers.wgan_gp import input_gradient


def squared_gradient_norm(grad: Tensor) -> Tensor:
    """``E[||g||^2]`` over the rows of ``grad: [M, K]``, one row per critic value."""
    return grad.square().sum(dim=1).mean()


@attrs.frozen(kw_only=True)
class R1Config:
    gamma: float = attrs.field(default=10.0, validator=v.ge(0.0))  # gamma = 10, the paper's experiments
    every: int = attrs.field(default=1, validator=v.ge(1))  # lazy interval in discriminator updates


@attrs.frozen(kw_only=True)
class R2Config:
    gamma: float = attrs.field(default=10.0, validator=v.ge(0.0))
    every: int = attrs.field(default=1, validator=v.ge(1))


class R1Penalty:
    """R1: gamma/2 E[||grad D(x)||^2] on real data (Mescheder et al. 2018, eq. 9)."""

    target: Literal["discriminator"] = "discriminator"
    needs_labels = False

    def __init__(self, config: R1Config) -> None:
        self.config = config
        self.every = config.every

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        grad = input_gradient(ctx.discriminator, ctx.real, ctx.labels)
        return 0.5 * self.config.gamma * squared_gradient_norm(grad)


class R2Penalty:
    """R2: gamma/2 E[||grad D(x)||^2] on generated samples (Mescheder et al. 2018, eq. 10)."""

    target: Literal["discriminator"] = "discriminator"
    needs_labels = False

    def __init__(self, config: R2Config) -> None:
        self.config = config
        self.every = config.every

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        grad = input_gradient(ctx.discriminator, ctx.fake, ctx.fake_labels)
        return 0.5 * self.config.gamma * squared_gradient_norm(grad)


@hookimpl
def ganforge_register_regularizers(register):
    register("r1", R1Penalty, R1Config)
    register("r2", R2Penalty, R2Config)
