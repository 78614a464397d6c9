"""``ganforge translate``: a trained translation model applied to a folder of images.

    ganforge train configs/translation/pix2pix-edges2mnist.toml --out runs/p2p
    ganforge translate runs/p2p photos/ --out translated/            # pix2pix: A -> B
    ganforge translate runs/cyc photos/ --out translated/ --to A     # CycleGAN: F, Y -> X (default B: G)
    ganforge translate runs/star digits/ --out bold/ --to bold        # StarGAN: to a named domain

It works on any run whose procedure translates images (it asks the procedure which network maps to
``--to``), and writes one PNG per input image, under the input's name, at the training resolution.
``ganforge translation-train`` is gone; it says to use ``ganforge train``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import attrs
import torch
from ganforge import CheckpointError, ConfigError, DataError, hookimpl, load_run, resolve_device, save_samples

from ganforge_plugins.translation.data import EXTENSIONS, _resize, load_images


@attrs.frozen(kw_only=True)
class TranslateConfig:
    batch_size: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    device: str = "auto"


class Translate:
    """Translate a folder of images with a trained model (``ganforge translate RUN INPUT_DIR --out DIR``)."""

    def __init__(self, config: TranslateConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", metavar="RUN", help="a translation run directory or checkpoint")
        parser.add_argument("input_dir", metavar="INPUT_DIR", help="folder of images to translate")
        parser.add_argument("--out", required=True, help="folder for the translated images (PNG, same names)")
        parser.add_argument("--to", default=None, metavar="DOMAIN",
                            help="target: a StarGAN domain name; A or B for CycleGAN (default B)")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        device = resolve_device(self.config.device)
        run = load_run(args.checkpoint, device=device, manager=manager)
        translation = getattr(run.procedure, "translation", None)
        if not callable(translation):
            raise CheckpointError(f"checkpoint {run.checkpoint.path} was trained by procedure "
                                  f"{run.procedure_name!r}, which does not translate images; use ganforge sample")
        role, source, target = translation(run.specs, args.to)
        net = run.networks[role]
        folder = Path(args.input_dir)
        if not folder.is_dir():
            raise DataError(f"INPUT_DIR: {str(folder)!r} is not a directory")
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
        out = Path(args.out)
        # checked before anything is read or written: an output must never replace an input, nor another output
        if out.resolve() == folder.resolve():
            raise ConfigError(f"--out {args.out!r} is INPUT_DIR: the translations (PNG, the inputs' names) would "
                              "replace the images they come from; choose another folder")
        by_stem: dict[str, list[str]] = {}
        for p in paths:
            by_stem.setdefault(p.stem, []).append(p.name)
        clashes = [names for names in by_stem.values() if len(names) > 1]
        if clashes:
            shown = "; ".join(f"{' and '.join(names)} -> {Path(names[0]).stem}.png" for names in clashes[:3])
            raise DataError(f"INPUT_DIR {str(folder)!r}: images that differ only in their extension would be "
                            f"written to one file ({shown}); rename them")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {args.out!r} is a file; expected a folder for the translated images")
        images = _resize(load_images(paths, source.channels, None, what=str(folder)), source.resolution)
        with torch.no_grad():
            for i in range(0, len(images), self.config.batch_size):
                x = images[i:i + self.config.batch_size].to(device)
                y = net(x) if target is None else net(x, torch.full((len(x),), target, device=device))
                for path, image in zip(paths[i:i + len(x)], y, strict=True):
                    save_samples(image[None].cpu(), out / f"{path.stem}.png", nrow=1)
        print(f"translated {len(paths)} images into {out}")
        return 0


@attrs.frozen(kw_only=True)
class AliasConfig:
    pass


class TranslationTrain:
    """Removed: pix2pix, CycleGAN and StarGAN train with `ganforge train CONFIG` (a message says so)."""

    def __init__(self, config: AliasConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        raise ConfigError("translation-train is gone: pix2pix, CycleGAN and StarGAN are procedures of the one "
                          "training loop; train them with `ganforge train CONFIG` (the recipes in "
                          "configs/translation/ work as they are, with --out, --resume and --set)")


@hookimpl
def ganforge_register_commands(register):
    register("translate", Translate, TranslateConfig)
    register("translation-train", TranslationTrain, AliasConfig)
