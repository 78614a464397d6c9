"""What the translation procedures (pix2pix, CycleGAN, StarGAN) share: their datasets' checks, the
image-conditional networks, loss-term slots, held-out evaluation data and the preview grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
from ganforge import ConfigError, DataSpec, LossTerm, LossTermChoice, NetworkBuilder
from torch import Tensor, nn

from ganforge_plugins.losses.terms import ClassificationConfig, DistanceConfig


def paper_schedule(lr: float, **train: Any) -> dict[str, Any]:
    """The translation papers' training settings as raw config: Adam(lr, beta1 = 0.5) for both players,
    the rate constant for the first half and then linearly down to zero, no moving average."""
    adam = {"lr": lr, "betas": [0.5, 0.999], "decay_start": 0.5}
    return {"train": {"ema_half_life": 0.0, **train}, "optim": {"g": adam, "d": dict(adam)}}


class Stateless:
    """For a procedure with no state of its own to carry across a resume."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def l1_term() -> LossTermChoice:
    return LossTermChoice(name="l1", params=DistanceConfig())


def cross_entropy_term() -> LossTermChoice:
    return LossTermChoice(name="cross-entropy", params=ClassificationConfig())


def build_term(manager: Any, choice: LossTermChoice, *, slot: str, kind: str) -> LossTerm:
    """The loss term a procedure's config names in ``slot``, refused when it is of the wrong kind."""
    term: LossTerm = manager.get("loss-term", choice.name).factory(choice.params)
    if getattr(term, "kind", None) != kind:
        raise ConfigError(f"procedure.{slot}.name: {choice.name!r} is a {getattr(term, 'kind', 'unknown')} term, "
                          f"but {slot} needs a {kind} term")
    return term


def require(dataset: Any, kind: str, procedure: str, choices: str) -> Any:
    """The dataset, if it is translation data of ``kind``; otherwise a config error naming the choices."""
    if getattr(dataset, "kind", None) != kind:
        got = getattr(dataset, "kind", None) or "samples without a source image"
        raise ConfigError(f"data.name: {procedure} trains on {kind} data, but the dataset holds {got}; choose one "
                          f"of: {choices}")
    return dataset


def spec_of(images: Tensor, *, names: Sequence[str] = ()) -> DataSpec:
    return DataSpec(shape=tuple(images.shape[1:]), num_classes=len(names) or None, class_names=tuple(names))


def image_generator(build: NetworkBuilder, *, source: DataSpec, target: DataSpec) -> nn.Module:
    """A generator mapping ``source`` images to ``target`` ones (its ``in_channels`` filled in from the
    data when the config leaves it unset), refused when it does not take images."""
    params = build.params("generator")
    if source.channels != target.channels:
        if not hasattr(params, "in_channels"):
            raise ConfigError("generator.name: this generator has no in_channels setting, but the source images "
                              f"have {source.channels} channels and the targets {target.channels}")
        if params.in_channels is None:
            params = attrs.evolve(params, in_channels=source.channels)
    net = build("generator", data=target, params=params)
    spaces = getattr(net, "latent_spaces", ())
    shape = tuple(spaces[0].shape) if spaces else None
    if shape != tuple(source.shape):
        raise ConfigError(f"generator.name: not image-conditional for this data: it takes {shape or 'nothing'} "
                          f"where the source images are {tuple(source.shape)}; use unet, resnet-generator or stargan")
    return net


def conditional_discriminator(build: NetworkBuilder, *, data: DataSpec, condition: DataSpec) -> nn.Module:
    """A discriminator scoring ``concat(condition, x)`` (pix2pix), its ``condition_channels`` filled in."""
    params = build.params("discriminator")
    if not hasattr(params, "condition_channels"):
        raise ConfigError("discriminator.name: pix2pix scores (source, image) pairs and needs a discriminator "
                          "with condition_channels, such as patchgan")
    if not params.condition_channels:
        params = attrs.evolve(params, condition_channels=condition.channels)
    return build("discriminator", data=data, params=params)


class HeldOut:
    """The held-out split of a translation dataset on the device that evaluates it (moved once)."""

    def __init__(self, data: Any) -> None:
        self._data = data
        self._on: dict[torch.device, Any] = {}

    def __bool__(self) -> bool:
        return self._data is not None

    def on(self, device: torch.device) -> Any:
        if device not in self._on:
            changes = {f.name: getattr(self._data, f.name).to(device) for f in attrs.fields(type(self._data))
                       if isinstance(getattr(self._data, f.name), Tensor)}
            self._on[device] = attrs.evolve(self._data, **changes)
        return self._on[device]


@torch.no_grad()
def batched(net: nn.Module, x: Tensor, *extra: Tensor, batch: int = 256) -> Tensor:
    """``net(x, *extra)`` in batches of ``batch`` (inference on a held-out split)."""
    return torch.cat([net(x[i:i + batch], *(e[i:i + batch] for e in extra)) for i in range(0, len(x), batch)])


def unit_l1(a: Tensor, b: Tensor) -> float:
    """L1 error between images in ``[-1, 1]`` expressed for images in ``[0, 1]``."""
    return float((a - b).abs().mean()) / 2.0


def interleave(columns: Sequence[Tensor]) -> Tensor:
    """Columns ``[n, C, H, W]`` each -> rows of a grid ``[n * len(columns), C', H, W]`` (grey as RGB)."""
    channels = max(x.shape[1] for x in columns)
    same = [x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x for x in columns]
    return torch.stack(same, dim=1).flatten(0, 1)


def no_samples(procedure: str) -> ConfigError:
    return ConfigError(f"callbacks: procedure {procedure!r} translates images and draws no samples from a prior; "
                       "drop the callbacks that judge samples (use the logged test errors instead)")

