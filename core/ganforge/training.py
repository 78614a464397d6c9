"""The training loop: minibatch stochastic gradient descent on the GAN game.

Goodfellow et al. 2014 (arXiv:1406.2661), Algorithm 1: for each generator update, ``n_critic``
discriminator updates on fresh real and fake batches. Losses, penalties and constraints come from
plugins; the loop composes them without per-step work that grows with their number beyond calling
each one, and reads values back to the host only when it logs.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from . import checkpoint as ckpt
from .config import OptimizerConfig, RunConfig, to_toml
from .distributed import DistributedContext
from .errors import CheckpointError, ConfigError, GanforgeError, OutputError
from .manager import PluginManager, get_plugin_manager
from .protocols import Callback, Constraint, Dataset, DataSpec, LatentSpace, Loss, Penalty, PenaltyContext, Sampler

# -- building -----------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} was asked for, but CUDA is not available here (use 'auto' or 'cpu')")
    return device


def build_dataset(config: RunConfig, manager: PluginManager) -> Dataset:
    dataset: Dataset = manager.get("dataset", config.data.name).factory(config.data.params)
    return dataset


def build_generator(config: RunConfig, manager: PluginManager, dataset_spec: Any) -> nn.Module:
    net: nn.Module = manager.get("generator", config.generator.name).factory(config.generator.params, data=dataset_spec)
    return net


def build_discriminator(config: RunConfig, manager: PluginManager, dataset_spec: Any) -> nn.Module:
    net: nn.Module = manager.get("discriminator", config.discriminator.name).factory(
        config.discriminator.params, data=dataset_spec
    )
    return net


def build_sampler(config: RunConfig, manager: PluginManager) -> Sampler:
    sampler: Sampler = manager.get("sampler", config.sampler.name).factory(config.sampler.params)
    return sampler


def make_optimizer(params: Iterator[nn.Parameter] | list[nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, weight_decay=cfg.weight_decay, momentum=cfg.momentum
        )
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def prior_space(generator: nn.Module) -> LatentSpace:
    spaces = getattr(generator, "latent_spaces", None)
    if not spaces:
        raise GanforgeError(f"{type(generator).__name__} exposes no latent_spaces; a Generator must list at least one")
    space: LatentSpace = spaces[0]
    return space


@attrs.frozen(kw_only=True)
class TrainedGenerator:
    """A generator rebuilt from a checkpoint, with what it takes to sample from it.

    ``module`` is in eval mode on ``device`` and holds the moving-average weights when the run kept
    them. ``sample(n, generator=rng, labels=None)`` draws latents from the run's prior; a
    class-conditional generator given no labels draws the classes in turn (``i % num_classes``),
    so that every class gets an equal share.
    """

    module: nn.Module
    sampler: Sampler
    space: LatentSpace
    spec: DataSpec
    config: RunConfig
    checkpoint: ckpt.Checkpoint
    device: torch.device

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator, labels: Tensor | None = None) -> Tensor:
        z = self.sampler.sample(n, self.space, device=self.device, generator=generator)
        return self.latents_to_samples(z, labels)

    @torch.no_grad()
    def latents_to_samples(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is None and self.num_classes is not None:
            labels = torch.arange(len(z), device=z.device) % self.num_classes
        out: Tensor = self.module(z, labels)
        return out

    @property
    def num_classes(self) -> int | None:
        """The class count of a class-conditional generator, else ``None``."""
        k: int | None = getattr(self.module, "num_classes", None)
        return k

    def check_class(self, class_index: int | None) -> int | None:
        """``class_index`` (a command's ``--class``) checked against this generator: ``None``, or a
        class of a class-conditional one; anything else is a :class:`~ganforge.ConfigError`."""
        k = self.num_classes
        if class_index is None:
            return None
        if k is None:
            raise ConfigError(f"--class {class_index}: this generator is unconditional and takes no class")
        if not 0 <= class_index < k:
            names = f" ({', '.join(self.spec.class_names)})" if self.spec.class_names else ""
            raise ConfigError(
                f"--class {class_index}: expected a class index in [0, {k - 1}]{names} (got {class_index})"
            )
        return class_index


def load_generator(
    path: str | Path, *, device: str | torch.device = "cpu", manager: PluginManager | None = None,
    ema: bool = True,
) -> TrainedGenerator:
    """Rebuild the generator of a run directory or checkpoint directory, refusing corrupt or unsafe
    checkpoints and ones of another architecture with a :class:`~ganforge.CheckpointError`."""
    from .config import structure

    manager = manager or get_plugin_manager()
    checkpoint = ckpt.load_checkpoint(path)
    config = structure(tomllib.loads(checkpoint.config_toml), manager, source=f"config of {checkpoint.path}")
    spec_meta = checkpoint.meta.get("data_spec")
    if not isinstance(spec_meta, dict):
        raise CheckpointError(f"checkpoint {checkpoint.path}: meta.json has no data_spec")
    spec = DataSpec(
        shape=tuple(spec_meta["shape"]), num_classes=spec_meta.get("num_classes"),
        class_names=tuple(spec_meta.get("class_names", ())),
    )
    dev = resolve_device(device) if isinstance(device, str) else device
    generator = build_generator(config, manager, spec)
    name = "generator_ema" if ema and "generator_ema" in checkpoint.weights else "generator"
    ckpt.load_weights(generator, checkpoint, name)
    generator.to(dev).eval()
    return TrainedGenerator(
        module=generator, sampler=build_sampler(config, manager), space=prior_space(generator), spec=spec,
        config=config, checkpoint=checkpoint, device=dev,
    )


# -- data ---------------------------------------------------------------------------------------


class BatchStream:
    """Endless shuffled minibatches from an in-memory dataset, reproducible from its state.

    Each epoch is a permutation drawn from ``rng``; a batch never spans two epochs (the tail that
    does not fill a batch is dropped, as ``DataLoader(drop_last=True)``). The state is the RNG,
    the current permutation and the position in it.
    """

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, rng: torch.Generator) -> None:
        n = len(dataset.images)
        if batch_size > n:
            raise ConfigError(f"train.batch_size: {batch_size} is larger than the dataset ({n} samples)")
        self.images = dataset.images.to(device)
        self.labels = dataset.labels.to(device) if dataset.labels is not None else None
        self.batch_size = batch_size
        self.rng = rng
        self.order = torch.randperm(n, generator=rng)
        self.position = 0

    def next(self) -> tuple[Tensor, Tensor | None]:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.order), generator=self.rng)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size].to(self.images.device, non_blocking=True)
        self.position += self.batch_size
        return self.images[index], (self.labels[index] if self.labels is not None else None)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])
        self.order = state["order"]
        self.position = int(state["position"])


# -- generator averaging ------------------------------------------------------------------------


class GeneratorEMA:
    """An exponential moving average of the generator's weights, used for samples and evaluation.

    Karras et al. 2018 (PGGAN, arXiv:1710.10196, appendix A.1) and 2020 (StyleGAN2): after each
    generator update, ``w_ema <- beta w_ema + (1 - beta) w`` with ``beta = 0.5 ** (batch / half_life)``
    so that the averaging window is set in images, not steps. The half-life ramps up as
    ``min(half_life, rampup * images_seen)`` so that early averages are not dominated by the random
    initialisation. Buffers (batch-norm statistics) are copied, not averaged.
    """

    def __init__(self, generator: nn.Module, half_life: float, rampup: float) -> None:
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.half_life = half_life
        self.rampup = rampup
        self._src: list[Tensor] = list(generator.parameters())
        self._dst: list[Tensor] = list(self.module.parameters())
        self._src_buffers: list[Tensor] = list(generator.buffers())
        self._dst_buffers: list[Tensor] = list(self.module.buffers())

    @torch.no_grad()
    def update(self, batch_size: int, images_seen: int) -> None:
        half_life = self.half_life
        if self.rampup > 0:
            half_life = min(half_life, images_seen * self.rampup)
        beta = 0.5 ** (batch_size / max(half_life, 1e-8))
        torch._foreach_lerp_(self._dst, self._src, 1.0 - beta)  # one fused kernel, no host sync
        if self._dst_buffers:  # batch-norm statistics, schedule phases: copied, not averaged
            torch._foreach_copy_(self._dst_buffers, self._src_buffers)


# -- the run directory --------------------------------------------------------------------------


def prepare_run_dir(out: Path, *, resume: bool = False) -> None:
    """Create ``out`` (or check it for a resume) and prove it writable before any training."""
    if not resume and out.exists() and ((out / "config.toml").exists() or (out / "checkpoints").exists()):
        raise OutputError(
            f"output directory {str(out)!r} already holds a run; choose another --out so that its "
            "checkpoints and samples are not overwritten"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{id(out)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {str(out)!r}: {exc.strerror or exc}") from None


# -- the trainer --------------------------------------------------------------------------------


class Trainer:
    """Trains one generator against one discriminator as the config says.

    One iteration (:meth:`train_step`) is Algorithm 1 of Goodfellow et al. 2014: ``n_critic``
    discriminator updates, then one generator update; each update is split into its main loss,
    its penalties (lazily, every ``k`` updates) and its constraints, as NVlabs' StyleGAN2 loop
    splits phases. Nothing is read back to the host on this path except under
    ``train.nonfinite = "skip"`` (one flag per update, as a GradScaler does).
    """

    def __init__(self, config: RunConfig, out: str | Path, *, manager: PluginManager | None = None) -> None:
        self.config = config
        self.out = Path(out)
        self.manager = manager = manager or get_plugin_manager()
        t = config.train
        self.device = resolve_device(t.device)
        self.dist = DistributedContext.from_environment(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        if self.dist.enabled and t.batch_size % self.dist.world_size:
            raise ConfigError(
                f"train.batch_size: {t.batch_size} is the global batch and must divide evenly over "
                f"{self.dist.world_size} processes"
            )
        if t.deterministic:
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(t.seed)

        self.dataset = build_dataset(config, manager)
        spec = self.dataset.spec
        self.generator = build_generator(config, manager, spec).to(self.device)
        self.discriminator = build_discriminator(config, manager, spec).to(self.device)
        multiple = int(getattr(self.discriminator, "batch_multiple", 1))
        if (t.batch_size // self.dist.world_size) % multiple:
            per_rank = f" ({t.batch_size // self.dist.world_size} per process)" if self.dist.enabled else ""
            raise ConfigError(
                f"train.batch_size: {t.batch_size}{per_rank} must be a multiple of {multiple}: discriminator "
                f"{config.discriminator.name!r} scores samples in groups of {multiple}"
            )
        self.loss: Loss = manager.get("loss", config.loss.name).factory(config.loss.params)
        self.sampler = build_sampler(config, manager)
        self.space = prior_space(self.generator)

        self.penalties: dict[str, list[Penalty]] = {"discriminator": [], "generator": []}
        self.constraints: dict[str, list[Constraint]] = {"discriminator": [], "generator": []}
        for i, choice in enumerate(config.regularizers):
            reg = manager.get("regularizer", choice.name).factory(choice.params)
            if getattr(reg, "needs_labels", False) and self.dataset.labels is None:
                raise ConfigError(
                    f"regularizers[{i}].name: {choice.name!r} needs class labels, but dataset "
                    f"{config.data.name!r} is unlabelled; choose a labelled dataset or drop the regularizer"
                )
            if isinstance(reg, Penalty):
                self.penalties[reg.target].append(reg)
            if isinstance(reg, Constraint):
                self.constraints[reg.target].append(reg)
        self.callbacks: list[Callback] = [
            manager.get("callback", choice.name).factory(choice.params) for choice in config.callbacks
        ]
        # networks that follow the schedule (progressive growing) are told the image count each step
        self.progressive: list[Callable[[int], None]] = [
            hook for net in (self.generator, self.discriminator)
            if callable(hook := getattr(net, "set_training_progress", None))
        ]

        self.g_conditional = getattr(self.generator, "num_classes", None) is not None
        self.d_conditional = getattr(self.discriminator, "num_classes", None) is not None
        if (self.g_conditional or self.d_conditional) and self.dataset.labels is None:
            raise ConfigError(
                f"data.name: {config.data.name!r} is unlabelled, but the "
                f"{'generator' if self.g_conditional else 'discriminator'} is conditional and needs labels"
            )

        self.opt_g = make_optimizer(self.generator.parameters(), config.optim.g)
        self.opt_d = make_optimizer(self.discriminator.parameters(), config.optim.d)
        self._decays = config.optim.g.decay_start < 1.0 or config.optim.d.decay_start < 1.0
        self.g_params = [p for p in self.generator.parameters() if p.requires_grad]
        self.d_params = [p for p in self.discriminator.parameters() if p.requires_grad]
        self.ema = GeneratorEMA(self.generator, t.ema_half_life, t.ema_rampup) if t.ema_half_life > 0 else None

        # What runs the forward passes: DDP across ranks, then torch.compile. Penalties and
        # constraints get the plain modules (double backward goes through neither wrapper).
        self.g_train: nn.Module = self.generator
        self.d_train: nn.Module = self.discriminator
        self.d_for_g: nn.Module = self.discriminator  # D inside the G update: no DDP, its grads are not taken
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_train = DDP(self.generator, device_ids=ids)
            self.d_train = DDP(self.discriminator, device_ids=ids)
        if t.compile:
            self.g_train = torch.compile(self.g_train)  # type: ignore[assignment]
            self.d_train = torch.compile(self.d_train)  # type: ignore[assignment]
            self.d_for_g = torch.compile(self.discriminator)  # type: ignore[assignment]

        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.precision]
        scaling = t.precision == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=scaling)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=scaling)

        seed = t.seed
        self.data = BatchStream(self.dataset, t.batch_size, self.device, torch.Generator().manual_seed(seed))
        self.latent_rng = torch.Generator(self.device).manual_seed(seed + 1)
        self.penalty_rng = torch.Generator(self.device).manual_seed(seed + 3)  # PenaltyContext.uniform
        preview_rng = torch.Generator(self.device).manual_seed(seed + 2)
        n_preview = config.output.preview_samples
        self.preview_latents = self.sampler.sample(n_preview, self.space, device=self.device, generator=preview_rng)
        self.preview_labels = self._preview_labels(n_preview)

        self.step = 0  # generator updates done
        self.d_updates = 0
        self.images_seen = 0  # real images drawn by discriminator updates, over all ranks
        self.skipped = 0  # updates dropped for a non-finite loss or gradient (nonfinite = "skip")
        # first step at which each loss was non-finite, -1 while finite: watched on the device
        self._first_nonfinite = {k: torch.full((), -1, dtype=torch.long, device=self.device)
                                 for k in ("loss_d", "loss_g")}
        self._stop_signal: int | None = None
        self.loggers: list[Any] = []

    def _preview_labels(self, n: int) -> Tensor | None:
        if not self.g_conditional:
            return None
        k = self.dataset.spec.num_classes or 1
        return torch.arange(n, device=self.device) % k  # one column per class in the grid

    # -- one update of each player --------------------------------------------------------------

    def _latents(self, n: int) -> Tensor:
        """This rank's share of ``n`` latents drawn for the global batch."""
        return self.dist.shard(self.sampler.sample(n, self.space, device=self.device, generator=self.latent_rng))

    def _batch(self) -> tuple[Tensor, Tensor | None]:
        real, labels = self.data.next()
        return self.dist.shard(real), (self.dist.shard(labels) if labels is not None else None)

    def _set_learning_rates(self) -> None:
        steps = self.config.train.steps
        for opt, cfg in ((self.opt_g, self.config.optim.g), (self.opt_d, self.config.optim.d)):
            lr = cfg.lr_at(self.step, steps)
            for group in opt.param_groups:
                group["lr"] = lr

    def _advance_schedule(self) -> None:
        for set_progress in self.progressive:
            set_progress(self.images_seen)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _watch(self, key: str, loss: Tensor) -> None:
        first = self._first_nonfinite[key]
        first.copy_(torch.where((first < 0) & ~torch.isfinite(loss.detach()), self.step, first))

    def _apply(self, key: str, loss: Tensor, params: Sequence[Tensor], opt: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler) -> None:
        """Backward, then the optimiser step unless the policy drops a non-finite update."""
        opt.zero_grad(set_to_none=True)
        # only this network's gradients: the G update leaves D's untouched (and saves its backward)
        scaler.scale(loss).backward(inputs=list(params))  # type: ignore[no-untyped-call]
        if self.config.train.nonfinite == "skip":
            grads = [p.grad for p in params if p.grad is not None]
            finite = torch.isfinite(loss.detach())
            if grads:
                finite = finite & torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()
            if not bool(finite):  # one host sync per update, only under this policy
                opt.zero_grad(set_to_none=True)
                self.skipped += 1
                return
        else:
            self._watch(key, loss)
        scaler.step(opt)
        scaler.update()

    def _d_step(self) -> tuple[Tensor, dict[str, Tensor]]:
        self._advance_schedule()
        G, D = self.g_train, self.d_train
        real, labels = self._batch()
        n_global = self.config.train.batch_size
        z = self._latents(n_global)
        g_labels = labels if self.g_conditional else None
        d_labels = labels if self.d_conditional else None
        with self._autocast():
            with torch.no_grad():
                fake = G(z, g_labels)
            real_logits = D(real, d_labels)
            fake_logits = D(fake, d_labels)
            loss = self.loss.discriminator_loss(real_logits, fake_logits)
        terms: dict[str, Tensor] = {}
        if self.penalties["discriminator"]:
            ctx = PenaltyContext(
                generator=self.generator, discriminator=self.discriminator, real=real, fake=fake, labels=d_labels,
                fake_labels=d_labels, latents=z, real_logits=real_logits, fake_logits=fake_logits,
                step=self.d_updates, rng=self.penalty_rng, world_size=self.dist.world_size, rank=self.dist.rank,
            )
            for pen in self.penalties["discriminator"]:
                if self.d_updates % pen.every == 0:
                    with self._autocast():
                        value = pen.penalty(ctx)
                    terms[type(pen).__name__] = value.detach()
                    loss = loss + pen.every * value
        self._apply("loss_d", loss, self.d_params, self.opt_d, self.scaler_d)
        for con in self.constraints["discriminator"]:
            con.constrain(self.discriminator)
        self.d_updates += 1
        self.images_seen += n_global
        return loss.detach(), terms

    def _g_step(self) -> tuple[Tensor, dict[str, Tensor]]:
        self._advance_schedule()
        G, D = self.g_train, self.d_for_g
        n_global = self.config.train.batch_size
        labels = None
        if self.g_conditional or self.d_conditional:
            _, labels = self._batch()  # fake labels follow the data's class frequencies
        g_labels = labels if self.g_conditional else None
        d_labels = labels if self.d_conditional else None
        z = self._latents(n_global)
        real_logits = None
        real = None
        with self._autocast():
            fake = G(z, g_labels)
            fake_logits = D(fake, d_labels)
            if self.loss.generator_needs_real or self.penalties["generator"]:
                real, _ = self._batch()
                if self.loss.generator_needs_real:
                    real_logits = D(real, d_labels)
            loss = self.loss.generator_loss(fake_logits, real_logits)
        terms: dict[str, Tensor] = {}
        if self.penalties["generator"]:
            assert real is not None
            ctx = PenaltyContext(
                generator=self.generator, discriminator=self.discriminator, real=real, fake=fake, labels=d_labels,
                fake_labels=d_labels, latents=z, real_logits=real_logits, fake_logits=fake_logits, step=self.step,
                rng=self.penalty_rng, world_size=self.dist.world_size, rank=self.dist.rank,
            )
            for pen in self.penalties["generator"]:
                if self.step % pen.every == 0:
                    with self._autocast():
                        value = pen.penalty(ctx)
                    terms[type(pen).__name__] = value.detach()
                    loss = loss + pen.every * value
        self._apply("loss_g", loss, self.g_params, self.opt_g, self.scaler_g)
        for con in self.constraints["generator"]:
            con.constrain(self.generator)
        if self.ema is not None:
            self.ema.update(n_global, self.images_seen)
        self.step += 1
        return loss.detach(), terms

    def train_step(self) -> dict[str, Tensor]:
        """One iteration of Algorithm 1: ``n_critic`` discriminator updates, then one generator
        update. Returns the losses and penalty terms as device tensors (no host sync)."""
        if self._decays:
            self._set_learning_rates()
        for _ in range(self.config.train.n_critic):
            d_loss, d_terms = self._d_step()
        g_loss, g_terms = self._g_step()
        return {"loss_d": d_loss, "loss_g": g_loss, **d_terms, **g_terms}

    def check_finite(self, last: Path | None) -> None:
        """Under the ``stop`` policy, raise naming the first non-finite loss and its step (a host sync)."""
        if self.config.train.nonfinite != "stop":
            return
        bad = {k: int(v) for k, v in self._first_nonfinite.items() if int(v) >= 0}
        # every rank stops when any rank saw it, so that none is left waiting in a collective
        if self.dist.any(bool(bad), self.device):
            where = f"at step {min(bad.values()) + 1} " if bad else "on another rank "
            key = min(bad, key=bad.__getitem__) if bad else "a loss"
            raise GanforgeError(
                f"{key} became non-finite {where}(train.nonfinite = \"stop\"); the last good "
                f"checkpoint is {last or 'not written yet'} and nothing was written after it. Lower the "
                "learning rates, add a regularizer, or set train.nonfinite = \"skip\" to drop such updates."
            )

    # -- outputs --------------------------------------------------------------------------------

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples and evaluation use: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator) -> Tensor:
        """``n`` samples from the sampling generator, latents drawn with ``generator`` (see
        :class:`ganforge.TrainingRun`); labels are drawn uniformly for a conditional model."""
        g = self.sampling_generator
        was_training = g.training
        g.eval()
        try:
            z = self.sampler.sample(n, self.space, device=self.device, generator=generator)
            labels = None
            if self.g_conditional:
                k = self.dataset.spec.num_classes or 1
                labels = torch.randint(0, k, (n,), device=self.device, generator=generator)
            out: Tensor = g(z, labels)
        finally:
            g.train(was_training)
        return out

    def run_callbacks(self, log: MetricsLog, progress: Progress, *, final: bool = False) -> None:
        """Run the callbacks due at this step (all of them when ``final``) and log what they return."""
        record: dict[str, Any] = {}
        for cb in self.callbacks:
            if final or self.step % cb.every == 0:
                t0 = time.perf_counter()
                record.update(cb(self))
                record[f"time_{type(cb).__name__}"] = time.perf_counter() - t0
        if record:
            record = {"step": self.step, "images_seen": self.images_seen, **record, "time": time.time()}
            log.write(record)
            self._log_scalars(record)
            if progress.enabled:
                progress.message(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in record.items() if k != "time"))

    @torch.no_grad()
    def preview(self) -> Tensor:
        """Samples from the fixed preview latents, in ``[-1, 1]``."""
        g = self.sampling_generator
        was_training = g.training
        g.eval()
        try:
            out: Tensor = g(self.preview_latents, self.preview_labels)
        finally:
            g.train(was_training)
        return out

    def save_preview(self) -> Path:
        from .images import preview_picture, save_samples

        samples = self.preview()
        path = self.out / "samples" / f"{ckpt.step_name(self.step)}.png"
        save_samples(samples, path, nrow=self._grid_columns())
        if self.loggers:
            picture = preview_picture(samples, nrow=self._grid_columns())
            self._each_logger(lambda lg: lg.images(self.step, "samples", picture))
        return path

    def _grid_columns(self) -> int:
        if self.g_conditional and self.dataset.spec.num_classes:
            return self.dataset.spec.num_classes
        return max(1, int(math.sqrt(self.config.output.preview_samples)))

    def networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        if self.ema is not None:
            nets["generator_ema"] = self.ema.module
        return nets

    def training_state(self) -> dict[str, Any]:
        """Everything besides the weights that an exact resume needs (a collective when distributed)."""
        rank_rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rank_rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state: dict[str, Any] = {
            "step": self.step,
            "d_updates": self.d_updates,
            "images_seen": self.images_seen,
            "skipped": self.skipped,
            "optim_g": self.opt_g.state_dict(),
            "optim_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "data": self.data.state_dict(),
            "rng_latent": self.latent_rng.get_state(),
            "rng_penalty": self.penalty_rng.get_state(),
            "rng_ranks": self.dist.gather(rank_rng),  # every rank's own generators (dropout, noise inputs)
            "preview_latents": self.preview_latents.cpu(),
        }
        return state

    def load_weights_from(self, checkpoint: ckpt.Checkpoint) -> None:
        """Weights only (``--init-from``): a new run that starts from another run's networks."""
        for name, net in self.networks().items():
            # a source run without a moving average seeds ours from its generator
            missing_ema = name == "generator_ema" and name not in checkpoint.weights
            ckpt.load_weights(net, checkpoint, "generator" if missing_ema else name)

    def load_training_state(self, checkpoint: ckpt.Checkpoint) -> None:
        """Continue exactly where ``checkpoint`` left off (weights, optimisers, RNGs, data order)."""
        for name, net in self.networks().items():
            ckpt.load_weights(net, checkpoint, name)
        state = checkpoint.state
        self.opt_g.load_state_dict(state["optim_g"])
        self.opt_d.load_state_dict(state["optim_d"])
        if "scaler_g" in state:
            self.scaler_g.load_state_dict(state["scaler_g"])
            self.scaler_d.load_state_dict(state["scaler_d"])
        self.data.load_state_dict(state["data"])
        self.latent_rng.set_state(state["rng_latent"].to("cpu"))
        if "rng_penalty" in state:
            self.penalty_rng.set_state(state["rng_penalty"].to("cpu"))
        ranks = state.get("rng_ranks") or [{"torch": state["rng_torch"]}]
        mine = ranks[self.dist.rank] if self.dist.rank < len(ranks) else ranks[0]
        torch.set_rng_state(mine["torch"].to("cpu"))
        if "cuda" in mine and self.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"].to("cpu"), self.device)
        self.preview_latents = state["preview_latents"].to(self.device)
        self.step = int(state["step"])
        self.d_updates = int(state["d_updates"])
        self.images_seen = int(state["images_seen"])
        self.skipped = int(state.get("skipped", 0))

    def save_checkpoint(self) -> Path:
        c = self.config
        spec = self.dataset.spec
        state = self.training_state()  # on every rank: it gathers their RNG states
        final = self.out / "checkpoints" / ckpt.step_name(self.step)
        if not self.dist.is_writer:
            return final
        meta = {
            "images_seen": self.images_seen,
            "world_size": self.dist.world_size,
            "data_spec": {
                "shape": list(spec.shape), "num_classes": spec.num_classes, "class_names": list(spec.class_names),
            },
            "components": {
                "data": c.data.name, "generator": c.generator.name, "discriminator": c.discriminator.name,
                "loss": c.loss.name, "sampler": c.sampler.name,
            },
        }
        return ckpt.save_checkpoint(
            self.out / "checkpoints", self.step, networks=self.networks(), state=state,
            meta=meta, config_toml=to_toml(c, self.manager), keep_last=c.output.keep_last,
        )

    # -- logging backends -----------------------------------------------------------------------

    def _open_loggers(self) -> None:
        for i, choice in enumerate(self.config.output.loggers):
            try:
                self.loggers.append(self.manager.get("logger", choice.name).factory(choice.params, run_dir=self.out))
            except GanforgeError:
                raise
            except Exception as exc:  # an optional logger never stops training
                self._logger_failed(f"output.loggers[{i}] {choice.name!r}", exc)

    def _each_logger(self, call: Callable[[Any], None]) -> None:
        for lg in list(self.loggers):
            try:
                call(lg)
            except Exception as exc:
                self.loggers.remove(lg)
                self._logger_failed(type(lg).__name__, exc)

    def _log_scalars(self, record: dict[str, Any]) -> None:
        if self.loggers:
            values = {k: float(v) for k, v in record.items()
                      if k not in ("step", "time") and isinstance(v, int | float)}
            self._each_logger(lambda lg: lg.scalars(self.step, values))

    @staticmethod
    def _logger_failed(which: str, exc: BaseException) -> None:
        print(f"ganforge: warning: logger {which} failed and is dropped; training goes on "
              f"({type(exc).__name__}: {exc})", file=sys.stderr)

    # -- the loop -------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _peak_memory_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    def fit(self) -> Path:
        """Train to ``train.steps``; returns the last checkpoint. SIGINT/SIGTERM stop the run at
        the next step boundary (the next logging step when distributed, where the ranks agree)
        after writing a checkpoint."""
        c = self.config
        writer = self.dist.is_writer
        if writer:
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_text(self.out / "config.toml", to_toml(c, self.manager))
            self._open_loggers()
        log = MetricsLog(self.out / "metrics.jsonl" if writer else None)
        progress = Progress(c.train.steps, enabled=c.output.progress and writer)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        sums: dict[str, Tensor] = {}
        count = 0
        t0, images0 = time.perf_counter(), self.images_seen
        last: Path | None = None
        stop = False
        try:
            while self.step < c.train.steps and not stop:
                for key, value in self.train_step().items():
                    sums[key] = sums[key] + value if key in sums else value
                count += 1
                step = self.step
                logging_step = step % c.output.log_every == 0 or step == c.train.steps
                if logging_step:
                    self.check_finite(last)
                    elapsed = time.perf_counter() - t0
                    ips = (self.images_seen - images0) / max(elapsed, 1e-9)
                    record: dict[str, Any] = {
                        "step": step,
                        "images_seen": self.images_seen,
                        **{k: v.item() / count for k, v in sums.items()},  # the one host sync
                        "images_per_sec": ips,
                        "sec_per_kimg": 1000.0 / max(ips, 1e-9),
                        "peak_mem_mb": self._peak_memory_mb(),
                        "time": time.time(),
                    }
                    if c.train.nonfinite == "skip":
                        record["skipped_updates"] = self.skipped
                    log.write(record)
                    self._log_scalars(record)
                    progress.update(record)
                    sums, count = {}, 0
                    t0, images0 = time.perf_counter(), self.images_seen
                if writer and step % c.output.sample_every == 0:
                    self.save_preview()
                if writer and self.callbacks:
                    self.run_callbacks(log, progress)
                if step % c.output.checkpoint_every == 0:
                    self.check_finite(last)
                    last = self.save_checkpoint()
                # ranks agree on stopping where they already meet, so that none waits forever
                if not self.dist.enabled:
                    stop = self._stop_signal is not None
                elif logging_step:
                    stop = self.dist.any(self._stop_signal is not None, self.device)
            if self._stop_signal is not None or stop:
                name = signal.Signals(self._stop_signal).name if self._stop_signal else "signal on another rank"
                progress.message(f"stopping on signal {name} at step {self.step}")
            self.check_finite(last)
            if writer and self.step % c.output.sample_every != 0:
                self.save_preview()
            if writer and self.callbacks and any(self.step % cb.every != 0 for cb in self.callbacks):
                self.run_callbacks(log, progress, final=True)
            if last is None or last.name != ckpt.step_name(self.step):
                last = self.save_checkpoint()
            self.dist.barrier()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            progress.close()
            log.close()
            self._each_logger(lambda lg: lg.close())
        return last


# -- logging ------------------------------------------------------------------------------------


class MetricsLog:
    """Appends one JSON object per line; a line is flushed whole, so a crash loses no logged step."""

    def __init__(self, path: Path | None) -> None:
        self._file = path.open("a", encoding="utf-8") if path is not None else None  # None: not rank 0

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Progress:
    """A one-line progress display on stderr, redrawn in place on a terminal."""

    def __init__(self, total: int, *, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._drawn = False

    def update(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        step = record["step"]
        width = 24
        done = int(width * step / self.total)
        losses = " ".join(
            f"{k.removeprefix('loss_')}={v:.3f}" for k, v in record.items()
            if k not in ("step", "images_seen", "images_per_sec", "sec_per_kimg", "peak_mem_mb", "time")
        )
        bar = "#" * done + "." * (width - done)
        line = f"[{bar}] step {step}/{self.total} {losses} {record['images_per_sec']:.0f} img/s"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
            self._drawn = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def message(self, text: str) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = False
        sys.stderr.write(text + "\n")

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = False
