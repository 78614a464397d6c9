"""Inference: a run's networks rebuilt from a checkpoint, whatever procedure trained them.

Every checkpoint's ``meta.json`` records the procedure and the data specs its networks were built
for, so a run directory alone rebuilds them (:func:`load_run`) without loading its data.
:func:`load_generator` adds what sampling from a prior needs (the run's sampler and latent space).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from . import checkpoint as ckpt
from .building import ConfigNetworkBuilder, build_procedure, build_sampler, preview_seed, prior_space, resolve_device
from .config import RunConfig, structure
from .errors import CheckpointError, ConfigError
from .manager import PluginManager, get_plugin_manager
from .procedure import Procedure
from .protocols import DataSpec, LatentSpace, Sampler, StyleGenerator
from .truncation import kmeans, nearest_mode


def spec_to_meta(spec: DataSpec) -> dict[str, Any]:
    return {"shape": list(spec.shape), "num_classes": spec.num_classes, "class_names": list(spec.class_names)}


def spec_from_meta(meta: Mapping[str, Any]) -> DataSpec:
    return DataSpec(shape=tuple(meta["shape"]), num_classes=meta.get("num_classes"),
                    class_names=tuple(meta.get("class_names", ())))


@attrs.frozen(kw_only=True)
class TrainedRun:
    """The networks of a checkpoint, in eval mode on ``device``: each role's moving average where the
    run kept one (and ``ema`` was asked for), else its trained weights."""

    config: RunConfig
    checkpoint: ckpt.Checkpoint
    procedure: Procedure
    specs: Mapping[str, DataSpec]
    networks: Mapping[str, nn.Module]
    device: torch.device

    @property
    def procedure_name(self) -> str:
        return self.config.procedure.name

    @property
    def samples_from_a_prior(self) -> bool:
        """Whether the run's generator draws from a prior (a GAN's) rather than translating images."""
        generator = self.networks.get("generator")
        spaces: Sequence[LatentSpace] = getattr(generator, "latent_spaces", None) or []
        return len(spaces) > 0 and len(spaces[0].shape) != 3

    def view(self, *, count: int = 64, manager: PluginManager | None = None) -> RunView:
        """The :class:`ganforge.Preview` of these networks, for a procedure's preview, evaluate or sample."""
        return RunView(self, count=count, sampler=build_sampler(self.config, manager or get_plugin_manager()))


class RunView:
    """A :class:`ganforge.Preview` over a checkpoint's networks (already in eval mode)."""

    def __init__(self, run: TrainedRun, *, count: int, sampler: Sampler) -> None:
        self._run = run
        self._sampler = sampler
        self.device = run.device
        self.count = count

    def net(self, name: str) -> nn.Module:
        return self._run.networks[name]

    def latents(self, n: int, *, network: str = "generator", generator: torch.Generator | None = None) -> Tensor:
        rng = generator or torch.Generator(self.device).manual_seed(preview_seed(self._run.config))
        space = prior_space(self._run.networks[network])
        return self._sampler.sample(n, space, device=self.device, generator=rng)


