"""The ``ganforge`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import tomllib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .building import resolve_device
from .checkpoint import load_checkpoint, recover
from .config import RunConfig, load_config, load_settings, structure, to_toml
from .distributed import DistributedContext, joined_for_the_command
from .errors import CheckpointError, ConfigError, GanforgeError, OutputError
from .inference import load_generator
from .manager import PluginLoadWarning, PluginManager, get_plugin_manager, set_plugin_manager
from .rundir import prepare_run_dir
from .training import Trainer


def _parser(manager: PluginManager | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganforge", description="Train, sample and edit GANs built from plugins.")
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    parser.add_argument(
        "-p", "--plugin", action="append", default=[], metavar="NAME",
        help="load this plugin (entry-point, distribution or module name) even with autoload disabled",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a GAN (with no CONFIG: a conditional DCGAN on the bundled digits)")
    train.add_argument("config", nargs="?", help="TOML config; only what differs from the default is needed")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optim.g.lr=1e-4 (repeatable)")
    where = train.add_mutually_exclusive_group()
    where.add_argument("--out", help="run directory to create (default: runs/<data>-<generator>-<time>)")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its latest checkpoint")
    train.add_argument("--init-from", metavar="CHECKPOINT",
                       help="start a new run from another run's weights only (optimisers and counters start fresh)")

    sample = sub.add_parser("sample", help="draw samples from a checkpoint")
    sample.add_argument("checkpoint", help="run directory or checkpoint directory")
    sample.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--class", dest="class_index", type=int, help="class to draw, for a conditional model")
    sample.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy (N x C x H x W in [0, 1])")
    sample.add_argument("--device", default="auto")
    sample.add_argument("--psi", type=float, help="truncation psi in W, for a style-based generator: 1 = none, "
                                                  "0 = the average image (default: the run's own setting)")
    sample.add_argument("--psi-modes", dest="psi_modes", type=int, metavar="K",
                        help="multi-modal truncation: each w moves towards the nearest of K k-means centres of W "
                             "instead of the average (K ~ the data's modes, e.g. 10 digits); with --psi")
    sample.add_argument("--mix", type=int, metavar="SEED",
                        help="style mixing: the samples of this seed give their styles at --mix-layers")
    sample.add_argument("--mix-layers", default="coarse", metavar="RANGE",
                        help="coarse (pose, shape), middle, fine (colour, micro-structure), all, or start:stop "
                             "indices into W+ (default coarse)")

    sub.add_parser("plugins", help="list installed plugins and what they provide")

    config = sub.add_parser("config", help="inspect configs")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="print the fully resolved config")
    show.add_argument("config", nargs="?")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    for component in manager.registries["command"] if manager is not None else ():
        if component.name in COMMANDS:  # the built-in commands keep their names
            print(f"ganforge: warning: {component.provider.describe()} registers a command named "
                  f"{component.name!r}, like a built-in one; the built-in is kept and the plugin's is not "
                  "available", file=sys.stderr)
            continue
        cmd = sub.add_parser(component.name, help=component.summary, description=component.summary)
        cmd.add_argument("-c", "--config", dest="command_config", metavar="FILE",
                         help=f"TOML file with settings for {component.name}")
        cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help=f"override a setting, e.g. --set {_example_setting(component.config)} (repeatable)")
        add_arguments = getattr(component.factory, "add_arguments", None)
        if callable(add_arguments):
            try:
                add_arguments(cmd)
            except Exception as exc:  # one plugin's broken options must not take every command down
                print(f"ganforge: warning: {component.provider.describe()}: command {component.name!r} is not "
                      f"available, its options failed ({type(exc).__name__}: {exc})", file=sys.stderr)
                sub.choices.pop(component.name, None)
                continue
        cmd.set_defaults(plugin_command=component.name)
    return parser


def _example_setting(config: Any) -> str:
    """A ``KEY=VALUE`` of the command's own settings for its ``--help``: a list field if it has one."""
    import attrs

    fields = [f for f in attrs.fields(config) if not f.name.startswith("_")] if attrs.has(config) else []
    for f in sorted(fields, key=lambda f: not isinstance(f.default, list | tuple)):
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if isinstance(default, bool):
            return f"{f.name}={str(not default).lower()}"
        if isinstance(default, list | tuple) and all(isinstance(x, int | float) for x in default):
            return f"{f.name}=[{','.join(map(str, default or (0, 1)))}]"
        if isinstance(default, int | float):
            return f"{f.name}={default}"
        if isinstance(default, str):
            return f"{f.name}={default or 'NAME'}"
    return "KEY=VALUE"


def cmd_plugin(args: argparse.Namespace, manager: PluginManager) -> int:
    """Run a subcommand registered by a plugin, its settings structured into the plugin's config."""
    component = manager.get("command", args.plugin_command)
    settings: Any = load_settings(component.config, args.command_config, args.overrides, manager,
                             what=f"{component.name} settings")
    status: int = component.factory(settings).run(args, manager)
    return status


