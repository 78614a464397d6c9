"""The protocols every component implements.

Plugins implement these structurally (no base class to inherit); the registries hold factories that
build them from a config. Shapes use ``N`` for the batch, ``C, H, W`` for images and ``D`` for a flat
vector; ``*S`` is the sample shape of a :class:`DataSpec` (``C, H, W`` or ``D``).

Images flow through the engine in ``[-1, 1]``; labels are ``int64`` class indices of shape ``[N]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor, nn

__all__ = [
    "AttributeScorer",
    "AuxiliaryClassifier",
    "Callback",
    "Command",
    "Constraint",
    "DataSpec",
    "Dataset",
    "Discriminator",
    "Editor",
    "FeatureExtractor",
    "Generator",
    "InversionMethod",
    "LatentSpace",
    "Logger",
    "Loss",
    "LossTerm",
    "Metric",
    "Penalty",
    "PenaltyContext",
    "Progressive",
    "Regularizer",
    "Sampler",
    "StyleGenerator",
    "TrainingRun",
    "Translator",
]


@attrs.frozen(kw_only=True)
class DataSpec:
    """What a dataset yields, so that networks can be built to fit it.

    Attributes:
        shape: sample shape: ``(C, H, W)`` for images, ``(D,)`` for vectors.
        num_classes: number of classes when the dataset is labelled, else ``None``.
        class_names: a name per class (``len == num_classes``), or empty.
    """

    shape: tuple[int, ...]
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def resolution(self) -> int:
        """Side of a square image; only meaningful when :attr:`is_image`."""
        return self.shape[-1]


@attrs.frozen(kw_only=True)
class LatentSpace:
    """One latent space a generator can be driven from.

    DCGAN exposes only ``z``; a style-based generator also exposes ``w`` (after the mapping network)
    and ``w+`` (one ``w`` per synthesis layer, shape ``(num_ws, w_dim)``).
    """

    name: str
    shape: tuple[int, ...]


class Dataset(Protocol):
    """A labelled or unlabelled collection of samples held in memory.

    ``images`` is ``[N, *S]`` float32 in ``[-1, 1]`` (vectors in their natural units) and ``labels``
    is ``[N]`` int64 or ``None``. Keeping data as two tensors lets the engine draw a batch with one
    indexing operation and resume the exact data order from a checkpoint.
    """

    spec: DataSpec
    images: Tensor
    labels: Tensor | None


@runtime_checkable
class Generator(Protocol):
    """Maps latents (and, for conditional models, labels) to samples.

    ``latent_spaces`` lists the spaces the generator accepts, the first being the prior's (``z``).
    ``forward(z: [N, *latent], labels: [N] | None) -> [N, *S]`` in ``[-1, 1]``. A conditional
    generator requires labels; an unconditional one ignores them.
    """

    latent_spaces: Sequence[LatentSpace]
    num_classes: int | None

    def __call__(self, z: Tensor, labels: Tensor | None = None) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class StyleGenerator(Generator, Protocol):
    """A generator with a mapping network, as StyleGAN (Karras et al. 2019, arXiv:1812.04948).

    ``mapping(z: [N, Z]) -> w: [N, W]``; ``synthesis(ws: [N, num_ws, W]) -> [N, *S]``; ``w_avg``
    is the running mean of ``w`` used for truncation ``w' = w_avg + psi (w - w_avg)``;
    ``layer_ranges`` names the index ranges of ``ws`` that are ``coarse``, ``middle`` and ``fine``.
    """

    num_ws: int
    w_avg: Tensor
    layer_ranges: Mapping[str, range]

    def mapping(self, z: Tensor, labels: Tensor | None = None) -> Tensor: ...

    def synthesis(self, ws: Tensor) -> Tensor: ...

    def truncate(self, w: Tensor, psi: float) -> Tensor: ...


@runtime_checkable
class Translator(Protocol):
    """An image-conditional generator for image-to-image translation (pix2pix, CycleGAN, StarGAN).

    ``forward(x: [N, C, H, W], target: [N] | None) -> [N, C', H, W]``; ``target`` is the target
    domain for many-domain models (StarGAN) and ``None`` otherwise. Its noise, where it has any,
    is internal (dropout in pix2pix's U-Net). ``in_channels`` is ``C``, the channels of the images it
    takes (what tells a translator from any other callable).
    """

    in_channels: int

    def __call__(self, x: Tensor, target: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class Progressive(Protocol):
    """A network whose structure follows the training schedule (progressive growing, Karras et
    al. 2018, arXiv:1710.10196).

    The engine calls ``set_training_progress(images_seen)`` on the generator and the discriminator
    before every update when they define it. A network keeps its phase and fade-in ``alpha`` in
    buffers, so that they are saved with its weights and a resumed run continues the same schedule.
    """

    def set_training_progress(self, images_seen: int) -> None: ...


@runtime_checkable
class Discriminator(Protocol):
    """Scores samples as real (high) or fake (low).

    ``forward(x: [N, *S], labels: [N] | None, condition: [N, C', H, W] | None) -> logits``, raw
    (pre-sigmoid) scores of shape ``[N]`` for one prediction per sample, or ``[N, 1, h, w]`` for a
    map of patch predictions (PatchGAN). ``condition`` is the source image of an image-conditional
    model (pix2pix scores ``concat(A, B)``). A discriminator that scores samples in groups (PacGAN's
    packing) may set ``batch_multiple``: the engine then refuses a batch that is not a multiple of
    it before training starts.
    """

    num_classes: int | None

    def __call__(
        self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor: ...


@runtime_checkable
class AuxiliaryClassifier(Protocol):
    """A discriminator that also classifies its input (AC-GAN, StarGAN's domain classifier).

    ``classify(x: [N, *S]) -> ([N] or [N, 1, h, w] logits, [N, num_classes] class logits)``.
    """

    def classify(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class Loss(Protocol):
    """An adversarial objective, split into the two players' losses (both minimised).

    Both take raw discriminator outputs of any shape (``[N]`` or a patch map) and average over
    every prediction. ``generator_needs_real`` tells the engine to pass ``real_logits`` (computed
    on a real batch) to :meth:`generator_loss`, as relativistic objectives require; otherwise it
    passes ``None`` and saves a discriminator pass.
    """

    generator_needs_real: bool

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor: ...

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor: ...


@runtime_checkable
class LossTerm(Protocol):
    """A non-adversarial loss term that a procedure weighs into a network's loss by name (pix2pix's
    L1 reconstruction, CycleGAN's cycle consistency and identity, StarGAN's domain classification).

    ``kind`` says what it compares: ``"distance"``: ``term(prediction, target)`` of one shape (images)
    -> a scalar; ``"classification"``: ``term(logits [N, K], target)`` with ``target`` class indices
    ``[N]`` or per-class targets ``[N, K]`` (multi-hot attributes) -> a scalar. A procedure refuses a
    term of the wrong kind for a slot before training.
    """

    kind: Literal["distance", "classification"]

    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor: ...


@attrs.define(kw_only=True)
class PenaltyContext:
    """What a penalty may look at during one update of ``target``.

    ``real`` and ``fake`` are detached batches; ``fake`` was produced by ``generator`` from
    ``latents`` (and ``fake_labels``). ``real_logits``/``fake_logits`` are the outputs of the main
    loss term, attached to the graph, for penalties on the outputs themselves (PGGAN's drift).
    """

    generator: nn.Module
    discriminator: nn.Module
    real: Tensor
    fake: Tensor
    labels: Tensor | None
    fake_labels: Tensor | None
    latents: Tensor
    real_logits: Tensor | None
    fake_logits: Tensor | None
    step: int
    rng: torch.Generator | None = None
    world_size: int = 1
    rank: int = 0

    def uniform(self, n: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
        """``[n]`` draws from ``U[0, 1)`` for this process's ``n`` samples (WGAN-GP's interpolation
        weights). They come from the run's own seeded generator, drawn for the global batch and
        sliced per rank, so that a distributed run and an exact resume draw the same numbers as one
        uninterrupted process."""
        device = self.real.device
        draws = torch.rand(n * self.world_size, generator=self.rng, device=device, dtype=dtype)
        return draws[self.rank * n:(self.rank + 1) * n]

    def normal(self, shape: Sequence[int], *, dtype: torch.dtype = torch.float32) -> Tensor:
        """``N(0, 1)`` draws of ``shape`` (``shape[0]`` samples of this process) from the run's seeded
        generator, drawn for the global batch and sliced per rank as :meth:`uniform` is (the path
        length penalty's image-space noise)."""
        n, *rest = shape
        draws = torch.randn(n * self.world_size, *rest, generator=self.rng, device=self.real.device, dtype=dtype)
        return draws[self.rank * n:(self.rank + 1) * n]


@runtime_checkable
class Penalty(Protocol):
    """A regulariser added to one network's loss: ``loss += every * penalty(ctx)``.

    ``target`` is ``"discriminator"`` or ``"generator"``; ``every`` is the lazy interval: the
    penalty is evaluated on every ``every``-th update of its target and scaled by ``every`` so that
    its expected weight is unchanged (Karras et al. 2020, arXiv:1912.04958, section 3.2).
    ``penalty`` returns a scalar that already includes its weight (lambda, gamma/2, epsilon).

    A penalty with running state (the path length penalty's moving average) also defines
    ``state_dict() -> dict[str, Tensor]`` and ``load_state_dict(state)``: the run saves that state
    in its checkpoints and restores it on resume, so that a resumed run is the uninterrupted one.
    """

    target: Literal["discriminator", "generator"]
    every: int

    def penalty(self, ctx: PenaltyContext) -> Tensor: ...


@runtime_checkable
class Constraint(Protocol):
    """A regulariser applied to a network's parameters after each of its optimiser steps.

    WGAN's weight clipping (Arjovsky et al. 2017) is the example: ``constrain`` clips every weight
    of the discriminator into ``[-c, c]`` in place.
    """

    target: Literal["discriminator", "generator"]

    def constrain(self, network: nn.Module) -> None: ...


Regularizer = Penalty | Constraint
"""A regularizer plugin builds either a :class:`Penalty` or a :class:`Constraint`."""


@runtime_checkable
class Sampler(Protocol):
    """Draws latents from a prior: ``sample(n, space) -> [n, *space.shape]`` on ``device``.

    All randomness comes from ``generator`` so that a seed reproduces the same latents.
    """

    def sample(
        self, n: int, space: LatentSpace, *, device: torch.device, generator: torch.Generator
    ) -> Tensor: ...


@runtime_checkable
class Editor(Protocol):
    """Moves latents along a semantic direction or transformation in one latent space.

    ``space`` names the :class:`LatentSpace` it edits (``z``, ``w`` or ``w+``). ``fit`` learns the
    edit from a generator (InterFaceGAN fits an SVM to scored samples, GANSpace runs PCA);
    ``edit(latents: [N, *space], alpha: [N] or scalar) -> [N, *space]`` applies it with strength
    ``alpha``. An editor whose ``fit`` also takes ``progress`` (a :class:`ganforge.Progress`) gets
    one where a caller shows it (the studio): it sets ``progress.total`` and calls ``advance()``.
    """

    space: str

    def fit(self, generator: Generator, *, device: torch.device, generator_rng: torch.Generator) -> None: ...

    def edit(self, latents: Tensor, alpha: Tensor | float) -> Tensor: ...


class TrainingRun(Protocol):
    """What a :class:`Callback` sees of a run in progress (the engine's trainer implements it).

    ``sampling_generator`` is the generator samples and evaluation use (its moving average when the
    run keeps one); ``sample(n, generator=rng)`` draws ``n`` latents from the run's prior and returns
    the samples ``[n, *S]`` in ``[-1, 1]`` without tracking gradients, with labels drawn uniformly
    for a conditional generator. ``dataset`` is the training data; ``config`` the run's config
    (a :class:`ganforge.RunConfig`: ``config.data.name`` names the dataset).
    """

    out: Path
    device: torch.device
    dataset: Dataset
    config: Any

    @property
    def step(self) -> int: ...

    @property
    def images_seen(self) -> int: ...

    @property
    def sampling_generator(self) -> nn.Module: ...

    def sample(self, n: int, *, generator: torch.Generator) -> Tensor: ...


@runtime_checkable
class Callback(Protocol):
    """Runs every ``every`` generator steps during training, and once more at the end.

    ``__call__(run)`` returns scalars to log with the losses (``{"fid": 12.3}``) or an empty mapping.
    A callback must not change the networks; the engine times it apart from the training step. A
    callback may also define ``check(run)``, called once the run is built and before anything is
    written, to refuse a run it cannot serve (raising :class:`ganforge.ConfigError`).
    """

    every: int

    def __call__(self, run: TrainingRun) -> Mapping[str, float]: ...


@runtime_checkable
class InversionMethod(Protocol):
    """Finds latents whose images reproduce given ones (``ganforge invert --method NAME``).

    ``invert(trained, images [N, C, H, W] in [-1, 1], space=..., generator_rng=rng) -> (latents, record)``:
    ``trained`` is the :class:`ganforge.TrainedGenerator` (its ``module``, ``device``, checkpoint);
    ``latents`` are ``[N, *space]``; ``record`` holds at least per-image ``psnr`` (a list), ``seconds``
    and ``steps``. All randomness comes from ``generator_rng``. A method that also takes ``progress``
    (a :class:`ganforge.Progress`) gets one: it sets ``progress.total`` and calls ``progress.advance()``
    per step, so that the command shows how far it is and its ETA.
    """

    def invert(self, trained: Any, images: Tensor, *, space: str,
               generator_rng: torch.Generator) -> tuple[Tensor, Mapping[str, Any]]: ...


@runtime_checkable
class Command(Protocol):
    """A ``ganforge NAME`` subcommand contributed by a plugin (``ganforge lab``, ``ganforge eval``).

    Built as ``factory(config)`` with the plugin's structured config; ``run`` gets the parsed
    arguments and the plugin manager, and returns the exit status. Errors a user caused are raised
    as :class:`ganforge.GanforgeError` so that the CLI reports them without a traceback.
    """

    def run(self, args: argparse.Namespace, manager: Any) -> int: ...


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps images to the features (and class probabilities) that metrics compare.

    ``features(x: [N, C, H, W] in [-1, 1]) -> [N, D]`` float; ``probabilities(x) -> [N, K]`` class
    probabilities, or ``None`` for an extractor without a classifier head (the Inception Score
    needs one). ``protocol`` records what a number computed on these features depends on: at least
    ``name``, ``weights_sha256`` and ``resize`` (how inputs are brought to the network's size).
    """

    protocol: Mapping[str, str]

    def features(self, x: Tensor) -> Tensor: ...

    def probabilities(self, x: Tensor) -> Tensor | None: ...


@runtime_checkable
class Metric(Protocol):
    """A sample-quality metric over extracted features.

    ``needs`` is ``"features"`` (FID, KID, precision/recall: ``real`` and ``fake`` are ``[N, D]``)
    or ``"probabilities"`` (Inception Score: ``fake`` is ``[N, K]`` and ``real`` is ``None``).
    ``compute`` returns named scalars (``{"fid": ...}``, ``{"kid_mean": ..., "kid_std": ...}``).
    ``min_samples`` is the fewest samples it accepts; fewer is a :class:`ganforge.GanforgeError`.
    """

    needs: Literal["features", "probabilities"]
    min_samples: int

    def compute(self, real: Tensor | None, fake: Tensor) -> Mapping[str, float]: ...


@runtime_checkable
class AttributeScorer(Protocol):
    """Scores an attribute of images, for editors to find and check semantic directions.

    ``attributes`` names what ``score`` returns column by column;
    ``score(x: [N, C, H, W] in [-1, 1]) -> [N, len(attributes)]`` float (a probability for a
    classifier's classes, a measured quantity such as ink area or slant otherwise).
    """

    attributes: Sequence[str]

    def score(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Logger(Protocol):
    """A logging backend (TensorBoard, ...). Built as ``factory(config, run_dir)`` on the process
    that writes files (rank 0). ``scalars`` receives every record written to ``metrics.jsonl``;
    ``images(step, name, grid)`` each preview grid ``[3, H, W]`` in ``[0, 1]``. An exception from a
    logger is reported once and the logger dropped: an optional logger never stops training.
    """

    def scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    def images(self, step: int, name: str, grid: Tensor) -> None: ...

    def close(self) -> None: ...