def load_run(path: str | Path, *, device: str | torch.device = "cpu", manager: PluginManager | None = None,
             ema: bool = True) -> TrainedRun:
    """Rebuild every network of a run directory or checkpoint directory, refusing corrupt or unsafe
    checkpoints and ones of another architecture with a :class:`~ganforge.CheckpointError`."""
    manager = manager or get_plugin_manager()
    checkpoint = ckpt.load_checkpoint(path)
    config = structure(tomllib.loads(checkpoint.config_toml), manager, source=f"config of {checkpoint.path}")
    specs_meta = checkpoint.meta.get("data_specs")
    if not isinstance(specs_meta, dict) or not specs_meta:
        raise CheckpointError(f"checkpoint {checkpoint.path}: meta.json has no data_specs")
    specs = {name: spec_from_meta(m) for name, m in specs_meta.items()}
    dev = resolve_device(device) if isinstance(device, str) else device
    procedure = build_procedure(config, manager)
    roles = procedure.networks(ConfigNetworkBuilder(config, manager), specs)
    networks: dict[str, nn.Module] = {}
    for name, role in roles.items():
        averaged = f"{name}_ema"
        ckpt.load_weights(role.module, checkpoint, averaged if ema and averaged in checkpoint.weights else name)
        networks[name] = role.module.to(dev).eval()
    return TrainedRun(config=config, checkpoint=checkpoint, procedure=procedure, specs=specs, networks=networks,
                      device=dev)


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
    def sample(self, n: int, *, generator: torch.Generator, labels: Tensor | None = None, psi: float | None = None,
               mix: torch.Generator | None = None, mix_layers: str = "coarse", modes: int | None = None) -> Tensor:
        """``n`` samples from the prior. For a style-based generator, ``psi`` truncates every ``w``
        towards the tracked average (StyleGAN section 3.2; ``None``: the run's own setting), or with
        ``modes`` towards the nearest of that many k-means centres of W (multi-modal truncation,
        :mod:`ganforge.truncation`), and ``mix`` draws a second set of ``n`` latents whose styles
        replace the first set's at ``mix_layers`` (section 3.1: ``coarse``, ``middle``, ``fine``,
        ``all`` or ``start:stop``)."""
        if modes is not None and psi is None:
            raise ConfigError(f"--psi-modes {modes}: takes effect with --psi (how far each w moves towards "
                              "its nearest mode)")
        z = self.sampler.sample(n, self.space, device=self.device, generator=generator)
        if psi is None and mix is None:
            return self.latents_to_samples(z, labels)
        g = self.style_generator("--psi" if mix is None else "--mix")
        labels = self._labels(len(z), labels)
        centres = None if modes is None else self.truncation_modes(modes)
        ws = self._ws(g, z, labels, psi, centres)
        if mix is not None:
            layers = layer_range(g, mix_layers, field="--mix-layers")
            z2 = self.sampler.sample(n, self.space, device=self.device, generator=mix)
            ws2 = self._ws(g, z2, labels, psi, centres)
            ws = torch.cat([ws[:, : layers.start], ws2[:, layers.start : layers.stop], ws[:, layers.stop :]], dim=1)
        out: Tensor = g.synthesis(ws)
        return out

    def style_generator(self, option: str) -> StyleGenerator:
        """The generator as a :class:`~ganforge.StyleGenerator`, or a ConfigError naming ``option``."""
        if not isinstance(self.module, StyleGenerator):
            raise ConfigError(
                f"{option}: generator {self.config.generator.name!r} has no W space with a tracked average "
                "(truncation and style mixing need a style-based generator with mapping, synthesis and w_avg, "
                "such as 'stylegan')"
            )
        return self.module

    @torch.no_grad()
    def truncation_modes(self, k: int, *, num_samples: int = 10_000) -> Tensor:
        """``[k, w_dim]``: k-means centres of the ``w`` of ``num_samples`` latents of the run's prior (the
        classes in turn for a conditional generator), drawn and clustered from seed 0, so that the modes
        belong to the checkpoint and not to the seed of the samples truncated towards them."""
        g = self.style_generator("--psi-modes")
        if not 1 <= k <= num_samples:
            raise ConfigError(f"--psi-modes: expected a number of modes in [1, {num_samples}], got {k}")
        rng = torch.Generator(self.device).manual_seed(0)
        z = self.sampler.sample(num_samples, self.space, device=self.device, generator=rng)
        w = g.mapping(z, self._labels(num_samples, None))
        return kmeans(w.float(), k, generator_rng=rng)

    def _ws(self, g: StyleGenerator, z: Tensor, labels: Tensor | None, psi: float | None,
            centres: Tensor | None = None) -> Tensor:
        w = g.mapping(z, labels)
        if psi is not None:
            t = g.truncate(w, psi)  # the generator's own truncation, towards w_avg (it checks psi)
            if centres is not None:  # c + psi (w - c) = w_avg + psi (w - w_avg) + (1 - psi) (c - w_avg)
                t = t + (1 - psi) * (nearest_mode(w, centres) - g.w_avg)
            w = t
        return w[:, None].expand(-1, g.num_ws, -1)

    def _labels(self, n: int, labels: Tensor | None) -> Tensor | None:
        if labels is None and self.num_classes is not None:
            labels = torch.arange(n, device=self.device) % self.num_classes
        return labels

    @torch.no_grad()
    def latents_to_samples(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        out: Tensor = self.module(z, self._labels(len(z), labels))
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
    """The generator of a run that samples from a prior (a GAN's), refusing a run whose generator
    translates images (pix2pix, CycleGAN, StarGAN) with a message that points to ``ganforge translate``."""
    run = load_run(path, device=device, manager=manager, ema=ema)
    generator = run.networks.get("generator")
    if generator is None or not run.samples_from_a_prior:
        raise CheckpointError(
            f"checkpoint {run.checkpoint.path} was trained by procedure {run.procedure_name!r}, whose generator "
            "translates images instead of sampling from a prior; use `ganforge translate RUN INPUT_DIR --out DIR`"
        )
    return TrainedGenerator(
        module=generator, sampler=build_sampler(run.config, manager or get_plugin_manager()),
        space=prior_space(generator),
        spec=run.specs["data"], config=run.config, checkpoint=run.checkpoint, device=run.device,
    )


def layer_range(generator: StyleGenerator, layers: str, *, field: str = "layers") -> range:
    """The indices into W+ that ``layers`` names: one of the generator's ``layer_ranges``
    (``coarse``, ``middle``, ``fine``), ``all``, or ``"start:stop"`` (either end may be left out)."""
    num_ws = generator.num_ws
    named = {"all": range(num_ws), **dict(generator.layer_ranges)}
    if layers in named:
        if len(named[layers]) == 0:
            raise ConfigError(f"{field}: the {layers!r} range is empty for this generator ({num_ws} styles: "
                              f"{ {k: f'{v.start}:{v.stop}' for k, v in named.items()} })")
        return named[layers]
    start, sep, stop = layers.partition(":")
    try:
        if not sep:
            raise ValueError
        r = range(int(start) if start else 0, int(stop) if stop else num_ws)
    except ValueError:
        raise ConfigError(f"{field}: must be one of {sorted(named)} or 'start:stop' indices into the "
                          f"{num_ws} styles, got {layers!r}") from None
    if not (0 <= r.start < r.stop <= num_ws):
        raise ConfigError(f"{field}: {layers!r} is not a non-empty range within 0:{num_ws}")
    return r
