"""Domain feature extractors: small CNN classifiers trained by ganforge on MNIST, Fashion-MNIST and CIFAR-10.

The Inception network of Heusel et al. 2017 (arXiv:1706.08500) was trained on ImageNet photographs;
on 32x32 digits its features say little, and its weights cannot be had offline here. A classifier
trained on the domain itself gives a *domain* FID, KID and Inception Score in the same way (as the
"FID with a LeNet" numbers reported for MNIST GANs, e.g. Lucic et al. 2018, arXiv:1711.10337):
``features(x)`` is the penultimate layer (the global average of the last convolution, 128 values)
and ``probabilities(x)`` is ``softmax`` of the logits over the dataset's 10 classes.

The network (``DomainClassifier``, 99k parameters): four 3x3 convolutions with batch norm and ReLU,
widths 16, 32, 64, 128, each of the first three followed by 2x2 max pooling (32 -> 16 -> 8 -> 4), then a global
average (the features), dropout and one linear layer to the 10 logits. Inputs are images in
``[-1, 1]`` at 32x32 (MNIST and Fashion-MNIST zero-padded from 28x28, as the ``mnist`` dataset's
default ``fit = "pad"``); another size is resized bilinearly (antialiased), as the protocol records.

Weights are committed under ``weights/`` (safetensors, under 1 MB each) with ``weights/manifest.json``
giving each file's SHA-256, the command that trained it and its test accuracy; they were made by
``ganforge train-classifier --dataset NAME --root DIR --out FILE`` (the :class:`TrainClassifier` command
below), which trains with Adam and a one-cycle learning rate, random shifts (and flips for CIFAR-10).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import attrs
import safetensors.torch
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import ConfigError, DataError, GanforgeError, hookimpl, structure_as, write_output
from torch import Tensor, nn

from ganforge_plugins.metrics.files import cache_root, check_sha256, sha256_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
NATIVE_RESOLUTION = 32
FEATURE_DIM = 128
DATASETS = {
    # name: (input channels, default root, class names); digits: scikit-learn's bundled set, no root.
    # Data known by its class names only (an image folder of 0-9) gets the first match: MNIST's.
    "mnist": (1, "../shared/data/mnist", tuple(str(i) for i in range(10))),
    "digits": (1, "", tuple(str(i) for i in range(10))),
    "fashion-mnist": (1, "/usr/share/datasets/fashion-mnist",
                      ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")),
    "cifar10": (3, "../shared/data/cifar10-jpeg.tar.gz",
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
}


# -- the network ---------------------------------------------------------------------------------


class DomainClassifier(nn.Module):
    """A small CNN for 32x32 images: ``features(x) -> [N, 128]``, ``forward(x) -> [N, classes]`` logits."""

    def __init__(self, channels: int, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))  # 32 -> 16 -> 8 -> 4
            c = w
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(c, num_classes)
        self.channels = channels

    def features(self, x: Tensor) -> Tensor:
        return self.body(x).mean(dim=(2, 3))  # [N, 128]: the penultimate layer

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.dropout(self.features(x)))
        return out


def prepare_input(x: Tensor, *, channels: int, resize: str, who: str) -> Tensor:
    """Check ``[N, C, H, W]`` images in ``[-1, 1]`` and bring them to 32x32 as ``resize`` says."""
    if x.dim() != 4:
        raise DataError(f"{who}: expected images [N, C, H, W], got a tensor of shape {list(x.shape)}")
    if x.shape[1] != channels:
        raise DataError(
            f"{who}: expects {channels}-channel images, got {x.shape[1]} channels (shape {list(x.shape)}); "
            "choose the extractor trained on this kind of image"
        )
    if x.shape[2] != x.shape[3]:
        raise DataError(f"{who}: expects square images, got {x.shape[2]}x{x.shape[3]}")
    x = x.float()
    if x.shape[-1] != NATIVE_RESOLUTION:
        if resize == "none":
            raise DataError(
                f"{who}: expects {NATIVE_RESOLUTION}x{NATIVE_RESOLUTION} images, got {x.shape[2]}x{x.shape[3]} "
                "and resize = 'none'; set resize = 'bilinear' to rescale them"
            )
        x = F.interpolate(x, size=(NATIVE_RESOLUTION,) * 2, mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > NATIVE_RESOLUTION).clamp(-1.0, 1.0)
    return x


def load_manifest() -> dict[str, Any]:
    if not MANIFEST.is_file():
        return {}
    data: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return data


# -- the feature extractor plugins ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ClassifierFeaturesConfig:
    # weights: a safetensors file; empty = the one committed with ganforge (checked against manifest.json)
    weights: str = ""
    # sha256: the hash the weights must have; empty = the manifest's for the bundled file, unchecked otherwise
    sha256: str = attrs.field(default="", validator=v.matches_re(r"^([0-9a-fA-F]{64})?$"))
    # resize: how inputs that are not 32x32 are brought to the network's size
    resize: str = attrs.field(default="bilinear", validator=v.in_(("bilinear", "none")))
    batch_size: int = attrs.field(default=500, validator=v.ge(1))


class ClassifierFeatures:
    """Penultimate-layer features and class probabilities of a ganforge-trained domain classifier."""

    def __init__(self, config: ClassifierFeaturesConfig, *, dataset: str) -> None:
        channels, _, class_names = DATASETS[dataset]
        self.name = f"{dataset}-classifier"
        self.config = config
        if config.weights:
            path = Path(config.weights).expanduser()
            expected = config.sha256
        else:
            entry = load_manifest().get(self.name)
            if entry is None:
                raise ConfigError(
                    f"{self.name}: no bundled weights (weights/manifest.json has no entry); train them with "
                    f"`ganforge train-classifier --dataset {dataset} --out FILE` and set weights = FILE"
                )
            path, expected = WEIGHTS_DIR / entry["file"], config.sha256 or entry["sha256"]
        if not path.is_file():
            raise ConfigError(f"{self.name}.weights: file {str(path)!r} does not exist")
        digest = check_sha256(path, expected, what=f"{self.name}.weights")
        net = DomainClassifier(channels, len(class_names))
        try:
            state = safetensors.torch.load_file(str(path))
            net.load_state_dict({k: t.float() if t.is_floating_point() else t for k, t in state.items()})
        except (OSError, RuntimeError, safetensors.SafetensorError) as exc:
            raise ConfigError(f"{self.name}.weights: {str(path)!r} is not a {self.name} state dict: {exc}") from None
        self.net = net.eval().requires_grad_(False)
        self.channels = channels
        self.class_names = class_names
        self.dataset = dataset
        self.resolution = NATIVE_RESOLUTION
        self.protocol = {
            "name": self.name,
            "weights": path.name,
            "weights_sha256": digest,
            "resize": "none" if config.resize == "none" else
                      f"bilinear (antialiased when shrinking) to {NATIVE_RESOLUTION}x{NATIVE_RESOLUTION} when the "
                      "input has another size",
            "input": f"{channels}x{NATIVE_RESOLUTION}x{NATIVE_RESOLUTION} in [-1, 1]",
            "features": f"global average of the last convolution ({FEATURE_DIM})",
            "probabilities": f"softmax over {len(class_names)} classes",
        }

    def to(self, device: torch.device | str) -> ClassifierFeatures:
        self.net.to(device)
        return self

    @torch.no_grad()
    def features_and_probabilities(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both outputs from one pass: ``[N, 128]`` features and ``[N, 10]`` probabilities."""
        x = prepare_input(x, channels=self.channels, resize=self.config.resize, who=self.name)
        device = next(self.net.parameters()).device
        feats, probs = [], []
        for batch in x.split(self.config.batch_size):
            f = self.net.features(batch.to(device))
            feats.append(f.float().cpu())
            probs.append(self.net.head(f).double().softmax(dim=1).float().cpu())
        return torch.cat(feats), torch.cat(probs)

    def features(self, x: Tensor) -> Tensor:
        return self.features_and_probabilities(x)[0]

    def probabilities(self, x: Tensor) -> Tensor:
        return self.features_and_probabilities(x)[1]


