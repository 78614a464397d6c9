"""``ganforge translation-train`` and ``ganforge translate``: image-to-image translation from the
command line (pix2pix, CycleGAN, StarGAN; see :mod:`ganforge_plugins.translation.train`).

    ganforge translation-train configs/translation/pix2pix-edges2mnist.toml --set steps=2000 --out runs/p2p
    ganforge translate runs/p2p photos/ --out translated/            # pix2pix: A -> B
    ganforge translate runs/cyc photos/ --out translated/ --to A     # CycleGAN: F, Y -> X (default B: G)
    ganforge translate runs/star digits/ --out bold/ --to bold        # StarGAN: to a named domain

``translate`` writes one PNG per input image, under the input's name, at the training resolution.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path
from typing import Any

import attrs
import torch
from ganforge import (
    CheckpointError,
    ConfigError,
    DataError,
    DataSpec,
    hookimpl,
    load_checkpoint,
    load_settings,
    resolve_device,
    save_samples,
    structure_as,
)
from torch import nn

from ganforge_plugins.translation.data import EXTENSIONS, _resize, load_images
from ganforge_plugins.translation.train import (
    TranslationConfig,
    build_generator,
    resolve,
    train,
)


class TranslationTrain:
    """Train pix2pix, CycleGAN or StarGAN from a TOML config (``ganforge translation-train CONFIG``)."""

    def __init__(self, config: TranslationConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config_file", nargs="?", metavar="CONFIG", help="TOML file with the translation settings")
        parser.add_argument("--out", help="run directory (default runs/<data>-<method>-<time>)")
        parser.add_argument("--device", help="device, overriding the config's (auto, cpu, cuda, cuda:1)")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        config = self.config
        if getattr(args, "config_file", None):
            if getattr(args, "command_config", None):
                raise ConfigError("give the config either as CONFIG or with -c/--config, not both")
            config = load_settings(TranslationConfig, args.config_file, args.overrides, manager,
                                   what="translation config")
        if getattr(args, "device", None):
            config = attrs.evolve(config, device=args.device)
        out = Path(args.out) if args.out else \
            Path("runs") / f"{config.data.name}-{config.method}-{time.strftime('%Y%m%d-%H%M%S')}"
        record = train(config, manager, out)
        print(f"wrote {out} ({', '.join(f'{k}={v:.4g}' for k, v in record.items() if k.startswith('test_'))})")
        return 0


@attrs.frozen(kw_only=True)
class TranslateConfig:
    batch_size: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    device: str = "auto"


def load_translator(checkpoint: str | Path, manager: Any, *, to: str | None = None,
                    device: torch.device | str = "cpu") -> tuple[nn.Module, torch.Tensor | None, dict[str, Any]]:
    """The generator of a translation checkpoint that maps to ``to``, the target domain index for a
    many-domain model (else ``None``), and the checkpoint's metadata."""
    ckpt = load_checkpoint(checkpoint)
    meta = ckpt.meta
    if meta.get("kind") != "translation":
        raise CheckpointError(f"checkpoint {ckpt.path} is not a translation checkpoint (ganforge translation-train "
                              f"writes those); for a GAN trained with ganforge train use ganforge sample")
    config = structure_as(TranslationConfig, tomllib.loads(ckpt.config_toml), manager,
                          source=f"config of checkpoint {ckpt.path}")
    resolved = resolve(config, manager)
    method, cin, cout, res = meta["method"], meta["in_channels"], meta["out_channels"], meta["resolution"]
    target = None
    if method == "pix2pix":
        if to not in (None, "B"):
            raise ConfigError(f"--to: a pix2pix model translates A -> B only, got {to!r}")
        name, spec, channels = "generator", DataSpec(shape=(cout, res, res)), cin
    elif method == "cyclegan":
        if to not in (None, "A", "B"):
            raise ConfigError(f"--to: a CycleGAN model translates to domain A (with F) or B (with G), got {to!r}")
        forward = to in (None, "B")
        name = "generator" if forward else "generator_f"
        spec, channels = DataSpec(shape=((cout if forward else cin), res, res)), cin if forward else cout
    else:
        domains = list(meta["domains"])
        if to is None:
            raise ConfigError(f"--to: a StarGAN model needs a target domain; choose one of: {', '.join(domains)}")
        if to not in domains:
            raise ConfigError(f"--to: unknown target domain {to!r}; this model knows: {', '.join(domains)}")
        target = torch.tensor(domains.index(to))
        spec = DataSpec(shape=(cout, res, res), num_classes=len(domains), class_names=tuple(domains))
        name, channels = "generator", cin
    net = build_generator(resolved.generator, manager, in_channels=channels, out=spec)
    net.load_state_dict(ckpt.weights[name])
    return net.to(device).eval(), target, {**meta, "source_channels": channels}


class Translate:
    """Translate a folder of images with a trained model (``ganforge translate CHECKPOINT INPUT_DIR --out DIR``)."""

    def __init__(self, config: TranslateConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a translation run directory or checkpoint")
        parser.add_argument("input_dir", metavar="INPUT_DIR", help="folder of images to translate")
        parser.add_argument("--out", required=True, help="folder for the translated images (PNG, same names)")
        parser.add_argument("--to", default=None, metavar="DOMAIN",
                            help="target: a StarGAN domain name; A or B for CycleGAN (default B)")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        device = resolve_device(self.config.device)
        net, target, meta = load_translator(args.checkpoint, manager, to=args.to, device=device)
        folder = Path(args.input_dir)
        if not folder.is_dir():
            raise DataError(f"INPUT_DIR: {str(folder)!r} is not a directory")
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
        images = _resize(load_images(paths, meta["source_channels"], None, what=str(folder)), meta["resolution"])
        out = Path(args.out)
        with torch.no_grad():
            for i in range(0, len(images), self.config.batch_size):
                x = images[i:i + self.config.batch_size].to(device)
                y = net(x) if target is None else net(x, target.expand(len(x)).to(device))
                for path, image in zip(paths[i:i + len(x)], y, strict=True):
                    save_samples(image[None].cpu(), out / f"{path.stem}.png", nrow=1)
        print(f"translated {len(paths)} images into {out}")
        return 0


@hookimpl
def ganforge_register_commands(register):
    register("translation-train", TranslationTrain, TranslationConfig)
    register("translate", Translate, TranslateConfig)
