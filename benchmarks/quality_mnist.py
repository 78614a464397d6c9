"""Sample quality of the architecture recipes on real MNIST (issue 4's GPU acceptance).

For each of the conditional DCGAN (``configs/cdcgan-mnist.toml``), PGGAN grown 4 -> 32 with
fade-ins (``configs/pggan-mnist.toml``) and StyleGAN (``configs/stylegan-mnist.toml``): train for
at most ``--minutes`` (5) of wall-clock time, then draw ``--samples`` images from the averaged
generator and label them with a classifier this script trains on real MNIST (padded to 32x32).

Reported per model (targets from the issue):
- ``confident``: fraction of samples the classifier labels with probability >= 0.9 (>= 0.85);
- ``class_fractions``: per class, the fraction of all samples confidently labelled as that class
  (every class >= 0.05);
- ``conditional_accuracy`` (conditional DCGAN): fraction of samples classified as the class they
  were generated for (>= 0.90).

Method: the classifier (a small CNN, 3 epochs with random shifts) is trained first and its test
accuracy and the ``confident`` fraction of real test digits are recorded as the ceiling (the run
only passes with a valid judge: >= 98% test accuracy, >= 90% of real digits confident). Each model's
training throughput is measured on a short calibration run of its full-resolution network; the step
count is set to fill the budget, and a timer stops training at the budget in any case (SIGTERM, on
which the engine checkpoints and stops at the next step). PGGAN's fade-in and stabilisation lengths
are set from that throughput so that it reaches 32x32 at 60% of the budget. Seeds are fixed; the
JSON holds device, torch and CUDA versions and the date; a 10x10 sample grid per model is saved
beside it (for the conditional model, one column per class).

    python benchmarks/quality_mnist.py                      # on the GPU: ~16 minutes, writes benchmarks/results/
    python benchmarks/quality_mnist.py --scale cpu          # 2 CPU cores: configs/cpu/*, <= 20 minutes each
    python benchmarks/quality_mnist.py --quick --out /tmp/q # CPU smoke run: tiny networks, seconds per model

``--scale cpu`` trains the CPU recipes (``configs/cpu/<model>-mnist.toml``) for their own step counts,
stopped at 20 minutes in any case, judges 1,000 samples of each averaged generator, reports the FID
and KID against the MNIST test set in the ``mnist-classifier`` features (with the protocol's
fingerprint, and the same numbers for 1,000 real training digits: the floor), the judge's curve over
the run's checkpoints, wall and CPU seconds, and writes ``benchmarks/results/cpu/quality_mnist.json``,
``.md`` and the grids.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ganforge import Trainer, load_config, save_samples
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
MODELS = ("cdcgan", "pggan", "stylegan")
TARGETS = {"confident": 0.85, "min_class_fraction": 0.05, "conditional_accuracy": 0.90}
THRESHOLD = 0.9
# CPU smoke settings: tiny widths, 16 images per batch; the schedule and losses are the recipes'.
QUICK = {
    "cdcgan": ["generator.base_channels=8", "discriminator.base_channels=8"],
    "pggan": [f"{net}.{k}" for net in ("generator", "discriminator") for k in ("channel_base=128", "channel_max=16")]
    + ["generator.latent_dim=16"],
    "stylegan": [f"{net}.{k}" for net in ("generator", "discriminator") for k in ("channel_base=128", "channel_max=16")]
    + ["generator.latent_dim=16", "generator.w_dim=16"],
}


# -- the judge: an MNIST classifier ---------------------------------------------------------------


class Classifier(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool-fc128-fc10 with batch norm; ~99.3% on MNIST test."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.net = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),  # 16x16
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),  # 8x8
            *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(128, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def load_mnist(root: str, split: str, limit: int = 0) -> tuple[Tensor, Tensor]:
    from ganforge import get_plugin_manager

    component = get_plugin_manager().get("dataset", "mnist")
    data = component.factory(component.config(root=root, split=split, resolution=32, fit="pad", limit=limit))
    return data.images, data.labels


def random_shift(x: Tensor, pixels: int, generator: torch.Generator) -> Tensor:
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    dy, dx = (int(v) for v in torch.randint(0, 2 * pixels + 1, (2,), generator=generator))
    return padded[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


def judge_key(root: str, epochs: int, limit: int) -> str:
    """What the trained judge depends on: its code, its schedule and the MNIST files' bytes."""
    import hashlib
    import inspect

    h = hashlib.sha256()
    for fn in (Classifier, random_shift, train_classifier, load_mnist):
        h.update(inspect.getsource(fn).encode())
    h.update(f"{epochs}:{limit}:{torch.__version__}".encode())
    for f in sorted(Path(root).rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:20]


