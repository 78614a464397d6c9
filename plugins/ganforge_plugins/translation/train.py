"""Training procedures for image-to-image translation: pix2pix, CycleGAN and StarGAN, composed from
registered plugins (generators, discriminators, adversarial losses, regularizers) through the public
``ganforge`` API only.

- **pix2pix** (Isola et al. 2017, arXiv:1611.07004, eq. 4): ``G* = arg min_G max_D L_cGAN(G, D) +
  lambda L_L1(G)`` with ``lambda = 100``; the PatchGAN scores ``concat(A, B)``; D's objective is
  halved (section 3.3); Adam(2e-4, beta1 = 0.5). ``adversarial_weight = 0`` trains the same U-Net
  with L1 alone, the baseline that shows what the discriminator adds.
- **CycleGAN** (Zhu et al. 2017, arXiv:1703.10593, eqs. 3 and section 4): ``L_LSGAN(G, D_Y) +
  L_LSGAN(F, D_X) + lambda L_cyc + 0.5 lambda L_idt`` with ``lambda = 10``; the discriminators see a
  pool of 50 past fakes and halve their objective; Adam(2e-4, 0.5), constant learning rate for the
  first half and linear decay to zero over the second.
- **StarGAN** (Choi et al. 2018, arXiv:1711.09020, eqs. 5-6): ``L_D = -L_adv + lambda_cls L_cls^r``
  and ``L_G = L_adv + lambda_cls L_cls^f + lambda_rec L_rec``, ``lambda_cls = 1``, ``lambda_rec = 10``,
  WGAN-GP (``lambda_gp = 10``), 5 critic updates per generator update, Adam(1e-4, 0.5).

A run directory holds ``config.toml`` (resolved), ``metrics.jsonl`` (losses every ``log_every`` steps,
test-split errors every ``sample_every``), ``samples/step-*.png`` (rows of input | output | ground
truth) and ``checkpoints/step-*/`` in the engine's checkpoint layout (``weights.safetensors``,
``state.pt``, ``meta.json``, ``config.toml``), written into a temporary directory, fsynced and
renamed, with a ``latest`` pointer replaced atomically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import (
    AuxiliaryClassifier,
    Choice,
    ConfigError,
    Constraint,
    DataSpec,
    DiscriminatorChoice,
    GeneratorChoice,
    LossChoice,
    OutputError,
    Penalty,
    PenaltyContext,
    RegularizerChoice,
    __version__,
    atomic_write_text,
    dump_toml,
    linear_decay,
    make_converter,
    resolve_device,
    save_samples,
    structure_as,
)
from ganforge import (
    save_checkpoint as _save_checkpoint,
)
from torch import Tensor, nn

from ganforge_plugins.translation.data import (
    DomainData,
    PairedData,
    TranslationDataConfig,
    UnpairedData,
    load_translation_data,
)
from ganforge_plugins.translation.losses import (
    ImagePool,
    cycle_loss,
    domain_classification_loss,
    identity_loss,
    l1,
    reconstruction_loss,
)

METHODS = ("pix2pix", "cyclegan", "stargan")
DATA_KIND = {"pix2pix": "paired", "cyclegan": "unpaired", "stargan": "domains"}

# The papers' components; a table in the config replaces a default of another name and overrides one of the same.
DEFAULTS: dict[str, dict[str, Any]] = {
    "pix2pix": {"generator": {"name": "unet"}, "discriminator": {"name": "patchgan"},
                "loss": {"name": "non-saturating"}, "regularizers": (), "lr": 2e-4, "batch_size": 1, "n_critic": 1},
    "cyclegan": {"generator": {"name": "resnet-generator", "n_blocks": 9},
                 "discriminator": {"name": "patchgan", "norm": "instance"},
                 "loss": {"name": "lsgan"}, "regularizers": (), "lr": 2e-4, "batch_size": 1, "n_critic": 1},
    "stargan": {"generator": {"name": "resnet-generator", "n_blocks": 6, "conditional": True},
                "discriminator": {"name": "stargan"}, "loss": {"name": "wgan"},
                "regularizers": ({"name": "wgan-gp", "weight": 10.0},), "lr": 1e-4, "batch_size": 16, "n_critic": 5},
}


@attrs.frozen(kw_only=True)
class TranslationConfig:
    """``ganforge translation-train`` settings; ``None`` and empty tables take the method's defaults."""

    method: str = attrs.field(default="pix2pix", validator=v.in_(METHODS))
    data: TranslationDataConfig = attrs.field(factory=TranslationDataConfig)
    test_split: str = attrs.field(default="test", validator=v.in_(("test", "train", "none")))  # grids and errors
    generator: dict[str, Any] = attrs.field(factory=dict)  # {name = "unet", ...}; CycleGAN's F is built alike
    discriminator: dict[str, Any] = attrs.field(factory=dict)
    loss: dict[str, Any] = attrs.field(factory=dict)
    regularizers: tuple[dict[str, Any], ...] | None = None
    adversarial_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))  # 0: no discriminator at all
    l1_weight: float = attrs.field(default=100.0, validator=v.ge(0.0))  # pix2pix lambda
    cycle_weight: float = attrs.field(default=10.0, validator=v.ge(0.0))  # CycleGAN lambda
    identity_weight: float = attrs.field(default=0.5, validator=v.ge(0.0))  # times cycle_weight
    pool_size: int = attrs.field(default=50, validator=v.ge(0))
    cls_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))  # StarGAN lambda_cls
    rec_weight: float = attrs.field(default=10.0, validator=v.ge(0.0))  # StarGAN lambda_rec
    n_critic: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))
    steps: int = attrs.field(default=10_000, validator=v.ge(1))
    time_limit: float = attrs.field(default=0.0, validator=v.ge(0.0))  # seconds of training; 0 = none
    batch_size: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))
    lr: float | None = attrs.field(default=None, validator=v.optional(v.gt(0.0)))
    betas: tuple[float, float] = (0.5, 0.999)
    decay_from: float = attrs.field(default=0.5, validator=[v.ge(0.0), v.le(1.0)])  # lr decays after this fraction
    seed: int = 0
    device: str = "auto"
    log_every: int = attrs.field(default=50, validator=v.ge(1))
    sample_every: int = attrs.field(default=500, validator=v.ge(1))
    checkpoint_every: int = attrs.field(default=1000, validator=v.ge(1))
    keep_checkpoints: int = attrs.field(default=2, validator=v.ge(1))
    grid_size: int = attrs.field(default=8, validator=v.ge(1))
    eval_size: int = attrs.field(default=256, validator=v.ge(1))  # test images for the logged errors
    progress: bool = True


