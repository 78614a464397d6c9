"""``ganforge interpolate``, ``ganforge edit`` and ``ganforge invert``: the latent-space methods on a
trained checkpoint, each writing a picture (and files that belong to the checkpoint's generator).

Outputs go to ``--out``, by default under ``RUN/latent/`` of the checkpoint's run directory.

- ``interpolate CHECKPOINT --out strip.png``: ``--pairs`` rows of ``--steps`` images from one latent
  to another (``slerp`` or ``lerp``, in ``z``, ``w`` or ``w+``; :mod:`.interpolation`), plus an
  animated GIF (``--gif``, by default next to the PNG) that walks the rows forth and back.
- ``edit CHECKPOINT --editor interfacegan --attribute ink --alphas -3:3:7 --out grid.png``: fits the
  editor (or loads ``--direction FILE``), then one row per sample and one column per ``alpha``; the
  mean score of the edited attribute per ``alpha`` is printed as JSON (and saved next to the grid).
  ``--param KEY=VALUE`` sets any other field of the editor's config; ``--save-direction FILE`` keeps it.
- ``invert CHECKPOINT IMAGES --method optimise|encoder|hybrid --out DIR``: ``IMAGES`` is a folder of
  PNGs or a ``.npy`` (``[N, C, H, W]`` or ``[N, H, W]``, floats in ``[0, 1]`` as ``ganforge sample``
  writes, or ``uint8``) at the generator's size and channels. Writes ``DIR/reconstruction.png``
  (targets above, reconstructions below), ``DIR/latents.safetensors`` (+ JSON side file naming the
  generator) and ``DIR/inversion.json`` (PSNR per image, seconds). The encoder of ``encoder`` and
  ``hybrid`` is loaded from ``--encoder FILE`` or trained on the spot (``--save-encoder FILE``).
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from attrs import validators as v
from ganforge import (
    ConfigError,
    DataError,
    InversionChoice,
    Progress,
    hookimpl,
    load_generator,
    make_converter,
    read_image,
    resolve_device,
    save_samples,
    structure_as,
    to_unit,
    write_output,
)
from torch import Tensor

from ganforge_plugins.latent.encoder import save_inverted
from ganforge_plugins.latent.interpolation import MODES, interpolate
from ganforge_plugins.latent.inversion_methods import Hybrid, HybridConfig
from ganforge_plugins.latent.spaces import (
    SPACES,
    FixedClass,
    check_space,
    lift,
    load_latent_array,
    render,
    sample_latents,
    space_names,
    z_to,
)

# argparse takes "-3:3:7" for an option unless it looks like a negative number: let ranges count as one
NEGATIVE_VALUE = re.compile(r"^-\d[\d.:,eE+-]*$")


def _accept_negative_values(parser: argparse.ArgumentParser) -> None:
    parser._negative_number_matcher = NEGATIVE_VALUE


def _changes(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    """Config fields set on the command line (``names``: argument -> field)."""
    return {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg, None) is not None}


def _evolve(config: Any, changes: dict[str, Any], who: str) -> Any:
    """``config`` with the command-line options ``changes``; a bad one is named by its option (``--num-samples``),
    not by the config field, which an editor's ``--param`` may share."""
    try:
        return attrs.evolve(config, **changes)
    except ValueError as exc:
        m = re.match(r"'(\w+)' (.*)", str(exc), re.S)
        if m and m[1] in changes:
            raise ConfigError(f"{who} --{m[1].replace('_', '-')}: {m[2]}") from None
        raise ConfigError(f"{who}: {exc}") from None


def _out_path(path: str, suffixes: tuple[str, ...], flag: str = "--out") -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} {path!r}: expected a {' or '.join(suffixes)} file")
    return out


def _write_bytes(path: Path, data: bytes) -> None:
    write_output(path, lambda tmp: tmp.write_bytes(data))


