"""Image-to-image translation against ground truth on real MNIST: the acceptance numbers of issue 5.

Each method trains its recipe (``configs/translation/``) at the scale's steps through the one training
loop, then is measured on the test split of its task, whose answers it never saw:

- **pix2pix on edges2mnist**: L1 error of ``G(edges)`` to the digit, against the best constant image
  (the per-pixel median of the training digits, the L1-optimal constant) and the mean image; the same
  U-Net trained with L1 alone is measured beside it, with the sharpness of both: the mean Sobel
  gradient magnitude of the outputs divided by that of the true digits (1 = as sharp as the truth).
  The courses' claim: L1 carries the low frequencies (a blurred, too-smooth answer, ratio < 1) and
  the PatchGAN the high ones (ratio nearer 1).
- **CycleGAN on mnist-thin2bold**: L1 error of ``G(x)`` to ``x``'s own digit dilated (never seen in
  training) against the identity baseline ``L1(x, truth)``, and the cycle error ``L1(F(G(x)), x)``
  (and ``L1(G(F(y)), y)``), images in ``[0, 1]``.
- **StarGAN on mnist-styles**: every test digit is translated from its own domain to each of the 3
  others; the share put into the asked domain by StarGAN's auxiliary classifier and by an independent
  CNN the benchmark trains on real styled training digits (its accuracy on real test digits is
  reported), and the L1 error to the true styled digit.

Acceptance: pix2pix L1 <= 0.5 x the constant baseline and sharper than L1 alone; CycleGAN L1 <= 0.5 x
identity and cycle error < 0.05; StarGAN >= 90 % by both classifiers. Writes
``<out>/translation-mnist.json`` (numbers, settings, device, versions, seeds, wall times) and the grids
``translation-{pix2pix,cyclegan,stargan}.png``::

    python benchmarks/translation_mnist.py [--root ../shared/data/mnist] [--out benchmarks/results]
        [--methods pix2pix,cyclegan,stargan] [--device auto]

meant for a GPU; ``--trial`` is the fixed-step CPU trial that compares one code version with another
(``benchmarks/results/translation-trial/``); ``--smoke`` runs tiny networks on 16x16 digits for a few dozen steps (what
``tests/test_translation_benchmark.py`` does on CPU: its numbers are not results).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.quality_mnist import cpu_seconds, fit_within  # noqa: E402

SEED = 0

# Full scale: 32x32 digits, all 60,000 training digits, 2,000 test digits.
FULL: dict[str, Any] = {
    "resolution": 32, "limit": 0, "test": 2000, "classifier_digits": 20000, "classifier_steps": 1500,
    "pix2pix": {"steps": 4000, "batch_size": 64, "generator": {"name": "unet", "base_channels": 64},
                "discriminator": {"name": "patchgan", "n_layers": 2, "base_channels": 64}},
    "cyclegan": {"steps": 6000, "batch_size": 16,
                 "generator": {"name": "resnet-generator", "base_channels": 32, "n_blocks": 6},
                 "discriminator": {"name": "patchgan", "norm": "instance-norm", "n_layers": 2, "base_channels": 64}},
    "stargan": {"steps": 5000, "batch_size": 32,
                "generator": {"name": "resnet-generator", "conditional": True, "base_channels": 32, "n_blocks": 6},
                "discriminator": {"name": "stargan", "base_channels": 64}},
}
# Smoke: tiny networks, 16x16, a few dozen CPU steps. Checks the plumbing, proves nothing.
SMOKE: dict[str, Any] = {
    "resolution": 16, "limit": 512, "test": 64, "classifier_digits": 256, "classifier_steps": 60,
    "pix2pix": {"steps": 30, "batch_size": 8, "lr": 1e-3, "generator": {"name": "unet", "base_channels": 8},
                "discriminator": {"name": "patchgan", "n_layers": 2, "base_channels": 8}},
    "cyclegan": {"steps": 20, "batch_size": 8, "lr": 1e-3,
                 "generator": {"name": "resnet-generator", "base_channels": 8, "n_blocks": 2},
                 "discriminator": {"name": "patchgan", "norm": "instance-norm", "n_layers": 2, "base_channels": 8}},
    "stargan": {"steps": 10, "batch_size": 8, "lr": 1e-3,
                "generator": {"name": "resnet-generator", "conditional": True, "base_channels": 8, "n_blocks": 2},
                "discriminator": {"name": "stargan", "base_channels": 8}},
}
# Trial: the CPU comparison of one code version against another (fixed steps, not time, so that both do
# the same work): 16x16, 4,096 training digits, a few hundred steps; about 2 minutes on 1 CPU thread.
TRIAL: dict[str, Any] = {
    "resolution": 16, "limit": 4096, "test": 256, "classifier_digits": 2048, "classifier_steps": 300,
    "pix2pix": {"steps": 400, "batch_size": 16, "lr": 5e-4, "generator": {"name": "unet", "base_channels": 16},
                "discriminator": {"name": "patchgan", "n_layers": 2, "base_channels": 16}},
    "cyclegan": {"steps": 300, "batch_size": 8, "lr": 5e-4,
                 "generator": {"name": "resnet-generator", "base_channels": 16, "n_blocks": 3},
                 "discriminator": {"name": "patchgan", "norm": "instance-norm", "n_layers": 2, "base_channels": 16}},
    "stargan": {"steps": 200, "batch_size": 16, "lr": 5e-4,
                "generator": {"name": "resnet-generator", "conditional": True, "base_channels": 16, "n_blocks": 3},
                "discriminator": {"name": "stargan", "base_channels": 16}},
}
# CPU: the recipes of configs/cpu/ as they are (their own steps, batch and widths), each stopped at 20
# minutes in any case; measured on 2,000 test digits at 32x32 (the quality issue's CPU results).
CPU: dict[str, Any] = {"resolution": 32, "limit": 0, "test": 2000, "classifier_digits": 10000,
                       "classifier_steps": 1000, "minutes": 20.0}
TASKS = {"pix2pix": "edges2mnist", "cyclegan": "mnist-thin2bold", "stargan": "mnist-styles"}
CPU_RECIPES = Path(__file__).resolve().parents[1] / "configs" / "cpu"


def l1_unit(a: Tensor, b: Tensor) -> float:
    """Mean absolute error of images in ``[-1, 1]``, expressed for images in ``[0, 1]``."""
    return float((a - b).abs().mean()) / 2.0


def sharpness(x: Tensor) -> float:
    """Mean Sobel gradient magnitude of ``[N, C, H, W]`` images in ``[-1, 1]``, measured in ``[0, 1]``."""
    import kornia

    grad = kornia.filters.spatial_gradient((x.float() + 1.0) / 2.0, mode="sobel")  # [N, C, 2, H, W]
    return float(grad.square().sum(dim=2).sqrt().mean())


def best_constant(b: Tensor) -> Tensor:
    """The constant image with the least L1 error to ``b``: its per-pixel median ``[1, C, H, W]``."""
    return b.median(dim=0, keepdim=True).values


RECIPES = Path(__file__).resolve().parents[1] / "configs" / "translation"
RECIPE = {"pix2pix": "pix2pix-edges2mnist.toml", "cyclegan": "cyclegan-mnist-thin2bold.toml",
          "stargan": "stargan-mnist-styles.toml"}


def _table(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _table(f"{prefix}.{k}", v)]
    return [f"{prefix}={json.dumps(value)}"]


def _config(method: str, scale: dict[str, Any], root: str, device: str, **changes: Any) -> Any:
    """The method's recipe at this scale, run by the one training loop (``ganforge train``)."""
    from ganforge import load_config

    if scale.get("minutes"):  # the CPU recipe file itself: only where the data are and where it runs
        overrides = [f"data.root={json.dumps(root)}", f"train.device={json.dumps(device)}", f"train.seed={SEED}",
                     "output.progress=false"]
        if "adversarial_weight" in changes:
            overrides.append(f"procedure.adversarial_weight={changes['adversarial_weight']}")
        if scale.get("quick"):
            overrides += ["train.steps=3", "train.batch_size=4", "data.limit=256", "data.test_limit=32",
                          "output.checkpoint_every=3", "output.sample_every=3"]
        return load_config(CPU_RECIPES / RECIPE[method], overrides)

    settings = {**scale[method], **changes}
    overrides = [f"data.root={json.dumps(root)}", f"data.resolution={scale['resolution']}",
                 f"data.limit={scale['limit']}", f"data.test_limit={min(256, scale['test'])}",
                 f"train.seed={SEED}", f"train.device={json.dumps(device)}", "output.progress=false",
                 f"train.steps={settings['steps']}", f"train.batch_size={settings['batch_size']}",
                 f"output.sample_every={max(1, settings['steps'] // 4)}",
                 f"output.checkpoint_every={settings['steps']}"]
    if "lr" in settings:
        overrides += [f"optim.g.lr={settings['lr']}", f"optim.d.lr={settings['lr']}"]
    for section in ("generator", "discriminator"):
        overrides += _table(section, settings[section])
    if "adversarial_weight" in settings:
        overrides.append(f"procedure.adversarial_weight={settings['adversarial_weight']}")
    return load_config(RECIPES / RECIPE[method], overrides)


