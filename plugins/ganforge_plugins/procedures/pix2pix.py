"""pix2pix: image-to-image translation with a conditional GAN (Isola et al. 2017, arXiv:1611.07004).

Eq. 4: ``G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G)`` with ``lambda = 100``, where the
discriminator (a PatchGAN) scores ``concat(x, y)`` pairs of source and target, and
``L_L1 = E|y - G(x)|``. Section 3.3: D's objective is halved, and the two alternate one gradient step
each; Adam(2e-4, beta1 = 0.5), batch 1, the learning rate constant and then linearly decayed.
The only noise is the U-Net's dropout. ``adversarial_weight = 0`` trains the same U-Net with the
reconstruction term alone (no discriminator), the baseline that shows what the GAN adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import DataPlan, DataSpec, Loss, LossTermChoice, Network, NetworkBuilder, Preview, Update, hookimpl
from torch import Tensor

from ganforge_plugins.procedures.translation import (
    HeldOut,
    Stateless,
    batched,
    build_term,
    conditional_discriminator,
    image_generator,
    interleave,
    l1_term,
    no_samples,
    paper_schedule,
    require,
    spec_of,
    unit_l1,
)

PAIRED = "edges2mnist, cifar-colorize, aligned"


@attrs.frozen(kw_only=True)
class Pix2PixConfig:
    reconstruction: LossTermChoice = attrs.field(factory=l1_term)  # L_L1
    reconstruction_weight: float = attrs.field(default=100.0, validator=v.ge(0.0))  # lambda
    adversarial_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))  # 0: the reconstruction alone
    discriminator_scale: float = attrs.field(default=0.5, validator=v.gt(0.0))  # section 3.3: D's objective / 2
    grid_size: int = attrs.field(default=8, validator=v.ge(1))  # rows of source | output | target


class Pix2Pix(Stateless):
    """Isola et al. 2017: a U-Net G and a PatchGAN D on (source, target) pairs, L_cGAN + 100 L1."""

    penalises = ("d",)  # penalty contexts go to the discriminators' updates; the generator's has its own terms
    defaults: Mapping[str, Any] = {
        "generator": {"name": "unet"}, "discriminator": {"name": "patchgan"}, "loss": {"name": "non-saturating"},
        **paper_schedule(2e-4, batch_size=1),
    }

    def __init__(self, config: Pix2PixConfig, *, loss: Loss, manager: Any) -> None:
        self.config = config
        self.loss = loss
        self.reconstruction = build_term(manager, config.reconstruction, slot="reconstruction", kind="distance")
        self.adversarial = config.adversarial_weight > 0
        self.shown = self.held_out = HeldOut(None)

    def prepare(self, dataset: Any) -> DataPlan:
        data = require(dataset, "paired", "pix2pix", PAIRED)
        self.held_out = HeldOut(data.test)
        self.shown = HeldOut(data.test or data.train)
        return DataPlan(streams={"data": {"source": data.train.a, "target": data.train.b}},
                        specs={"data": spec_of(data.train.b), "source": spec_of(data.train.a)})

    def networks(self, build: NetworkBuilder, specs: Mapping[str, DataSpec]) -> dict[str, Network]:
        target, source = specs["data"], specs["source"]
        nets = {"generator": Network(module=image_generator(build, source=source, target=target), optimizer="g",
                                     ema=True)}
        if self.adversarial:
            nets["discriminator"] = Network(
                module=conditional_discriminator(build, data=target, condition=source), optimizer="d")
        return nets

    def train_step(self, t: Update) -> None:
        c = self.config
        pair = t.batch()
        x, y = pair["source"], pair["target"]
        with t.phase("g"):  # G(x) once: D's step and G's step see the same output (and the same dropout)
            fake = t.net("generator")(x)
        if self.adversarial:
            with t.phase("d"):  # max_D L_cGAN: real pairs (x, y) against fake pairs (x, G(x))
                D = t.net("discriminator")
                real_logits, fake_logits = D(y, condition=x), D(fake.detach(), condition=x)
                d_loss = c.discriminator_scale * self.loss.discriminator_loss(real_logits, fake_logits)
                t.minimise(d_loss, penalties=[t.context(
                    generator=t.module("generator"), discriminator=_Conditioned(t.module("discriminator"), x),
                    real=y, fake=fake, latents=x, real_logits=real_logits, fake_logits=fake_logits)])
        with t.phase("g"):  # min_G L_cGAN + lambda L_L1, against the discriminator just updated
            reconstruction = self.reconstruction(fake, y)
            t.log("reconstruction", reconstruction)
            g_loss = c.reconstruction_weight * reconstruction
            if self.adversarial:
                D = t.net("discriminator")
                real_logits = D(y, condition=x) if self.loss.generator_needs_real else None
                adversarial = self.loss.generator_loss(D(fake, condition=x), real_logits)
                t.log("g_adversarial", adversarial)
                g_loss = g_loss + c.adversarial_weight * adversarial
            t.minimise(g_loss)

    def translation(self, specs: Mapping[str, DataSpec], to: str | None) -> tuple[str, DataSpec, int | None]:
        """``ganforge translate``: the network that maps to ``to``, the spec of its input, the target domain."""
        from ganforge import ConfigError

        if to not in (None, "B"):
            raise ConfigError(f"--to: a pix2pix model translates A -> B only, got {to!r}")
        return "generator", specs["source"], None

    def preview(self, view: Preview) -> tuple[Tensor, int]:
        data = self.shown.on(view.device)
        x, y = data.a[: self.config.grid_size], data.b[: self.config.grid_size]
        return interleave([x, batched(view.net("generator"), x), y]), 3

    def evaluate(self, view: Preview) -> dict[str, float]:
        if not self.held_out:
            return {}
        data = self.held_out.on(view.device)
        return {"test_l1": unit_l1(batched(view.net("generator"), data.a), data.b)}

    def sample(self, view: Preview, n: int, *, generator: torch.Generator) -> Tensor:
        raise no_samples("pix2pix")



class _Conditioned(torch.nn.Module):
    """The conditional discriminator with its condition bound, for penalties that call ``D(x)``."""

    def __init__(self, discriminator: torch.nn.Module, condition: Tensor) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.condition = condition

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        out: Tensor = self.discriminator(x, condition=self.condition[: x.shape[0]])
        return out


@hookimpl
def ganforge_register_procedures(register):
    register("pix2pix", Pix2Pix, Pix2PixConfig)