def _write_text(path: Path, text: str) -> None:
    write_output(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _grid(images: Tensor, nrow: int) -> np.ndarray:
    """``[N, C, H, W]`` in ``[-1, 1]`` -> an ``H x W (x 3)`` uint8 grid."""
    import torchvision.utils

    grid = torchvision.utils.make_grid(to_unit(images).cpu(), nrow=nrow, padding=2)  # [3, H, W]
    pixels: np.ndarray = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return pixels


def gif_bytes(frames: list[Tensor], *, nrow: int, duration_ms: int) -> bytes:
    """An animated GIF with one grid per frame (looping forever), as bytes."""
    from PIL import Image

    pictures = [Image.fromarray(_grid(f, nrow)) for f in frames]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()


def save_gif(frames: list[Tensor], path: Path, *, nrow: int, duration_ms: int) -> None:
    """An animated GIF with one grid per frame (looping forever)."""
    _write_bytes(path, gif_bytes(frames, nrow=nrow, duration_ms=duration_ms))


def forth_and_back(steps: int) -> list[int]:
    """Frame order of an interpolation GIF: along the strip and back, without repeating its ends."""
    return list(range(steps)) + list(range(steps - 2, 0, -1))


def seed_latents(generator: Any, seeds: list[int], space: str, *, device: torch.device, psi: float = 1.0) -> Tensor:
    """One latent per seed, each the first draw of its own ``torch.Generator(device).manual_seed(seed)``
    (so seed ``s`` is the same image here, in ``edit -n 1 --seed s`` and in the studio)."""
    return torch.cat([sample_latents(generator, 1, space, generator_rng=torch.Generator(device).manual_seed(s),
                                     device=device, psi=psi) for s in seeds])


def parse_seeds(spec: str, *, flag: str = "--seeds") -> list[int]:
    try:
        seeds = [int(s) for s in spec.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(seeds) % 2:
        raise ConfigError(f"{flag} {spec!r}: expected an even number of comma-separated seeds >= 0, "
                          "taken in pairs (e.g. 3,7 for one strip from seed 3 to seed 7)")
    return seeds


def _labels(trained: Any, n: int, rng: torch.Generator, class_index: int | None) -> Tensor | None:
    class_index = trained.check_class(class_index)
    if class_index is not None:
        return torch.full((n,), class_index, dtype=torch.long, device=trained.device)
    if trained.num_classes is None:
        return None
    return torch.randint(0, trained.num_classes, (n,), generator=rng, device=rng.device).to(trained.device)


def within_class(trained: Any, class_index: int | None, command: str) -> Any:
    """``trained`` as is when unconditional; a class-conditional one seen as the generator of the
    class ``--class`` names (:class:`FixedClass`), which it must then name."""
    class_index = trained.check_class(class_index)
    k = trained.num_classes
    if k is None:
        return trained
    if class_index is None:
        names = f" ({', '.join(trained.spec.class_names)})" if trained.spec.class_names else ""
        raise ConfigError(f"--class: the generator is class-conditional; `{command}` works within one class, "
                          f"so name it with --class K, K in [0, {k - 1}]{names} (none given)")
    return attrs.evolve(trained, module=FixedClass(trained.module, class_index).eval())


def run_dir(trained: Any) -> Path:
    """The run directory of a loaded checkpoint (where outputs go by default)."""
    path = Path(trained.checkpoint.path)
    return path.parent.parent if path.parent.name == "checkpoints" else path


def _check_image_generator(trained: Any, checkpoint: str) -> None:
    if not trained.spec.is_image:
        raise ConfigError(f"{checkpoint}: the generator makes vectors of shape {trained.spec.shape}, not images")


# -- ganforge interpolate ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InterpolateConfig:
    steps: int = attrs.field(default=8, validator=v.ge(2))  # images per row, both ends included
    pairs: int = attrs.field(default=4, validator=v.ge(1))  # rows
    mode: str = attrs.field(default="slerp", validator=v.in_(MODES))
    space: str = attrs.field(default="z", validator=v.in_(SPACES))
    psi: float = 1.0  # truncation of w / w+ endpoints
    seed: int = attrs.field(default=0, validator=v.ge(0))
    frame_ms: int = attrs.field(default=120, validator=v.ge(1))  # GIF frame duration
    device: str = "auto"


def interpolation_frames(trained: Any, config: InterpolateConfig, *, class_index: int | None = None,
                         seeds: list[int] | None = None) -> Tensor:
    """``[pairs, steps, C, H, W]`` images along ``pairs`` interpolations between prior draws: from
    ``config.seed``'s generator, or from one latent per seed of ``seeds`` taken in pairs."""
    g = trained.module
    check_space(g, config.space)
    rng = torch.Generator(trained.device).manual_seed(config.seed)
    z_shape = g.latent_spaces[0].shape
    with torch.no_grad():
        if seeds is None:
            ends = torch.randn((2 * config.pairs, *z_shape), generator=rng, device=trained.device)
            ends = z_to(g, ends, config.space, psi=config.psi)
        else:
            ends = seed_latents(g, seeds, config.space, device=trained.device, psi=config.psi)
        pairs = len(ends) // 2
        labels = _labels(trained, pairs, rng, class_index)
        if labels is not None and config.space != "z":
            raise ConfigError("--space: a conditional generator is interpolated in 'z'")
        rows = [interpolation_strip(g, ends[2 * i], ends[2 * i + 1], config.steps, mode=config.mode,
                                    space=config.space, label=None if labels is None else labels[i])
                for i in range(pairs)]
    return torch.stack(rows)


@torch.no_grad()
def interpolation_strip(g: Any, a: Tensor, b: Tensor, steps: int, *, mode: str, space: str,
                        label: Tensor | None = None) -> Tensor:
    """``[steps, C, H, W]``: the images along ``mode`` interpolation from latent ``a`` to ``b`` in ``space``."""
    path = interpolate(a, b, steps, mode=mode)
    return render(g, path, space, None if label is None else label.expand(steps))


class Interpolate:
    """Interpolation strips between random latents of a checkpoint: a PNG grid and an animated GIF."""

    def __init__(self, config: InterpolateConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", help="run directory or checkpoint directory")
        parser.add_argument("--out", help="the strip, FILE.png, one row per pair (default: RUN/latent/interpolate.png)")
        parser.add_argument("--gif", help="the animation (default: --out with .gif)")
        parser.add_argument("--steps", type=int, help="images per row (8)")
        parser.add_argument("--pairs", type=int, help="rows (4)")
        parser.add_argument("--mode", choices=MODES, help="slerp (default) or lerp")
        parser.add_argument("--space", choices=SPACES, help="latent space to interpolate in (z)")
        parser.add_argument("--psi", type=float, help="truncation of w endpoints (1)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--seeds", help="ends as seeds, in pairs: A,B[,C,D...] (one strip per pair; seed S "
                                            "is the image of `edit -n 1 --seed S` and of the studio's seed S)")
        parser.add_argument("--class", dest="class_index", type=int, help="class, for a conditional generator")
        parser.add_argument("--device")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        config = _evolve(self.config, _changes(args, {k: k for k in ("steps", "pairs", "mode", "space", "psi",
                                                                     "seed", "device")}), "interpolate")
        seeds = parse_seeds(args.seeds) if getattr(args, "seeds", None) else None
        out = _out_path(args.out, (".png",)) if getattr(args, "out", None) else None
        gif = _out_path(args.gif, (".gif",), "--gif") if getattr(args, "gif", None) else None
        trained = load_generator(args.checkpoint, device=resolve_device(config.device, "--device"), manager=manager)
        out = out or run_dir(trained) / "latent" / "interpolate.png"
        gif = gif or out.with_suffix(".gif")
        _check_image_generator(trained, args.checkpoint)
        if config.psi != 1.0:  # truncation moves w towards w_avg: a generator without them, or z ends, take none
            trained.style_generator("--psi")
            if config.space == "z":
                raise ConfigError(f"--psi {config.psi}: truncation applies to w, and --space z interpolates "
                                  "untruncated z; use --space w or w+ with --psi")
        frames = interpolation_frames(trained, config, class_index=getattr(args, "class_index", None), seeds=seeds)
        pairs, steps = frames.shape[:2]
        save_samples(frames.flatten(0, 1), out, nrow=steps)
        sequence = forth_and_back(steps)
        save_gif([frames[:, t] for t in sequence], gif, nrow=pairs, duration_ms=config.frame_ms)
        print(f"interpolate: wrote {out} ({pairs} x {steps}) and {gif} ({len(sequence)} frames)", file=sys.stderr)
        return 0


# -- ganforge edit -------------------------------------------------------------------------------------


def parse_alphas(spec: str) -> list[float]:
    """``"-3:3:7"`` (start:stop:count, both ends included) or ``"-1,0,2"`` -> the edit strengths."""
    try:
        if ":" in spec:
            start, stop, count = spec.split(":")
            n = int(count)
            if n < 1:
                raise ValueError
            return torch.linspace(float(start), float(stop), n).tolist() if n > 1 else [float(start)]
        return [float(a) for a in spec.split(",")]
    except ValueError:
        raise ConfigError(f"--alphas {spec!r}: expected START:STOP:COUNT (e.g. -3:3:7) or a comma-separated "
                          "list of numbers") from None


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@attrs.frozen(kw_only=True)
class EditConfig:
    editor: str = "interfacegan"
    alphas: str = "-3:3:7"
    num_samples: int = attrs.field(default=8, validator=v.ge(1))  # rows of the grid
    seed: int = attrs.field(default=0, validator=v.ge(0))  # the edited samples (seed + 1: the editor's fit)
    device: str = "auto"


def build_editor(name: str, manager: Any, *, attribute: str | None = None, space: str | None = None,
                 direction: str | None = None, params: tuple[str, ...] | list[str] = ()) -> Any:
    """The registered editor ``name`` from its default config, with the command line's changes."""
    try:
        component = manager.get("editor", name)
    except Exception as exc:
        raise ConfigError(f"--editor: {exc}") from None
    fields = [a.name for a in attrs.fields(component.config)]
    raw: dict[str, Any] = make_converter(manager).unstructure(component.config())
    for flag, field, value in (("--attribute", "attribute", attribute), ("--space", "space", space),
                               ("--direction", "direction", direction)):
        if value is None:
            continue
        if field not in fields:
            raise ConfigError(f"{flag}: editor {name!r} has no {field!r} setting; its settings are {fields} "
                              "(set them with --param KEY=VALUE)")
        raw[field] = value
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in fields:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE with KEY one of {fields}")
        raw[key.strip()] = _toml_value(value.strip())
    config = structure_as(component.config, raw, manager, source=f"editor {name!r} settings")
    return component.factory(config)


def _attribute_scorer(editor: Any) -> tuple[Any, int, str] | None:
    """The scorer and column of the editor's attribute, when it has one."""
    from ganforge_plugins.latent.editing import build_scorer, column, parse_attribute

    spec = getattr(getattr(editor, "config", None), "attribute", None)
    if not spec:
        return None
    name, attribute = parse_attribute(spec, field="attribute")
    scorer = getattr(editor, "scorers", {}).get(name) or build_scorer(name, field="attribute")
    return scorer, column(scorer, attribute, field="attribute"), spec


def edit_latents(trained: Any, path: str, space: str, class_index: int | None) -> Tensor:
    """The latents of a ``.npy`` exported for this generator, carried into the editor's ``space``."""
    latents, meta = load_latent_array(path, generator=trained)
    if meta.get("class") is not None and meta.get("class") != class_index:
        raise ConfigError(f"--latents {path!r}: latents of class {meta['class']}; "
                          f"edit them with --class {meta['class']}")
    try:
        return lift(trained.module, latents.to(trained.device), str(meta["space"]), space)
    except ConfigError as exc:
        raise ConfigError(f"--latents {path!r}: {exc} (the editor edits {space!r})") from None


class Edit:
    """Edit random samples of a checkpoint with a registered editor: a grid of samples x alphas."""

    def __init__(self, config: EditConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        _accept_negative_values(parser)
        parser.add_argument("checkpoint", help="run directory or checkpoint directory")
        parser.add_argument("--out", help="the grid, FILE.png, rows: samples, columns: alphas "
                                          "(default: RUN/latent/edit-EDITOR.png)")
        parser.add_argument("--editor", help="a registered editor (interfacegan)")
        parser.add_argument("--class", dest="class_index", type=int,
                            help="the class to edit within, for a class-conditional generator")
        parser.add_argument("--attribute", help="the attribute to edit: SCORER or SCORER:ATTRIBUTE (e.g. ink)")
        parser.add_argument("--alphas", help="edit strengths, START:STOP:COUNT or a list (-3:3:7)")
        parser.add_argument("--space", help="latent space the editor works in (z, w, w+)")
        parser.add_argument("--direction", help="load the editor's saved file instead of fitting it")
        parser.add_argument("--save-direction", dest="save_direction", help="save the fitted editor (.safetensors)")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                            help="any other setting of the editor (repeatable), e.g. num_samples=2000")
        parser.add_argument("--latents", help="edit these latents (a .npy with its side file, as `ganforge studio` "
                                              "exports) instead of -n samples of --seed")
        parser.add_argument("-n", "--num-samples", dest="num_samples", type=int, help="rows (8)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--device")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        config = _evolve(self.config, _changes(args, {k: k for k in ("editor", "alphas", "num_samples", "seed",
                                                                     "device")}), "edit")
        alphas = parse_alphas(config.alphas)
        out = _out_path(args.out, (".png",)) if getattr(args, "out", None) else None
        save_to = _out_path(args.save_direction, (".safetensors",), "--save-direction") \
            if getattr(args, "save_direction", None) else None
        editor = build_editor(config.editor, manager, attribute=getattr(args, "attribute", None),
                              space=getattr(args, "space", None), direction=getattr(args, "direction", None),
                              params=list(getattr(args, "param", []) or []))
        device = resolve_device(config.device, "--device")
        trained = load_generator(args.checkpoint, device=device, manager=manager)
        _check_image_generator(trained, args.checkpoint)
        trained = within_class(trained, getattr(args, "class_index", None), "edit")
        out = out or run_dir(trained) / "latent" / f"edit-{config.editor}.png"
        g = trained.module
        editor.fit(trained, device=device, generator_rng=torch.Generator(device).manual_seed(config.seed + 1))
        if save_to is not None:
            editor.save(save_to, trained)
        if getattr(args, "latents", None):
            latents = edit_latents(trained, args.latents, editor.space, getattr(args, "class_index", None))
        else:
            rng = torch.Generator(device).manual_seed(config.seed)  # the same samples whether fitted or loaded
            latents = sample_latents(g, config.num_samples, editor.space, generator_rng=rng, device=device)
        with torch.no_grad():
            columns = [render(g, editor.edit(latents, a), editor.space) for a in alphas]
        grid = torch.stack(columns, 1)  # [n, A, C, H, W]
        save_samples(grid.flatten(0, 1), out, nrow=len(alphas))
        result: dict[str, Any] = {"editor": config.editor, "space": editor.space, "alphas": alphas,
                                  "checkpoint": str(trained.checkpoint.path), "grid": str(out)}
        scored = _attribute_scorer(editor)
        if scored is not None:
            scorer, col, spec = scored
            result["attribute"] = spec
            result["mean_score"] = [float(scorer.score(c)[:, col].float().mean()) for c in columns]
        if save_to is not None:
            result["direction"] = str(save_to)
        text = json.dumps(result, indent=2) + "\n"
        _write_text(out.with_suffix(".json"), text)
        sys.stdout.write(text)
        return 0


# -- ganforge invert -----------------------------------------------------------------------------------


def _from_pixels(pixels: np.ndarray, source: str) -> Tensor:
    """``uint8`` (0-255) or floats in ``[0, 1]`` -> float32 in ``[-1, 1]``."""
    if pixels.dtype == np.uint8:
        return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)
    if not np.issubdtype(pixels.dtype, np.floating):
        raise DataError(f"IMAGES {source!r}: expected uint8 or floats in [0, 1], got dtype {pixels.dtype}")
    lo, hi = float(np.min(pixels)), float(np.max(pixels))
    if not np.isfinite([lo, hi]).all() or lo < -1e-3 or hi > 1 + 1e-3:
        raise DataError(f"IMAGES {source!r}: expected floats in [0, 1] (as `ganforge sample --out X.npy` writes), "
                        f"got range [{lo:.3g}, {hi:.3g}]")
    return torch.from_numpy(pixels.astype(np.float32)) * 2 - 1


def load_images(path: str | Path, shape: tuple[int, ...]) -> tuple[Tensor, list[str]]:
    """Images ``[N, C, H, W]`` in ``[-1, 1]`` from a folder of PNGs or a ``.npy``, checked against the
    generator's ``shape`` ``(C, H, W)``; returns them and their names."""
    from PIL import Image

    path = Path(path)
    c, h, w = shape
    if path.is_file() and path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"IMAGES {str(path)!r}: not a readable .npy array: {exc}") from None
        if array.ndim == 3:
            array = array[:, None]
        if array.ndim != 4 or len(array) == 0:
            raise DataError(f"IMAGES {str(path)!r}: expected an array [N, C, H, W] or [N, H, W], "
                            f"got shape {list(array.shape)}")
        if tuple(array.shape[1:]) != (c, h, w):
            raise DataError(f"IMAGES {str(path)!r}: images of shape {list(array.shape[1:])} (channels, height, "
                            f"width); the generator makes [{c}, {h}, {w}]")
        return _from_pixels(array, str(path)), [f"{path.stem}[{i}]" for i in range(len(array))]
    if not path.is_dir():
        raise DataError(f"IMAGES {str(path)!r}: expected a folder of .png files or a .npy file")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise DataError(f"IMAGES {str(path)!r}: the folder holds no .png files")
    images = []
    for file in files:
        x = read_image(file, channels=3, name=f"IMAGES {str(file)!r}")  # [3, H, W] in [0, 1], any bit depth
        if x.shape[1:] != (h, w):
            raise DataError(f"IMAGES {str(file)!r}: is {x.shape[2]}x{x.shape[1]}; the generator makes "
                            f"{w}x{h} images")
        with Image.open(file) as im:  # its mode, from the header (read_image has checked its size)
            mode = im.mode
        grey = mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
        if c == 1:
            if not grey and not (torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])):
                raise DataError(f"IMAGES {str(file)!r}: a colour image (mode {mode}); the generator makes "
                                "1-channel (grey) images")
            pixels = x[:1]
        elif c == 3:
            if grey:
                raise DataError(f"IMAGES {str(file)!r}: a grey image (mode {mode}); the generator makes "
                                "3-channel (colour) images")
            pixels = x
        else:
            raise DataError(f"IMAGES {str(file)!r}: the generator makes {c}-channel images; PNGs hold 1 or 3")
        images.append(pixels * 2 - 1)
    return torch.stack(images), [p.name for p in files]


