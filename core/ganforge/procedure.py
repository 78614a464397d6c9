"""Training procedures: the mathematics of one method, hosted by the one training loop.

A *procedure* plugin (``ganforge_register_procedures``) says which networks a method trains and
what one training iteration does; the loop (:class:`ganforge.Trainer`) owns everything else:
devices, seeds and every RNG, data order, optimisers and learning-rate schedules, autocast and
gradient scalers, DDP, ``torch.compile``, moving averages, lazy regularizers, constraints, the
``nonfinite`` policy, signals, checkpoints and exact resume, callbacks, loggers, progress and
previews. This is the split of mmengine's runner and a model's ``train_step``, of
pytorch-CycleGAN-and-pix2pix's one ``train.py`` over ``optimize_parameters``, and of NVlabs'
StyleGAN2 loop over its phases (main loss, lazy regularisation).

A procedure's step is written against :class:`Update`, so that it reads like its paper's
algorithm::

    def train_step(self, t):
        with t.phase("d"):                         # D's update: its networks train, the others are frozen
            real = t.batch()                       # this rank's share of a global batch, with its own labels
            fake = t.net("generator")(t.latents(), real.get("labels")).detach()
            loss = self.loss.discriminator_loss(t.net("discriminator")(real["images"]), ...)
            t.minimise(loss, penalties=[t.context(real=..., fake=..., ...)])   # + lazy R1, then the step

The contract in full:

1. ``prepare(dataset) -> DataPlan``: which tensors batches are drawn from (named *streams*, each a
   mapping of equally long tensors) and the :class:`DataSpec` of each kind of image the networks
   are built for. A procedure refuses a dataset of the wrong kind here with a
   :class:`~ganforge.ConfigError` naming ``data.name``.
2. ``networks(build, specs) -> {role: Network}``: the networks, built with ``build`` from the
   config's sections, each with the optimiser it joins (``"g"`` or ``"d"``, the ``[optim.g]`` and
   ``[optim.d]`` settings; networks that share a key share one optimiser, as CycleGAN's G and F do)
   and whether the loop keeps a moving average of it. It depends on ``specs`` alone, so that a
   checkpoint rebuilds its networks without loading data.
3. ``train_step(t)``: one iteration; ``t.step`` counts them.
4. ``preview(view) -> (images, columns)``: the grid written every ``output.sample_every`` steps.
5. ``evaluate(view) -> {name: value}``: numbers logged with each preview (may be empty).
6. ``sample(view, n, generator)``: ``n`` outputs for callbacks that judge samples (periodic FID);
   a procedure with nothing to sample raises :class:`~ganforge.ConfigError`.
7. ``state_dict()`` / ``load_state_dict(state)``: what must survive a resume besides networks,
   optimisers and the loop's RNGs (CycleGAN's image pools); tensors and plain data only.

A procedure's factory may carry ``defaults``: raw config sections (``generator``, ``loss``,
``train``, ``optim`` ...) merged under the user's file, so that a recipe states only what differs
from its paper. A procedure may also say whose updates it hands penalty contexts to, ``penalises``
(``("d", "g")`` when absent; ``("d",)`` for pix2pix, CycleGAN and StarGAN, whose generators have
their own terms): a configured penalty on another side would never run, so the loop refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor, nn

from .protocols import DataSpec, PenaltyContext

__all__ = ["DataPlan", "Network", "NetworkBuilder", "Preview", "Procedure", "Update"]

OptimizerKey = Literal["g", "d"]


@attrs.frozen(kw_only=True)
class DataPlan:
    """What a procedure draws from a dataset.

    Attributes:
        streams: stream name -> named tensors of equal length (``{"data": {"images": x, "labels": y}}``).
            Each stream is shuffled and drawn on its own (CycleGAN's unaligned domains), its order saved.
        specs: name -> the spec of one kind of image, the networks' input to :meth:`Procedure.networks`
            (``{"data": ...}`` for a GAN, ``{"data": B, "source": A}`` for pix2pix); saved in every checkpoint.
    """

    streams: Mapping[str, Mapping[str, Tensor]]
    specs: Mapping[str, DataSpec]


@attrs.frozen(kw_only=True)
class Network:
    """One network of a procedure (a *role*): the module, the optimiser it joins, and whether the loop
    keeps an exponential moving average of its weights (``train.ema_half_life``) for previews,
    samples and inference."""

    module: nn.Module
    optimizer: OptimizerKey
    ema: bool = False


class NetworkBuilder(Protocol):
    """Builds a network from a config section: ``build("generator", data=spec)`` is the registered
    generator that ``[generator]`` names, built for ``spec``. ``params`` replaces the section's
    structured parameters (a procedure that fills in ``in_channels`` from its data); ``context``
    goes to the factory as keyword arguments."""

    def __call__(self, section: Literal["generator", "discriminator"], *, data: DataSpec,
                 params: Any = None, **context: Any) -> nn.Module: ...

    def params(self, section: Literal["generator", "discriminator"]) -> Any:
        """The section's structured parameters (the plugin's attrs config)."""


class Update(Protocol):
    """What the loop hands :meth:`Procedure.train_step`.

    Batches, latents and per-sample random draws are made for the *global* batch from the run's
    seeded generators and sliced for this process, so that a ``torchrun`` job and an exact resume see
    the numbers a single uninterrupted process sees.
    """

    step: int  # iterations done before this one
    batch_size: int  # the global batch (train.batch_size)
    n_critic: int  # train.n_critic: discriminator updates per generator update, for procedures that alternate
    device: torch.device

    def phase(self, optimizer: OptimizerKey) -> AbstractContextManager[None]:
        """The update of one optimiser's networks: inside, :meth:`net` gives those networks in their
        training form (DDP, compiled) and every other network frozen (its gradients are not taken),
        the forward passes run under the run's autocast, and :meth:`minimise` steps this optimiser.
        A phase may be entered twice in one step: pix2pix computes ``G(x)`` in G's phase, updates D on
        it, and minimises G's loss in G's phase again, on that same output."""

    def net(self, name: str) -> nn.Module:
        """The network ``name`` in the form the current phase needs."""

    def batch(self, stream: str = "data") -> Mapping[str, Tensor]:
        """This process's share of the next global batch of ``stream``; every tensor of one sample
        travels together (an image with its own label)."""

    def latents(self, network: str = "generator") -> Tensor:
        """This process's share of a global batch of latents from the run's prior for ``network``."""

    def randint(self, low: int, high: int) -> Tensor:
        """``[n]`` integers in ``[low, high)`` drawn for the global batch (StarGAN's target domains)."""

    def penalised(self, optimizer: OptimizerKey) -> bool:
        """Whether any penalty targets this optimiser's side (so that a procedure draws the real batch
        a generator-side penalty needs only when one is configured)."""

    def gather(self, x: Tensor) -> Tensor:
        """Every process's ``x`` concatenated in rank order (a collective; ``x`` itself when alone)."""

    def shard(self, x: Tensor) -> Tensor:
        """This process's slice of a tensor made for the global batch."""

    @property
    def generator(self) -> torch.Generator:
        """The run's seeded CPU generator for a procedure's own randomness (image pools); identical
        on every process and restored on resume."""

    def context(self, *, generator: nn.Module, discriminator: nn.Module, real: Tensor, fake: Tensor,
                latents: Tensor, labels: Tensor | None = None, fake_labels: Tensor | None = None,
                real_logits: Tensor | None = None, fake_logits: Tensor | None = None) -> PenaltyContext:
        """The :class:`PenaltyContext` of one discriminator (or generator) pass, with the run's step,
        penalty RNG and ranks filled in. Give penalties the plain modules (:meth:`module`)."""

    def module(self, name: str) -> nn.Module:
        """The plain network ``name`` (no DDP, not compiled), for penalties that differentiate twice."""

    def minimise(self, loss: Tensor, *, penalties: Sequence[PenaltyContext] = ()) -> None:
        """Backward and step the current phase's optimiser on ``loss`` plus the penalties that target
        its side and are due at this update (each evaluated on every context given, scaled by its
        lazy interval), then apply its constraints and moving averages. Logged as ``loss_<key>``."""

    def log(self, name: str, value: Tensor) -> None:
        """Log a scalar (kept on the device) averaged over the iterations on which it was logged."""


class Preview(Protocol):
    """What a procedure's preview, evaluation and sampling see: the networks as samples use them
    (their moving averages where kept), in eval mode."""

    device: torch.device
    count: int  # output.preview_samples

    def net(self, name: str) -> nn.Module: ...

    def latents(self, n: int, *, network: str = "generator", generator: torch.Generator | None = None) -> Tensor:
        """``n`` latents from the run's prior; without ``generator``, the run's fixed preview latents
        (the same on every call, so that the grids of one run are comparable)."""


@runtime_checkable
class Procedure(Protocol):
    """A training procedure (see the module docstring for the contract)."""

    def prepare(self, dataset: Any) -> DataPlan: ...

    def networks(self, build: NetworkBuilder, specs: Mapping[str, DataSpec]) -> Mapping[str, Network]: ...

    def train_step(self, t: Update) -> None: ...

    def preview(self, view: Preview) -> tuple[Tensor, int]: ...

    def evaluate(self, view: Preview) -> Mapping[str, float]: ...

    def sample(self, view: Preview, n: int, *, generator: torch.Generator) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