def digits_classifier(config: ClassifierFeaturesConfig) -> ClassifierFeatures:
    """Features and class probabilities of a small CNN trained by ganforge on the bundled 8x8 digits."""
    return ClassifierFeatures(config, dataset="digits")


def mnist_classifier(config: ClassifierFeaturesConfig) -> ClassifierFeatures:
    """Features and class probabilities of a small CNN trained by ganforge on MNIST (domain FID/KID/IS)."""
    return ClassifierFeatures(config, dataset="mnist")


def fashion_mnist_classifier(config: ClassifierFeaturesConfig) -> ClassifierFeatures:
    """Features and class probabilities of a small CNN trained by ganforge on Fashion-MNIST."""
    return ClassifierFeatures(config, dataset="fashion-mnist")


def cifar10_classifier(config: ClassifierFeaturesConfig) -> ClassifierFeatures:
    """Features and class probabilities of a small CNN trained by ganforge on CIFAR-10."""
    return ClassifierFeatures(config, dataset="cifar10")


# -- training them: `ganforge train-classifier` --------------------------------------------------


@attrs.frozen(kw_only=True)
class TrainClassifierConfig:
    dataset: str = attrs.field(default="mnist", validator=v.in_(tuple(DATASETS)))
    root: str = ""  # empty: the dataset's usual place (../shared/data/..., /usr/share/datasets/...)
    out: str = ""  # safetensors file to write; empty: weights/<dataset>-classifier.safetensors
    # 0: 40 for the digits (1,437 images), 2 for MNIST, 3 for Fashion-MNIST, 6 for CIFAR-10
    epochs: int = attrs.field(default=0, validator=v.ge(0))
    batch_size: int = attrs.field(default=128, validator=v.ge(1))
    lr: float = attrs.field(default=3e-3, validator=v.gt(0.0))
    weight_decay: float = attrs.field(default=5e-4, validator=v.ge(0.0))
    seed: int = attrs.field(default=0, validator=v.ge(0))
    cache_dir: str = ""  # where the CIFAR-10 tarball is unpacked; empty: ~/.cache/ganforge/data
    threads: int = attrs.field(default=0, validator=v.ge(0))  # torch threads; 0 = torch's default