@attrs.frozen(kw_only=True)
class _Components:
    generator: GeneratorChoice
    discriminator: DiscriminatorChoice
    loss: LossChoice
    regularizers: tuple[RegularizerChoice, ...]


@attrs.frozen(kw_only=True)
class Resolved:
    """The config with the method's defaults filled in and every component structured."""

    config: TranslationConfig
    generator: Choice
    discriminator: Choice
    loss: Choice
    regularizers: tuple[Choice, ...]
    n_critic: int
    batch_size: int
    lr: float


def _table(default: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    if "name" in given and given["name"] != default.get("name"):
        return dict(given)  # another component: the default's parameters belonged to its config class
    return {**default, **given}


def resolve(config: TranslationConfig, manager: Any) -> Resolved:
    """Fill in the method's defaults and structure every component, or raise one :class:`ConfigError`
    listing every problem."""
    defaults = DEFAULTS[config.method]
    if config.data.kind != DATA_KIND[config.method]:
        raise ConfigError(f"data.name: {config.method} trains on {DATA_KIND[config.method]} data, but "
                          f"{config.data.name!r} is {config.data.kind}; choose one of: "
                          f"{', '.join(n for n, k in _kinds().items() if k == DATA_KIND[config.method])}")
    raw = {"generator": _table(defaults["generator"], config.generator),
           "discriminator": _table(defaults["discriminator"], config.discriminator),
           "loss": _table(defaults["loss"], config.loss),
           "regularizers": list(defaults["regularizers"] if config.regularizers is None else config.regularizers)}
    parts = structure_as(_Components, raw, manager, source="translation config")
    g, d, loss, regs = parts.generator, parts.discriminator, parts.loss, parts.regularizers
    return Resolved(config=config, generator=g, discriminator=d, loss=loss, regularizers=regs,
                    n_critic=config.n_critic or defaults["n_critic"],
                    batch_size=config.batch_size or defaults["batch_size"], lr=config.lr or defaults["lr"])


def _kinds() -> dict[str, str]:
    from ganforge_plugins.translation.data import KIND

    return KIND


def resolved_toml(resolved: Resolved, manager: Any) -> str:
    """The config with every default stated: it loads back to the same run."""
    conv = make_converter(manager)
    raw = conv.unstructure(resolved.config)
    raw.update(generator=conv.unstructure(resolved.generator), discriminator=conv.unstructure(resolved.discriminator),
               loss=conv.unstructure(resolved.loss), regularizers=[conv.unstructure(r) for r in resolved.regularizers],
               n_critic=resolved.n_critic, batch_size=resolved.batch_size, lr=resolved.lr)
    return dump_toml(raw)


# -- networks -------------------------------------------------------------------------------------


def build_generator(choice: Choice, manager: Any, *, in_channels: int, out: DataSpec) -> nn.Module:
    """A generator mapping ``in_channels`` images to ``out``-shaped ones (its ``in_channels`` filled in)."""
    params = choice.params
    if in_channels != out.channels:
        if not hasattr(params, "in_channels"):
            raise ConfigError(f"generator.name: {choice.name!r} has no in_channels setting, but the source images "
                              f"have {in_channels} channels and the targets {out.channels}")
        if params.in_channels is None:
            params = attrs.evolve(params, in_channels=in_channels)
    net: nn.Module = manager.get("generator", choice.name).factory(params, data=out)
    shape = getattr(net, "latent_spaces", (None,))[0]
    if shape is None or tuple(shape.shape) != (in_channels, *out.shape[1:]):
        got = "none" if shape is None else tuple(shape.shape)
        raise ConfigError(f"generator.name: {choice.name!r} is not image-conditional for this data: it takes "
                          f"{got} where the source images are {(in_channels, *out.shape[1:])}; use unet or "
                          f"resnet-generator")
    return net


def build_discriminator(choice: Choice, manager: Any, *, data: DataSpec, condition_channels: int = 0) -> nn.Module:
    params = choice.params
    if condition_channels and hasattr(params, "condition_channels") and not params.condition_channels:
        params = attrs.evolve(params, condition_channels=condition_channels)  # pix2pix scores concat(A, B)
    net: nn.Module = manager.get("discriminator", choice.name).factory(params, data=data)
    return net


class _Conditioned(nn.Module):
    """A conditional discriminator with its condition bound, for penalties that call ``D(x)``."""

    def __init__(self, discriminator: nn.Module, condition: Tensor) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.condition = condition

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        out: Tensor = self.discriminator(x, condition=self.condition[: x.shape[0]])
        return out


def _to_unit_l1(a: Tensor, b: Tensor) -> float:
    """L1 error between images in ``[-1, 1]`` expressed for images in ``[0, 1]``."""
    return float(l1(a, b)) / 2.0


# -- procedures -----------------------------------------------------------------------------------


class Procedure:
    """What the three methods share: networks, optimisers, the learning-rate schedule, penalties."""

    method = ""

    def __init__(self, resolved: Resolved, manager: Any, train: Any, test: Any | None, device: torch.device) -> None:
        self.resolved, self.config, self.manager, self.device = resolved, resolved.config, manager, device
        self.train_data, self.test_data = train, test
        self.loss = manager.get("loss", resolved.loss.name).factory(resolved.loss.params)
        self.regularizers = [manager.get("regularizer", r.name).factory(r.params) for r in resolved.regularizers]
        for r, choice in zip(self.regularizers, resolved.regularizers, strict=True):
            if isinstance(r, Penalty) and r.target != "discriminator":
                raise ConfigError(f"regularizers: {choice.name!r} targets the {r.target}; translation procedures "
                                  f"take discriminator penalties and constraints only")
        self.data_rng = torch.Generator().manual_seed(self.config.seed + 1)
        self.penalty_rng = torch.Generator(device=device).manual_seed(self.config.seed + 2)
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}

    @property
    def adversarial(self) -> bool:
        return self.config.adversarial_weight > 0

    def _optimise(self, *names: str, group: str) -> None:
        params = [p for n in names for p in self.networks[n].parameters()]
        opt = torch.optim.Adam(params, lr=self.resolved.lr, betas=self.config.betas)
        constant = round(self.config.steps * self.config.decay_from)
        decay = self.config.steps - constant
        self.optimizers[group] = opt
        self.schedulers[group] = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: linear_decay(step, constant, decay))

    def _draw(self, n: int) -> Tensor:
        return torch.randint(n, (self.resolved.batch_size,), generator=self.data_rng).to(self.device)

    def discriminator_penalty(self, discriminator: nn.Module, real: Tensor, fake: Tensor, source: Tensor,
                              real_logits: Tensor, fake_logits: Tensor, step: int) -> Tensor:
        total = real_logits.new_zeros(())
        for reg in self.regularizers:
            if isinstance(reg, Penalty) and step % reg.every == 0:
                ctx = PenaltyContext(generator=self.networks["generator"], discriminator=discriminator,
                                     real=real.detach(), fake=fake.detach(), labels=None, fake_labels=None,
                                     latents=source, real_logits=real_logits, fake_logits=fake_logits, step=step,
                                     rng=self.penalty_rng)
                total = total + reg.every * reg.penalty(ctx)
        return total

    def constrain(self, *discriminators: nn.Module) -> None:
        for reg in self.regularizers:
            if isinstance(reg, Constraint):
                for d in discriminators:
                    reg.constrain(d)

    def _gen_adv(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        loss: Tensor = self.loss.generator_loss(fake_logits, real_logits if self.loss.generator_needs_real else None)
        return loss

    def end_step(self) -> None:
        for s in self.schedulers.values():
            s.step()

    def state(self) -> dict[str, Any]:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "data_rng": self.data_rng.get_state()}

    # subclasses: step(step) -> losses; evaluate() -> errors; grid() -> (images, columns); translate(x, to)
    def step(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        raise NotImplementedError

    def grid(self) -> tuple[Tensor, int]:
        raise NotImplementedError


def _rgb(*images: Tensor) -> list[Tensor]:
    channels = max(x.shape[1] for x in images)
    return [x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x for x in images]


def _interleave(columns: list[Tensor]) -> Tensor:
    """Columns ``[n, C, H, W]`` each -> ``[n * len(columns), C, H, W]`` row by row."""
    return torch.stack(_rgb(*columns), dim=1).flatten(0, 1)


class Pix2Pix(Procedure):
    method = "pix2pix"

    def __init__(self, resolved: Resolved, manager: Any, train: PairedData, test: PairedData | None,
                 device: torch.device) -> None:
        super().__init__(resolved, manager, train, test, device)
        ca, cb = train.a.shape[1], train.b.shape[1]
        spec = DataSpec(shape=tuple(train.b.shape[1:]))
        self.networks["generator"] = build_generator(resolved.generator, manager, in_channels=ca, out=spec).to(device)
        self._optimise("generator", group="generator")
        if self.adversarial:
            self.networks["discriminator"] = build_discriminator(resolved.discriminator, manager, data=spec,
                                                                 condition_channels=ca).to(device)
            self._optimise("discriminator", group="discriminator")
        del cb

    def step(self, step: int) -> dict[str, float]:
        g = self.networks["generator"]
        idx = self._draw(len(self.train_data.a))
        a, b = self.train_data.a[idx], self.train_data.b[idx]
        fake = g(a)
        logs: dict[str, float] = {}
        real_logits = None
        if self.adversarial:
            d = self.networks["discriminator"]
            for _ in range(self.resolved.n_critic):
                real_logits = d(b, condition=a)
                fake_logits = d(fake.detach(), condition=a)
                d_loss = 0.5 * self.loss.discriminator_loss(real_logits, fake_logits)  # pix2pix halves D's objective
                d_loss = d_loss + self.discriminator_penalty(_Conditioned(d, a), b, fake, a, real_logits, fake_logits,
                                                             step)
                self.optimizers["discriminator"].zero_grad(set_to_none=True)
                d_loss.backward()
                self.optimizers["discriminator"].step()
                self.constrain(d)
            logs["d_loss"] = d_loss.item()
        l1_loss = l1(fake, b)
        g_loss = self.config.l1_weight * l1_loss
        if self.adversarial:
            d = self.networks["discriminator"]
            real_logits = d(b, condition=a).detach() if self.loss.generator_needs_real else None
            adv = self._gen_adv(d(fake, condition=a), real_logits)
            g_loss = g_loss + self.config.adversarial_weight * adv
            logs["g_adv"] = adv.item()
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        self.end_step()
        return {**logs, "g_loss": g_loss.item(), "l1": l1_loss.item() / 2.0}

    @torch.no_grad()
    def translate(self, a: Tensor, batch: int = 256) -> Tensor:
        g = self.networks["generator"]
        return torch.cat([g(a[i:i + batch]) for i in range(0, len(a), batch)])

    def evaluate(self) -> dict[str, float]:
        if self.test_data is None:
            return {}
        n = self.config.eval_size
        return {"test_l1": _to_unit_l1(self.translate(self.test_data.a[:n]), self.test_data.b[:n])}

    def grid(self) -> tuple[Tensor, int]:
        data = self.test_data or self.train_data
        a, b = data.a[: self.config.grid_size], data.b[: self.config.grid_size]
        return _interleave([a, self.translate(a), b]), 3


class CycleGAN(Procedure):
    method = "cyclegan"

    def __init__(self, resolved: Resolved, manager: Any, train: UnpairedData, test: UnpairedData | None,
                 device: torch.device) -> None:
        super().__init__(resolved, manager, train, test, device)
        spec_x, spec_y = DataSpec(shape=tuple(train.x.shape[1:])), DataSpec(shape=tuple(train.y.shape[1:]))
        self.networks["generator"] = build_generator(resolved.generator, manager, in_channels=spec_x.channels,
                                                     out=spec_y).to(device)  # G: X -> Y
        self.networks["generator_f"] = build_generator(resolved.generator, manager, in_channels=spec_y.channels,
                                                       out=spec_x).to(device)  # F: Y -> X
        self._optimise("generator", "generator_f", group="generator")
        if self.adversarial:
            for name, spec in (("discriminator_x", spec_x), ("discriminator_y", spec_y)):
                self.networks[name] = build_discriminator(resolved.discriminator, manager, data=spec).to(device)
            self._optimise("discriminator_x", "discriminator_y", group="discriminator")
        pool_rng = torch.Generator().manual_seed(self.config.seed + 3)
        self.pool_x = ImagePool(self.config.pool_size, generator=pool_rng)
        self.pool_y = ImagePool(self.config.pool_size, generator=pool_rng)
        self.same_channels = spec_x.channels == spec_y.channels

    def state(self) -> dict[str, Any]:
        return {**super().state(), "pool_x": self.pool_x.state_dict(), "pool_y": self.pool_y.state_dict()}

    def step(self, step: int) -> dict[str, float]:
        g, f = self.networks["generator"], self.networks["generator_f"]
        c = self.config
        x = self.train_data.x[self._draw(len(self.train_data.x))]
        y = self.train_data.y[self._draw(len(self.train_data.y))]
        fake_y, fake_x = g(x), f(y)
        cyc = cycle_loss(x, f(fake_y), y, g(fake_x))
        g_loss = c.cycle_weight * cyc
        logs: dict[str, float] = {"cycle": cyc.item() / 4.0}  # per direction, images in [0, 1]
        if c.identity_weight > 0 and self.same_channels:
            idt = identity_loss(y, g(y), x, f(x))
            g_loss = g_loss + c.identity_weight * c.cycle_weight * idt
            logs["identity"] = idt.item() / 4.0
        if self.adversarial:
            dx, dy = self.networks["discriminator_x"], self.networks["discriminator_y"]
            for p in (*dx.parameters(), *dy.parameters()):
                p.requires_grad_(False)
            adv = self._gen_adv(dy(fake_y), dy(y).detach() if self.loss.generator_needs_real else None) + \
                self._gen_adv(dx(fake_x), dx(x).detach() if self.loss.generator_needs_real else None)
            for p in (*dx.parameters(), *dy.parameters()):
                p.requires_grad_(True)
            g_loss = g_loss + c.adversarial_weight * adv
            logs["g_adv"] = adv.item()
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        logs["g_loss"] = g_loss.item()
        if self.adversarial:
            pooled_y, pooled_x = self.pool_y.query(fake_y), self.pool_x.query(fake_x)
            d_total = fake_y.new_zeros(())
            for d, real, fake, source in ((dy, y, pooled_y, x), (dx, x, pooled_x, y)):
                real_logits, fake_logits = d(real), d(fake)
                d_loss = 0.5 * self.loss.discriminator_loss(real_logits, fake_logits)  # CycleGAN halves D's objective
                d_total = d_total + d_loss + self.discriminator_penalty(d, real, fake, source, real_logits,
                                                                        fake_logits, step)
            self.optimizers["discriminator"].zero_grad(set_to_none=True)
            d_total.backward()
            self.optimizers["discriminator"].step()
            self.constrain(dx, dy)
            logs["d_loss"] = d_total.item()
        self.end_step()
        return logs

    @torch.no_grad()
    def translate(self, images: Tensor, to: str = "B", batch: int = 256) -> Tensor:
        net = self.networks["generator" if to == "B" else "generator_f"]
        return torch.cat([net(images[i:i + batch]) for i in range(0, len(images), batch)])

    def evaluate(self) -> dict[str, float]:
        if self.test_data is None:
            return {}
        n = self.config.eval_size
        x, y = self.test_data.x[:n], self.test_data.y[:n]
        gx, fy = self.translate(x, "B"), self.translate(y, "A")
        out = {"test_cycle": 0.5 * (_to_unit_l1(self.translate(gx, "A"), x) + _to_unit_l1(self.translate(fy, "B"), y))}
        if self.test_data.x_truth is not None:
            out["test_l1"] = _to_unit_l1(gx, self.test_data.x_truth[:n])
        if self.test_data.y_truth is not None:
            out["test_l1_f"] = _to_unit_l1(fy, self.test_data.y_truth[:n])
        return out

    def grid(self) -> tuple[Tensor, int]:
        data = self.test_data or self.train_data
        x = data.x[: self.config.grid_size]
        gx = self.translate(x, "B")
        third = data.x_truth[: len(x)] if data.x_truth is not None else self.translate(gx, "A")
        return _interleave([x, gx, third]), 3


class StarGAN(Procedure):
    method = "stargan"

    def __init__(self, resolved: Resolved, manager: Any, train: DomainData, test: DomainData | None,
                 device: torch.device) -> None:
        super().__init__(resolved, manager, train, test, device)
        self.domain_names = train.domain_names
        k = len(self.domain_names)
        spec = DataSpec(shape=tuple(train.images.shape[1:]), num_classes=k, class_names=self.domain_names)
        self.networks["generator"] = build_generator(resolved.generator, manager, in_channels=spec.channels,
                                                     out=spec).to(device)
        if getattr(self.networks["generator"], "num_classes", None) != k:
            raise ConfigError(f"generator: stargan needs a generator conditioned on the {k} target domains "
                              f"(resnet-generator with conditional = true), got {resolved.generator.name!r}")
        self._optimise("generator", group="generator")
        self.networks["discriminator"] = build_discriminator(resolved.discriminator, manager, data=spec).to(device)
        if not isinstance(self.networks["discriminator"], AuxiliaryClassifier):
            raise ConfigError(f"discriminator.name: stargan needs a discriminator with an auxiliary domain classifier "
                              f"(a classify method), and {resolved.discriminator.name!r} has none; use stargan")
        self._optimise("discriminator", group="discriminator")

    def _targets(self, domains: Tensor) -> Tensor:
        """A target domain other than each image's own, uniformly."""
        k = len(self.domain_names)
        shift = torch.randint(1, k, domains.shape, generator=self.data_rng).to(domains.device)
        return (domains + shift) % k

    def step(self, step: int) -> dict[str, float]:
        g, d = self.networks["generator"], self.networks["discriminator"]
        c = self.config
        n = len(self.train_data.images)
        for _ in range(self.resolved.n_critic):
            idx = self._draw(n)
            x, org = self.train_data.images[idx], self.train_data.domains[idx]
            trg = self._targets(org)
            with torch.no_grad():
                fake = g(x, trg)
            real_src, real_cls = d.classify(x)
            fake_src = d(fake)
            adv = self.loss.discriminator_loss(real_src, fake_src)
            cls = domain_classification_loss(real_cls, org)
            d_loss = c.adversarial_weight * adv + c.cls_weight * cls
            d_loss = d_loss + self.discriminator_penalty(d, x, fake, x, real_src, fake_src, step)
            self.optimizers["discriminator"].zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizers["discriminator"].step()
            self.constrain(d)
        idx = self._draw(n)
        x, org = self.train_data.images[idx], self.train_data.domains[idx]
        trg = self._targets(org)
        fake = g(x, trg)
        for p in d.parameters():
            p.requires_grad_(False)
        fake_src, fake_cls = d.classify(fake)
        g_adv = self._gen_adv(fake_src, d(x).detach() if self.loss.generator_needs_real else None)
        g_cls = domain_classification_loss(fake_cls, trg)
        for p in d.parameters():
            p.requires_grad_(True)
        rec = reconstruction_loss(x, g(fake, org))
        g_loss = c.adversarial_weight * g_adv + c.cls_weight * g_cls + c.rec_weight * rec
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        self.end_step()
        return {"d_loss": d_loss.item(), "d_cls": cls.item(), "g_loss": g_loss.item(), "g_cls": g_cls.item(),
                "rec": rec.item() / 2.0}

    @torch.no_grad()
    def translate(self, images: Tensor, target: Tensor, batch: int = 256) -> Tensor:
        g = self.networks["generator"]
        return torch.cat([g(images[i:i + batch], target[i:i + batch]) for i in range(0, len(images), batch)])

    @torch.no_grad()
    def classify(self, images: Tensor, batch: int = 256) -> Tensor:
        """The auxiliary classifier's predicted domain ``[N]``."""
        d = self.networks["discriminator"]
        return torch.cat([d.classify(images[i:i + batch])[1].argmax(1) for i in range(0, len(images), batch)])

    def evaluate(self) -> dict[str, float]:
        if self.test_data is None:
            return {}
        n = self.config.eval_size
        x = self.test_data.images[:n]
        correct, errors = [], []
        for k in range(len(self.domain_names)):
            target = torch.full((len(x),), k, dtype=torch.long, device=x.device)
            out = self.translate(x, target)
            correct.append((self.classify(out) == k).float().mean())
            if self.test_data.truth is not None:
                errors.append(_to_unit_l1(out, self.test_data.truth[:n, k]))
        logs = {"test_aux_accuracy": float(torch.stack(correct).mean())}
        if errors:
            logs["test_l1"] = sum(errors) / len(errors)
        return logs

    def grid(self) -> tuple[Tensor, int]:
        data = self.test_data or self.train_data
        x = data.images[: self.config.grid_size]
        k = len(self.domain_names)
        columns = [x] + [self.translate(x, torch.full((len(x),), j, dtype=torch.long, device=x.device))
                         for j in range(k)]
        if data.truth is not None:
            columns += [data.truth[: len(x), j] for j in range(k)]
        return _interleave(columns), len(columns)


PROCEDURES: dict[str, type[Procedure]] = {"pix2pix": Pix2Pix, "cyclegan": CycleGAN, "stargan": StarGAN}


# -- the run ----------------------------------------------------------------------------------------


def _on(data: Any, device: torch.device) -> Any:
    changes = {f.name: getattr(data, f.name).to(device) for f in attrs.fields(type(data))
               if isinstance(getattr(data, f.name), Tensor)}
    return attrs.evolve(data, **changes)


def load_data(config: TranslationConfig) -> tuple[Any, Any | None]:
    train = load_translation_data(config.data)
    test = None
    no_test_folders = config.data.name == "unaligned" and config.test_split == "test" and not all(
        (Path(config.data.root).expanduser() / f"test{side}").is_dir() for side in "AB")
    if config.test_split != "none" and not no_test_folders:  # without testA/ testB/ the grids show training images
        test_cfg = attrs.evolve(config.data, split=config.test_split,
                                limit=max(config.eval_size, config.grid_size))
        test = load_translation_data(test_cfg)
    return train, test


def build(config: TranslationConfig, manager: Any, *, device: torch.device | None = None) -> Procedure:
    """Check the config, load the data and build the procedure (networks, optimisers) on ``device``."""
    resolved = resolve(config, manager)
    device = device or resolve_device(config.device)
    torch.manual_seed(config.seed)
    train, test = load_data(config)
    return PROCEDURES[config.method](resolved, manager, _on(train, device), None if test is None else _on(test, device),
                                     device)


def data_meta(procedure: Procedure) -> dict[str, Any]:
    """What ``ganforge translate`` needs to rebuild the generators for new images."""
    data = procedure.train_data
    meta: dict[str, Any] = {"kind": "translation", "method": procedure.method, "ganforge": __version__}
    if isinstance(data, PairedData):
        meta.update(in_channels=data.a.shape[1], out_channels=data.b.shape[1], resolution=data.b.shape[-1])
    elif isinstance(data, UnpairedData):
        meta.update(in_channels=data.x.shape[1], out_channels=data.y.shape[1], resolution=data.y.shape[-1])
    else:
        meta.update(in_channels=data.images.shape[1], out_channels=data.images.shape[1],
                    resolution=data.images.shape[-1], domains=list(data.domain_names))
    return meta


def save_checkpoint(directory: Path, step: int, procedure: Procedure, config_toml: str, keep: int) -> Path:
    """The engine's checkpoint, written atomically by :func:`ganforge.save_checkpoint`."""
    return _save_checkpoint(directory, step, networks=procedure.networks, state=procedure.state(),
                            meta=data_meta(procedure), config_toml=config_toml, keep_last=keep)


def train(config: TranslationConfig, manager: Any, out: str | Path, *, device: torch.device | None = None
          ) -> dict[str, Any]:
    """Train ``config`` into the run directory ``out``; returns the last logged record (with the test errors)."""
    return fit(config, manager, out, device=device)[1]


def fit(config: TranslationConfig, manager: Any, out: str | Path, *, device: torch.device | None = None
        ) -> tuple[Procedure, dict[str, Any]]:
    """:func:`train`, returning the trained procedure too."""
    out = Path(out)
    resolved = resolve(config, manager)  # every config problem is reported before anything is loaded
    config_toml = resolved_toml(resolved, manager)
    procedure = build(config, manager, device=device)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.toml", config_toml)
    except OSError as exc:
        raise OutputError(f"cannot write the run directory {str(out)!r}: {exc.strerror or exc}") from None
    log_path = out / "metrics.jsonl"
    record: dict[str, Any] = {}
    start = time.perf_counter()
    with log_path.open("a", encoding="utf-8") as log:
        for step in range(1, config.steps + 1):
            for net in procedure.networks.values():
                net.train()
            losses = procedure.step(step)
            bad = [k for k, x in losses.items() if not math.isfinite(x)]
            if bad:
                raise ConfigError(f"training diverged at step {step}: {', '.join(bad)} is not finite; lower the "
                                  f"learning rate or change the loss")
            last = step == config.steps or 0 < config.time_limit <= time.perf_counter() - start
            if step % config.log_every == 0 or step % config.sample_every == 0 or last:
                record = {"step": step, **losses, "lr": procedure.schedulers["generator"].get_last_lr()[0],
                          "seconds": round(time.perf_counter() - start, 3)}
                if step % config.sample_every == 0 or last:
                    for net in procedure.networks.values():
                        net.eval()
                    record.update(procedure.evaluate())
                    images, columns = procedure.grid()
                    save_samples(images, out / "samples" / f"step-{step:08d}.png", nrow=columns)
                log.write(json.dumps(record) + "\n")
                log.flush()
                if config.progress:
                    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                          flush=True)
            if step % config.checkpoint_every == 0 or last:
                save_checkpoint(out / "checkpoints", step, procedure, config_toml, config.keep_checkpoints)
            if last:
                break
    for net in procedure.networks.values():
        net.eval()
    return procedure, record
