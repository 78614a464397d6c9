"""The training loop: one loop that hosts every procedure.

The :class:`Trainer` owns the mechanics of a run (device, seeds and every RNG, data order, optimisers
and learning-rate schedules, autocast and gradient scalers, DDP, ``torch.compile``, moving averages,
lazy regularizers, constraints, the ``nonfinite`` policy, signals, checkpoints and exact resume,
callbacks, loggers, progress, previews); a procedure plugin (:class:`ganforge.Procedure`) owns the
mathematics of one iteration. The loop adds no per-step work that grows with the number of plugins
beyond calling each one, and reads values back to the host only when it logs.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import Tensor, nn

from . import checkpoint as ckpt
from .batches import BatchStream
from .building import (
    ConfigNetworkBuilder,
    build_dataset,
    build_procedure,
    build_sampler,
    call_factory,
    make_optimizer,
    preview_seed,
    resolve_device,
)
from .config import RunConfig, to_toml
from .distributed import DistributedContext
from .ema import EMA
from .errors import CheckpointError, ConfigError, GanforgeError
from .globalstate import GlobalTorchState
from .inference import spec_to_meta
from .manager import PluginManager, get_plugin_manager
from .procedure import Network
from .progress import Progress
from .protocols import Callback, Constraint, Penalty
from .rundir import Loggers, MetricsLog, supersede_after
from .update import StepInterface

_NOT_LOSSES = ("step", "images_seen", "images_per_sec", "sec_per_kimg", "peak_mem_mb", "time")


class Trainer:
    """Trains the networks of one procedure as the config says (see :mod:`ganforge.procedure`)."""

    def __init__(self, config: RunConfig, out: str | Path, *, manager: PluginManager | None = None) -> None:
        self.config = config
        self.out = Path(out)
        self.manager = manager = manager or get_plugin_manager()
        t = config.train
        self.device = resolve_device(t.device, "train.device")
        self.dist = DistributedContext.from_environment(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        if self.dist.enabled and t.batch_size % self.dist.world_size:
            raise ConfigError(
                f"train.batch_size: {t.batch_size} is the global batch and must divide evenly over "
                f"{self.dist.world_size} processes"
            )
        # the process-wide generators (network init, dropout, noise inputs) and deterministic mode are the
        # run's own while it works, and the caller's as they were after every call
        self._global = GlobalTorchState(self.device, t.seed, deterministic=t.deterministic)
        with self._global.active():
            self.dataset = build_dataset(config, manager)
            self.loss = call_factory("loss.name", manager.get("loss", config.loss.name), config.loss.params)
            self.procedure = build_procedure(config, manager, self.loss)
            plan = self.procedure.prepare(self.dataset)
            self.specs = dict(plan.specs)
            roles = self.procedure.networks(ConfigNetworkBuilder(config, manager, self.device), self.specs)
            self.roles: dict[str, Network] = dict(roles)
            for role in self.roles.values():
                role.module.to(self.device)
                if t.memory_format == "channels_last":
                    # before the optimisers and averages are built, so that their state takes the same layout
                    role.module.to(memory_format=torch.channels_last)
            self._check_batch_multiple()
            penalties, constraints = self._regularizers(any("labels" in s for s in plan.streams.values()))
            self.callbacks: list[Callback] = [
                call_factory(f"callbacks[{i}].name", manager.get("callback", choice.name), choice.params)
                for i, choice in enumerate(config.callbacks)
            ]
            keys: list[str] = sorted({r.optimizer for r in self.roles.values()})
            optim = {"g": config.optim.g, "d": config.optim.d}
            optimizers = {k: make_optimizer((p for r in self.roles.values() if r.optimizer == k
                                             for p in r.module.parameters()), optim[k]) for k in keys}
            self._decays = any(optim[k].decay_start < 1.0 for k in keys)
            self.emas = {name: EMA(r.module, t.ema_half_life, t.ema_rampup)
                         for name, r in self.roles.items() if r.ema and t.ema_half_life > 0}
            trained, frozen = self._forms()
            amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.precision]
            scalers = {k: torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16") for k in keys}

            seed = t.seed
            streams = {name: BatchStream(tensors, t.batch_size, self.device,
                                         torch.Generator().manual_seed(seed if i == 0 else seed + 100 + i), name=name)
                       for i, (name, tensors) in enumerate(plan.streams.items())}
            self.sampler = build_sampler(config, manager)
            self.updates = StepInterface(
                roles=self.roles, trained=trained, frozen=frozen, optimizers=optimizers, scalers=scalers,
                penalties=penalties, constraints=constraints, emas=self.emas, streams=streams, sampler=self.sampler,
                latent_rng=torch.Generator(self.device).manual_seed(seed + 1),
                penalty_rng=torch.Generator(self.device).manual_seed(seed + 3),  # PenaltyContext.uniform
                procedure_rng=torch.Generator().manual_seed(seed + 4),
                dist=self.dist, device=self.device, batch_size=t.batch_size, n_critic=t.n_critic, amp_dtype=amp_dtype,
                skip_nonfinite=t.nonfinite == "skip",
                progressive=[hook for r in self.roles.values()
                             if callable(hook := getattr(r.module, "set_training_progress", None))],
            )
            self.preview_seed = preview_seed(config)
            self._stop_signal: int | None = None
            self.stopped_by: int | None = None  # the signal that ended fit() early, if one did
            self.resumed_from: Path | None = None
            self.loggers: Loggers | None = None
            for i, (choice, callback) in enumerate(zip(config.callbacks, self.callbacks, strict=True)):
                check = getattr(callback, "check", None)  # optional: refuse a run it cannot serve, now
                if callable(check):
                    try:
                        check(self)
                    except GanforgeError as exc:
                        raise ConfigError(f"callbacks[{i}] {choice.name!r}: {exc}") from None

    # -- building ---------------------------------------------------------------------------------

    def _check_batch_multiple(self) -> None:
        t = self.config.train
        for role in self.roles.values():
            multiple = int(getattr(role.module, "batch_multiple", 1))
            if (t.batch_size // self.dist.world_size) % multiple:
                per_rank = f" ({t.batch_size // self.dist.world_size} per process)" if self.dist.enabled else ""
                section = "discriminator" if role.optimizer == "d" else "generator"
                raise ConfigError(
                    f"train.batch_size: {t.batch_size}{per_rank} must be a multiple of {multiple}: {section} "
                    f"{getattr(self.config, section).name!r} scores samples in groups of {multiple}"
                )

    def _regularizers(self, has_labels: bool) -> tuple[dict[str, list[tuple[str, Penalty]]],
                                                       dict[str, list[Constraint]]]:
        penalties: dict[str, list[tuple[str, Penalty]]] = {"d": [], "g": []}
        constraints: dict[str, list[Constraint]] = {"d": [], "g": []}
        for i, choice in enumerate(self.config.regularizers):
            reg = call_factory(f"regularizers[{i}].name", self.manager.get("regularizer", choice.name), choice.params)
            if getattr(reg, "needs_labels", False) and not has_labels:
                raise ConfigError(
                    f"regularizers[{i}].name: {choice.name!r} needs class labels, but dataset "
                    f"{self.config.data.name!r} is unlabelled; choose a labelled dataset or drop the regularizer"
                )
            where = f"regularizers[{i}].name: {choice.name!r}"
            target = getattr(reg, "target", None)
            if target not in ("generator", "discriminator"):
                raise ConfigError(f"{where}: the plugin's target is {target!r}; a regularizer targets 'generator' "
                                  "or 'discriminator' (the network whose update it joins)")
            every = getattr(reg, "every", 1)
            if isinstance(reg, Penalty) and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
                raise ConfigError(f"{where}: the penalty's every is {every!r}; expected a whole number of updates >= 1")
            key = "d" if target == "discriminator" else "g"
            procedure = self.config.procedure.name
            if key not in {r.optimizer for r in self.roles.values()}:
                raise ConfigError(f"{where} targets the {target}, which procedure {procedure!r} does not train")
            # a procedure says whose updates it hands penalty contexts to; a penalty on another side would
            # never be evaluated, so it is refused rather than silently left out
            penalises = tuple(getattr(self.procedure, "penalises", ("d", "g")))
            if isinstance(reg, Penalty) and key not in penalises:
                sides = " and ".join({"d": "discriminator", "g": "generator"}[k] for k in penalises) or "no network"
                raise ConfigError(f"{where} penalises the {target}, but procedure {procedure!r} applies penalties "
                                  f"to the {sides} only; drop it or choose a {sides} penalty")
            if isinstance(reg, Penalty):
                penalties[key].append((choice.name, reg))
            if isinstance(reg, Constraint):
                constraints[key].append(reg)
        return penalties, constraints

    def _forms(self) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        """What runs each network's forward passes: DDP across ranks and then ``torch.compile`` while
        its own optimiser updates it; the plain (or compiled) module while another network's update
        reads it, since its gradients are not taken there (and DDP would wait for them)."""
        trained: dict[str, nn.Module] = {}
        frozen: dict[str, nn.Module] = {}
        for name, role in self.roles.items():
            module = role.module
            form: nn.Module = module
            if self.dist.enabled and any(p.requires_grad for p in module.parameters()):
                from torch.nn.parallel import DistributedDataParallel as DDP

                ids = [self.device.index] if self.device.type == "cuda" else None
                form = DDP(module, device_ids=ids)
            if self.config.train.compile:
                form = torch.compile(form)  # type: ignore[assignment]
                module = torch.compile(module)  # type: ignore[assignment]
            trained[name], frozen[name] = form, module
        return trained, frozen

    # -- what callbacks and commands see ------------------------------------------------------------

    @property
    def step(self) -> int:
        return self.updates.step

    @property
    def images_seen(self) -> int:
        return self.updates.images_seen

    @property
    def skipped(self) -> int:
        return self.updates.skipped

    def network(self, name: str) -> nn.Module:
        """The network of role ``name`` as it trains (the plain module)."""
        return self.updates.module(name)

    def sampling_network(self, name: str) -> nn.Module:
        """The network of role ``name`` as samples use it: its moving average when the run keeps one."""
        ema = self.emas.get(name)
        return ema.module if ema is not None else self.network(name)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples and evaluation use: the moving average when there is one."""
        return self.sampling_network("generator")

    def view(self) -> _View:
        return _View(self)

    def sample(self, n: int, *, generator: torch.Generator) -> Tensor:
        """``n`` samples for callbacks (see :class:`ganforge.TrainingRun`), drawn by the procedure."""
        with self.view() as view:
            return self.procedure.sample(view, n, generator=generator)

    def preview(self) -> tuple[Tensor, int]:
        with self.view() as view:
            return self.procedure.preview(view)

    def save_preview(self) -> Path:
        from .images import preview_picture, save_samples

        samples, columns = self.preview()
        path = self.out / "samples" / f"{ckpt.step_name(self.step)}.png"
        save_samples(samples, path, nrow=columns)
        if self.loggers:
            picture = preview_picture(samples, nrow=columns)
            self.loggers.each(lambda lg: lg.images(self.step, "samples", picture))
        return path

    def evaluate(self) -> dict[str, float]:
        with self.view() as view:
            return dict(self.procedure.evaluate(view))

    def run_callbacks(self, log: MetricsLog, progress: Progress, *, final: bool = False) -> None:
        """Run the callbacks due at this step (all of them when ``final``) and log what they return."""
        record: dict[str, Any] = {}
        for cb in self.callbacks:
            if final or self.step % cb.every == 0:
                t0 = time.perf_counter()
                record.update(cb(self))
                record[f"time_{type(cb).__name__}"] = time.perf_counter() - t0
        self._write(log, progress, record)

    def _write(self, log: MetricsLog, progress: Progress, record: dict[str, Any]) -> None:
        if record:
            record = {"step": self.step, "images_seen": self.images_seen, **record, "time": time.time()}
            log.write(record)
            if self.loggers:
                self.loggers.scalars(self.step, record)
            if progress.enabled:
                progress.message(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in record.items() if k != "time"))

    # -- checkpoints ------------------------------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        """Every network under its checkpoint name (moving averages as ``<role>_ema``)."""
        nets = {name: role.module for name, role in self.roles.items()}
        nets.update({f"{name}_ema": ema.module for name, ema in self.emas.items()})
        return nets

    def training_state(self) -> dict[str, Any]:
        """Everything besides the weights that an exact resume needs (a collective when distributed)."""
        rank_rng = self._global.rng_state()
        return {
            **self.updates.state_dict(),
            "rng_ranks": self.dist.gather(rank_rng),  # every rank's own generators (dropout, noise inputs)
            "procedure": self.procedure.state_dict(),
        }

    def load_weights_from(self, checkpoint: ckpt.Checkpoint) -> None:
        """Weights only (``--init-from``): a new run that starts from another run's networks."""
        try:
            for name, net in self.networks().items():
                # a source run without a moving average seeds ours from the network itself
                missing_ema = name.endswith("_ema") and name not in checkpoint.weights
                ckpt.load_weights(net, checkpoint, name.removesuffix("_ema") if missing_ema else name)
        except CheckpointError as exc:
            differ = self._network_settings_differ(checkpoint)
            if not differ:
                raise CheckpointError(f"--init-from: {exc}") from None
            detail = str(exc)
            raise CheckpointError(f"--init-from {checkpoint.path}: its run and this one differ in the settings that "
                                  f"shape the networks: {differ}; its weights do not fit these networks "
                                  f"({detail[:240]}{'...' if len(detail) > 240 else ''})") from None

    def _network_settings_differ(self, checkpoint: ckpt.Checkpoint) -> str:
        """The settings that shape the networks where ``checkpoint``'s run and this one differ, for the
        error (empty when its config cannot be read or nothing there differs)."""
        import tomllib

        from .config import flatten, structure, to_dict

        try:
            theirs = flatten(to_dict(structure(tomllib.loads(checkpoint.config_toml), self.manager), self.manager))
        except (GanforgeError, tomllib.TOMLDecodeError):
            return ""
        ours = flatten(to_dict(self.config, self.manager))
        shaping = ("generator.", "discriminator.", "procedure.", "data.name", "data.resolution", "data.channels")
        changed = sorted(k for k in theirs.keys() | ours.keys()
                         if k.startswith(shaping) and theirs.get(k) != ours.get(k))
        if not changed:
            return ""
        shown = ", ".join(f"{k} ({theirs.get(k)!r} there, {ours.get(k)!r} here)" for k in changed[:6])
        return shown + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")

    def load_training_state(self, checkpoint: ckpt.Checkpoint) -> None:
        """Continue exactly where ``checkpoint`` left off (weights, optimisers, RNGs, data order)."""
        if "updates" not in checkpoint.state:
            raise CheckpointError(f"checkpoint {checkpoint.path} was written by an earlier ganforge whose "
                                       "training state this one cannot continue; start a new run with --init-from")
        for name, net in self.networks().items():
            ckpt.load_weights(net, checkpoint, name)
        state = checkpoint.state
        self.updates.load_state_dict(state)
        ranks = state["rng_ranks"]
        mine = ranks[self.dist.rank] if self.dist.rank < len(ranks) else ranks[0]
        self._global.load_rng_state(mine)
        self.procedure.load_state_dict(state["procedure"])
        self.resumed_from = checkpoint.path

    def save_checkpoint(self, last_good: Path | None = None) -> Path:
        """Write a checkpoint of this step; ``last_good`` is named in the error if the weights are no
        longer finite, when none is written."""
        c = self.config
        bad = self._nonfinite_networks()  # on every rank (their weights are the same), so that all stop together
        if bad:
            self._refuse_nonfinite(bad, last_good)
        state = self.training_state()  # on every rank: it gathers their RNG states
        final = self.out / "checkpoints" / ckpt.step_name(self.step)
        if not self.dist.is_writer:
            return final
        meta = {
            "procedure": c.procedure.name,
            "images_seen": self.images_seen,
            "world_size": self.dist.world_size,
            "data_specs": {name: spec_to_meta(spec) for name, spec in self.specs.items()},
            "networks": {name: {"optimizer": r.optimizer, "ema": name in self.emas} for name, r in self.roles.items()},
            "components": {
                "procedure": c.procedure.name, "data": c.data.name, "generator": c.generator.name,
                "discriminator": c.discriminator.name, "loss": c.loss.name, "sampler": c.sampler.name,
            },
        }
        try:
            return ckpt.save_checkpoint(
                self.out / "checkpoints", self.step, networks=self.networks(), state=state,
                meta=meta, config_toml=to_toml(c, self.manager), keep_last=c.output.keep_last,
            )
        except ckpt.NonFiniteWeightsError as exc:
            self._refuse_nonfinite(exc.networks, last_good)
            raise

    def _nonfinite_networks(self) -> list[str]:
        """The networks (``<role>_ema`` for moving averages) with a NaN or infinite weight or buffer:
        checked on the device, one host sync."""
        nets = self.networks()
        flags = [torch.stack([torch.isfinite(t).all() for t in net.state_dict().values() if t.is_floating_point()]
                             or [torch.ones((), dtype=torch.bool, device=self.device)]).all().to(self.device)
                 for net in nets.values()]
        finite = torch.stack(flags).tolist()
        return [name for name, ok in zip(nets, finite, strict=True) if not ok]

    def _refuse_nonfinite(self, networks: list[str], last_good: Path | None) -> None:
        c = self.config
        skipped = f"; {self.skipped} updates were skipped" if c.train.nonfinite == "skip" else ""
        last_good = last_good or self.resumed_from
        raise GanforgeError(
            f"the weights of {', '.join(networks)} are no longer finite at step {self.step} (an update "
            f"with finite losses and gradients can still overflow them{skipped}), so the run cannot make "
            f"progress and stops; no checkpoint was written for it, and the last good one, verified "
            f"finite, is {last_good or 'not written yet'}. Lower the learning rates or add a regularizer, "
            "and continue from that checkpoint (ganforge train --resume)."
        )

    # -- the loop ---------------------------------------------------------------------------------

    def train_step(self) -> None:
        """One iteration of the procedure (its losses stay on the device until the next log)."""
        with self._global.active():  # inside fit() already active: a counter, no state copied
            self._train_step()

    def _train_step(self) -> None:
        u = self.updates
        if self._decays:
            steps = self.config.train.steps
            optim = {"g": self.config.optim.g, "d": self.config.optim.d}
            for key, opt in u.optimizers.items():
                lr = optim[key].lr_at(u.step, steps)
                for group in opt.param_groups:
                    group["lr"] = lr
        for role in self.roles.values():  # a callback or command may have left a network in eval mode
            role.module.train()
        self.procedure.train_step(u)
        u.step += 1

    def check_finite(self, last: Path | None) -> None:
        """Under the ``stop`` policy, raise naming the first non-finite loss and its step (a host sync)."""
        if self.config.train.nonfinite != "stop":
            return
        bad = {f"loss_{k}": int(v) for k, v in self.updates.first_nonfinite.items() if int(v) >= 0}
        # every rank stops when any rank saw it, so that none is left waiting in a collective
        if self.dist.any(bool(bad), self.device):
            where = f"at step {min(bad.values()) + 1} " if bad else "on another rank "
            key = min(bad, key=bad.__getitem__) if bad else "a loss"
            raise GanforgeError(
                f"{key} became non-finite {where}(train.nonfinite = \"stop\"); the last good "
                f"checkpoint is {last or 'not written yet'} and nothing was written after it. Lower the "
                "learning rates, add a regularizer, or set train.nonfinite = \"skip\" to drop such updates."
            )

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
        with self._global.active():
            return self._fit()

    def _fit(self) -> Path:
        c = self.config
        writer = self.dist.is_writer
        if writer:
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_text(self.out / "config.toml", to_toml(c, self.manager))
            self.loggers = Loggers(c.output.loggers, self.out, self.manager)
        if writer and self.resumed_from is not None:
            moved = supersede_after(self.out, self.step)
            if moved:
                print(f"ganforge: what an earlier process wrote after step {self.step} is moved to "
                      f"{', '.join(str(p.relative_to(self.out)) for p in moved)}: this run writes those steps "
                      "again", file=sys.stderr)
        log = MetricsLog(self.out / "metrics.jsonl" if writer else None)
        # every logged step gets a line without a terminal too: the log cadence is the user's choice
        progress = Progress(c.train.steps, label="train", unit="steps", enabled=c.output.progress and writer,
                            every_s=0.0)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        progress.update(self.step, "starting")  # at once: the first logged step may be minutes away
        t0, images0 = time.perf_counter(), self.images_seen
        # a resumed run that trains no further keeps the checkpoint it was resumed from as it is
        last = self.resumed_from if self.resumed_from is not None and self.resumed_from.name == ckpt.step_name(
            self.step) else None
        stop = False
        try:
            while self.step < c.train.steps and not stop:
                self.train_step()
                step = self.step
                logging_step = step % c.output.log_every == 0 or step == c.train.steps
                if logging_step:
                    self.check_finite(last)
                    elapsed = time.perf_counter() - t0
                    ips = (self.images_seen - images0) / max(elapsed, 1e-9)
                    record: dict[str, Any] = {
                        "step": step,
                        "images_seen": self.images_seen,
                        **self.updates.take_logged(),  # the one host sync
                        "images_per_sec": ips,
                        "sec_per_kimg": 1000.0 / max(ips, 1e-9),
                        "peak_mem_mb": self._peak_memory_mb(),
                        "time": time.time(),
                    }
                    if c.train.nonfinite == "skip":
                        record["skipped_updates"] = self.skipped
                    log.write(record)
                    if self.loggers:
                        self.loggers.scalars(step, record)
                    progress.update(step, " ".join(
                        f"{k.removeprefix('loss_')}={v:.3f}" for k, v in record.items()
                        if k not in _NOT_LOSSES and isinstance(v, int | float)) + f" {ips:.0f} img/s")
                    t0, images0 = time.perf_counter(), self.images_seen
                if writer and step % c.output.sample_every == 0:
                    self._outputs(log, progress)
                if writer and self.callbacks:
                    self.run_callbacks(log, progress)
                if step % c.output.checkpoint_every == 0:
                    self.check_finite(last)
                    last = self.save_checkpoint(last)
                # ranks agree on stopping where they already meet, so that none waits forever
                if not self.dist.enabled:
                    stop = self._stop_signal is not None
                elif logging_step:
                    stop = self.dist.any(self._stop_signal is not None, self.device)
            if self._stop_signal is not None or stop:
                self.stopped_by = self._stop_signal or int(signal.SIGTERM)
                name = signal.Signals(self.stopped_by).name if self._stop_signal else "signal on another rank"
                progress.message(f"stopping on signal {name} at step {self.step}")
            self.check_finite(last)
            if writer and self.step % c.output.sample_every != 0:
                self._outputs(log, progress)
            if writer and self.callbacks and any(self.step % cb.every != 0 for cb in self.callbacks):
                self.run_callbacks(log, progress, final=True)
            if last is None or last.name != ckpt.step_name(self.step):
                last = self.save_checkpoint(last)
            self.dist.barrier()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            progress.close()
            log.close()
            if self.loggers:
                self.loggers.close()
        return last

    def _outputs(self, log: MetricsLog, progress: Progress) -> None:
        """The preview grid and the procedure's evaluation, every ``output.sample_every`` steps."""
        self.save_preview()
        self._write(log, progress, self.evaluate())


class _View:
    """The :class:`ganforge.Preview` of a trainer: sampling networks in eval mode, restored after."""

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer
        self.device = trainer.device
        self.count = trainer.config.output.preview_samples
        self._modes: dict[nn.Module, bool] = {}

    def __enter__(self) -> _View:
        return self

    def __exit__(self, *exc: object) -> None:
        for module, mode in self._modes.items():
            module.train(mode)

    def net(self, name: str) -> nn.Module:
        module = self._trainer.sampling_network(name)
        if module not in self._modes:
            self._modes[module] = module.training
            module.eval()
        return module

    def latents(self, n: int, *, network: str = "generator", generator: torch.Generator | None = None) -> Tensor:
        t = self._trainer
        rng = generator or torch.Generator(t.device).manual_seed(t.preview_seed)
        return t.sampler.sample(n, t.updates.space(network), device=t.device, generator=rng)