def unpack_cifar10(tarball: Path, cache_dir: str = "") -> Path:
    """Unpack the CIFAR-10 JPEG tarball (``train/<class>/*.jpg``, ``test/<class>/*.jpg``) once into the cache."""
    if tarball.is_dir():
        return tarball
    if not tarball.is_file():
        raise DataError(f"root: {str(tarball)!r} is neither the CIFAR-10 tarball nor an unpacked folder")
    target = cache_root(cache_dir) / "data" / f"cifar10-{sha256_file(tarball)[:12]}"
    if (target / ".complete").is_file():
        return target
    tmp = target.with_name(target.name + ".partial")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def load_split(dataset: str, root: str, split: str, manager: Any, cache_dir: str = "") -> tuple[Tensor, Tensor]:
    """Images ``[N, C, 32, 32]`` in ``[-1, 1]`` and labels of one split, through the dataset plugins."""
    channels, default_root, _ = DATASETS[dataset]
    root = root or default_root
    if dataset == "digits":
        return digits_split(split, manager)
    if dataset == "cifar10":
        folder = unpack_cifar10(Path(root).expanduser(), cache_dir) / split
        comp = manager.get("dataset", "image-folder")
        raw: dict[str, Any] = {"root": str(folder), "resolution": NATIVE_RESOLUTION, "channels": channels}
    else:
        comp = manager.get("dataset", dataset)
        raw = {"root": root, "split": split, "resolution": NATIVE_RESOLUTION, "fit": "pad"}
    data = comp.factory(structure_as(comp.config, raw, manager, source=f"{dataset} data"))
    if data.labels is None:
        raise DataError(f"{dataset} at {root!r}: no class labels found")
    return data.images, data.labels


DIGITS_RESOLUTION = 16  # the default run's (and the digits dataset's default) resolution


def digits_split(split: str, manager: Any) -> tuple[Tensor, Tensor]:
    """The bundled digits, which have no split of their own: a fixed 80 / 20 train / test division
    (permutation of seed 0), at 16x16 as the default run sees them, then brought to 32x32 exactly as
    :func:`prepare_input` brings a 16x16 run's images."""
    if split not in ("train", "test"):
        raise DataError(f"digits: split must be 'train' or 'test', got {split!r}")
    comp = manager.get("dataset", "digits")
    data = comp.factory(structure_as(comp.config, {"resolution": DIGITS_RESOLUTION}, manager, source="digits data"))
    order = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(order))
    idx = order[:cut] if split == "train" else order[cut:]
    images = prepare_input(data.images[idx], channels=1, resize="bilinear", who="digits")
    return images, data.labels[idx]


