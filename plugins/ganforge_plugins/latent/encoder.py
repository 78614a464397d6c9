"""Learned inversion and hybrid inversion.

Zhu, Krähenbühl, Shechtman & Efros 2016, "Generative Visual Manipulation on the Natural Image Manifold"
(arXiv:1609.03552), section 3.1: besides optimisation (eq. 1), train a feed-forward encoder ``E``
that predicts the latent of an image (eq. 2), on pairs ``(G(z), z)`` drawn from the generator itself;
their *hybrid* method uses ``E(x)`` as the starting point of the optimisation and reaches lower
reconstruction error than either alone. The encoder here is trained with a latent and an image
reconstruction loss,

``L_E = latent_weight MSE(E(G(z)), l(z)) + image_weight MSE(G(E(G(z))), G(z))``

where ``l(z)`` is ``z``, ``w = mapping(z)`` or ``w`` repeated over the W+ layers. ``E`` is a small
CNN: stride-2 3x3 convolutions with leaky ReLUs halving the image down to 4x4 (widths doubling from
``base_channels``, capped at ``8 base_channels``), then one linear layer to the latent; W and W+
outputs are offsets from ``w_avg`` (the last layer starts at zero, so that ``E`` starts at the mean).

Encoders and inverted latents are saved as safetensors with a JSON side file naming the generator
(:func:`ganforge_plugins.latent.spaces.save_latent_file`): loading them for another generator is refused.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataError
from torch import Tensor, nn

from ganforge_plugins.latent.inversion import InversionConfig, check_targets, invert, psnr
from ganforge_plugins.latent.spaces import (
    SPACES,
    check_space,
    latent_shape,
    load_latent_file,
    render,
    save_latent_file,
    unwrap,
    z_to,
)

METHODS = ("optimise", "encoder", "hybrid")


@attrs.frozen(kw_only=True)
class EncoderConfig:
    space: str = attrs.field(default="w+", validator=v.in_(SPACES))  # the latent space E predicts
    base_channels: int = attrs.field(default=32, validator=v.ge(1))
    steps: int = attrs.field(default=2000, validator=v.ge(1))
    batch_size: int = attrs.field(default=64, validator=v.ge(1))
    lr: float = attrs.field(default=1e-3, validator=v.gt(0.0))  # Adam
    latent_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))
    image_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))

    def __attrs_post_init__(self) -> None:
        if self.latent_weight == 0 and self.image_weight == 0:
            raise ValueError("'latent_weight' and 'image_weight' cannot both be 0 (nothing to train on)")


class Encoder(nn.Module):
    """``E(x: [N, C, H, W] in [-1, 1]) -> [N, *latent_shape]`` in ``space`` (offset from ``w_avg`` for W / W+)."""

    def __init__(self, image_shape: tuple[int, ...], space: str, latent_shape: tuple[int, ...],
                 base_channels: int, w_avg: Tensor | None = None) -> None:
        super().__init__()
        c, h, w = image_shape
        if h != w or h < 4 or h & (h - 1):
            raise ConfigError(f"encoder: images must be square with a power-of-two side >= 4, got {h}x{w}")
        self.image_shape, self.space, self.latent_shape = tuple(image_shape), space, tuple(latent_shape)
        self.base_channels = base_channels
        layers: list[nn.Module] = [nn.Conv2d(c, base_channels, 3, padding=1), nn.LeakyReLU(0.2)]
        width, size = base_channels, h
        while size > 4:
            out = min(2 * width, 8 * base_channels)
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width, size = out, size // 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width * 16, math.prod(latent_shape))
        if space != "z":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        dim = latent_shape[-1]
        self.register_buffer("w_avg", (w_avg if w_avg is not None else torch.zeros(dim)).detach().clone().float())

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.body(x).flatten(1)).reshape(len(x), *self.latent_shape)
        return out if self.space == "z" else out + self.w_avg  # type: ignore[operator]


def build_encoder(generator: Any, config: EncoderConfig, *, device: torch.device | str = "cpu") -> Encoder:
    """An untrained encoder for ``generator``'s images and ``config.space``."""
    check_space(generator, config.space)
    g = unwrap(generator)
    image_shape = generator_image_shape(g)
    if len(image_shape) != 3:
        raise ConfigError(f"encoder: the generator makes vectors of shape {image_shape}, not images")
    w_avg = getattr(g, "w_avg", None) if config.space != "z" else None
    return Encoder(image_shape, config.space, latent_shape(g, config.space), config.base_channels,
                   w_avg).to(device)