def cached_classifier(root: str, device: torch.device, *, epochs: int, limit: int,
                      cache: Path | None) -> tuple[Classifier, dict[str, Any]]:
    """The judge, trained once per (code, schedule, data) and reused from ``cache``: training it is
    11 minutes of a 2-core machine, and rerunning one model should not pay that again."""
    if cache is None:
        return train_classifier(root, device, epochs=epochs, limit=limit)
    key = judge_key(root, epochs, limit)
    path = cache / f"mnist-judge-{key}.pt"
    if path.is_file():
        saved = torch.load(path, map_location=device, weights_only=True)
        model = Classifier().to(device)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        return model, {**json.loads(saved["info"]), "cached": str(path)}
    model, info = train_classifier(root, device, epochs=epochs, limit=limit)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "info": json.dumps(info)}, tmp)
    tmp.replace(path)  # never a half-written judge under the final name
    return model, {**info, "key": key}


def train_classifier(root: str, device: torch.device, *, epochs: int, limit: int) -> tuple[Classifier, dict[str, Any]]:
    t0 = time.perf_counter()
    torch.manual_seed(0)
    x, y = load_mnist(root, "train", limit)
    xt, yt = load_mnist(root, "test", limit // 6 if limit else 0)
    x, y, xt, yt = x.to(device), y.to(device), xt.to(device), yt.to(device)
    model = Classifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batch = 256
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    rng = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=rng).to(device)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(random_shift(x[idx], 2, rng)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    probs = predict(model, xt)
    info = {
        "test_accuracy": float((probs.argmax(1) == yt).float().mean()),
        "real_test_confident": float((probs.max(1).values >= THRESHOLD).float().mean()),
        "epochs": epochs, "train_images": len(x), "test_images": len(xt), "seconds": time.perf_counter() - t0,
    }
    # a judge that is itself unsure of real digits cannot certify generated ones
    info["valid"] = info["test_accuracy"] >= 0.98 and info["real_test_confident"] >= 0.9
    return model, info


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch: int = 1000) -> Tensor:
    return torch.cat([F.softmax(model(x[i : i + batch]).float(), dim=1) for i in range(0, len(x), batch)])


def judge(probs: Tensor, asked: Tensor | None) -> dict[str, Any]:
    top, label = probs.max(dim=1)
    confident = top >= THRESHOLD
    class_fractions = [float((confident & (label == k)).float().mean()) for k in range(10)]
    out: dict[str, Any] = {
        "samples": len(probs),
        "confident": float(confident.float().mean()),
        "class_fractions": class_fractions,
        "argmax_class_fractions": [float((label == k).float().mean()) for k in range(10)],
        "min_class_fraction": min(class_fractions),
    }
    checks = {"confident": out["confident"] >= TARGETS["confident"],
              "min_class_fraction": out["min_class_fraction"] >= TARGETS["min_class_fraction"]}
    if asked is not None:
        out["conditional_accuracy"] = float((label == asked).float().mean())
        out["conditional_accuracy_per_class"] = [float((label[asked == k] == k).float().mean()) for k in range(10)]
        checks["conditional_accuracy"] = out["conditional_accuracy"] >= TARGETS["conditional_accuracy"]
    out["checks"] = checks
    out["passed"] = all(checks.values())
    return out


# -- training under a time budget -----------------------------------------------------------------


