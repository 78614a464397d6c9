"""GAN inversion methods as registered plugins (``ganforge invert --method NAME``):

- ``optimise`` (Image2StyleGAN, Abdal et al. 2019, arXiv:1904.03189): Adam on the latent from the
  prior's centre (``z = 0`` or ``w_avg``) to minimise ``MSE(G(w), x) + lambda * feature loss``;
- ``encoder`` (Zhu et al. 2016, arXiv:1609.03552, section 3.2): a learned encoder ``E`` trained on
  ``(G(z), z)`` pairs predicts the latent in one pass: ``w = E(x)``;
- ``hybrid`` (Zhu et al. 2016): the encoder's ``E(x)`` as the starting point of the optimisation,
  which beats optimisation from the mean at the same number of steps.

A method is ``invert(trained, images, space=..., generator_rng=...) -> (latents, record)`` with
``record`` holding per-image ``psnr``, ``seconds`` and ``steps`` (see :class:`ganforge.InversionMethod`).
The encoder methods train an encoder for the generator unless ``encoder`` names a saved one, and
``save_encoder`` keeps the trained one (bound to its generator).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import hookimpl
from torch import Tensor

from ganforge_plugins.latent.encoder import EncoderConfig, invert_images, load_encoder, save_encoder, train_encoder
from ganforge_plugins.latent.inversion import InversionConfig


# without slots, so that the hybrid method's config can take both sets of settings by inheritance
@attrs.frozen(kw_only=True, slots=False)
class OptimiseConfig:
    steps: int = attrs.field(default=500, validator=v.ge(1))
    lr: float = attrs.field(default=0.05, validator=v.gt(0.0))  # Adam
    init: str = attrs.field(default="mean", validator=v.in_(("mean", "random")))  # mean: z = 0 / w_avg
    feature_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))  # Image2StyleGAN eq. 3: 1
    feature_network: str = "auto"  # "auto" (the domain classifier), a registered classifier, or "vgg16"
    feature_weights: str = ""  # a local weights file (required for vgg16)


@attrs.frozen(kw_only=True, slots=False)
class EncoderMethodConfig:
    encoder: str = ""  # a saved encoder (.safetensors) for this generator; "" trains one
    encoder_steps: int = attrs.field(default=1000, validator=v.ge(1))  # training steps without one
    encoder_base_channels: int = attrs.field(default=32, validator=v.ge(1))
    encoder_batch_size: int = attrs.field(default=64, validator=v.ge(1))
    save_encoder: str = ""  # keep the trained encoder here


@attrs.frozen(kw_only=True, slots=False)
class HybridConfig(OptimiseConfig, EncoderMethodConfig):
    pass


def _optimisation(config: OptimiseConfig, space: str) -> InversionConfig:
    return InversionConfig(space=space, steps=config.steps, lr=config.lr, init=config.init,
                           feature_weight=config.feature_weight, feature_network=config.feature_network,
                           feature_weights=config.feature_weights)


def _encoder(config: EncoderMethodConfig, trained: Any, space: str, rng: torch.Generator, progress: Any = None
             ) -> tuple[Any, dict[str, Any]]:
    """A loaded or freshly trained encoder for ``trained``'s generator, and what was done."""
    if config.encoder:
        encoder = load_encoder(config.encoder, trained, device=trained.device)
        record: dict[str, Any] = {"file": config.encoder}
    else:
        settings = EncoderConfig(space=space, steps=config.encoder_steps, base_channels=config.encoder_base_channels,
                                 batch_size=config.encoder_batch_size)
        encoder, history = train_encoder(trained.module, settings, generator_rng=rng, device=trained.device,
                                         progress=progress)
        record = {"trained_steps": config.encoder_steps, "final_loss": history["total"][-1]}
    if config.save_encoder:
        save_encoder(config.save_encoder, encoder, trained)
        record["saved"] = config.save_encoder
    return encoder, record


class Optimise:
    """Image2StyleGAN (Abdal et al. 2019): Adam on the latent from the prior's centre, MSE + features."""

    def __init__(self, config: OptimiseConfig) -> None:
        self.config = config

    def invert(self, trained: Any, images: Tensor, *, space: str, generator_rng: torch.Generator,
               progress: Any = None) -> tuple[Tensor, dict[str, Any]]:
        if progress is not None:
            progress.total = self.config.steps
        latents, record = invert_images(trained.module, images, "optimise", _optimisation(self.config, space),
                                        generator_rng=generator_rng, progress=progress)
        return latents, {**record, "encoder": {}}


class Encoder:
    """Zhu et al. 2016: a learned encoder predicts the latent in one pass, w = E(x)."""

    def __init__(self, config: EncoderMethodConfig) -> None:
        self.config = config

    def invert(self, trained: Any, images: Tensor, *, space: str, generator_rng: torch.Generator,
               progress: Any = None) -> tuple[Tensor, dict[str, Any]]:
        if progress is not None:
            progress.total = max(1, 0 if self.config.encoder else self.config.encoder_steps)
        encoder, done = _encoder(self.config, trained, space, generator_rng, progress)
        latents, record = invert_images(trained.module, images, "encoder", InversionConfig(space=space),
                                        encoder=encoder, generator_rng=generator_rng)
        return latents, {**record, "encoder": done}


class Hybrid:
    """Zhu et al. 2016: optimisation started from the encoder's E(x)."""

    def __init__(self, config: HybridConfig) -> None:
        self.config = config

    def invert(self, trained: Any, images: Tensor, *, space: str, generator_rng: torch.Generator,
               progress: Any = None) -> tuple[Tensor, dict[str, Any]]:
        if progress is not None:
            progress.total = max(1, (0 if self.config.encoder else self.config.encoder_steps)
                                 + self.config.steps)
        encoder, done = _encoder(self.config, trained, space, generator_rng, progress)
        latents, record = invert_images(trained.module, images, "hybrid", _optimisation(self.config, space),
                                        encoder=encoder, generator_rng=generator_rng, progress=progress)
        return latents, {**record, "encoder": done}


@hookimpl
def ganforge_register_inversions(register):
    register("optimise", Optimise, OptimiseConfig)
    register("encoder", Encoder, EncoderMethodConfig)
    register("hybrid", Hybrid, HybridConfig)