def _test_data(method: str, scale: dict[str, Any], root: str, device: torch.device) -> Any:
    import attrs
    from ganforge_plugins.translation.data import TranslationDataConfig, load_translation_data

    data = load_translation_data(TranslationDataConfig(name=TASKS[method], root=root, split="test",
                                                       resolution=scale["resolution"], limit=scale["test"]))
    return attrs.evolve(data, **{f.name: getattr(data, f.name).to(device) for f in attrs.fields(type(data))
                                 if isinstance(getattr(data, f.name), Tensor)})


class Trained:
    """A trained run's networks for the measurements (the moving averages where kept), in eval mode."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.train_data = trainer.dataset.train

    def net(self, role: str) -> nn.Module:
        return self.trainer.sampling_network(role).eval()

    def translate(self, x: Tensor, to: Any = None) -> Tensor:
        role = "generator_f" if to == "A" else "generator"
        extra = [] if to is None or isinstance(to, str) else [to]
        return _predict(lambda *a: self.net(role)(*a), x, *extra)

    def classify(self, x: Tensor) -> Tensor:
        return _predict(lambda z: self.net("discriminator").classify(z)[1].argmax(1), x)


def _fit(config: Any, manager: Any, runs: Path, name: str, device: torch.device,
         minutes: float | None = None) -> tuple[Trained, dict[str, Any]]:
    """Train ``config``; with ``minutes``, stopped then in any case (the engine checkpoints and stops
    at the next step), and its CPU seconds reported beside the wall time."""
    from ganforge import Trainer

    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), cpu_seconds()
    trainer = Trainer(config, runs / name, manager=manager)
    fit_within(trainer, minutes * 60.0 if minutes else None, name)
    if device.type == "cuda":
        torch.cuda.synchronize()
    info = {"train_seconds": round(time.perf_counter() - start, 1), "steps": trainer.step}
    if minutes:
        info.update(cpu_seconds=round(cpu_seconds() - cpu, 1), planned_steps=config.train.steps,
                    stopped_by_budget=trainer.step < config.train.steps, budget_seconds=minutes * 60.0)
    return Trained(trainer), info


def _save_grid(columns: list[Tensor], path: Path) -> None:
    from ganforge import save_samples

    channels = max(c.shape[1] for c in columns)
    columns = [c.expand(-1, channels, -1, -1).cpu() for c in columns]
    save_samples(torch.stack(columns, dim=1).flatten(0, 1), path, nrow=len(columns))


def bench_pix2pix(scale: dict[str, Any], args: argparse.Namespace, manager: Any, runs: Path, device: torch.device,
                  out: Path) -> dict[str, Any]:
    test = _test_data("pix2pix", scale, args.root, device)
    gan, gan_run = _fit(_config("pix2pix", scale, args.root, args.device), manager, runs, "pix2pix",
                        device, scale.get("minutes"))
    l1_only, l1_run = _fit(_config("pix2pix", scale, args.root, args.device, adversarial_weight=0.0),
                           manager, runs, "pix2pix-l1", device, scale.get("minutes"))
    out_gan, out_l1 = gan.translate(test.a), l1_only.translate(test.a)
    train_b = gan.train_data.b
    constant, mean = best_constant(train_b), train_b.mean(dim=0, keepdim=True)
    truth_sharpness = sharpness(test.b)
    result = {
        "l1": l1_unit(out_gan, test.b), "l1_only_l1": l1_unit(out_l1, test.b),
        "constant_baseline_l1": l1_unit(constant.expand_as(test.b), test.b),
        "mean_image_baseline_l1": l1_unit(mean.expand_as(test.b), test.b),
        "sharpness_truth": truth_sharpness,
        "sharpness_ratio": sharpness(out_gan) / truth_sharpness,
        "l1_only_sharpness_ratio": sharpness(out_l1) / truth_sharpness,
        "train": gan_run, "l1_only_train": l1_run,
    }
    result["identity_baseline_l1"] = l1_unit(test.a, test.b)  # the edges themselves as the answer
    result["l1_over_constant"] = result["l1"] / result["constant_baseline_l1"]
    result["l1_over_baseline"] = result["l1"] / min(result["constant_baseline_l1"], result["identity_baseline_l1"])
    result["accepted"] = bool(result["l1_over_baseline"] <= 0.5
                              and result["sharpness_ratio"] > result["l1_only_sharpness_ratio"])
    n = 16
    _save_grid([test.a[:n], out_gan[:n], out_l1[:n], test.b[:n]], out / "translation-pix2pix.png")
    return result


def bench_cyclegan(scale: dict[str, Any], args: argparse.Namespace, manager: Any, runs: Path, device: torch.device,
                   out: Path) -> dict[str, Any]:
    test = _test_data("cyclegan", scale, args.root, device)
    cyc, run = _fit(_config("cyclegan", scale, args.root, args.device), manager, runs, "cyclegan", device,
                    scale.get("minutes"))
    gx, fy = cyc.translate(test.x, "B"), cyc.translate(test.y, "A")
    result = {
        "l1": l1_unit(gx, test.x_truth), "identity_baseline_l1": l1_unit(test.x, test.x_truth),
        "l1_f": l1_unit(fy, test.y_truth), "identity_baseline_l1_f": l1_unit(test.y, test.y_truth),
        "cycle_error_x": l1_unit(cyc.translate(gx, "A"), test.x),
        "cycle_error_y": l1_unit(cyc.translate(fy, "B"), test.y),
        "train": run,
    }
    # the bold training digits' per-pixel median as every answer
    result["constant_baseline_l1"] = l1_unit(best_constant(cyc.train_data.y).expand_as(test.x_truth), test.x_truth)
    result["l1_over_identity"] = result["l1"] / result["identity_baseline_l1"]
    result["l1_over_baseline"] = result["l1"] / min(result["identity_baseline_l1"], result["constant_baseline_l1"])
    result["accepted"] = bool(result["l1_over_baseline"] <= 0.5 and result["cycle_error_x"] < 0.05
                              and result["cycle_error_y"] < 0.05)
    n = 16
    _save_grid([test.x[:n], gx[:n], test.x_truth[:n], cyc.translate(gx[:n], "A")], out / "translation-cyclegan.png")
    return result


class DomainClassifier(nn.Module):
    """An independent CNN for the mnist-styles domains, trained by the benchmark on real styled digits."""

    def __init__(self, domains: int, side: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (side // 4) ** 2, 128), nn.ReLU(), nn.Linear(128, domains))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


def train_domain_classifier(scale: dict[str, Any], root: str, device: torch.device) -> DomainClassifier:
    """Every training digit (the first ``classifier_digits``) rendered in all 4 styles, labelled by style."""
    from ganforge_plugins.translation.data import STYLES, load_mnist_digits, style, to_canvas

    digits = load_mnist_digits(root, "train", scale["classifier_digits"])
    images = torch.cat([to_canvas(style(digits, name), scale["resolution"]) for name in STYLES]).to(device)
    labels = torch.arange(len(STYLES)).repeat_interleave(len(digits)).to(device)
    torch.manual_seed(SEED + 10)
    clf = DomainClassifier(len(STYLES), scale["resolution"]).to(device)
    opt = torch.optim.Adam(clf.parameters(), 1e-3)
    rng = torch.Generator().manual_seed(SEED + 11)
    for _ in range(scale["classifier_steps"]):
        idx = torch.randint(len(images), (128,), generator=rng).to(device)
        loss = F.cross_entropy(clf(images[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return clf.eval()


@torch.no_grad()
def _predict(fn: Any, x: Tensor, *extra: Tensor, batch: int = 512) -> Tensor:
    return torch.cat([fn(x[i:i + batch], *(e[i:i + batch] for e in extra)) for i in range(0, len(x), batch)])


def bench_stargan(scale: dict[str, Any], args: argparse.Namespace, manager: Any, runs: Path, device: torch.device,
                  out: Path) -> dict[str, Any]:
    test = _test_data("stargan", scale, args.root, device)
    star, run = _fit(_config("stargan", scale, args.root, args.device), manager, runs, "stargan", device,
                     scale.get("minutes"))
    t0 = time.perf_counter()
    clf = train_domain_classifier(scale, args.root, device)
    k = len(test.domain_names)
    truth = test.truth  # [N, K, 1, H, W]
    real_acc = float((_predict(lambda x: clf(x).argmax(1), truth.flatten(0, 1))
                      == torch.arange(k, device=device).repeat(len(truth))).float().mean())
    aux_hits, clf_hits, errors, total = 0, 0, [], 0
    per_target: dict[str, dict[str, float]] = {}
    for target in range(k):
        keep = test.domains != target  # translate every digit from its own domain to each other one
        x, goal = test.images[keep], torch.full((int(keep.sum()),), target, device=device)
        y = star.translate(x, goal)
        aux = (star.classify(y) == target).float()
        ind = (_predict(lambda z: clf(z).argmax(1), y) == target).float()
        aux_hits += int(aux.sum())
        clf_hits += int(ind.sum())
        total += len(y)
        errors.append(l1_unit(y, truth[keep, target]) * len(y))
        per_target[test.domain_names[target]] = {
            "aux_accuracy": float(aux.mean()), "classifier_accuracy": float(ind.mean()),
            "l1": l1_unit(y, truth[keep, target])}
    result = {
        "aux_accuracy": aux_hits / total, "classifier_accuracy": clf_hits / total,
        "classifier_accuracy_on_real": real_acc, "l1": sum(errors) / total,
        "source_l1": l1_unit(test.images[:, None].expand_as(truth), truth),  # leaving the digit as it is
        "per_target": per_target, "translations": total, "train": run,
        "classifier_seconds": round(time.perf_counter() - t0, 1),
    }
    constant = sum(l1_unit(best_constant(truth[:, j]).expand_as(truth[test.domains != j, j]),
                           truth[test.domains != j, j]) * int((test.domains != j).sum()) for j in range(k)) / total
    result["constant_baseline_l1"] = constant  # per target domain, the median of its true digits
    result["l1_over_baseline"] = result["l1"] / min(result["source_l1"], constant)
    result["accepted"] = bool(result["aux_accuracy"] >= 0.9 and result["classifier_accuracy"] >= 0.9
                              and result["l1_over_baseline"] <= 0.5)
    n = 12
    x = test.images[:n]
    outs = [star.translate(x, torch.full((n,), j, device=device)) for j in range(k)]
    _save_grid([x, *outs, *[truth[:n, j] for j in range(k)]], out / "translation-stargan.png")
    return result


BENCHES = {"pix2pix": bench_pix2pix, "cyclegan": bench_cyclegan, "stargan": bench_stargan}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ganforge import __version__, get_plugin_manager, resolve_device

    name = "smoke" if args.smoke else "trial" if args.trial else args.scale
    scale = {"smoke": SMOKE, "trial": TRIAL, "cpu": CPU, "full": FULL}[name]
    if name == "cpu" and args.quick:  # CI's smoke of the CPU path: the recipes' files, a few steps
        scale = {**CPU, "test": 64, "classifier_digits": 256, "classifier_steps": 20, "quick": True}
    device = torch.device("cpu") if name == "cpu" else resolve_device(args.device)
    manager = get_plugin_manager()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "scale": name, "load_average_before": [round(v, 2) for v in __import__("os").getloadavg()],
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "ganforge": __version__, "seed": SEED,
        "settings": {k: v for k, v in scale.items()}, "results": {},
    }
    command = " ".join(["python benchmarks/translation_mnist.py", *getattr(args, "argv", [])])
    methods = args.methods.split(",")
    previous = out / "translation-mnist.json"
    if name == "cpu" and previous.is_file():
        # a run of some methods keeps the others' results (each entry has its own date and command)
        old = json.loads(previous.read_text())
        if old.get("scale") == name and old.get("settings", {}).get("quick") == scale.get("quick"):
            report["results"] = {k: {"date": old["date"], "command": old.get("command", "(not recorded)"), **v}
                                 for k, v in old["results"].items() if k not in methods}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs) if args.runs else Path(tmp)
        for method in methods:
            result = BENCHES[method](scale, args, manager, runs, device, out)
            report["results"][method] = {**result, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command}
            print(method, json.dumps(report["results"][method], indent=1))
    report["results"] = {k: report["results"][k] for k in BENCHES if k in report["results"]}
    report["command"] = command
    report["accepted"] = all(r["accepted"] for r in report["results"].values())
    (out / "translation-mnist.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "translation-mnist.md").write_text(markdown(report, args), encoding="utf-8")
    return report


def _headline(method: str, r: dict[str, Any]) -> str:
    """What a method adds to the L1 comparison, as a sentence."""
    if method == "pix2pix":
        return f"sharpness {r['sharpness_ratio']:.3f} of the truth's, L1 alone {r['l1_only_sharpness_ratio']:.3f}"
    if method == "cyclegan":
        return f"cycle error {r['cycle_error_x']:.4f} (x), {r['cycle_error_y']:.4f} (y)"
    return (f"in the asked domain: {r['classifier_accuracy']:.1%} by an independent CNN "
            f"({r['classifier_accuracy_on_real']:.1%} on real), {r['aux_accuracy']:.1%} by its own classifier")


def markdown(report: dict[str, Any], args: argparse.Namespace) -> str:
    rows = ["| method | steps | wall s | L1 | baseline L1 (identity, constant) | ratio (target <= 0.5) | more "
            "| accepted |",
            "|---|---:|---:|---:|---|---:|---|---|"]
    for method, r in report["results"].items():
        identity = r.get("identity_baseline_l1", r.get("source_l1", float("nan")))
        more = _headline(method, r)
        rows.append(f"| {method} | {r['train']['steps']} | {r['train']['train_seconds']} | {r['l1']:.4f} | "
                    f"{identity:.4f}, {r['constant_baseline_l1']:.4f} | {r['l1_over_baseline']:.3f} | {more} | "
                    f"{r['accepted']} |")
    grids = [f"![{m}](translation-{m}.png)" for m in report["results"]]
    commands = [f"- {m} ({r['date']}): `{r['command']}`" for m, r in report["results"].items()]
    return "\n".join([f"# Image-to-image translation on real MNIST ({report['scale']} scale)", "",
                      f"{report['device']}, torch {report['torch']}, {report['date']}, load average "
                      f"{report['load_average_before']}.", "", *rows, "", *grids, "", "Commands:", "", *commands,
                      ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data/mnist")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--runs", default=None, help="keep the run directories here (default: a temporary one)")
    parser.add_argument("--methods", default="pix2pix,cyclegan,stargan")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU-sized runs: plumbing only, not results")
    parser.add_argument("--trial", action="store_true", help="the CPU trial that compares two code versions")
    parser.add_argument("--scale", choices=("full", "cpu"), default="full",
                        help="cpu: the recipes of configs/cpu/, 20 minutes each at most, on 2 CPU cores")
    parser.add_argument("--quick", action="store_true", help="with --scale cpu: a few steps, for CI")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else __import__("sys").argv[1:])
    if args.scale == "cpu" and args.out == "benchmarks/results":
        if args.quick:
            parser.error("--quick results are not benchmark results: give --out a scratch directory")
        args.out = "benchmarks/results/cpu/translation"
    report = run(args)
    return 0 if report["accepted"] or report["scale"] != "full" else 1


if __name__ == "__main__":
    raise SystemExit(main())