def generator_image_shape(generator: Any) -> tuple[int, ...]:
    g = unwrap(generator)
    param = next(iter(g.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    with torch.no_grad():
        return tuple(g(torch.zeros(1, *latent_shape(g, "z"), device=device)).shape[1:])


def encoder_loss(encoder: Encoder, generator: Any, z: Tensor, *, latent_weight: float,
                 image_weight: float) -> tuple[Tensor, dict[str, float]]:
    """``L_E`` on one batch of prior draws ``z``: latent and image reconstruction of ``(G(z), z)`` pairs."""
    with torch.no_grad():
        target = z_to(generator, z, encoder.space)
        images = render(generator, target, encoder.space)
    predicted = encoder(images)
    latent = F.mse_loss(predicted, target)
    image = F.mse_loss(render(generator, predicted, encoder.space), images) if image_weight > 0 else latent * 0
    total = latent_weight * latent + image_weight * image
    return total, {"latent": float(latent.detach()), "image": float(image.detach()), "total": float(total.detach())}


def train_encoder(generator: Any, config: EncoderConfig, *, generator_rng: torch.Generator,
                  device: torch.device | str = "cpu", progress: Any = None) -> tuple[Encoder, dict[str, list[float]]]:
    """Train an encoder on pairs ``(G(z), z)`` drawn with ``generator_rng``; the generator stays frozen."""
    g = unwrap(generator)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator_rng, device=generator_rng.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(g, config, device=device)
    opt = torch.optim.Adam(encoder.parameters(), lr=config.lr)
    history: dict[str, list[float]] = {"latent": [], "image": [], "total": []}
    requires = [p.requires_grad for p in g.parameters()]
    g.requires_grad_(False)
    try:
        for _ in range(config.steps):
            z = torch.randn((config.batch_size, *latent_shape(g, "z")), generator=generator_rng,
                            device=generator_rng.device).to(device)
            loss, parts = encoder_loss(encoder, g, z, latent_weight=config.latent_weight,
                                       image_weight=config.image_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            for k, val in parts.items():
                history[k].append(val)
            if progress is not None:  # a ganforge.Progress
                progress.advance(info=f"encoder loss={parts['total']:.4g}")
    finally:
        for p, r in zip(g.parameters(), requires, strict=True):
            p.requires_grad_(r)
    encoder.eval().requires_grad_(False)
    return encoder, history


def check_encoder(encoder: Encoder, generator: Any) -> None:
    g = unwrap(generator)
    check_space(g, encoder.space)
    if encoder.latent_shape != latent_shape(g, encoder.space):
        raise ConfigError(f"encoder: predicts {encoder.space!r} latents of shape {encoder.latent_shape}, the "
                          f"generator's are {latent_shape(g, encoder.space)}")


@torch.no_grad()
def encode(encoder: Encoder, images: Tensor, *, generator: Any, batch_size: int = 256) -> Tensor:
    """Latents ``[N, *space]`` the encoder predicts for ``images`` (checked against the generator's shape)."""
    check_encoder(encoder, generator)
    check_targets(generator, images)
    device = next(encoder.parameters()).device
    return torch.cat([encoder(chunk.to(device)) for chunk in torch.split(images, batch_size)]).to(images.device)


def invert_images(generator: Any, images: Tensor, method: str, config: InversionConfig, *,
                  encoder: Encoder | None = None, generator_rng: torch.Generator | None = None,
                  progress: Any = None) -> tuple[Tensor, dict[str, Any]]:
    """Invert ``images`` by ``method``: ``optimise`` (from ``z = 0`` / ``w_avg``), ``encoder`` (``E(x)``
    alone) or ``hybrid`` (optimisation from ``E(x)``, Zhu et al. 2016). Returns the latents and a record with
    per-image ``psnr``, ``seconds`` and ``method``."""
    if method not in METHODS:
        raise ConfigError(f"method: must be one of {list(METHODS)}, got {method!r}")
    check_space(generator, config.space)
    check_targets(generator, images)
    if method == "optimise":
        latents, record = invert(generator, images, config, generator_rng=generator_rng, progress=progress)
        return latents, {**record, "method": method}
    if encoder is None:
        raise ConfigError(f"encoder: method {method!r} needs a trained encoder (train one or load an encoder file)")
    if encoder.space != config.space:
        raise ConfigError(f"space: the encoder predicts {encoder.space!r} latents, the inversion is in "
                          f"{config.space!r}")
    t0 = time.perf_counter()
    start = encode(encoder, images, generator=generator)
    encoding_seconds = time.perf_counter() - t0
    if method == "encoder":
        with torch.no_grad():
            quality = psnr(render(generator, start, config.space), images)
        return start, {"psnr": [q if math.isfinite(q) else 999.0 for q in quality.tolist()],
                       "seconds": encoding_seconds, "steps": 0, "space": config.space, "method": method, "loss": []}
    latents, record = invert(generator, images, config, start=start, generator_rng=generator_rng, progress=progress)
    return latents, {**record, "seconds": record["seconds"] + encoding_seconds, "method": method}


# -- files ----------------------------------------------------------------------------------------


def save_encoder(path: str | Path, encoder: Encoder, generator: Any, *, meta: dict[str, Any] | None = None) -> Path:
    check_encoder(encoder, generator)
    return save_latent_file(path, dict(encoder.state_dict()), generator=generator, kind="encoder",
                            meta={"space": encoder.space, "base_channels": encoder.base_channels,
                                  "image_shape": list(encoder.image_shape),
                                  "latent_shape": list(encoder.latent_shape), **(meta or {})})


def load_encoder(path: str | Path, generator: Any, *, device: torch.device | str = "cpu") -> Encoder:
    """An encoder saved by :func:`save_encoder` for this very generator (ConfigError otherwise)."""
    tensors, meta = load_latent_file(path, generator=generator, kind="encoder")
    space = str(meta.get("space"))
    check_space(generator, space)
    encoder = Encoder(tuple(meta["image_shape"]), space, tuple(meta["latent_shape"]), int(meta["base_channels"]))
    try:
        encoder.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ConfigError(f"path: {str(path)!r} is not an encoder of this shape: {exc}") from None
    check_encoder(encoder, generator)
    return encoder.to(device).eval().requires_grad_(False)


def save_inverted(path: str | Path, latents: Tensor, generator: Any, *, space: str,
                  meta: dict[str, Any] | None = None) -> Path:
    """Inverted latents ``[N, *space]`` with the side file naming the generator, the space and ``meta``."""
    if tuple(latents.shape[1:]) != latent_shape(generator, space):
        raise DataError(f"latents: expected [N, {', '.join(map(str, latent_shape(generator, space)))}] in "
                        f"{space!r}, got {list(latents.shape)}")
    return save_latent_file(path, {"latents": latents}, generator=generator, kind="inverted-latents",
                            meta={"space": space, **(meta or {})})


def load_inverted(path: str | Path, generator: Any) -> tuple[Tensor, dict[str, Any]]:
    """Latents saved by :func:`save_inverted` and their metadata, refused for another generator."""
    tensors, meta = load_latent_file(path, generator=generator, kind="inverted-latents")
    space = str(meta.get("space"))
    check_space(generator, space)
    return tensors["latents"], meta
