"""Driving any registered generator from one of its latent spaces, and files that belong to one generator.

A generator lists its spaces in ``latent_spaces``: ``z`` for every generator, ``w`` and ``w+`` for a
style generator (``mapping(z) -> w``, ``synthesis(ws)``; Karras et al. 2019, arXiv:1812.04948). This
module samples latents in a named space (``w = mapping(z)``, ``w+ = w`` repeated ``num_ws`` times),
renders them to images, and saves and loads latent-space artefacts (directions, components) as
safetensors with a JSON side file that names the generator by a fingerprint of its weights, so that
a direction found on one generator is refused on another with a :class:`ganforge.ConfigError`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from ganforge import ConfigError, atomic_write, atomic_write_text, write_output
from torch import Tensor, nn

SPACES = ("z", "w", "w+")
FORMAT = "ganforge-latent/1"


def unwrap(generator: Any) -> nn.Module:
    """The ``nn.Module`` of a generator or of a :class:`ganforge.TrainedGenerator`."""
    module = getattr(generator, "module", generator)
    if not hasattr(module, "latent_spaces"):
        raise ConfigError(f"generator: {type(module).__name__} has no latent_spaces; it is not a ganforge generator")
    return module  # type: ignore[no-any-return]


class FixedClass(nn.Module):
    """A class-conditional generator ``G(z, y)`` seen as the unconditional ``z -> G(z, y)`` of one
    class ``y``, so that every editor and inverter works on it unchanged: the edits and inversions
    of a conditional model are made within a class (as InterFaceGAN does per class)."""

    num_classes = None  # what the latent tools see: an unconditional generator

    def __init__(self, generator: nn.Module, class_index: int) -> None:
        super().__init__()
        self.generator = generator
        self.class_index = class_index
        self.latent_spaces = generator.latent_spaces

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        y = torch.full((len(z),), self.class_index, dtype=torch.long, device=z.device)
        out: Tensor = self.generator(z, y)
        return out


def space_names(generator: Any) -> list[str]:
    return [s.name for s in unwrap(generator).latent_spaces]


def check_space(generator: Any, space: str, *, field: str = "space") -> None:
    """A ConfigError naming ``field`` unless ``generator`` exposes ``space``."""
    if space not in SPACES:
        raise ConfigError(f"{field}: must be one of {list(SPACES)}, got {space!r}")
    names = space_names(generator)
    if space not in names:
        needs = " (it needs a mapping network, as StyleGAN's)" if space in ("w", "w+") else ""
        module = unwrap(generator)
        module = module.generator if isinstance(module, FixedClass) else module  # name the model, not the view
        raise ConfigError(f"{field}: {type(module).__name__} has no latent space {space!r}{needs}; "
                          f"its latent spaces are {names}")


def latent_shape(generator: Any, space: str) -> tuple[int, ...]:
    check_space(generator, space)
    return next(s.shape for s in unwrap(generator).latent_spaces if s.name == space)


def z_to(generator: Any, z: Tensor, space: str, *, psi: float = 1.0) -> Tensor:
    """``z`` carried into ``space``: itself, ``w = mapping(z)`` (truncated by ``psi``) or W+."""
    check_space(generator, space)
    g = unwrap(generator)
    if space == "z":
        return z
    w: Tensor = g.mapping(z)  # type: ignore[operator]
    if psi != 1.0:
        w = g.truncate(w, psi) if hasattr(g, "truncate") else g.w_avg.lerp(w, psi)  # type: ignore[operator]
    return w if space == "w" else w[:, None].repeat(1, g.num_ws, 1)  # type: ignore[arg-type]


@torch.no_grad()
def sample_latents(generator: Any, n: int, space: str, *, generator_rng: torch.Generator,
                   device: torch.device | str = "cpu", psi: float = 1.0) -> Tensor:
    """``n`` latents in ``space`` from the Gaussian prior on ``z``: ``[n, *space.shape]``."""
    g = unwrap(generator)
    z_dim = g.latent_spaces[0].shape
    z = torch.randn((n, *z_dim), generator=generator_rng, device=device)
    return z_to(g, z, space, psi=psi)


def render(generator: Any, latents: Tensor, space: str, labels: Tensor | None = None) -> Tensor:
    """Images ``[N, *S]`` from latents in ``space`` (``G(z)``, ``synthesis(w repeated)`` or ``synthesis(ws)``)."""
    check_space(generator, space)
    g = unwrap(generator)
    if space == "z":
        out: Tensor = g(latents, labels)
        return out
    if space == "w":
        latents = latents[:, None].expand(-1, g.num_ws, -1)  # type: ignore[arg-type]
    return g.synthesis(latents)  # type: ignore[operator,no-any-return]


@torch.no_grad()
def render_batched(generator: Any, latents: Tensor, space: str, batch_size: int) -> Tensor:
    return torch.cat([render(generator, chunk, space) for chunk in latents.split(batch_size)])


def fingerprint(generator: Any) -> str:
    """SHA-256 over the names, shapes, dtypes and values of the generator's parameters and buffers."""
    digest = hashlib.sha256()
    for name, t in sorted(unwrap(generator).state_dict().items()):
        t = t.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def checkpoint_of(generator: Any) -> str:
    ckpt = getattr(generator, "checkpoint", None)
    return str(getattr(ckpt, "path", "")) if ckpt is not None else ""


