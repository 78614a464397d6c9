"""StarGAN: multi-domain image-to-image translation with one generator (Choi et al. 2018,
arXiv:1711.09020).

``G(x, c)`` translates ``x`` into target domain ``c``; the discriminator has an auxiliary classifier
``D_cls`` over the domains. Eq. 5 and 6:

    L_D = -L_adv + lambda_cls L_cls^r          (real images classified as their own domain c')
    L_G =  L_adv + lambda_cls L_cls^f + lambda_rec L_rec

with ``L_cls^f`` classifying ``G(x, c)`` as the target ``c`` and the reconstruction (cycle) term
``L_rec = E|x - G(G(x, c), c')|``; ``lambda_cls = 1``, ``lambda_rec = 10``. Section 4.1 and appendix 7.1:
WGAN-GP with ``lambda_gp = 10``, five discriminator updates per generator update (``train.n_critic``),
Adam(1e-4, beta1 = 0.5), batch 16, the learning rate decayed linearly over the second half. Targets
are drawn uniformly among the other domains. The classification and reconstruction terms are
registered loss terms (``procedure.classification``, ``procedure.reconstruction``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import (
    AuxiliaryClassifier,
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

from ganforge_plugins.procedures.translation import (
    HeldOut,
    Stateless,
    batched,
    build_term,
    cross_entropy_term,
    image_generator,
    interleave,
    l1_term,
    no_samples,
    paper_schedule,
    require,
    spec_of,
    unit_l1,
)

DOMAINS = "mnist-styles, domains"


@attrs.frozen(kw_only=True)
class StarGANConfig:
    classification: LossTermChoice = attrs.field(factory=cross_entropy_term)  # L_cls
    classification_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))  # lambda_cls
    reconstruction: LossTermChoice = attrs.field(factory=l1_term)  # L_rec
    reconstruction_weight: float = attrs.field(default=10.0, validator=v.ge(0.0))  # lambda_rec
    adversarial_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))
    grid_size: int = attrs.field(default=8, validator=v.ge(1))


class StarGAN(Stateless):
    """Choi et al. 2018: one G(x, c) for every domain, a discriminator with a domain classifier, WGAN-GP."""

    penalises = ("d",)  # penalty contexts go to the discriminators' updates; the generator's has its own terms
    defaults: Mapping[str, Any] = {
        "generator": {"name": "stargan"}, "discriminator": {"name": "stargan"}, "loss": {"name": "wgan"},
        "regularizers": [{"name": "wgan-gp", "weight": 10.0}],
        **paper_schedule(1e-4, batch_size=16, n_critic=5),
    }

    def __init__(self, config: StarGANConfig, *, loss: Loss, manager: Any) -> None:
        self.config = config
        self.loss = loss
        self.classification = build_term(manager, config.classification, slot="classification",
                                         kind="classification")
        self.reconstruction = build_term(manager, config.reconstruction, slot="reconstruction", kind="distance")
        self.domains: tuple[str, ...] = ()
        self.shown = self.held_out = HeldOut(None)

    def prepare(self, dataset: Any) -> DataPlan:
        data = require(dataset, "domains", "stargan", DOMAINS)
        self.held_out = HeldOut(data.test)
        self.shown = HeldOut(data.test or data.train)
        spec = spec_of(data.train.images, names=data.train.domain_names)
        return DataPlan(streams={"data": {"images": data.train.images, "labels": data.train.domains}},
                        specs={"data": spec})

    def networks(self, build: NetworkBuilder, specs: Mapping[str, DataSpec]) -> dict[str, Network]:
        spec = specs["data"]
        self.domains = spec.class_names
        generator = image_generator(build, source=spec, target=spec)
        if getattr(generator, "num_classes", None) != spec.num_classes:
            raise ConfigError(f"generator: stargan needs a generator conditioned on the {spec.num_classes} target "
                              "domains (stargan, or resnet-generator with conditional = true)")
        discriminator = build("discriminator", data=spec)
        if not isinstance(discriminator, AuxiliaryClassifier):
            raise ConfigError("discriminator.name: stargan needs a discriminator with an auxiliary domain "
                              "classifier (a classify method), such as stargan")
        return {"generator": Network(module=generator, optimizer="g", ema=True),
                "discriminator": Network(module=discriminator, optimizer="d")}

    def _targets(self, t: Update, domains: Tensor) -> Tensor:
        """A target domain other than each image's own, uniformly."""
        return (domains + t.randint(1, len(self.domains))) % len(self.domains)

    def train_step(self, t: Update) -> None:
        c = self.config
        for _ in range(t.n_critic):
            with t.phase("d"):  # L_D = -L_adv + lambda_cls L_cls^r (+ the gradient penalty)
                real = t.batch()
                x, own = real["images"], real["labels"]
                target = self._targets(t, own)
                with torch.no_grad():
                    fake = t.net("generator")(x, target)
                D = t.net("discriminator")
                real_src, real_cls = D.classify(x)
                fake_src = D(fake)
                classification = self.classification(real_cls, own)
                t.log("d_classification", classification)
                loss = c.adversarial_weight * self.loss.discriminator_loss(real_src, fake_src) + \
                    c.classification_weight * classification
                t.minimise(loss, penalties=[t.context(
                    generator=t.module("generator"), discriminator=t.module("discriminator"), real=x, fake=fake,
                    latents=x, real_logits=real_src, fake_logits=fake_src)])
        with t.phase("g"):  # L_G = L_adv + lambda_cls L_cls^f + lambda_rec L_rec
            real = t.batch()
            x, own = real["images"], real["labels"]
            target = self._targets(t, own)
            G, D = t.net("generator"), t.net("discriminator")
            fake = G(x, target)
            fake_src, fake_cls = D.classify(fake)
            real_src = D(x).detach() if self.loss.generator_needs_real else None
            adversarial = self.loss.generator_loss(fake_src, real_src)
            classification = self.classification(fake_cls, target)
            reconstruction = self.reconstruction(G(fake, own), x)
            t.log("g_classification", classification)
            t.log("reconstruction", reconstruction)
            t.minimise(c.adversarial_weight * adversarial + c.classification_weight * classification
                       + c.reconstruction_weight * reconstruction)

    def translation(self, specs: Mapping[str, DataSpec], to: str | None) -> tuple[str, DataSpec, int | None]:
        """``--to DOMAIN``: the generator and the target domain's index."""
        domains = list(specs["data"].class_names)
        if to is None:
            raise ConfigError(f"--to: a StarGAN model needs a target domain; choose one of: {', '.join(domains)}")
        if to not in domains:
            raise ConfigError(f"--to: unknown target domain {to!r}; this model knows: {', '.join(domains)}")
        return "generator", specs["data"], domains.index(to)

    def _to(self, view: Preview, x: Tensor, k: int) -> Tensor:
        return batched(view.net("generator"), x, torch.full((len(x),), k, dtype=torch.long, device=x.device))

    def preview(self, view: Preview) -> tuple[Tensor, int]:
        """Rows of x | x in each domain | (the truth in each domain, for a ground-truth task)."""
        data = self.shown.on(view.device)
        x = data.images[: self.config.grid_size]
        columns = [x] + [self._to(view, x, k) for k in range(len(self.domains))]
        if data.truth is not None:
            columns += [data.truth[: len(x), k] for k in range(len(self.domains))]
        return interleave(columns), len(columns)

    def evaluate(self, view: Preview) -> dict[str, float]:
        if not self.held_out:
            return {}
        data = self.held_out.on(view.device)
        D = view.net("discriminator")
        correct, errors = [], []
        for k in range(len(self.domains)):
            out = self._to(view, data.images, k)
            predicted = torch.cat([D.classify(out[i:i + 256])[1].argmax(1) for i in range(0, len(out), 256)])
            correct.append((predicted == k).float().mean())
            if data.truth is not None:
                errors.append(unit_l1(out, data.truth[:, k]))
        logs = {"test_aux_accuracy": float(torch.stack(correct).mean())}
        if errors:
            logs["test_l1"] = sum(errors) / len(errors)
        return logs

    def sample(self, view: Preview, n: int, *, generator: torch.Generator) -> Tensor:
        raise no_samples("stargan")



@hookimpl
def ganforge_register_procedures(register):
    register("stargan", StarGAN, StarGANConfig)
