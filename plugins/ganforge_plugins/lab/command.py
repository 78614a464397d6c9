"""``ganforge lab``: which objective covers every mode? Loss x regularizer combinations on 2-D mixtures.

The mode-collapse experiments of VEEGAN (Srivastava et al. 2017, arXiv:1705.07761, section 5.1)
and PacGAN (Lin et al. 2018, arXiv:1712.04086, section 5.1): train small MLP GANs on ``ring8``
(8 Gaussians on a circle, sigma 0.02) and ``grid25`` (5x5 Gaussians, sigma 0.05), draw 2,500
samples and count the modes covered and the fraction of high-quality samples
(:mod:`ganforge_plugins.lab.metrics`). Their anchors: a plain GAN covers about 1/8 ring and 3.3/25
grid modes; the best methods there reach 8/8 and 23.8 to 24.6/25 with 40 % to 91 % high-quality
samples.

Each run is an ordinary training run: its config is composed from raw tables (the lab's base run
config, then the combination's loss, regularizers, optimisers and overrides, then the dataset and
seed) and structured with :func:`ganforge.structure_as` into a :class:`ganforge.RunConfig`, and
:class:`ganforge.Trainer` trains it, exactly as ``ganforge train`` would. Every run is checked
before the first one starts. Runs go to worker processes (``jobs`` of them, ``threads`` torch
threads each). The lab writes ``lab.json`` (every run, with date, versions, machine and wall time),
``lab-table.md`` (medians over seeds) and ``lab.png`` (one scatter per combination and dataset,
the first seed's samples over the true centres) into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import attrs
import torch
from attrs import validators as v
from ganforge import (
    ConfigError,
    GanforgeError,
    OutputError,
    PluginManager,
    Progress,
    RunConfig,
    Trainer,
    __version__,
    atomic_write_text,
    get_plugin_manager,
    hookimpl,
    structure_as,
)

from ganforge_plugins.lab.metrics import mode_stats
from ganforge_plugins.lab.plot import draw_panels

# -- settings -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Combination:
    """One row of the lab: a loss with its regularizers and the training settings they need.

    ``loss``/``loss_params`` and ``regularizers`` become the run config's ``[loss]`` and
    ``[[regularizers]]``; ``optim`` (``{g = {...}, d = {...}}``) and ``overrides`` (any other
    run-config tables, e.g. ``{discriminator = {pack = 2}}``) are deep-merged onto the lab's base,
    then ``per_dataset[dataset]`` (run-config tables for one dataset only, e.g. more steps on the grid).
    """

    name: str = attrs.field(validator=v.min_len(1))
    loss: str = "non-saturating"
    loss_params: dict[str, Any] = attrs.field(factory=dict)
    regularizers: tuple[dict[str, Any], ...] = ()
    n_critic: int = attrs.field(default=1, validator=v.ge(1))
    optim: dict[str, Any] = attrs.field(factory=dict)
    overrides: dict[str, Any] = attrs.field(factory=dict)
    per_dataset: dict[str, dict[str, Any]] = attrs.field(factory=dict)


def _adam(lr: float, beta1: float, beta2: float) -> dict[str, Any]:
    return {"name": "adam", "lr": lr, "betas": [beta1, beta2]}


# The base run config of every lab run (a combination and ``base`` are merged onto it). Small
# MLPs, as in the papers' 2-D experiments but narrower, so that 36 runs fit in minutes on 2 cores.
LAB_BASE: dict[str, Any] = {
    "procedure": {"name": "gan"},
    "generator": {"name": "mlp", "latent_dim": 16, "width": 64, "depth": 3, "init": "he"},
    "discriminator": {"name": "mlp", "width": 64, "depth": 3, "init": "pytorch"},
    "loss": {"name": "non-saturating"},
    "sampler": {"name": "gaussian"},
    # samples come from a moving average of G's weights (Yazici et al. 2019, arXiv:1806.04498): it
    # damps the oscillation around each mode; a half-life of ~200 steps (ramped up over the first 5 %
    # of training, as in StyleGAN) lifted the best combination's high-quality share by 2 to 5 points
    # (ring8 seed 2: 80.5 to 85.1 %; grid25 seed 0: 80.0 to 81.7 %)
    "train": {"steps": 3000, "batch_size": 256, "device": "cpu", "ema_half_life": 50_000.0},
    # two time-scale updates (Heusel et al. 2017, arXiv:1706.08500): D learns the sharp modes faster
    "optim": {"g": _adam(1e-3, 0.5, 0.9), "d": _adam(3e-3, 0.5, 0.9)},
    # one log line per 500 steps; preview and checkpoint only once, at the end
    "output": {"progress": False, "log_every": 500, "sample_every": 10**9, "checkpoint_every": 10**9,
               "keep_last": 1, "preview_samples": 256},
}

# The mixtures' units: the MLPs work on x / scale, so that the same networks, initialisation and
# learning rates fit a ring of radius 2 and a grid reaching 4 (see ganforge_plugins.models.mlp).
LAB_UNITS: dict[str, dict[str, Any]] = {
    "ring8": {"generator": {"scale": 2.0}, "discriminator": {"scale": 2.0}},
    "grid25": {"generator": {"scale": 4.0}, "discriminator": {"scale": 4.0}},
}

DEFAULT_COMBINATIONS: tuple[Combination, ...] = (
    Combination(name="gan", loss="minimax"),
    Combination(name="ns-gan", loss="non-saturating"),
    # PacGAN2 (Lin et al. 2018: the discriminator scores pairs of samples) with a light R1 (Mescheder
    # et al. 2018: a zero-centred gradient penalty on real data), a deeper, wider generator from a
    # small latent and a wider discriminator: disconnected modes need a generator whose map can
    # fold the latent space sharply; from a 16-D latent the samples stay strung on bridges between
    # neighbouring modes. R1 is lazy (every 4th D update, StyleGAN2's scheme): a quarter of its
    # cost, spent on longer runs instead, 1.5x the base steps on the ring and 3x on the grid's 25
    # folds. (grid25 seed 1: R1 alone 3/25 modes; R1 + PacGAN2 with the base networks 20/25 at 59 %
    # high quality; with these networks and R1 at every step 25/25 at 84.5 % after 6,000 steps. With
    # the moving average and lazy R1, grid25 seed 0: 84.1 % after 6,000 steps, 88.2 % after 9,000;
    # ring8 seeds 2 to 5: 72 to 88 % after 3,000 steps, 91 % each after 4,500.)
    Combination(
        name="ns-gan-pac2-r1", loss="non-saturating", regularizers=({"name": "r1", "gamma": 0.03, "every": 4},),
        overrides={"generator": {"latent_dim": 4, "width": 256, "depth": 4},
                   "discriminator": {"width": 256, "pack": 2}, "train": {"steps": 4500}},
        per_dataset={"grid25": {"train": {"steps": 9000}}},
    ),
)


@attrs.frozen(kw_only=True)
class LabConfig:
    """Settings of ``ganforge lab`` (``-c FILE`` / ``--set KEY=VALUE``)."""

    datasets: tuple[str, ...] = attrs.field(default=("ring8", "grid25"), validator=v.min_len(1))
    seeds: tuple[int, ...] = attrs.field(default=(0, 1, 2), validator=[v.min_len(1), v.deep_iterable(v.ge(0))])
    samples: int = attrs.field(default=2500, validator=v.ge(1))  # generated samples scored per run
    radius: float = attrs.field(default=3.0, validator=v.gt(0.0))  # high quality: within radius * sigma
    min_fraction: float = attrs.field(default=0.01, validator=[v.gt(0.0), v.le(1.0)])  # of samples, per mode
    jobs: int = attrs.field(default=2, validator=v.ge(1))  # worker processes; 1 trains in this process
    threads: int = attrs.field(default=1, validator=v.ge(1))  # torch threads per job
    base: dict[str, Any] = attrs.field(factory=dict)  # run-config tables merged onto LAB_BASE
    # run-config tables for one dataset, merged before ``base``: the networks' units (see LAB_UNITS)
    per_dataset: dict[str, dict[str, Any]] = attrs.field(factory=lambda: copy.deepcopy(LAB_UNITS))
    combinations: tuple[Combination, ...] = attrs.field(default=DEFAULT_COMBINATIONS, validator=v.min_len(1))

    def __attrs_post_init__(self) -> None:
        # a name twice would train one run twice and count it twice in a median, or make two columns of one
        for field, names in (("combinations", [c.name for c in self.combinations]), ("datasets", list(self.datasets)),
                             ("seeds", list(self.seeds))):
            twice = sorted({n for n in names if names.count(n) > 1}, key=str)
            if twice:
                raise ValueError(f"'{field}' must be distinct, got {', '.join(map(str, twice))} more than once "
                                 f"(in {names})")


# -- composing run configs ----------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged onto a copy of ``base``, tables recursively; a table that names another
    component (a different ``name``) replaces the old one, whose parameters belonged to it."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = out.get(key)
        same = isinstance(value, Mapping) and isinstance(current, dict)
        if same and value.get("name", current.get("name")) == current.get("name"):
            out[key] = deep_merge(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def compose(lab: LabConfig, combination: Combination, dataset: str, seed: int) -> dict[str, Any]:
    """The raw run config of one run: LAB_BASE < ``lab.per_dataset[dataset]`` < ``lab.base`` < the
    combination < dataset and seed."""
    raw = deep_merge(LAB_BASE, lab.per_dataset.get(dataset, {}))
    raw = deep_merge(raw, lab.base)
    raw = deep_merge(raw, combination.overrides)
    raw = deep_merge(raw, combination.per_dataset.get(dataset, {}))
    raw = deep_merge(raw, {"optim": combination.optim})
    raw["loss"] = {"name": combination.loss, **combination.loss_params}
    raw["regularizers"] = [dict(r) for r in combination.regularizers]
    raw = deep_merge(raw, {"train": {"n_critic": combination.n_critic, "seed": seed}})
    data = raw.get("data", {})  # dataset parameters in ``base.data`` apply to every dataset they name, or all
    raw["data"] = {**(data if data.get("name", dataset) == dataset else {}), "name": dataset}
    return raw


@attrs.frozen(kw_only=True)
class Job:
    """One run to train: where, with which raw config, and how to score it."""

    combination: str
    dataset: str
    seed: int
    raw: dict[str, Any]
    out: str
    samples: int
    radius: float
    min_fraction: float
    threads: int
    cost: float  # relative, to start the longest runs first (see estimated_cost)


def plan(lab: LabConfig, out: Path, manager: PluginManager) -> list[Job]:
    """Every run of the lab, each config structured (so checked) before anything trains."""
    jobs: list[Job] = []
    # (dataset, what is wrong) -> the combinations it is wrong for: a bad dataset (or a setting every
    # combination shares) is said once, not once per combination
    problems: dict[tuple[str, str], list[str]] = {}
    for combination in lab.combinations:
        for dataset in lab.datasets:
            raw = compose(lab, combination, dataset, lab.seeds[0])
            try:
                config = structure_as(RunConfig, raw, manager, source="run config")
            except ConfigError as exc:
                detail = str(exc).partition("\n")[2] or str(exc)
                problems.setdefault((dataset, detail), []).append(combination.name)
                continue
            cost = estimated_cost(config, manager)
            for seed in lab.seeds:
                jobs.append(Job(
                    combination=combination.name, dataset=dataset, seed=seed,
                    raw=compose(lab, combination, dataset, seed),
                    out=str(out / "runs" / combination.name / dataset / f"seed-{seed}"),
                    samples=lab.samples, radius=lab.radius, min_fraction=lab.min_fraction, threads=lab.threads,
                    cost=cost,
                ))
    if problems:
        def which(names: list[str]) -> str:
            if len(lab.combinations) > 1 and len(names) == len(lab.combinations):
                return "every combination"
            return "combination " + ", ".join(map(repr, names))

        raise ConfigError("\n".join(f"invalid run config of {which(names)} on {dataset!r}:\n{detail}"
                                     for (dataset, detail), names in problems.items()))
    return jobs


def estimated_cost(config: RunConfig, manager: PluginManager) -> float:
    """A run's relative cost: network updates x batch x parameters (an MLP's arithmetic per sample
    grows with its parameters). Only the order matters: the lab starts the longest runs first."""
    spec = manager.get("dataset", config.data.name).factory(config.data.params).spec
    networks = (manager.get("generator", config.generator.name).factory(config.generator.params, data=spec),
                manager.get("discriminator", config.discriminator.name).factory(config.discriminator.params,
                                                                               data=spec))
    parameters = sum(p.numel() for net in networks for p in net.parameters())
    train = config.train
    return float(train.steps * (train.n_critic + 1) * train.batch_size * parameters)


def check_datasets(lab: LabConfig, jobs: Sequence[Job], manager: PluginManager) -> None:
    """Every dataset must expose its mode ``centres`` and ``sigma`` (a known mixture)."""
    seen: set[str] = set()
    for job in jobs:
        if job.dataset in seen:
            continue
        seen.add(job.dataset)
        config = structure_as(RunConfig, job.raw, manager)
        dataset = manager.get("dataset", job.dataset).factory(config.data.params)
        centres, sigma = getattr(dataset, "centres", None), getattr(dataset, "sigma", None)
        if not isinstance(centres, torch.Tensor) or not isinstance(sigma, float) or dataset.spec.shape != (2,):
            raise ConfigError(
                f"datasets: {job.dataset!r} is not a 2-D mixture with known modes; the lab needs a dataset of "
                "2-D vectors exposing 'centres' [K, 2] and 'sigma' (e.g. ring8, grid25)"
            )


# -- one run ------------------------------------------------------------------------------------


def train_one(job: Job, manager: PluginManager | None = None) -> dict[str, Any]:
    """Train one run, score ``job.samples`` samples of its sampling generator; a run that fails
    (diverges) is recorded with its error instead of stopping the lab."""
    manager = manager or get_plugin_manager()
    t0, cpu0 = time.perf_counter(), time.process_time()
    record: dict[str, Any] = {"combination": job.combination, "dataset": job.dataset, "seed": job.seed,
                              "run_dir": job.out}
    try:
        config = structure_as(RunConfig, job.raw, manager)
        trainer = Trainer(config, job.out, manager=manager)
        trainer.fit()
        train_time = time.perf_counter() - t0
        rng = torch.Generator(trainer.device).manual_seed(10_000 + job.seed)
        samples = trainer.sample(job.samples, generator=rng).float().cpu()
        dataset: Any = trainer.dataset
        stats = mode_stats(samples, dataset.centres, dataset.sigma, radius=job.radius, min_fraction=job.min_fraction)
        record.update(stats.as_dict())
        record.update(steps=trainer.step, images_seen=trainer.images_seen, train_time_s=train_time,
                      samples=samples.tolist(), centres=dataset.centres.tolist(), sigma=dataset.sigma, error=None)
    except GanforgeError as exc:
        record.update(modes_covered=0, num_modes=None, high_quality=0.0, counts=[], samples=[], error=str(exc))
    record["wall_time_s"] = time.perf_counter() - t0
    record["cpu_time_s"] = time.process_time() - cpu0  # this process's CPU time: the run's cost on a busy machine
    return record


_WORKER_MANAGER: PluginManager | None = None  # a worker process's own plugin manager


def _worker_init(plugins: list[str], threads: int) -> None:
    global _WORKER_MANAGER
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the parent has reported broken plugins already
        manager = PluginManager()
        manager.load(plugins)
    _WORKER_MANAGER = manager


def _train_in_worker(job: Job) -> dict[str, Any]:
    return train_one(job, _WORKER_MANAGER)


def longest_first(jobs: Sequence[Job]) -> list[int]:
    """Indices of ``jobs`` by decreasing ``cost``; ties keep the job order (the sort is stable)."""
    return sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)


def run_all(jobs: Sequence[Job], lab: LabConfig, manager: PluginManager, *,
            log: Any = sys.stderr) -> list[dict[str, Any]]:
    """Train every job, ``lab.jobs`` at a time; records come back in job order.

    Workers take the jobs longest first (by ``Job.cost``), so that the lab does not end waiting on
    one long run started last: the classic longest-processing-time rule for parallel machines."""
    progress = Progress(len(jobs), label="lab", unit="runs", stream=log, every_s=30.0)
    progress.update(0)  # at once: the first run takes a while to report

    def report(record: dict[str, Any], finished: int) -> None:
        if record["error"]:
            what = f"failed: {record['error'].splitlines()[0]}"
        else:
            what = (f"{record['modes_covered']}/{record['num_modes']} modes, "
                    f"{100 * record['high_quality']:.1f}% high quality")
        progress.message(f"  {record['combination']:<16} {record['dataset']:<8} seed {record['seed']}: {what} "
                         f"({record['wall_time_s']:.1f} s)")
        progress.update(finished)

    if lab.jobs == 1 or len(jobs) == 1:
        results: list[dict[str, Any]] = []
        threads = torch.get_num_threads()
        torch.set_num_threads(lab.threads)
        try:
            for job in jobs:
                results.append(train_one(job, manager))
                report(results[-1], len(results))
        finally:
            torch.set_num_threads(threads)
            progress.close()
        return results
    plugins = [info.name for info in manager.plugins]
    context = multiprocessing.get_context("spawn")  # no fork: the parent's torch threads stay out
    with ProcessPoolExecutor(max_workers=min(lab.jobs, len(jobs)), mp_context=context, initializer=_worker_init,
                             initargs=(plugins, lab.threads)) as pool:
        futures = {pool.submit(_train_in_worker, jobs[i]): i for i in longest_first(jobs)}
        done: dict[int, dict[str, Any]] = {}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    done[futures[future]] = future.result()
                    report(done[futures[future]], len(done))
                progress.tick()  # a line every 30 s without a terminal, the clock on one
        finally:
            progress.close()
    return [done[i] for i in range(len(jobs))]


# -- reporting ----------------------------------------------------------------------------------


def summarise(records: Sequence[Mapping[str, Any]], lab: LabConfig) -> list[dict[str, Any]]:
    """Medians over seeds, one row per combination and dataset."""
    rows = []
    for combination in lab.combinations:
        for dataset in lab.datasets:
            runs = [r for r in records if r["combination"] == combination.name and r["dataset"] == dataset]
            if not runs:
                continue
            num_modes = next((r["num_modes"] for r in runs if r["num_modes"]), None)
            rows.append({
                "combination": combination.name, "dataset": dataset, "num_modes": num_modes, "runs": len(runs),
                "failed": sum(1 for r in runs if r["error"]),
                "modes_covered": statistics.median(r["modes_covered"] for r in runs),
                "high_quality": statistics.median(r["high_quality"] for r in runs),
                "wall_time_s": statistics.median(r["wall_time_s"] for r in runs),
                "cpu_time_s": statistics.median(r.get("cpu_time_s", math.nan) for r in runs),
            })
    return rows


def _flatten(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    items: list[str] = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={value}")
    return items


def _describe_regularizer(table: Mapping[str, Any]) -> str:
    """``r1 (gamma=0.03, every=4)``: the name, then the settings the combination gives it."""
    settings = _flatten({key: value for key, value in table.items() if key != "name"})
    return str(table.get("name", "?")) + (f" ({', '.join(settings)})" if settings else "")


def describe(combination: Combination) -> str:
    """``loss + regularizers, n_critic N, other settings``: what a combination changes."""
    regs = " + ".join(_describe_regularizer(r) for r in combination.regularizers)
    parts = [combination.loss + (f" + {regs}" if regs else "")]
    if combination.n_critic != 1:
        parts.append(f"n_critic {combination.n_critic}")
    parts += _flatten({"optim": combination.optim}) if combination.optim else []
    parts += _flatten(combination.overrides)
    parts += [f"{dataset}: {', '.join(_flatten(tables))}" for dataset, tables in combination.per_dataset.items()]
    return ", ".join(parts)


def markdown_table(rows: Sequence[Mapping[str, Any]], lab: LabConfig, meta: Mapping[str, Any]) -> str:
    """The Markdown report: one line per combination, medians over seeds per dataset."""
    head = ["combination", "objective"]
    rule = ["---", "---"]
    for dataset in lab.datasets:
        head += [f"{dataset} modes", f"{dataset} HQ %", f"{dataset} time s", f"{dataset} CPU s"]
        rule += ["---:", "---:", "---:", "---:"]
    lines = [
        "# ganforge lab: mode coverage on 2-D mixtures",
        "",
        f"Medians over seeds {list(lab.seeds)}; {lab.samples} samples per run; a sample is high quality (HQ) within "
        f"{lab.radius:g} sigma of a mode centre; a mode is covered by at least {100 * lab.min_fraction:g} % of the "
        "samples. Time is each run's wall time (training and scoring) in its worker, CPU the CPU time its process "
        "used (what the run costs on an idle core; wall time grows when the machine is shared).",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(rule) + " |",
    ]
    by_key = {(r["combination"], r["dataset"]): r for r in rows}
    for combination in lab.combinations:
        cells = [f"`{combination.name}`", describe(combination)]
        for dataset in lab.datasets:
            row = by_key.get((combination.name, dataset))
            if row is None:
                cells += ["", "", "", ""]
                continue
            failed = f" ({row['failed']} failed)" if row["failed"] else ""
            cells += [f"{row['modes_covered']:g}/{row['num_modes'] or '?'}{failed}",
                      f"{100 * row['high_quality']:.1f}", f"{row['wall_time_s']:.1f}", f"{row['cpu_time_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Published anchors (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018): a plain GAN covers about 1/8 "
        "ring and 3.3/25 grid modes; the best methods there reach 8/8 and 23.8 to 24.6/25 with 40 % to 91 % "
        "high-quality samples.",
        "",
        f"Run on {meta['date']} with torch {meta['torch']}, ganforge {meta['ganforge']}, {meta['machine']}; "
        f"{meta['jobs']} jobs x {meta['threads']} thread(s); total wall time {meta['wall_time_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def machine() -> str:
    """The processor and the cores this process may use, e.g. ``AMD EPYC 9454 (x86_64), 2 of 2 cores``."""
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    name = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name or 'unknown CPU'} ({platform.machine()}), {usable} of {cpus} cores usable"


# -- the command --------------------------------------------------------------------------------


class LabCommand:
    """Train loss x regularizer combinations on 2-D mixtures; report mode coverage (VEEGAN / PacGAN)."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", default=None, help="directory for the report and runs (default: runs/lab-<time>)")
        parser.add_argument("--datasets", default=None, metavar="A,B", help="comma-separated datasets (overrides "
                            "the 'datasets' setting)")
        parser.add_argument("--combinations", default=None, metavar="A,B",
                            help="train only these combinations, by name")

    def _selected(self, args: argparse.Namespace) -> LabConfig:
        try:
            return self._select(args)
        except ValueError as exc:  # a validator of LabConfig, named by the option that fed it
            raise ConfigError(f"lab: {exc}") from None

    def _select(self, args: argparse.Namespace) -> LabConfig:
        lab = self.config
        if getattr(args, "datasets", None):
            lab = attrs.evolve(lab, datasets=tuple(d.strip() for d in args.datasets.split(",") if d.strip()))
        if getattr(args, "combinations", None):
            wanted = [c.strip() for c in args.combinations.split(",") if c.strip()]
            known = {c.name: c for c in lab.combinations}
            unknown = [w for w in wanted if w not in known]
            if unknown or not wanted:
                raise ConfigError(f"--combinations: unknown {', '.join(unknown) or '(none given)'}; choose from: "
                                  f"{', '.join(known)}")
            lab = attrs.evolve(lab, combinations=tuple(known[w] for w in wanted))
        return lab

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        lab = self._selected(args)
        out = Path(args.out) if getattr(args, "out", None) else Path("runs") / f"lab-{time.strftime('%Y%m%d-%H%M%S')}"
        jobs = plan(lab, out, manager)
        check_datasets(lab, jobs, manager)
        taken = [j.out for j in jobs if (Path(j.out) / "config.toml").exists()]
        if taken:
            raise OutputError(f"--out {str(out)!r} already holds lab runs (e.g. {taken[0]}); choose another directory")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write to --out {str(out)!r}: {exc.strerror or exc}") from None
        print(f"lab: {len(lab.combinations)} combinations x {len(lab.datasets)} datasets x {len(lab.seeds)} seeds = "
              f"{len(jobs)} runs, {min(lab.jobs, len(jobs))} at a time -> {out}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        records = run_all(jobs, lab, manager)
        wall = time.perf_counter() - t0
        rows = summarise(records, lab)
        meta = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
            "ganforge": __version__, "python": platform.python_version(), "machine": machine(),
            "jobs": min(lab.jobs, len(jobs)), "threads": lab.threads, "wall_time_s": wall,
        }
        draw_panels(records, lab.combinations, lab.datasets, lab.seeds[0], out / "lab.png",
                    radius=lab.radius)
        atomic_write_text(out / "lab-table.md", markdown_table(rows, lab, meta))
        runs = [{k: v for k, v in r.items() if k not in ("samples", "centres")} for r in records]
        report = {**meta, "settings": _settings(lab), "medians": rows, "runs": runs}
        atomic_write_text(out / "lab.json", json.dumps(report, indent=1, default=_jsonable) + "\n")
        print(markdown_table(rows, lab, meta), file=sys.stdout)
        print(f"lab: done in {wall:.0f} s; wrote {out / 'lab-table.md'}, {out / 'lab.png'}, {out / 'lab.json'}",
              file=sys.stderr)
        return 1 if all(r["error"] for r in records) else 0


def _settings(lab: LabConfig) -> dict[str, Any]:
    settings: dict[str, Any] = attrs.asdict(lab, recurse=True)
    settings["lab_base"] = LAB_BASE
    return settings


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple | set):
        return list(value)
    return str(value)


@hookimpl
def ganforge_register_commands(register):
    register("lab", LabCommand, LabConfig)