def save_latent_file(path: str | Path, tensors: dict[str, Tensor], *, generator: Any, kind: str,
                     meta: dict[str, Any]) -> Path:
    """Write ``tensors`` to ``path`` (``.safetensors``) and ``path.json`` naming the generator they belong to."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"path: latent files are written as .safetensors (never pickle), got {str(path)!r}")
    state = {k: t.detach().cpu().contiguous() for k, t in tensors.items()}
    atomic_write(path, lambda tmp: safetensors.torch.save_file(state, str(tmp)))
    side = {"format": FORMAT, "kind": kind, "generator": _generator_entry(generator), **meta}
    atomic_write_text(side_file(path), json.dumps(side, indent=2, sort_keys=True) + "\n")
    return path


def side_file(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _generator_entry(generator: Any) -> dict[str, str]:
    return {"fingerprint": fingerprint(generator), "checkpoint": checkpoint_of(generator),
            "class": type(unwrap(generator)).__name__}


def read_side_file(path: Path, *, generator: Any, kind: str) -> dict[str, Any]:
    """The side file of ``path``, refused with a ConfigError when it is missing, of another kind or
    names another generator."""
    side = side_file(path)
    if not path.is_file() or not side.is_file():
        raise ConfigError(f"path: {str(path)!r} and its side file {side.name!r} must both exist")
    try:
        meta: dict[str, Any] = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"path: side file {str(side)!r} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT or meta.get("kind") != kind:
        raise ConfigError(f"path: {str(path)!r} holds {meta.get('kind')!r} ({meta.get('format')!r}), "
                          f"expected a {kind!r} file ({FORMAT!r})")
    mine, theirs = fingerprint(generator), meta.get("generator", {}).get("fingerprint")
    if mine != theirs:
        owner = meta.get("generator", {}).get("checkpoint") or meta.get("generator", {}).get("class")
        raise ConfigError(f"generator: {str(path)!r} belongs to another generator ({owner!r}, fingerprint "
                          f"{str(theirs)[:12]}...), not this one (fingerprint {mine[:12]}...)")
    return meta


def load_latent_file(path: str | Path, *, generator: Any, kind: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and side-file metadata of a file written by :func:`save_latent_file`, refused with a
    ConfigError when it is of another kind or belongs to another generator."""
    path = Path(path)
    meta = read_side_file(path, generator=generator, kind=kind)
    return safetensors.torch.load_file(str(path)), meta


def latent_array_bytes(latents: Tensor) -> bytes:
    """``latents`` as the bytes of a float32 ``.npy`` (what :func:`save_latent_array` writes)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, latents.detach().float().cpu().numpy().astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def latent_side(generator: Any, *, space: str, meta: dict[str, Any]) -> str:
    """The side file's JSON text of a latent array of ``generator`` in ``space``."""
    side = {"format": FORMAT, "kind": "latent", "generator": _generator_entry(generator), "space": space, **meta}
    return json.dumps(side, indent=2, sort_keys=True) + "\n"


def save_latent_array(path: str | Path, latents: Tensor, *, generator: Any, space: str,
                      meta: dict[str, Any] | None = None) -> Path:
    """Latents ``[N, *space]`` as a float32 ``.npy`` with the side file ``path.json`` naming the
    generator and the space they belong to (``ganforge edit --latents`` reads them back)."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ConfigError(f"path: latent arrays are written as .npy, got {str(path)!r}")
    data = latent_array_bytes(latents)
    side = latent_side(generator, space=space, meta=meta or {}).encode("utf-8")
    write_output(path, lambda tmp: tmp.write_bytes(data))
    write_output(side_file(path), lambda tmp: tmp.write_bytes(side))
    return path


def load_latent_array(path: str | Path, *, generator: Any) -> tuple[Tensor, dict[str, Any]]:
    """Latents ``[N, *space]`` and the side file's metadata (``space`` among them) of a ``.npy``
    written by :func:`save_latent_array`, refused unless it belongs to ``generator`` and fits its space."""
    import numpy as np

    path = Path(path)
    meta = read_side_file(path, generator=generator, kind="latent")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"latents: {str(path)!r} is not a readable .npy array: {exc}") from None
    space = str(meta.get("space"))
    shape = latent_shape(generator, space)
    if array.ndim == len(shape):
        array = array[None]
    if tuple(array.shape[1:]) != shape or not np.issubdtype(array.dtype, np.floating):
        raise ConfigError(f"latents: {str(path)!r} holds an array {array.dtype} {list(array.shape)}; "
                          f"latents in {space!r} of this generator are [N, {', '.join(map(str, shape))}] floats")
    return torch.from_numpy(array.astype(np.float32)), meta


def lift(generator: Any, latents: Tensor, source: str, target: str, *, psi: float = 1.0) -> Tensor:
    """Latents in ``source`` carried to ``target`` along z -> w -> W+ (the only way they go: a ``w``
    has no ``z``), with the truncation ``psi`` applied where ``z`` becomes ``w``."""
    order = {"z": 0, "w": 1, "w+": 2}
    if order[target] < order[source]:
        raise ConfigError(f"space: latents in {source!r} cannot be carried back to {target!r} "
                          "(the mapping network has no inverse)")
    if source == target:
        return latents
    if source == "z":
        return z_to(generator, latents, target, psi=psi)
    g = unwrap(generator)
    return latents[:, None].repeat(1, g.num_ws, 1)  # type: ignore[arg-type]
