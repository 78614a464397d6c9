"""The GAN procedure: minibatch stochastic gradient descent on the two-player game.

Goodfellow et al. 2014 (arXiv:1406.2661), Algorithm 1: for each generator update, ``n_critic``
(``train.n_critic``) discriminator updates on fresh real and fake batches, each descending
``L_D(D(x), D(G(z)))`` plus its penalties, then one generator update descending ``L_G(D(G(z)))``.
The adversarial loss ``L`` is the run's ``[loss]`` (minimax, non-saturating, WGAN, hinge, LSGAN ...).

Conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): when a network's ``num_classes`` is set,
it is given labels. A real batch is always scored under its own labels, and the generator draws
its fakes for the labels of a real batch, so fake labels follow the data's class frequencies.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import attrs
import torch
from ganforge import ConfigError, DataPlan, DataSpec, Loss, Network, NetworkBuilder, Preview, Update, hookimpl
from torch import Tensor


@attrs.frozen(kw_only=True)
class GANConfig:
    pass


class GAN:
    """Goodfellow et al. 2014, Algorithm 1: n_critic discriminator updates, then one generator update."""

    defaults: Mapping[str, Any] = {}

    def __init__(self, config: GANConfig, *, loss: Loss, manager: Any = None) -> None:
        self.config = config
        self.loss = loss
        self.num_classes: int | None = None
        self.g_conditional = self.d_conditional = False

    def prepare(self, dataset: Any) -> DataPlan:
        images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
        if not isinstance(images, Tensor):
            raise ConfigError(f"data.name: the gan procedure trains on samples (a dataset with images), got "
                              f"{type(dataset).__name__}; translation datasets train with pix2pix, cyclegan or stargan")
        tensors = {"images": images} if labels is None else {"images": images, "labels": labels}
        return DataPlan(streams={"data": tensors}, specs={"data": dataset.spec})

    def networks(self, build: NetworkBuilder, specs: Mapping[str, DataSpec]) -> dict[str, Network]:
        spec = specs["data"]
        generator = build("generator", data=spec)
        discriminator = build("discriminator", data=spec)
        self.g_conditional = getattr(generator, "num_classes", None) is not None
        self.d_conditional = getattr(discriminator, "num_classes", None) is not None
        if (self.g_conditional or self.d_conditional) and spec.num_classes is None:
            which = "generator" if self.g_conditional else "discriminator"
            raise ConfigError(f"data.name: the dataset is unlabelled, but the {which} is conditional and needs labels")
        self.num_classes = spec.num_classes if self.g_conditional else None
        if self.g_conditional != self.d_conditional:  # trains, but the labels teach the generator nothing
            conditional, other = (("generator", "discriminator") if self.g_conditional
                                  else ("discriminator", "generator"))
            print(f"ganforge: warning: the {conditional} is class-conditional and the {other} is not: no loss ties "
                  "a generated sample to a label (a class asked of the generator with sample --class is not "
                  "learned); make both conditional (such as cdcgan and cdcgan) or neither", file=sys.stderr)
        _check_one_growth_schedule(generator, discriminator)
        return {"generator": Network(module=generator, optimizer="g", ema=True),
                "discriminator": Network(module=discriminator, optimizer="d")}

    def _labels(self, labels: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        return (labels if self.g_conditional else None), (labels if self.d_conditional else None)

    def train_step(self, t: Update) -> None:
        for _ in range(t.n_critic):
            with t.phase("d"):
                real = t.batch()
                y_g, y_d = self._labels(real.get("labels"))
                z = t.latents()
                with torch.no_grad():
                    fake = t.net("generator")(z, y_g)
                D = t.net("discriminator")
                real_logits, fake_logits = D(real["images"], y_d), D(fake, y_d)
                loss = self.loss.discriminator_loss(real_logits, fake_logits)
                t.minimise(loss, penalties=[t.context(
                    generator=t.module("generator"), discriminator=t.module("discriminator"), real=real["images"],
                    fake=fake, latents=z, labels=y_d, fake_labels=y_d, real_logits=real_logits,
                    fake_logits=fake_logits)])
        with t.phase("g"):
            needs_real = self.loss.generator_needs_real or t.penalised("g")
            real = t.batch() if needs_real or self.g_conditional or self.d_conditional else None
            y_g, y_d = self._labels(real.get("labels") if real is not None else None)
            z = t.latents()
            fake = t.net("generator")(z, y_g)
            D = t.net("discriminator")
            fake_logits = D(fake, y_d)
            real_logits = D(real["images"], y_d) if real is not None and self.loss.generator_needs_real else None
            loss = self.loss.generator_loss(fake_logits, real_logits)
            contexts = [] if real is None else [t.context(
                generator=t.module("generator"), discriminator=t.module("discriminator"), real=real["images"],
                fake=fake, latents=z, labels=y_d, fake_labels=y_d, real_logits=real_logits, fake_logits=fake_logits)]
            t.minimise(loss, penalties=contexts)

    def _classes(self, n: int, device: torch.device) -> Tensor | None:
        return torch.arange(n, device=device) % self.num_classes if self.num_classes else None

    @torch.no_grad()
    def preview(self, view: Preview) -> tuple[Tensor, int]:
        """The fixed preview latents; a conditional model draws the classes in turn, one column each."""
        n = view.count
        out: Tensor = view.net("generator")(view.latents(n), self._classes(n, view.device))
        return out, self.num_classes or max(1, int(n**0.5))

    def evaluate(self, view: Preview) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def sample(self, view: Preview, n: int, *, generator: torch.Generator) -> Tensor:
        """``n`` samples with latents from ``generator``; labels drawn uniformly for a conditional model."""
        z = view.latents(n, generator=generator)
        labels = None
        if self.num_classes:
            labels = torch.randint(0, self.num_classes, (n,), device=view.device, generator=generator)
        out: Tensor = view.net("generator")(z, labels)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


@hookimpl
def ganforge_register_procedures(register):
    register("gan", GAN, GANConfig)


GROWTH_FIELDS = ("start_resolution", "fade_images", "stabilize_images")


def _check_one_growth_schedule(generator: torch.nn.Module, discriminator: torch.nn.Module) -> None:
    """Progressive growing (PGGAN section 2) grows G and D together, one resolution at a time: refuse a
    pair where only one grows (D would see full-detail real images beside upsampled fakes) or where
    their schedules (the networks' ``growth``) differ."""
    grows = {"generator": bool(getattr(generator, "progressive", False)),
             "discriminator": bool(getattr(discriminator, "progressive", False))}
    if not any(grows.values()):
        return
    if not all(grows.values()):
        still = next(k for k, v in grows.items() if not v)
        raise ConfigError(f"{still}.progressive: the {'discriminator' if still == 'generator' else 'generator'} "
                          f"grows progressively and the {still} does not; PGGAN grows both on one schedule (a "
                          f"growing {still}, such as 'pggan', with progressive = true and the same "
                          f"{', '.join(GROWTH_FIELDS)})")
    g, d = getattr(generator, "growth", None), getattr(discriminator, "growth", None)
    for field in GROWTH_FIELDS:
        if g is not None and d is not None and getattr(g, field, None) != getattr(d, field, None):
            raise ConfigError(f"discriminator.{field}: {getattr(d, field)!r}, but the generator's is "
                              f"{getattr(g, field)!r}; progressive growing moves both networks to the next "
                              "resolution together, so their schedules must be the same")
