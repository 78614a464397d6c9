"""The relativistic average GAN as a training procedure (Jolicoeur-Martineau 2018, arXiv:1807.00734).

The discriminator judges whether a real sample is more realistic than the average fake, and the
generator the opposite, so that both players see real *and* fake samples in every update (eq. 7-8 with
the sigmoid of the standard GAN):

    L_D = E_x[softplus(-(C(x) - E_z C(G(z))))] + E_z[softplus(C(G(z)) - E_x C(x))]
    L_G = E_z[softplus(-(C(G(z)) - E_x C(x)))] + E_x[softplus(C(x) - E_z C(G(z)))]

It is written against ganforge's public API only: the loop hands ``train_step`` batches, latents and
phases, and does everything else (optimisers, EMA, penalties, checkpoints, resume, DDP).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataPlan, DataSpec, Network, NetworkBuilder, Preview, Update, hookimpl
from torch import Tensor


def relativistic_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """``L_D``: reals more realistic than the average fake, fakes less than the average real."""
    return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()


def relativistic_g_loss(real: Tensor, fake: Tensor) -> Tensor:
    """``L_G``: the same game with the roles of real and fake exchanged."""
    return F.softplus(-(fake - real.mean())).mean() + F.softplus(real - fake.mean()).mean()


@attrs.frozen(kw_only=True)
class RaGANConfig:
    n_critic: int = attrs.field(default=1, validator=v.ge(1))  # discriminator updates per generator update


class RaGAN:
    """The relativistic average GAN (Jolicoeur-Martineau 2018): both players compare real with fake."""

    def __init__(self, config: RaGANConfig, *, loss: Any, manager: Any) -> None:
        self.config = config  # the run's [loss] is not used: the relativistic objective is this procedure
        self.num_classes: int | None = None

    def prepare(self, dataset: Any) -> DataPlan:
        if not isinstance(getattr(dataset, "images", None), Tensor):
            raise ConfigError("data.name: example-ragan trains on samples (a dataset with images)")
        tensors = {"images": dataset.images}
        if dataset.labels is not None:
            tensors["labels"] = dataset.labels
        return DataPlan(streams={"data": tensors}, specs={"data": dataset.spec})

    def networks(self, build: NetworkBuilder, specs: Mapping[str, DataSpec]) -> dict[str, Network]:
        generator = build("generator", data=specs["data"])
        discriminator = build("discriminator", data=specs["data"])
        self.num_classes = specs["data"].num_classes if getattr(generator, "num_classes", None) else None
        return {"generator": Network(module=generator, optimizer="g", ema=True),
                "discriminator": Network(module=discriminator, optimizer="d")}

    def _scores(self, t: Update, fake_grad: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        real = t.batch()
        labels = real.get("labels") if self.num_classes else None
        z = t.latents()
        with torch.set_grad_enabled(fake_grad):
            fake = t.net("generator")(z, labels)
        D = t.net("discriminator")
        return D(real["images"], labels), D(fake, labels), real["images"], fake, labels

    def train_step(self, t: Update) -> None:
        for _ in range(self.config.n_critic):
            with t.phase("d"):
                real_logits, fake_logits, real, fake, labels = self._scores(t, fake_grad=False)
                t.minimise(relativistic_d_loss(real_logits, fake_logits), penalties=[t.context(
                    generator=t.module("generator"), discriminator=t.module("discriminator"), real=real,
                    fake=fake, latents=fake, labels=labels, fake_labels=labels, real_logits=real_logits,
                    fake_logits=fake_logits)])
        with t.phase("g"):
            real_logits, fake_logits, *_ = self._scores(t, fake_grad=True)
            t.minimise(relativistic_g_loss(real_logits, fake_logits))

    @torch.no_grad()
    def preview(self, view: Preview) -> tuple[Tensor, int]:
        n = view.count
        labels = torch.arange(n, device=view.device) % self.num_classes if self.num_classes else None
        out: Tensor = view.net("generator")(view.latents(n), labels)
        return out, self.num_classes or max(1, int(n**0.5))

    def evaluate(self, view: Preview) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def sample(self, view: Preview, n: int, *, generator: torch.Generator) -> Tensor:
        z = view.latents(n, generator=generator)
        labels = torch.randint(0, self.num_classes, (n,), generator=generator, device=view.device) \
            if self.num_classes else None
        out: Tensor = view.net("generator")(z, labels)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


@hookimpl
def ganforge_register_procedures(register):
    register("example-ragan", RaGAN, RaGANConfig)