def _default_out(config: RunConfig) -> Path:
    method = config.generator.name if config.procedure.name == "gan" else config.procedure.name
    return Path("runs") / f"{config.data.name}-{method}-{time.strftime('%Y%m%d-%H%M%S')}"


# what --resume may change: how long the run trains, where it runs, what it writes, and the
# learning-rate schedule; the rest is what the checkpoint's optimisers, data order and networks hold
RESUMABLE = ("train.steps", "train.device", "output.", "optim.g.decay_start", "optim.d.decay_start")


def cmd_train(args: argparse.Namespace, manager: PluginManager) -> int:
    with joined_for_the_command():
        return _train(args, manager)


def _train(args: argparse.Namespace, manager: PluginManager) -> int:
    # torchrun restarts a failed or preempted job with the same command line: continue that run
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    if restarted and args.out and not args.resume and (Path(args.out) / "checkpoints" / "latest").is_file():
        args.resume, args.out, args.init_from = args.out, None, None
    writer = DistributedContext.launched_as_writer()
    lock = None
    try:
        if args.resume:
            if args.init_from:
                raise ConfigError("--resume and --init-from exclude each other: --resume continues a run exactly, "
                                  "--init-from starts a new run from weights only")
            run_dir, from_checkpoint = _resume_target(Path(args.resume))
            if writer:  # the lock first: nothing else may write the run while it is read and continued
                lock = prepare_run_dir(run_dir, resume=True)
                recover(run_dir / "checkpoints")
            checkpoint = load_checkpoint(from_checkpoint or run_dir)
            recorded = tomllib.loads(checkpoint.config_toml)
            if args.config:  # the file (and --set) as a new run would read it: only what --resume may change may differ
                config = load_config(args.config, args.overrides, manager)
                what = f"{args.config} with --resume"
            else:
                config = structure(_merge_overrides(recorded, args.overrides), manager,
                                   source=f"config of {checkpoint.path}")
                what = "--set on --resume"
            _check_resumable(structure(recorded, manager, source=f"config of {checkpoint.path}"), config, manager,
                             what=what)
            trainer = Trainer(config, run_dir, manager=manager)
            trainer.load_training_state(checkpoint)
            if config.train.steps < trainer.step:
                raise ConfigError(f"train.steps: {config.train.steps} is below step {trainer.step}, where checkpoint "
                                  f"{checkpoint.path.name} was written; a resumed run trains on to train.steps "
                                  f"(e.g. --set train.steps={max(2 * trainer.step, trainer.step + 1)})")
            if writer:
                print(f"resuming {run_dir} from step {trainer.step} ({checkpoint.path.name})", file=sys.stderr)
        else:
            config = load_config(args.config, args.overrides, manager)
            if not args.out and int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise ConfigError("--out: a distributed run needs an explicit run directory shared by all ranks")
            out = Path(args.out) if args.out else _default_out(config)
            source = load_checkpoint(args.init_from) if args.init_from else None
            trainer = Trainer(config, out, manager=manager)  # builds data and networks: fails before any write
            if source is not None:
                trainer.load_weights_from(source)
            if writer:
                lock = prepare_run_dir(out)
                origin = f" from the weights of {source.path}" if source is not None else ""
                what = config.generator.name if config.procedure.name == "gan" else config.procedure.name
                print(f"training {what} on {config.data.name}{origin} -> {out}", file=sys.stderr)
        last = trainer.fit()
    finally:
        if lock is not None:
            lock.release()
    if trainer.stopped_by is not None:
        name = signal.Signals(trainer.stopped_by).name
        print(f"stopped by {name} at step {trainer.step} of {trainer.config.train.steps}; checkpoint {last}. "
              f"Continue with: ganforge train --resume {trainer.out}", file=sys.stderr)
        return 128 + trainer.stopped_by  # as a shell reports a process ended by that signal
    print(f"done: {trainer.step} steps, {trainer.images_seen} images; checkpoint {last}", file=sys.stderr)
    return 0


def _resume_target(path: Path) -> tuple[Path, Path | None]:
    """``(run directory, checkpoint or None for its latest)`` from what ``--resume`` was given: a
    run directory, or one checkpoint of a run (``RUN/checkpoints/step-NNNNNNNN``)."""
    if not path.exists():
        raise CheckpointError(f"--resume {str(path)!r}: no such run directory")
    if (path / "meta.json").is_file():  # a checkpoint (which holds a config.toml too)
        if path.parent.name == "checkpoints" and (path.parent.parent / "config.toml").is_file():
            return path.parent.parent, path
        raise CheckpointError(f"--resume {str(path)!r} is a checkpoint outside a run directory; resume its run, or "
                              "start a new run from its weights with --init-from")
    if (path / "checkpoints").is_dir():
        return path, None
    raise CheckpointError(f"--resume {str(path)!r}: expected a run directory (holding checkpoints/) or one of its "
                          "checkpoints (RUN/checkpoints/step-NNNNNNNN)")