def _hybrid() -> InversionChoice:
    return InversionChoice(name="hybrid", params=HybridConfig(), factory=Hybrid)


@attrs.frozen(kw_only=True)
class InvertConfig:
    method: InversionChoice = attrs.field(factory=_hybrid)  # a registered inversion method and its settings
    space: str = ""  # "" = w+ for a style generator, z otherwise
    seed: int = attrs.field(default=0, validator=v.ge(0))
    device: str = "auto"


# command-line flags that set the inversion method's own settings, where the method has them
METHOD_FLAGS = ("steps", "lr", "feature_weight", "feature_network", "feature_weights", "encoder", "encoder_steps",
                "save_encoder")


class Invert:
    """Invert images into a checkpoint's latent space with a registered method: reconstructions, latents, PSNR."""

    def __init__(self, config: InvertConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", help="run directory or checkpoint directory")
        parser.add_argument("images", help="a folder of .png files or a .npy array of images")
        parser.add_argument("--out", help="output directory (default: RUN/latent/invert-METHOD)")
        parser.add_argument("--method", help="a registered inversion method: optimise, encoder, hybrid (default), "
                                             "or a plugin's (ganforge plugins lists them)")
        parser.add_argument("--class", dest="class_index", type=int,
                            help="the class of the images, for a class-conditional generator")
        parser.add_argument("--space", choices=SPACES, help="latent space (w+ for a style generator, else z)")
        parser.add_argument("--steps", type=int, help="optimisation steps (500)")
        parser.add_argument("--lr", type=float)
        parser.add_argument("--feature-weight", dest="feature_weight", type=float, help="feature loss weight (1)")
        parser.add_argument("--feature-network", dest="feature_network", help="auto, a domain classifier or vgg16")
        parser.add_argument("--feature-weights", dest="feature_weights", help="local weights file (vgg16)")
        parser.add_argument("--encoder", help="a saved encoder (.safetensors) for this generator")
        parser.add_argument("--encoder-steps", dest="encoder_steps", type=int, help="training steps without --encoder")
        parser.add_argument("--save-encoder", dest="save_encoder", help="save the trained encoder (.safetensors)")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--device")

    def settings(self, args: argparse.Namespace, manager: Any) -> InvertConfig:
        """The command's settings with its flags merged in before structuring (a method named by
        ``--method`` starts from its own defaults; a flag its config lacks is refused by name)."""
        conv = make_converter(manager)
        raw = conv.unstructure(self.config)
        raw.update(_changes(args, {"space": "space", "seed": "seed", "device": "device"}))
        method = getattr(args, "method", None)
        if method and method != raw["method"]["name"]:
            raw["method"] = {"name": method}
        flags = _changes(args, {name: name for name in METHOD_FLAGS})
        if flags:
            registry = manager.registries["inversion"]
            if raw["method"]["name"] in registry:
                fields = {f.name for f in attrs.fields(registry.get(raw["method"]["name"]).config)}
                for name in flags:
                    if name not in fields:
                        what = "trains no encoder" if name == "save_encoder" else f"has no {name} setting"
                        raise ConfigError(f"--{name.replace('_', '-')}: method {raw['method']['name']!r} {what}")
            raw["method"] = {**raw["method"], **flags}
        return structure_as(InvertConfig, raw, manager, source="invert settings")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        if getattr(args, "save_encoder", None):  # a bad file name is refused before any work
            _out_path(args.save_encoder, (".safetensors",), "--save-encoder")
        config = self.settings(args, manager)
        device = resolve_device(config.device, "--device")
        trained = load_generator(args.checkpoint, device=device, manager=manager)
        _check_image_generator(trained, args.checkpoint)
        trained = within_class(trained, getattr(args, "class_index", None), "invert")
        name = config.method.name
        out = Path(args.out) if getattr(args, "out", None) else run_dir(trained) / "latent" / f"invert-{name}"
        if out.exists() and not out.is_dir():  # refused before the optimisation, not after it
            raise ConfigError(f"--out {str(out)!r} is a file; expected a folder for reconstruction.png, "
                              "latents.safetensors and inversion.json")
        g = trained.module
        space = config.space or ("w+" if "w+" in space_names(g) else "z")
        check_space(g, space)
        images, names_ = load_images(args.images, tuple(trained.spec.shape))
        images = images.to(device)
        method = config.method.build()
        rng = torch.Generator(device).manual_seed(config.seed)
        progress = Progress(1, label=f"invert ({name}, {len(images)} images)", unit="steps")
        takes_progress = "progress" in inspect.signature(method.invert).parameters  # a third party's may not
        try:
            latents, record = method.invert(trained, images, space=space, generator_rng=rng,
                                            **({"progress": progress} if takes_progress else {}))
        finally:
            progress.close()
        with torch.no_grad():
            recon = render(g, latents, space)
        save_samples(torch.cat([images, recon]), out / "reconstruction.png", nrow=len(images))
        save_inverted(out / "latents.safetensors", latents, trained, space=space,
                      meta={"method": name, "images": names_})
        psnr = list(record["psnr"])
        result = {"method": name, "space": space, "checkpoint": str(trained.checkpoint.path),
                  "images": names_, "psnr": psnr, "mean_psnr": sum(psnr) / len(psnr), "seconds": record["seconds"],
                  "steps": record["steps"], "encoder": record.get("encoder", {}),
                  "settings": make_converter(manager).unstructure(config)}
        text = json.dumps(result, indent=2) + "\n"
        _write_text(out / "inversion.json", text)
        sys.stdout.write(text)
        return 0


@hookimpl
def ganforge_register_commands(register):
    register("interpolate", Interpolate, InterpolateConfig)
    register("edit", Edit, EditConfig)
    register("invert", Invert, InvertConfig)