def augment(x: Tensor, *, flip: bool, shift: int, generator: torch.Generator) -> Tensor:
    """Random integer shifts of up to ``shift`` pixels (zero fill at -1) and, with ``flip``, mirror images."""
    n = x.shape[0]
    padded = F.pad(x, (shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    size = x.shape[-1]
    rows = (dy[:, None] + torch.arange(size)[None, :])[:, None, :, None]  # [N, 1, H, 1]
    cols = (dx[:, None] + torch.arange(size)[None, :])[:, None, None, :]  # [N, 1, 1, W]
    batch = torch.arange(n)[:, None, None, None]
    chan = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    if flip:
        mirror = torch.rand(n, generator=generator) < 0.5
        out[mirror] = out[mirror].flip(-1)
    return out


@torch.no_grad()
def accuracy(net: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in zip(images.split(batch_size),
                                                                       labels.split(batch_size), strict=True))
    return correct / len(labels)


def train_classifier(config: TrainClassifierConfig, manager: Any, *, log: Any = None) -> dict[str, Any]:
    """Train a :class:`DomainClassifier` and write its weights; returns what the manifest records."""
    if config.threads:
        torch.set_num_threads(config.threads)
    channels, _, class_names = DATASETS[config.dataset]
    x_train, y_train = load_split(config.dataset, config.root, "train", manager, config.cache_dir)
    x_test, y_test = load_split(config.dataset, config.root, "test", manager, config.cache_dir)
    epochs = config.epochs or {"digits": 40, "mnist": 2, "fashion-mnist": 3, "cifar10": 6}[config.dataset]
    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    net = DomainClassifier(channels, len(class_names))
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = len(x_train) // config.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=epochs * steps_per_epoch)
    flip = config.dataset == "cifar10"
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=rng)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            x = augment(x_train[idx], flip=flip, shift=2 if channels == 1 else 4, generator=rng)
            loss = F.cross_entropy(net(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            total += float(loss.detach())
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: train loss {total / steps_per_epoch:.4f}, "
                f"test accuracy {accuracy(net, x_test, y_test):.4f} ({time.perf_counter() - t0:.0f} s)")
    test_acc = accuracy(net, x_test, y_test)
    out = Path(config.out) if config.out else WEIGHTS_DIR / f"{config.dataset}-classifier.safetensors"
    state = {k: t.detach().contiguous() for k, t in net.state_dict().items()}

    def write(tmp: Path) -> None:
        safetensors.torch.save_file(state, str(tmp), metadata={"dataset": config.dataset,
                                                                "test_accuracy": f"{test_acc:.4f}"})

    write_output(out, write)
    out.chmod(0o644)  # the temporary file was private; the weights are meant to be shared
    return {
        "file": out.name,
        "sha256": sha256_file(out),
        "test_accuracy": round(test_acc, 4),
        "test_samples": len(y_test),
        "epochs": epochs,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": (f"ganforge train-classifier --dataset {config.dataset} --root {config.root or 'DEFAULT'} "
                    f"--epochs {epochs} --set seed={config.seed} --set threads={config.threads}"),
        "torch": torch.__version__,
    }


class TrainClassifier:
    """Train a small CNN classifier for domain FID/KID/IS (MNIST, Fashion-MNIST or CIFAR-10)."""

    def __init__(self, config: TrainClassifierConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dataset", choices=tuple(DATASETS), help="which classifier to train")
        parser.add_argument("--root", help="dataset folder (or the CIFAR-10 tarball)")
        parser.add_argument("--out", help="safetensors file to write (default: the bundled weights' place)")
        parser.add_argument("--epochs", type=int, help="passes over the training set")
        parser.add_argument("--manifest", action="store_true",
                            help="also record the file, its hash and test accuracy in weights/manifest.json")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        changes = {k: getattr(args, k) for k in ("dataset", "root", "out", "epochs")
                   if getattr(args, k, None) is not None}
        try:
            config = attrs.evolve(self.config, **changes)
        except ValueError as exc:
            raise ConfigError(f"train-classifier: {exc}") from None
        entry = train_classifier(config, manager, log=lambda m: print(m, file=sys.stderr))
        if getattr(args, "manifest", False):
            manifest = load_manifest()
            manifest[f"{config.dataset}-classifier"] = entry
            from ganforge import atomic_write_text

            atomic_write_text(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        print(json.dumps(entry, indent=2))
        if not math.isfinite(entry["test_accuracy"]):
            raise GanforgeError("training diverged")
        return 0


@hookimpl
def ganforge_register_feature_extractors(register):
    register("digits-classifier", digits_classifier, ClassifierFeaturesConfig)
    register("mnist-classifier", mnist_classifier, ClassifierFeaturesConfig)
    register("fashion-mnist-classifier", fashion_mnist_classifier, ClassifierFeaturesConfig)
    register("cifar10-classifier", cifar10_classifier, ClassifierFeaturesConfig)


@hookimpl
def ganforge_register_commands(register):
    register("train-classifier", TrainClassifier, TrainClassifierConfig)
