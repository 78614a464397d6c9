"""What the editors share: picking a scorer's attribute, scoring sampled latents, moving latents
along a direction, and saving / loading directions against the generator they belong to."""

from __future__ import annotations

from typing import Any

import torch
from ganforge import AttributeScorer, ConfigError, get_plugin_manager
from torch import Tensor

from ganforge_plugins.latent.spaces import latent_shape, load_latent_file, render_batched, save_latent_file


def parse_attribute(spec: str, *, field: str) -> tuple[str, str]:
    """``"scorer"`` or ``"scorer:attribute"`` -> ``(scorer, attribute or "")``."""
    name, _, attribute = spec.partition(":")
    if not name:
        raise ConfigError(f"{field}: expected 'scorer' or 'scorer:attribute', got {spec!r}")
    return name, attribute


def build_scorer(name: str, *, field: str = "scorer") -> AttributeScorer:
    """The registered scorer ``name`` built from its default config."""
    try:
        component = get_plugin_manager().get("scorer", name)
    except Exception as exc:  # UnknownComponentError lists the choices
        raise ConfigError(f"{field}: {exc}") from None
    scorer: AttributeScorer = component.factory(component.config())
    return scorer


def column(scorer: AttributeScorer, attribute: str, *, field: str) -> int:
    """Index of ``attribute`` among the scorer's columns (the first when empty)."""
    names = list(scorer.attributes)
    if not attribute:
        return 0
    if attribute not in names:
        raise ConfigError(f"{field}: the scorer has no attribute {attribute!r}; it scores {names}")
    return names.index(attribute)


@torch.no_grad()
def score_latents(generator: Any, latents: Tensor, space: str, scorer: AttributeScorer, attribute: str, *,
                  batch_size: int, field: str = "attribute") -> Tensor:
    """``[N]`` scores of one attribute of the images rendered from ``latents``."""
    col = column(scorer, attribute, field=field)
    images = render_batched(generator, latents, space, batch_size)
    scores = scorer.score(images)
    return scores[:, col].float().cpu()


def alpha_like(alpha: Tensor | float, latents: Tensor) -> Tensor:
    """``alpha`` (scalar or ``[N]``) broadcastable over ``latents`` ``[N, *S]``."""
    a = torch.as_tensor(alpha, dtype=latents.dtype, device=latents.device)
    if a.ndim == 1:
        if a.shape[0] != latents.shape[0]:
            raise ValueError(f"edit: alpha has {a.shape[0]} values for {latents.shape[0]} latents")
        a = a.reshape(-1, *([1] * (latents.ndim - 1)))
    elif a.ndim != 0:
        raise ValueError(f"edit: alpha must be a scalar or [N], got shape {tuple(a.shape)}")
    return a


def check_latents(latents: Tensor, shape: tuple[int, ...] | None, space: str, who: str) -> None:
    if shape is None:
        raise ConfigError(f"{who}: call fit(generator, ...) or load a direction file before edit()")
    if tuple(latents.shape[1:]) != shape:
        raise ValueError(f"{who}: expected latents [N, {', '.join(map(str, shape))}] in {space!r}, "
                         f"got {tuple(latents.shape)}")


def save_direction(path: Any, direction: Tensor, *, generator: Any, space: str, editor: str,
                   extra: dict[str, Tensor] | None = None, meta: dict[str, Any] | None = None) -> Any:
    return save_latent_file(path, {"direction": direction, **(extra or {})}, generator=generator, kind="direction",
                            meta={"space": space, "editor": editor, **(meta or {})})


def load_direction(path: Any, *, generator: Any, space: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors, meta = load_latent_file(path, generator=generator, kind="direction")
    if meta.get("space") != space:
        raise ConfigError(f"space: {str(path)!r} holds a direction in {meta.get('space')!r}, "
                          f"the editor edits {space!r}")
    shape = latent_shape(generator, space)
    if tuple(tensors["direction"].shape[-len(shape):]) != shape:
        raise ConfigError(f"path: direction of shape {tuple(tensors['direction'].shape)} does not fit {space!r} "
                          f"latents of shape {shape}")
    return tensors, meta
