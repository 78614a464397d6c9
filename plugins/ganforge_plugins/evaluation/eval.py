"""``ganforge eval``: sample-quality metrics of a checkpoint, and the ``eval`` callback that computes
them periodically during training.

Metrics are plugins over features from a feature-extractor plugin (see :mod:`.pipeline`): FID
(Heusel et al. 2017), KID (Bińkowski et al. 2018), the Inception Score (Salimans et al. 2016) and
precision/recall (Kynkäänniemi et al. 2019) by default. The real side is a registered dataset
(``--real mnist:../shared/data/mnist``; by default the checkpoint's own training data) at the
generator's resolution, a random subset of ``real_samples`` of its ``real_split`` split. The
extractor defaults to the domain classifier of a known dataset and to the FID Inception network
otherwise. Every result is printed (and written with ``--out``) as JSON with its full protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import (
    ConfigError,
    GanforgeError,
    Progress,
    atomic_write_text,
    hookimpl,
    load_generator,
    load_run,
    make_converter,
    resolve_device,
    structure_as,
    write_output,
)
from torch import Tensor

from ganforge_plugins.evaluation.pipeline import (
    DEFAULT_METRICS,
    ExtractorChoice,
    MetricChoice,
    ReferenceCache,
    Timer,
    build_extractor,
    build_metrics,
    check_counts,
    check_extractor,
    check_shapes,
    compute_metrics,
    domain_problems,
    extract_batched,
    generated_batches,
    labelled_accuracy,
    metric_choices,
    subset,
    tensor_sha256,
    versions,
)


def _unstructure(params: Any, manager: Any) -> dict[str, Any]:
    out: dict[str, Any] = make_converter(manager).unstructure(params)
    return out


# -- the real side -------------------------------------------------------------------------------


def parse_real(spec: str) -> tuple[str, str | None]:
    """``"mnist:../shared/data/mnist"`` -> ``("mnist", "../shared/data/mnist")``; ``"digits"`` ->
    ``("digits", None)``."""
    name, sep, root = spec.partition(":")
    if not name:
        raise ConfigError(f"--real {spec!r}: expected DATASET or DATASET:ROOT, e.g. mnist:../shared/data/mnist")
    return name, (root if sep else None)


def real_dataset_params(name: str, root: str | None, split: str, trained: Any, manager: Any) -> Any:
    """The real dataset's config: the checkpoint's own data settings when it is the same dataset, then
    ``root`` and ``split``, at the generator's resolution and channels, without a ``limit``."""
    comp = manager.get("dataset", name)
    fields = {a.name for a in attrs.fields(comp.config)}
    raw: dict[str, Any] = {}
    if trained.config.data.name == name:
        raw = _unstructure(trained.config.data.params, manager)
    if root is not None:
        if "root" not in fields:
            raise ConfigError(f"--real {name}:{root}: dataset {name!r} takes no root")
        raw["root"] = str(Path(root).expanduser().resolve())
    elif isinstance(raw.get("root"), str):
        raw["root"] = str(Path(raw["root"]).expanduser().resolve())
    if "split" in fields:
        raw["split"] = split
    spec = trained.spec
    if spec.is_image:
        if "resolution" in fields:
            raw["resolution"] = spec.resolution
        if "channels" in fields:
            raw["channels"] = spec.channels
    if "limit" in fields:
        raw.pop("limit", None)
    return structure_as(comp.config, raw, manager, source=f"real dataset {name!r}")


# -- configuration -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EvalConfig:
    metrics: tuple[MetricChoice, ...] = DEFAULT_METRICS
    extractor: ExtractorChoice | None = None  # None: the domain classifier of the real dataset, else inception
    num_samples: int = attrs.field(default=10_000, validator=v.ge(1))  # generated samples
    real_samples: int = attrs.field(default=10_000, validator=v.ge(1))  # real samples (a random subset)
    real_split: str = "train"  # used where the dataset has splits
    seed: int = attrs.field(default=0, validator=v.ge(0))  # latents, labels and the real subset
    batch_size: int = attrs.field(default=500, validator=v.ge(1))
    device: str = "auto"
    cache_dir: str = ""  # reference features go to <cache_dir>/reference; "" = $GANFORGE_CACHE or ~/.cache/ganforge
    # compute the metrics even with an extractor that labels the real data at under 50% accuracy
    allow_weak_extractor: bool = False


