"""The update interface: what a procedure's step calls, and the mechanics behind each call.

:class:`StepInterface` implements :class:`ganforge.Update` for the :class:`ganforge.Trainer`. It owns
the per-update mechanics (the data streams and latent draws, the optimisers and gradient scalers,
autocast, lazy penalties, constraints, moving averages, the ``nonfinite`` policy and the logged sums)
so that the trainer is the loop and nothing else. Nothing here reads a value back to the host except
under ``train.nonfinite = "skip"`` (one flag per update, as a GradScaler does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .batches import BatchStream
from .building import prior_space
from .distributed import DistributedContext
from .ema import EMA
from .errors import GanforgeError
from .procedure import Network, OptimizerKey
from .protocols import Constraint, LatentSpace, Penalty, PenaltyContext, Sampler


class StepInterface:
    """The :class:`ganforge.Update` of a run (see there for what each method promises)."""

    def __init__(
        self,
        *,
        roles: Mapping[str, Network],
        trained: Mapping[str, nn.Module],
        frozen: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        scalers: Mapping[str, torch.amp.GradScaler],
        penalties: Mapping[str, Sequence[tuple[str, Penalty]]],
        constraints: Mapping[str, Sequence[Constraint]],
        emas: Mapping[str, EMA],
        streams: Mapping[str, BatchStream],
        sampler: Sampler,
        latent_rng: torch.Generator,
        penalty_rng: torch.Generator,
        procedure_rng: torch.Generator,
        dist: DistributedContext,
        device: torch.device,
        batch_size: int,
        n_critic: int,
        amp_dtype: torch.dtype | None,
        skip_nonfinite: bool,
        progressive: Sequence[Callable[[int], None]],
    ) -> None:
        self.roles = dict(roles)
        self._trained = dict(trained)
        self._frozen = dict(frozen)
        self.optimizers = dict(optimizers)
        self.scalers = dict(scalers)
        self.penalties = {k: list(v) for k, v in penalties.items()}
        self._constraints = {k: list(v) for k, v in constraints.items()}
        self.emas = dict(emas)
        self.streams = dict(streams)
        self.sampler = sampler
        self.latent_rng = latent_rng
        self.penalty_rng = penalty_rng
        self.procedure_rng = procedure_rng
        self.dist = dist
        self.device = device
        self.batch_size = batch_size
        self.n_critic = n_critic
        self.amp_dtype = amp_dtype
        self.skip_nonfinite = skip_nonfinite
        self.progressive = list(progressive)
        self._params = {k: [p for r in self.roles.values() if r.optimizer == k
                            for p in r.module.parameters() if p.requires_grad] for k in self.optimizers}
        self._members = {k: [r.module for r in self.roles.values() if r.optimizer == k] for k in self.optimizers}
        self._averaged = {k: [self.emas[n] for n, r in self.roles.items() if r.optimizer == k and n in self.emas]
                          for k in self.optimizers}
        # real images are counted where the discriminator sees them (the generator when there is none)
        self._counting = "d" if "d" in self.optimizers else "g"
        self._spaces: dict[str, LatentSpace] = {}

        self.step = 0  # iterations done
        self.updates = dict.fromkeys(self.optimizers, 0)  # optimiser steps taken (or skipped), per key
        self.images_seen = 0
        self.skipped = 0  # updates dropped for a non-finite loss or gradient (nonfinite = "skip")
        # first iteration at which each optimiser's loss was non-finite, -1 while finite: watched on the device
        self.first_nonfinite = {k: torch.full((), -1, dtype=torch.long, device=device) for k in self.optimizers}
        self._phase: str | None = None
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    # -- the interface ----------------------------------------------------------------------------

    @contextmanager
    def phase(self, optimizer: OptimizerKey) -> Iterator[None]:
        if optimizer not in self.optimizers:
            raise GanforgeError(f"phase {optimizer!r}: this procedure's networks use the optimisers "
                                f"{', '.join(sorted(self.optimizers))}")
        for set_progress in self.progressive:  # networks that follow the schedule (progressive growing)
            set_progress(self.images_seen)
        self._phase = optimizer
        try:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                yield
        finally:
            self._phase = None

    def net(self, name: str) -> nn.Module:
        role = self._role(name)
        return self._trained[name] if role.optimizer == self._phase else self._frozen[name]

    def module(self, name: str) -> nn.Module:
        return self._role(name).module

    def batch(self, stream: str = "data") -> dict[str, Tensor]:
        try:
            source = self.streams[stream]
        except KeyError:
            raise GanforgeError(f"batch({stream!r}): the procedure planned the streams "
                                f"{', '.join(sorted(self.streams))}") from None
        return {key: self.dist.shard(t) for key, t in source.next().items()}

    def latents(self, network: str = "generator") -> Tensor:
        z = self.sampler.sample(self.batch_size, self.space(network), device=self.device, generator=self.latent_rng)
        return self.dist.shard(z)

    def randint(self, low: int, high: int) -> Tensor:
        draws = torch.randint(low, high, (self.batch_size,), generator=self.procedure_rng)
        return self.dist.shard(draws.to(self.device))

    def penalised(self, optimizer: OptimizerKey) -> bool:
        return bool(self.penalties.get(optimizer))

    def gather(self, x: Tensor) -> Tensor:
        return self.dist.all_gather(x)

    def shard(self, x: Tensor) -> Tensor:
        return self.dist.shard(x)

    @property
    def generator(self) -> torch.Generator:
        return self.procedure_rng

    def context(self, *, generator: nn.Module, discriminator: nn.Module, real: Tensor, fake: Tensor,
                latents: Tensor, labels: Tensor | None = None, fake_labels: Tensor | None = None,
                real_logits: Tensor | None = None, fake_logits: Tensor | None = None) -> PenaltyContext:
        key = self._phase or "d"
        return PenaltyContext(
            generator=generator, discriminator=discriminator, real=real.detach(), fake=fake.detach(), labels=labels,
            fake_labels=fake_labels, latents=latents, real_logits=real_logits, fake_logits=fake_logits,
            step=self.updates.get(key, 0), rng=self.penalty_rng, world_size=self.dist.world_size, rank=self.dist.rank,
        )

    def minimise(self, loss: Tensor, *, penalties: Sequence[PenaltyContext] = ()) -> None:
        key = self._phase
        if key is None:
            raise GanforgeError("minimise() is called inside a phase: `with t.phase('d'): ... t.minimise(loss)`")
        # shape checks read metadata only (no host sync): a plugin that forgets to reduce over the batch
        # is named here, not left to backward()'s "grad can be implicitly created only for scalar outputs"
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise GanforgeError(
                f"minimise(loss) for optimiser {key!r}: expected a scalar tensor, got {_described(loss)}; "
                "the adversarial loss (a Loss plugin's discriminator_loss / generator_loss) and every loss "
                "term must average over the batch (and over a patch map)")
        done = self.updates[key]
        if penalties:
            for name, pen in self.penalties.get(key, ()):
                if done % pen.every == 0:
                    value = sum((_scalar(name, pen.penalty(ctx)) for ctx in penalties), loss.new_zeros(()))
                    self.log(name, value.detach())
                    loss = loss + pen.every * value
        self.log(f"loss_{key}", loss.detach())
        if self._apply(key, loss):
            for con in self._constraints.get(key, ()):
                for module in self._members[key]:
                    con.constrain(module)
        self.updates[key] = done + 1
        if key == self._counting:
            self.images_seen += self.batch_size
        for ema in self._averaged[key]:
            ema.update(self.batch_size, self.images_seen)

    def log(self, name: str, value: Tensor) -> None:
        value = value.detach().float()
        self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.counts[name] = self.counts.get(name, 0) + 1

    # -- mechanics --------------------------------------------------------------------------------

    def _role(self, name: str) -> Network:
        try:
            return self.roles[name]
        except KeyError:
            known = ", ".join(sorted(self.roles))
            raise GanforgeError(f"net({name!r}): this procedure's networks are {known}") from None

    def space(self, network: str) -> LatentSpace:
        if network not in self._spaces:
            self._spaces[network] = prior_space(self._role(network).module)
        return self._spaces[network]

    def _apply(self, key: str, loss: Tensor) -> bool:
        """Backward, then the optimiser step unless the policy drops a non-finite update."""
        params, opt, scaler = self._params[key], self.optimizers[key], self.scalers[key]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=False):
            # only this optimiser's gradients: the G update leaves D's untouched (and saves its backward)
            scaler.scale(loss).backward(inputs=params)  # type: ignore[no-untyped-call]
        if self.skip_nonfinite:
            grads = [p.grad for p in params if p.grad is not None]
            finite = torch.isfinite(loss.detach())
            if grads:
                finite = finite & torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()
            if not bool(finite):  # one host sync per update, only under this policy
                opt.zero_grad(set_to_none=True)
                self.skipped += 1
                return False
        else:
            first = self.first_nonfinite[key]
            first.copy_(torch.where((first < 0) & ~torch.isfinite(loss.detach()), self.step, first))
        scaler.step(opt)
        scaler.update()
        return True

    def take_logged(self) -> dict[str, float]:
        """The logged means since the last call (the one host sync of a logging step)."""
        values = {k: v.item() / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return values

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "updates": dict(self.updates), "images_seen": self.images_seen, "skipped": self.skipped,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "streams": {k: s.state_dict() for k, s in self.streams.items()},
            "rng_latent": self.latent_rng.get_state(), "rng_penalty": self.penalty_rng.get_state(),
            "rng_procedure": self.procedure_rng.get_state(),
            "penalties": {name: pen.state_dict() for name, pen in self._stateful_penalties().items()},
        }

    def _stateful_penalties(self) -> dict[str, Any]:
        """The penalties with running state, by ``"<optimiser>.<index>.<name>"`` (unique and stable for
        one config)."""
        return {f"{key}.{i}.{name}": pen for key, pens in self.penalties.items()
                for i, (name, pen) in enumerate(pens) if callable(getattr(pen, "state_dict", None))}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
            self.scalers[key].load_state_dict(state["scalers"][key])
        for key, stream in self.streams.items():
            stream.load_state_dict(state["streams"][key])
        self.latent_rng.set_state(state["rng_latent"].to("cpu"))
        self.penalty_rng.set_state(state["rng_penalty"].to("cpu"))
        self.procedure_rng.set_state(state["rng_procedure"].to("cpu"))
        saved = state.get("penalties", {})  # absent before penalties had state, and for a penalty added since
        for name, pen in self._stateful_penalties().items():
            if name in saved:
                pen.load_state_dict({k: v.to(self.device) for k, v in saved[name].items()})
        self.step = int(state["step"])
        self.updates = {k: int(v) for k, v in state["updates"].items()}
        self.images_seen = int(state["images_seen"])
        self.skipped = int(state["skipped"])


def _described(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r:.60}"


def _scalar(name: str, value: Tensor) -> Tensor:
    if not isinstance(value, Tensor) or value.dim() != 0:
        raise GanforgeError(f"regularizer {name!r}: penalty() returned {_described(value)}; expected a scalar tensor "
                            "(its weighted mean over the batch)")
    return value
