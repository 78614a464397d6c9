"""CycleGAN: unpaired image-to-image translation (Zhu et al. 2017, arXiv:1703.10593).

Two generators ``G: X -> Y`` and ``F: Y -> X`` and two discriminators ``D_Y``, ``D_X``. Eq. 3:
``L = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda L_cyc(G, F)`` with ``lambda = 10`` and eq. 2's cycle
consistency ``L_cyc = E|F(G(x)) - x| + E|G(F(y)) - y|``; section 5.2 adds the identity term
``E|G(y) - y| + E|F(x) - x|`` weighted ``0.5 lambda``. Section 4: least-squares adversarial losses,
discriminators shown a pool of the 50 latest fakes and their objective halved, Adam(2e-4, 0.5),
batch 1, a constant learning rate for the first half and a linear decay to zero over the second.
Each iteration updates G and F together on the full objective, then both discriminators, as the
authors' ``optimize_parameters`` does. The distance in the cycle and identity terms is a registered
loss term (``procedure.cycle``, ``procedure.identity``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import (
    ConfigError,
    DataPlan,
    DataSpec,
    Loss,
    LossTermChoice,
    Network,
    NetworkBuilder,
    Preview,
    Update,
    hookimpl,
)
from torch import Tensor

from ganforge_plugins.procedures.image_pool import ImagePool
from ganforge_plugins.procedures.translation import (
    HeldOut,
    batched,
    build_term,
    image_generator,
    interleave,
    l1_term,
    no_samples,
    paper_schedule,
    require,
    spec_of,
    unit_l1,
)

UNPAIRED = "mnist-thin2bold, unaligned"


@attrs.frozen(kw_only=True)
class CycleGANConfig:
    cycle: LossTermChoice = attrs.field(factory=l1_term)  # the distance of L_cyc
    cycle_weight: float = attrs.field(default=10.0, validator=v.ge(0.0))  # lambda
    identity: LossTermChoice = attrs.field(factory=l1_term)
    identity_weight: float = attrs.field(default=5.0, validator=v.ge(0.0))  # 0.5 lambda; 0 drops the term
    adversarial_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))
    pool_size: int = attrs.field(default=50, validator=v.ge(0))  # 0: no pool
    discriminator_scale: float = attrs.field(default=0.5, validator=v.gt(0.0))  # D's objective halved
    grid_size: int = attrs.field(default=8, validator=v.ge(1))


class CycleGAN:
    """Zhu et al. 2017: G: X -> Y and F: Y -> X with cycle consistency, LSGAN, pools of 50 fakes."""

    penalises = ("d",)  # penalty contexts go to the discriminators' updates; the generator's has its own terms
    defaults: Mapping[str, Any] = {
        "generator": {"name": "resnet-generator", "n_blocks": 9},
        "discriminator": {"name": "patchgan", "norm": "instance-norm"}, "loss": {"name": "lsgan"},
        **paper_schedule(2e-4, batch_size=1),
    }

    def __init__(self, config: CycleGANConfig, *, loss: Loss, manager: Any) -> None:
        self.config = config
        self.loss = loss
        self.cycle = build_term(manager, config.cycle, slot="cycle", kind="distance")
        self.identity = build_term(manager, config.identity, slot="identity", kind="distance")
        self.pool_x, self.pool_y = ImagePool(config.pool_size), ImagePool(config.pool_size)
        self.same_channels = True
        self.shown = self.held_out = HeldOut(None)

    def prepare(self, dataset: Any) -> DataPlan:
        data = require(dataset, "unpaired", "cyclegan", UNPAIRED)
        self.held_out = HeldOut(data.test)
        self.shown = HeldOut(data.test or data.train)
        return DataPlan(streams={"x": {"images": data.train.x}, "y": {"images": data.train.y}},
                        specs={"x": spec_of(data.train.x), "y": spec_of(data.train.y)})

    def networks(self, build: NetworkBuilder, specs: Mapping[str, DataSpec]) -> dict[str, Network]:
        x, y = specs["x"], specs["y"]
        self.same_channels = x.channels == y.channels
        return {
            "generator": Network(module=image_generator(build, source=x, target=y), optimizer="g", ema=True),
            "generator_f": Network(module=image_generator(build, source=y, target=x), optimizer="g", ema=True),
            "discriminator_x": Network(module=build("discriminator", data=x), optimizer="d"),
            "discriminator_y": Network(module=build("discriminator", data=y), optimizer="d"),
        }

    def train_step(self, t: Update) -> None:
        c = self.config
        x, y = t.batch("x")["images"], t.batch("y")["images"]
        with t.phase("g"):
            G, F = t.net("generator"), t.net("generator_f")
            D_X, D_Y = t.net("discriminator_x"), t.net("discriminator_y")
            fake_y, fake_x = G(x), F(y)
            cycle = self.cycle(F(fake_y), x) + self.cycle(G(fake_x), y)  # eq. 2
            adversarial = self._generator_loss(D_Y, fake_y, y) + self._generator_loss(D_X, fake_x, x)
            loss = c.adversarial_weight * adversarial + c.cycle_weight * cycle
            t.log("cycle", cycle)
            t.log("g_adversarial", adversarial)
            if c.identity_weight > 0 and self.same_channels:
                identity = self.identity(G(y), y) + self.identity(F(x), x)
                t.log("identity", identity)
                loss = loss + c.identity_weight * identity
            t.minimise(loss)
        with t.phase("d"):
            # the pools see the global batch, so every process draws the same past fakes
            pooled_y = t.shard(self.pool_y.query(t.gather(fake_y.detach()), generator=t.generator))
            pooled_x = t.shard(self.pool_x.query(t.gather(fake_x.detach()), generator=t.generator))
            loss = x.new_zeros(())
            contexts = []
            for name, real, fake, source in (("discriminator_y", y, pooled_y, x), ("discriminator_x", x, pooled_x, y)):
                real_logits, fake_logits = t.net(name)(real), t.net(name)(fake)
                loss = loss + c.discriminator_scale * self.loss.discriminator_loss(real_logits, fake_logits)
                contexts.append(t.context(generator=t.module("generator"), discriminator=t.module(name), real=real,
                                          fake=fake, latents=source, real_logits=real_logits, fake_logits=fake_logits))
            t.minimise(loss, penalties=contexts)

    def _generator_loss(self, D: torch.nn.Module, fake: Tensor, real: Tensor) -> Tensor:
        real_logits = D(real).detach() if self.loss.generator_needs_real else None
        loss: Tensor = self.loss.generator_loss(D(fake), real_logits)
        return loss

    def translation(self, specs: Mapping[str, DataSpec], to: str | None) -> tuple[str, DataSpec, int | None]:
        """``--to B`` (the default) translates with G from X, ``--to A`` with F from Y."""
        if to not in (None, "A", "B"):
            raise ConfigError(f"--to: a CycleGAN model translates to domain A (with F) or B (with G), got {to!r}")
        return ("generator", specs["x"], None) if to in (None, "B") else ("generator_f", specs["y"], None)

    def preview(self, view: Preview) -> tuple[Tensor, int]:
        """Rows of x | G(x) | the truth for G(x) (a ground-truth task) or F(G(x))."""
        data = self.shown.on(view.device)
        x = data.x[: self.config.grid_size]
        gx = batched(view.net("generator"), x)
        third = data.x_truth[: len(x)] if data.x_truth is not None else batched(view.net("generator_f"), gx)
        return interleave([x, gx, third]), 3

    def evaluate(self, view: Preview) -> dict[str, float]:
        if not self.held_out:
            return {}
        data = self.held_out.on(view.device)
        G, F = view.net("generator"), view.net("generator_f")
        gx, fy = batched(G, data.x), batched(F, data.y)
        out = {"test_cycle": 0.5 * (unit_l1(batched(F, gx), data.x) + unit_l1(batched(G, fy), data.y))}
        if data.x_truth is not None:
            out["test_l1"] = unit_l1(gx, data.x_truth)
        if data.y_truth is not None:
            out["test_l1_f"] = unit_l1(fy, data.y_truth)
        return out

    def sample(self, view: Preview, n: int, *, generator: torch.Generator) -> Tensor:
        raise no_samples("cyclegan")

    def state_dict(self) -> dict[str, Any]:
        return {"pool_x": self.pool_x.state_dict(), "pool_y": self.pool_y.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pool_x.load_state_dict(state["pool_x"])
        self.pool_y.load_state_dict(state["pool_y"])


@hookimpl
def ganforge_register_procedures(register):
    register("cyclegan", CycleGAN, CycleGANConfig)