class Interrupted(SystemExit):
    """A run stopped by a signal from outside (Ctrl-C, ``kill``), not by its time budget: the script exits
    with ``128 + signal`` and writes no result, so that a partial run never replaces a committed one."""


@contextlib.contextmanager
def stop_after(seconds: float) -> Iterator[list[bool]]:
    """SIGTERM this process after ``seconds``: the trainer checkpoints and stops at the next step. Yields a
    list that holds ``True`` once the alarm has fired (how a budget stop is told from a user's signal)."""
    fired: list[bool] = []

    def alarm(*_: object) -> None:
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):  # the trainer's handler
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fit_within(trainer: Any, seconds: float | None, name: str) -> bool:
    """``trainer.fit()`` stopped after ``seconds`` (``None``: no budget); whether the budget stopped it.
    Raises :class:`Interrupted` when another signal did: the run is incomplete and is not a result."""
    with stop_after(seconds) if seconds else contextlib.nullcontext([]) as fired:
        trainer.fit()
    stopped_by = getattr(trainer, "stopped_by", None)
    if stopped_by is not None and not fired:
        print(f"[{name}] stopped by {signal.Signals(stopped_by).name} at step {trainer.step}, not by the time "
              f"budget: no results written (the last checkpoint is in {trainer.out}/checkpoints)",
              file=sys.stderr)
        raise Interrupted(128 + int(stopped_by))
    return bool(fired)


def run_settings(device: torch.device, root: str, steps: int, extra: list[str]) -> list[str]:
    return [f"data.root={root}", f"train.device={device.type}", f"train.steps={steps}", "output.progress=false",
            f"output.log_every={max(1, steps // 20)}", f"output.sample_every={steps}",
            f"output.checkpoint_every={steps}", *extra]