def sample_labels(n: int, num_classes: int | None, device: torch.device, rng: torch.Generator) -> Tensor | None:
    if num_classes is None:
        return None
    return torch.randint(0, num_classes, (n,), device=device, generator=rng)


def evaluate_checkpoint(checkpoint: str | Path, config: EvalConfig, manager: Any, *, real: str | None = None
                        ) -> dict[str, Any]:
    """Evaluate a run or checkpoint directory; returns ``{"metrics": ..., "protocol": ..., ...}``."""
    timer = Timer()
    device = resolve_device(config.device, "--device")
    trained = load_generator(checkpoint, device=device, manager=manager)
    spec = trained.spec
    if not spec.is_image:
        raise GanforgeError(f"eval: the generator of {checkpoint} makes vectors of shape {spec.shape}, not images; "
                            "these metrics compare images through a feature extractor")
    name, root = parse_real(real) if real else (trained.config.data.name, None)
    params = real_dataset_params(name, root, config.real_split, trained, manager)

    metrics = build_metrics(config.metrics, manager)
    check_counts(metrics, generated=config.num_samples, real=config.real_samples)
    choice, extractor = build_extractor(config.extractor, manager, dataset_name=name, spec=spec, device=device)
    check_extractor(metrics, choice.name, extractor, spec.shape)
    timer.lap("setup")

    fields = {a.name for a in attrs.fields(type(params))}
    real_protocol = {
        "dataset": name,
        "params": _unstructure(params, manager),
        "split": config.real_split if "split" in fields else "all (the dataset has no splits)",
        "samples_requested": config.real_samples,
        "seed": config.seed,
        "selection": "random subset without replacement: torch.randperm(N, seed)[:samples], sorted",
    }
    protocol_for_key = {"extractor": dict(extractor.protocol), "real": real_protocol}

    wants_probs = bool(getattr(extractor, "class_names", None))

    def compute_reference() -> tuple[Tensor, tuple[int, ...], dict[str, Any]]:
        dataset = manager.get("dataset", name).factory(params)
        images = getattr(dataset, "images", None)
        if not isinstance(images, Tensor):  # a translation dataset yields pairs or domain-labelled images
            raise GanforgeError(f"eval: real dataset {name!r} ({type(dataset).__name__}) is not a set of images "
                                "the metrics can compare with the generator's samples; name an image dataset "
                                "(mnist, cifar10, fashion-mnist, digits, image-folder)")
        if images.dim() != 4:
            raise GanforgeError(f"eval: real dataset {name!r} yields samples of shape {tuple(images.shape[1:])}, "
                                "not images")
        check_shapes(tuple(images.shape[1:]), spec.shape)
        idx = subset(len(images), config.real_samples, config.seed)
        chosen = images[idx]
        progress = Progress(len(chosen), label=f"eval: reference features of {name}", unit="images")

        def batches() -> Iterator[Tensor]:
            for batch in chosen.split(config.batch_size):
                yield batch
                progress.advance(len(batch))

        try:
            feats, probs = extract_batched(extractor, batches, probabilities=wants_probs)
        finally:
            progress.close()
        labels = getattr(dataset, "labels", None)
        info = labelled_accuracy(extractor, probs, None if labels is None else labels[idx],
                                 dataset.spec.class_names)
        return feats, tuple(images.shape[1:]), info

    cache = ReferenceCache(config.cache_dir)
    reference = cache.get_or_compute(protocol_for_key, compute_reference)
    check_shapes(reference.shape, spec.shape)
    n_real = len(reference.features)
    check_counts(metrics, generated=config.num_samples, real=n_real)
    warnings, refusal = domain_problems(choice.name, extractor, reference.info, name,
                                        reference.shape[-1] if len(reference.shape) == 3 else None)
    if n_real < config.real_samples:
        warnings.append(f"the real data {name!r} has {n_real} images, fewer than the {config.real_samples} asked "
                        "for (--real-samples): the metrics use all of them, and their estimates are the noisier"
                        + (f"; FID's covariance of {reference.features.shape[1]}-d features is singular below "
                           f"{reference.features.shape[1] + 1} images" if n_real <= reference.features.shape[1]
                           else ""))
    trained_on = trained.config.data.name
    if name != trained_on:
        warnings.insert(0, f"the generator was trained on {trained_on!r} and the real data is {name!r}: the "
                           "metrics compare two different datasets")
    if refusal is not None:
        if not config.allow_weak_extractor:
            raise GanforgeError(f"eval: {refusal}")
        warnings.append(refusal)
    for text in warnings:
        print(f"ganforge: warning: eval: {text}", file=sys.stderr)
    timer.lap("reference")

    rng = torch.Generator(device).manual_seed(config.seed)
    k = getattr(trained.module, "num_classes", None)

    progress = Progress(config.num_samples, label="eval: generated samples", unit="images")

    def sample(b: int) -> Tensor:
        images = trained.sample(b, generator=rng, labels=sample_labels(b, k, device, rng))
        progress.advance(b)
        return images

    needs_probs = any(m.needs == "probabilities" for _, m in metrics)
    try:
        fake, fake_probs = extract_batched(extractor, generated_batches(sample, config.num_samples,
                                                                        config.batch_size), probabilities=needs_probs)
    finally:
        progress.close()
    timer.lap("generated")
    values = compute_metrics(metrics, reference.features, fake, fake_probs)
    timer.lap("metrics")

    ckpt = trained.checkpoint
    return {
        "metrics": values,
        "warnings": warnings,
        "protocol": {
            "extractor": {"config": {"name": choice.name, **_unstructure(choice.params, manager)},
                          **dict(extractor.protocol)},
            "metrics": {c.name: _unstructure(c.params, manager) for c in config.metrics},
            "generated": {
                "checkpoint": str(Path(ckpt.path).resolve()),
                "step": ckpt.step,
                "images_seen": ckpt.meta.get("images_seen"),
                "weights": "generator_ema" if "generator_ema" in ckpt.weights else "generator",
                "samples": config.num_samples,
                "seed": config.seed,
                "labels": "uniform random classes" if k is not None else "none (unconditional)",
                "shape": list(spec.shape),
            },
            "real": {**real_protocol, "samples": n_real, "shape": list(reference.shape),
                     "extractor_check": reference.info},
            "reference_cache": {"key": reference.key, "path": str(reference.path), "hit": reference.hit},
            "device": str(device),
            "versions": versions(),
        },
        "seconds": timer.seconds,
    }