def _check_resumable(recorded: RunConfig, config: RunConfig, manager: PluginManager, *,
                     what: str = "--set on --resume") -> None:
    """Refuse an override a resumed run would not honour (its optimisers, data order and networks come
    from the checkpoint), so that the config the run records is always the one in effect."""
    from .config import flatten, to_dict

    before, after = flatten(to_dict(recorded, manager)), flatten(to_dict(config, manager))
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    refused = [k for k in changed if not any(k == r or (r.endswith(".") and k.startswith(r)) for r in RESUMABLE)]
    if refused:
        shown = ", ".join(f"{k} ({before.get(k)!r} -> {after.get(k)!r})" for k in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise ConfigError(f"{what}: {shown}{more}: a resumed run continues with the settings its checkpoint "
                          f"was trained with; it may change only train.steps, train.device, output.* and the "
                          f"learning-rate schedule (optim.*.decay_start). Start a new run from its weights with "
                          f"--init-from to change the rest")


def _merge_overrides(raw: dict[str, object], overrides: Sequence[str]) -> dict[str, object]:
    from .config import merge, parse_override

    for item in overrides:
        raw = merge(raw, parse_override(item))
    return raw


def cmd_sample(args: argparse.Namespace, manager: PluginManager) -> int:
    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise OutputError(f"--out {args.out!r}: expected a file ending in .png (grid) or .npy (array)")
    if args.n < 1:
        raise ConfigError(f"-n: expected a positive number of samples, got {args.n}")
    if args.mix is None and args.mix_layers != "coarse":
        raise ConfigError(f"--mix-layers {args.mix_layers!r}: takes effect with --mix SEED (the seed whose styles "
                          "are mixed in)")
    trained = load_generator(args.checkpoint, device=resolve_device(args.device, "--device"), manager=manager)
    class_index = trained.check_class(args.class_index)
    # no labels: a conditional generator draws the classes in turn
    labels = None if class_index is None else torch.full((args.n,), class_index, device=trained.device)
    rng = torch.Generator(trained.device).manual_seed(args.seed)
    mix = None if args.mix is None else torch.Generator(trained.device).manual_seed(args.mix)
    samples = trained.sample(args.n, generator=rng, labels=labels, psi=args.psi, mix=mix, mix_layers=args.mix_layers,
                             modes=args.psi_modes)
    from .images import save_array, save_samples

    if out.suffix == ".png":
        nrow = max(1, int(args.n**0.5))
        if labels is None and trained.num_classes is not None:
            nrow = trained.num_classes  # the classes drawn in turn: one column per class
        save_samples(samples, out, nrow=nrow)
    else:
        save_array(samples, out)
    print(f"wrote {args.n} samples to {out}", file=sys.stderr)
    return 0


def cmd_plugins(args: argparse.Namespace, manager: PluginManager) -> int:
    for info in sorted(manager.plugins, key=lambda p: (p.distribution or "", p.name)):
        origin = f"{info.distribution} {info.version}" if info.distribution else "not installed"
        print(f"{info.name}  [{origin}]  {info.module}")
        for comp in manager.components_of(info):
            print(f"    {comp.family:<14} {comp.name:<20} {comp.summary}")
    for failure in manager.failures:
        origin = f"{failure.plugin.distribution} {failure.plugin.version}" if failure.plugin.distribution else ""
        print(f"{failure.plugin.name}  [{origin}]  FAILED: {failure.error}")
    for conflict in manager.conflicts:
        print(f"CONFLICT: {conflict}")
    return 0


def cmd_config(args: argparse.Namespace, manager: PluginManager) -> int:
    config = load_config(args.config, args.overrides, manager)
    sys.stdout.write(to_toml(config, manager))
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "plugins": cmd_plugins, "config": cmd_config}


def main(argv: Sequence[str] | None = None) -> int:
    # plugins are loaded before the full parse: they contribute subcommands
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("-p", "--plugin", action="append", default=[])
    requested = early.parse_known_args(argv)[0].plugin
    try:
        with warnings.catch_warnings():
            # a broken plugin is reported once, as a line of its own, not as a Python warning
            warnings.simplefilter("ignore", PluginLoadWarning)
            if requested:
                manager = PluginManager()
                manager.load(requested)
                set_plugin_manager(manager)
            else:
                manager = get_plugin_manager()
    except GanforgeError as exc:
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return 2
    args = _parser(manager).parse_args(argv)
    try:
        for failure in manager.failures:
            print(f"ganforge: warning: {failure.plugin.describe()} failed to load and is skipped: {failure.error}",
                  file=sys.stderr)
        for conflict in manager.conflicts:
            print(f"ganforge: warning: {conflict}", file=sys.stderr)
        if getattr(args, "plugin_command", None):
            return cmd_plugin(args, manager)
        return COMMANDS[args.command](args, manager)
    except GanforgeError as exc:
        print(f"ganforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training started or after it ended: training itself stops at a step
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