def calibrate(recipe: Path, settings: list[str], steps: int, out: Path) -> float:
    """Generator steps per second of the recipe's full-resolution network (growing off: the slowest phase)."""
    overrides = [*settings, f"train.steps={steps}", f"output.sample_every={steps}", f"output.checkpoint_every={steps}"]
    config = load_config(recipe, overrides)
    if getattr(config.generator.params, "progressive", False):
        config = load_config(recipe, [*overrides, "generator.progressive=false", "discriminator.progressive=false"])
    trainer = Trainer(config, out)
    sync(trainer.device)
    t0 = time.perf_counter()
    trainer.fit()
    sync(trainer.device)
    return steps / (time.perf_counter() - t0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_model(name: str, args: argparse.Namespace, device: torch.device,
                work: Path) -> tuple[Trainer, dict[str, Any]]:
    recipe = REPO / "configs" / f"{name}-mnist.toml"
    extra = [*QUICK[name], "train.batch_size=16", "data.limit=2048"] if args.quick else []
    base = run_settings(device, args.mnist, 1, extra)
    budget = args.minutes * 60.0
    rate = calibrate(recipe, base, args.calibration_steps, work / f"{name}-calibration")
    steps = max(2, int(rate * budget * 0.97))
    overrides = run_settings(device, args.mnist, steps, extra)
    config = load_config(recipe, overrides)
    batch = config.train.batch_size * config.train.n_critic
    growth: dict[str, Any] = {}
    if getattr(config.generator.params, "progressive", False):
        # 6 segments (stabilise 4x4, then fade + stabilise 8, 16 and 32) in 60% of the run
        segment = max(batch, int(0.6 * steps * batch / 6))
        growth = {"fade_images": segment, "stabilize_images": segment}
        overrides += [f"{net}.{k}={v}" for net in ("generator", "discriminator") for k, v in growth.items()]
        config = load_config(recipe, overrides)
    trainer = Trainer(config, work / name)
    print(f"[{name}] {rate:.1f} steps/s calibrated; training {steps} steps ({budget:.0f} s budget)", file=sys.stderr)
    sync(device)
    t0 = time.perf_counter()
    fit_within(trainer, 0.98 * budget, name)  # the last step and the final checkpoint finish inside the budget
    sync(device)
    seconds = time.perf_counter() - t0
    info = {
        "recipe": str(recipe.relative_to(REPO)), "overrides": [o for o in overrides if not o.startswith("data.root")],
        "train_seconds": seconds, "budget_seconds": budget, "steps": trainer.step, "planned_steps": steps,
        "images_seen": trainer.images_seen, "images_per_second": trainer.images_seen / seconds,
        "calibrated_steps_per_second": rate, **({"growth": growth} if growth else {}),
    }
    if hasattr(trainer.network("generator"), "current_phase"):
        level, alpha = trainer.network("generator").current_phase()
        info["final_phase"] = {"resolution": 4 << level, "alpha": alpha}
    return trainer, info


@torch.no_grad()
def generate(trainer: Trainer, n: int, seed: int) -> tuple[Tensor, Tensor | None]:
    g = trainer.sampling_generator.eval()
    space = trainer.updates.space("generator")
    return sample_from(g, lambda m, rng: trainer.sampler.sample(m, space, device=trainer.device, generator=rng),
                       n, seed, trainer.device)


@torch.no_grad()
def sample_from(g: nn.Module, latents: Any, n: int, seed: int, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """``n`` samples of ``g`` (classes in turn for a conditional one) with latents of seed ``seed``."""
    rng = torch.Generator(device).manual_seed(seed)
    conditional = getattr(g, "num_classes", None) is not None
    xs, asked = [], []
    for i in range(0, n, 500):
        m = min(500, n - i)
        z = latents(m, rng)
        labels = (torch.arange(i, i + m, device=device) % 10) if conditional else None
        xs.append(g(z, labels).float())
        if labels is not None:
            asked.append(labels)
    return torch.cat(xs), (torch.cat(asked) if conditional else None)


# -- the CPU scale: fixed recipes, a 20-minute guard, FID/KID, the curve ------------------------------------

CPU_MINUTES = 20.0
CPU_SAMPLES = 1000
# CPU smoke settings of --scale cpu --quick (the recipes' structure, tiny sizes, a few steps)
CPU_QUICK = ["train.steps=8", "train.batch_size=8", "data.limit=512", "output.checkpoint_every=4",
             "output.sample_every=4", "output.log_every=4"]


def cpu_model() -> str:
    """The processor's name, and whether it has AVX-512: CPU recipes are sized in wall time, and the
    machines sessions get differ by 2x or more in images per second."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "cpu"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or "cpu")
    return name + (" (AVX-512)" if " avx512f" in info else "")


def train_cpu(name: str, args: argparse.Namespace, work: Path) -> tuple[Trainer, dict[str, Any], Path]:
    recipe = REPO / "configs" / "cpu" / f"{name}-mnist.toml"
    overrides = [f"data.root={args.mnist}", "train.device=cpu", "output.progress=false",
                 *((QUICK[name] + CPU_QUICK) if args.quick else [])]
    config = load_config(recipe, overrides)
    run = work / name
    trainer = Trainer(config, run)
    budget = args.minutes * 60.0
    print(f"[{name}] {config.train.steps} steps of {recipe.relative_to(REPO)} ({budget:.0f} s at most)",
          file=sys.stderr)
    t0, c0 = time.perf_counter(), cpu_seconds()
    fit_within(trainer, budget, name)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    info: dict[str, Any] = {
        "recipe": str(recipe.relative_to(REPO)), "overrides": [o for o in overrides if not o.startswith("data.root")],
        "train_seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "budget_seconds": budget,
        "steps": trainer.step, "planned_steps": config.train.steps,
        "stopped_by_budget": trainer.step < config.train.steps,
        "images_seen": trainer.images_seen, "images_per_second": round(trainer.images_seen / seconds, 1),
        "threads": torch.get_num_threads(), "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "machine": cpu_model(),
    }
    if hasattr(trainer.network("generator"), "current_phase"):
        level, alpha = trainer.network("generator").current_phase()
        info["final_phase"] = {"resolution": 4 << level, "alpha": alpha}
    return trainer, info, run


def cpu_seconds() -> float:
    """CPU time of this process and its children (user + system)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def curve(run: Path, classifier: nn.Module, n: int, seed: int) -> list[dict[str, Any]]:
    """The judge on every checkpoint the run kept (its averaged generator), in step order."""
    from ganforge import load_generator

    points = []
    for ckpt in sorted((run / "checkpoints").glob("step-*")):
        trained = load_generator(ckpt)
        x, asked = sample_from(trained.module, lambda m, rng, t=trained: t.sampler.sample(
            m, t.space, device=t.device, generator=rng), n, seed, trained.device)
        j = judge(predict(classifier, x), asked)
        points.append({"step": trained.checkpoint.step, "confident": round(j["confident"], 4),
                       "min_class_fraction": round(j["min_class_fraction"], 4),
                       **({"conditional_accuracy": round(j["conditional_accuracy"], 4)}
                          if "conditional_accuracy" in j else {})})
    return points


def fid_kid(run: Path, args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """FID and KID of 1,000 samples against the MNIST test set in the mnist-classifier's features, with
    the protocol's SHA-256 (the fingerprint), and the same for 1,000 real training digits (the floor)."""
    import hashlib

    from ganforge import get_plugin_manager
    from ganforge_plugins.evaluation.eval import EvalConfig, evaluate_checkpoint
    from ganforge_plugins.evaluation.pipeline import (
        MetricChoice,
        ReferenceCache,
        build_metrics,
        compute_metrics,
        extract_batched,
    )
    from ganforge_plugins.metrics.classifier import ClassifierFeaturesConfig, mnist_classifier
    from ganforge_plugins.metrics.fid import FIDConfig
    from ganforge_plugins.metrics.kid import KIDConfig

    manager = get_plugin_manager()
    n = 200 if args.quick else CPU_SAMPLES
    choices = (MetricChoice(name="fid", params=FIDConfig()),
               MetricChoice(name="kid", params=KIDConfig(subset_size=min(1000, n), subsets=100)))
    config = EvalConfig(metrics=choices, num_samples=n, real_samples=1000 if args.quick else 10_000,
                        real_split="test", seed=0, device="cpu", cache_dir=str(cache))
    result = evaluate_checkpoint(run, config, manager, real=f"mnist:{args.mnist}")
    protocol = {k: v for k, v in result["protocol"].items() if k not in ("generated", "reference_cache")}
    fingerprint = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()
    reference = ReferenceCache(str(cache)).load(result["protocol"]["reference_cache"]["key"])
    real, _ = load_mnist(args.mnist, "train", 0)
    chosen = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(1))[:n]]
    extractor = mnist_classifier(ClassifierFeaturesConfig())
    feats, _ = extract_batched(extractor, lambda: chosen.split(500), probabilities=False)
    assert reference is not None
    floor = compute_metrics(build_metrics(choices, manager), reference.features, feats, None)
    return {"samples": n, "real": f"MNIST test ({config.real_samples:,})", "extractor": "mnist-classifier",
            "fid": result["metrics"]["fid"], "kid_mean": result["metrics"]["kid_mean"],
            "kid_std": result["metrics"]["kid_std"], "protocol_sha256": fingerprint,
            "real_train_digits": {"fid": floor["fid"], "kid_mean": floor["kid_mean"]},
            "extractor_check": result["protocol"]["real"]["extractor_check"], "warnings": result["warnings"]}


def markdown(report: dict[str, Any]) -> str:
    def ceiling(c: dict[str, Any]) -> str:
        return f"test accuracy {c['test_accuracy']:.4f}; {c['real_test_confident']:.1%} of real test digits confident"

    judges = {name: m.get("classifier", report["classifier"]) for name, m in report["models"].items()}
    machines = {name: m.get("machine", report["device"]) for name, m in report["models"].items()}
    one_judge, one_machine = len({ceiling(c) for c in judges.values()}) <= 1, len(set(machines.values())) <= 1
    # a column of its own for what differs between the models' entries (kept entries come from earlier runs)
    extra = ([("judge (test acc. / real confident)",
               lambda n: f"{judges[n]['test_accuracy']:.4f} / {judges[n]['real_test_confident']:.3f}")]
             if not one_judge else []) + ([("machine", lambda n: machines[n])] if not one_machine else [])
    c = next(iter(judges.values()), report["classifier"])
    judged_by = (f"Judge: an MNIST CNN trained by the script ({ceiling(c)} at p >= {report['threshold']})."
                 if one_judge else "Judge: an MNIST CNN trained by the script from one recipe, retrained on a machine "
                 "that had none cached (its rounding differs); the judge column gives each model's test accuracy and "
                 f"share of real test digits confident at p >= {report['threshold']}.")
    lines = [f"# Sample quality on MNIST 32x32, {report['scale']} scale", "",
             f"{report['device'] + ('' if one_machine else ' (the last run)')}, torch {report['torch']}, "
             f"{report['date']}. {judged_by} Targets: confident >= "
             f"{TARGETS['confident']}, every class >= {TARGETS['min_class_fraction']}, conditional accuracy >= "
             f"{TARGETS['conditional_accuracy']}.", "",
             "| model | run (UTC) | steps | wall s | CPU s | images/s | confident | min class | conditional | FID "
             "| KID | passed |" + "".join(f" {h} |" for h, _ in extra) + " grid |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" + "---|" * len(extra) + "---|"]
    for name, m in report["models"].items():
        q = m.get("fid_kid", {})
        when = m.get("date", report["date"])[:16].replace("T", " ")
        conditional = f"{m['conditional_accuracy']:.3f}" if "conditional_accuracy" in m else "-"
        cells = "".join(f" {cell(name)} |" for _, cell in extra)
        lines.append(f"| {name} | {when} | {m['steps']} | {m['train_seconds']} | {m.get('cpu_seconds', '')} | "
                     f"{m.get('images_per_second', '')} | {m['confident']:.3f} | {m['min_class_fraction']:.3f} | "
                     f"{conditional} | {q.get('fid', float('nan')):.2f} | "
                     f"{q.get('kid_mean', float('nan')):.4f} | {m['passed']} |{cells} ![{name}]({m['grid']}) |")
    floor = next((m["fid_kid"]["real_train_digits"] for m in report["models"].values() if "fid_kid" in m), None)
    if floor:
        lines += ["", f"Real training digits against the same test reference: FID {floor['fid']:.2f}, "
                      f"KID {floor['kid_mean']:.4f} (the floor)."]
    for name, m in report["models"].items():
        if m.get("curve"):
            lines += ["", f"Curve of {name} (the judge on each checkpoint): " + ", ".join(
                f"step {p['step']}: {p['confident']:.3f}" for p in m["curve"])]
    commands = sorted({m.get("command", report["command"]) for m in report["models"].values()})
    lines += ["", "Command" + ("s" if len(commands) > 1 else "") + ": " + ", ".join(f"`{c}`" for c in commands)]
    return "\n".join(lines) + "\n"


def grid(x: Tensor, asked: Tensor | None) -> Tensor:
    """100 samples; for a conditional model, row r holds classes 0..9 (one column per class)."""
    if asked is None:
        return x[:100]
    return torch.stack([x[asked == k][:10] for k in range(10)], dim=1).flatten(0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--scale", choices=("gpu", "cpu"), default="gpu",
                        help="gpu: the GPU recipes, calibrated to --minutes; cpu: configs/cpu/, 20 minutes at most")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per model (5; cpu scale 20)")
    parser.add_argument("--samples", type=int, default=None, help="samples judged (10,000; cpu scale 1,000)")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--calibration-steps", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--keep", default=None,
                        help="keep the run directories here (e.g. to open one in `ganforge studio`)")
    parser.add_argument("--judge-cache", default=str(Path.home() / ".cache" / "ganforge" / "judges"),
                        help="where the trained judge is kept for reuse ('' to train it every time)")
    parser.add_argument("--out", default=None, help="default benchmarks/results (cpu scale: benchmarks/results/cpu)")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: tiny networks and data")
    args = parser.parse_args(argv)
    cpu_scale = args.scale == "cpu"
    args.minutes = args.minutes or (CPU_MINUTES if cpu_scale else 5.0)
    args.samples = args.samples or ((200 if args.quick else CPU_SAMPLES) if cpu_scale else 10_000)
    if args.out is None:
        if args.quick:
            parser.error("--quick results are not benchmark results: give --out a scratch directory")
        args.out = str(REPO / "benchmarks" / "results" / ("cpu" if cpu_scale else ""))
    device = torch.device("cpu") if cpu_scale else torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else
        ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start, c_start = time.perf_counter(), cpu_seconds()

    classifier, classifier_info = cached_classifier(args.mnist, device, epochs=args.classifier_epochs,
                                                    limit=2048 if args.quick else 0,
                                                    cache=Path(args.judge_cache) if args.judge_cache else None)
    print(f"classifier: test accuracy {classifier_info['test_accuracy']:.4f}, real digits confident "
          f"{classifier_info['real_test_confident']:.4f}", file=sys.stderr)
    report: dict[str, Any] = {
        "benchmark": "quality_mnist", "scale": args.scale, "quick": args.quick,
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "cpu_count": os.cpu_count(), "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "kernels": os.environ.get("GANFORGE_KERNELS", "auto"), "threshold": THRESHOLD, "targets": TARGETS,
        "command": " ".join(["python benchmarks/quality_mnist.py", *(argv if argv is not None else sys.argv[1:])]),
        "classifier": classifier_info, "models": {},
    }
    prefix = "" if cpu_scale else "quality_mnist_"
    command = report["command"]
    previous = out / "quality_mnist.json"
    if cpu_scale and previous.is_file():
        # a run of some models keeps the others' committed results (each entry has its own date and command)
        old = json.loads(previous.read_text())
        if old.get("scale") == args.scale and old.get("quick") == args.quick:
            # with the judge that scored them: a judge retrained on another machine rounds differently
            report["models"] = {k: {"date": old["date"], "command": old["command"], "machine": old["device"],
                                    "classifier": old["classifier"], **v}
                                for k, v in old["models"].items() if k not in args.models}
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = args.keep
            Path(tmp).mkdir(parents=True, exist_ok=True)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ganforge-quality-"))
        for name in args.models:
            if cpu_scale:
                trainer, info, run = train_cpu(name, args, Path(tmp))
            else:
                trainer, info = train_model(name, args, device, Path(tmp))
            x, asked = generate(trainer, args.samples, seed=1)
            info.update(judge(predict(classifier, x), asked))
            save_samples(grid(x, asked), out / f"{prefix}{name}.png", nrow=10)
            info["grid"] = f"{prefix}{name}.png"
            if cpu_scale:
                info["curve"] = curve(run, classifier, args.samples, seed=1)
                info["fid_kid"] = fid_kid(run, args, Path(tmp) / "cache")
            info.update(date=datetime.datetime.now(datetime.UTC).isoformat(), command=command,
                        classifier=classifier_info)
            report["models"][name] = info
            verdict = "PASS" if info["passed"] else "FAIL"
            print(f"[{name}] {verdict}: confident {info['confident']:.3f}, min class {info['min_class_fraction']:.3f}"
                  + (f", conditional {info['conditional_accuracy']:.3f}" if asked is not None else "")
                  + f" after {info['steps']} steps / {info['train_seconds']:.0f} s", file=sys.stderr)
            del trainer
            if device.type == "cuda":
                torch.cuda.empty_cache()
    report["models"] = {k: report["models"][k] for k in MODELS if k in report["models"]}
    report["passed"] = classifier_info["valid"] and all(m["passed"] for m in report["models"].values())
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    report["cpu_seconds"] = round(cpu_seconds() - c_start, 1)
    (out / "quality_mnist.json").write_text(json.dumps(report, indent=2) + "\n")
    if cpu_scale:
        (out / "quality_mnist.md").write_text(markdown(report))
    print(f"wrote {out / 'quality_mnist.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