def evaluate_procedure(run: Any, manager: Any) -> dict[str, Any]:
    """A run whose generator translates images (pix2pix, CycleGAN, StarGAN): its procedure's own
    evaluation on the held-out split of its dataset (the ``test_*`` errors it logs while training)."""
    t0 = time.perf_counter()
    data = run.config.data
    dataset = manager.get("dataset", data.name).factory(data.params)
    run.procedure.prepare(dataset)
    metrics = dict(run.procedure.evaluate(run.view(manager=manager)))
    if not metrics:
        raise GanforgeError(f"eval: procedure {run.procedure_name!r} measures nothing on dataset {data.name!r} "
                            "(it has no held-out split: set data.test_split)")
    ckpt = run.checkpoint
    return {"metrics": metrics,
            "protocol": {"procedure": run.procedure_name, "dataset": {"name": data.name,
                                                                     **_unstructure(data.params, manager)},
                         "checkpoint": str(Path(ckpt.path).resolve()), "step": ckpt.step,
                         "device": str(run.device), "versions": versions()},
            "seconds": {"total": time.perf_counter() - t0}}


class Eval:
    """Compute FID, KID, IS and precision/recall of a checkpoint, printed as JSON with their protocol."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", help="run directory or checkpoint directory")
        parser.add_argument("--metrics", help="comma-separated metric names (default: fid,kid,is,pr)")
        parser.add_argument("--real", metavar="DATASET[:ROOT]",
                            help="real data, a registered dataset (default: the checkpoint's training data)")
        parser.add_argument("--split", help="split of the real dataset (default: train)")
        parser.add_argument("-n", "--num-samples", dest="num_samples", type=int, help="generated samples (10000)")
        parser.add_argument("--real-samples", dest="real_samples", type=int, help="real samples (10000)")
        parser.add_argument("--extractor", help="feature extractor (default: the dataset's domain classifier)")
        parser.add_argument("--allow-weak-extractor", dest="allow_weak_extractor", action="store_true", default=None,
                            help="compute the metrics even when the extractor labels the real data at under 50%%")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--device")
        parser.add_argument("--cache-dir", dest="cache_dir")
        parser.add_argument("--out", help="also write the JSON result to this file")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        config = self.config
        changes: dict[str, Any] = {k: getattr(args, k) for k in ("num_samples", "real_samples", "seed", "device",
                                                                  "cache_dir", "allow_weak_extractor")
                                   if getattr(args, k, None) is not None}
        if getattr(args, "split", None):
            changes["real_split"] = args.split
        if getattr(args, "metrics", None):
            changes["metrics"] = metric_choices(args.metrics, manager, config.metrics)
        if getattr(args, "extractor", None):
            comp = manager.get("feature-extractor", args.extractor)
            keep = config.extractor if config.extractor and config.extractor.name == args.extractor else None
            changes["extractor"] = keep or ExtractorChoice(name=args.extractor, params=comp.config())
        try:
            config = attrs.evolve(config, **changes)
        except ValueError as exc:
            raise ConfigError(f"eval: {exc}") from None
        out = Path(args.out) if getattr(args, "out", None) else None
        if out is not None and out.is_dir():  # refused before the work, not after it
            raise ConfigError(f"--out {args.out!r} is a directory; expected a file for the JSON result")
        run = load_run(args.checkpoint, device=resolve_device(config.device, "--device"), manager=manager)
        if run.samples_from_a_prior:
            result = evaluate_checkpoint(args.checkpoint, config, manager, real=getattr(args, "real", None))
        else:
            given = [flag for flag, key in (("--metrics", "metrics"), ("--real", "real"), ("--extractor", "extractor"),
                                            ("--split", "split"), ("-n", "num_samples"),
                                            ("--real-samples", "real_samples"))
                     if getattr(args, key, None) is not None]
            if given:
                raise ConfigError(f"{', '.join(given)}: run {args.checkpoint!r} translates images (procedure "
                                  f"{run.procedure_name!r}); eval reports its procedure's own errors on the held-out "
                                  "split of its data (test_l1, ...), which these options do not apply to")
            result = evaluate_procedure(run, manager)
        text = json.dumps(result, indent=2, sort_keys=False) + "\n"
        if out is not None:
            write_output(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        sys.stdout.write(text)
        return 0


# -- the training callback -----------------------------------------------------------------------


def _callback_metrics() -> tuple[MetricChoice, ...]:
    from ganforge_plugins.metrics.fid import FIDConfig
    from ganforge_plugins.metrics.kid import KIDConfig

    return (MetricChoice(name="fid", params=FIDConfig()), MetricChoice(name="kid", params=KIDConfig(subset_size=500)))


@attrs.frozen(kw_only=True)
class EvalCallbackConfig:
    every: int = attrs.field(default=500, validator=v.ge(1))  # generator steps between evaluations
    metrics: tuple[MetricChoice, ...] = attrs.field(factory=_callback_metrics)
    extractor: ExtractorChoice | None = None  # None: the domain classifier matching the data, else inception
    num_samples: int = attrs.field(default=2000, validator=v.ge(1))
    real_samples: int = attrs.field(default=5000, validator=v.ge(1))
    seed: int = attrs.field(default=0, validator=v.ge(0))  # the same latents at every evaluation
    batch_size: int = attrs.field(default=500, validator=v.ge(1))
    cache_dir: str = ""


class EvalCallback:
    """Evaluate the sampling generator every ``every`` steps (FID, KID by default) against the training data."""

    def __init__(self, config: EvalCallbackConfig, manager: Any = None) -> None:
        from ganforge import get_plugin_manager

        self.config = config
        self.every = config.every
        self._manager = manager or get_plugin_manager()
        self.metrics = build_metrics(config.metrics, self._manager)
        check_counts(self.metrics, generated=config.num_samples, real=config.real_samples)  # before training
        self._ready = False

    def check(self, run: Any) -> None:
        """Refuse, when the run is built and before anything is written, a run this callback cannot
        judge: training data that is not one set of images, or an extractor that cannot read them."""
        images, spec = getattr(run.dataset, "images", None), getattr(run.dataset, "spec", None)
        if not isinstance(images, Tensor) or images.dim() != 4 or spec is None or not spec.is_image:
            hint = ("; a translation procedure logs its own held-out errors with each preview (`ganforge eval "
                    "RUN` reports them)" if run.config.procedure.name != "gan" else "")
            raise ConfigError(f"it compares the generator's samples with the training images, and dataset "
                              f"{run.config.data.name!r} (procedure {run.config.procedure.name!r}) is not one set "
                              f"of images{hint}")
        self.choice, self.extractor = build_extractor(self.config.extractor, self._manager,
                                                      dataset_name=run.config.data.name, spec=spec, device=run.device)
        check_extractor(self.metrics, self.choice.name, self.extractor, spec.shape)

    def _setup(self, run: Any) -> None:
        manager = self._manager
        c = self.config
        if not hasattr(self, "extractor"):  # check() ran when the trainer was built, unless called directly
            self.check(run)
        images = run.dataset.images
        chosen = images[subset(len(images), c.real_samples, c.seed)]
        real_protocol = {"dataset": "the run's training data", "content_sha256": tensor_sha256(chosen),
                         "samples": len(chosen), "seed": c.seed,
                         "selection": "random subset without replacement: torch.randperm(N, seed)[:samples], sorted"}
        cache = ReferenceCache(c.cache_dir)
        self.reference = cache.get_or_compute(
            {"extractor": dict(self.extractor.protocol), "real": real_protocol},
            lambda: (extract_batched(self.extractor, lambda: chosen.split(c.batch_size), probabilities=False)[0],
                     tuple(chosen.shape[1:])),
        )
        check_counts(self.metrics, generated=c.num_samples, real=len(self.reference.features))
        self.needs_probs = any(m.needs == "probabilities" for _, m in self.metrics)
        protocol = {
            "extractor": {"config": {"name": self.choice.name, **_unstructure(self.choice.params, manager)},
                          **dict(self.extractor.protocol)},
            "metrics": {ch.name: _unstructure(ch.params, manager) for ch in c.metrics},
            "generated": {"samples": c.num_samples, "seed": c.seed, "every": c.every,
                          "generator": "the run's sampling generator (its moving average when kept)"},
            "real": real_protocol,
            "reference_cache": {"key": self.reference.key, "path": str(self.reference.path)},
            "versions": versions(),
        }
        atomic_write_text(Path(run.out) / "eval-protocol.json", json.dumps(protocol, indent=2) + "\n")
        self._ready = True

    def __call__(self, run: Any) -> dict[str, float]:
        if not self._ready:
            self._setup(run)
        c = self.config
        rng = torch.Generator(run.device).manual_seed(c.seed)
        fake, probs = extract_batched(
            self.extractor, generated_batches(lambda b: run.sample(b, generator=rng), c.num_samples, c.batch_size),
            probabilities=self.needs_probs,
        )
        return compute_metrics(self.metrics, self.reference.features, fake, probs)


@hookimpl
def ganforge_register_commands(register):
    register("eval", Eval, EvalConfig)


@hookimpl
def ganforge_register_callbacks(register):
    register("eval", EvalCallback, EvalCallbackConfig)
