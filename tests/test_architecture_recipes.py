"""CPU smoke runs of the architecture recipes in configs/: each trains 2 steps at a small resolution
and width (the recipes' own model, loss, regularizers and schedule), writes a checkpoint, and its
generator samples again from that checkpoint."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ganforge import Trainer, load_config, load_generator
from ganforge.cli import main

from tests.conftest import REPO, SHARED_DATA

COMMON = [
    "train.steps=2", "train.batch_size=8", "train.device=cpu", "output.progress=false", "output.log_every=1",
    "output.sample_every=2", "output.checkpoint_every=2", "output.preview_samples=8", "data.resolution=16",
]
NARROW = {
    "dcgan": ["generator.base_channels=8", "discriminator.base_channels=8"],
    "cdcgan": ["generator.base_channels=8", "discriminator.base_channels=8"],
    "pggan": [f"{net}.{k}" for net in ("generator", "discriminator")
              for k in ("channel_base=128", "channel_max=16", "fade_images=8", "stabilize_images=8")]
    + ["generator.latent_dim=16"],
    "stylegan": [f"{net}.{k}" for net in ("generator", "discriminator") for k in ("channel_base=128", "channel_max=16")]
    + ["generator.latent_dim=16", "generator.w_dim=16"],
}
RECIPES = ["cdcgan-mnist", "pggan-mnist", "stylegan-mnist", "dcgan-cifar10", "stylegan-cifar10"]


def cifar_subset(tmp_path: Path, per_class: int = 4) -> Path:
    """A few training images of every class, unpacked from the shared tarball."""
    tarball = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not tarball.is_file():
        pytest.skip(f"CIFAR-10 not found at {tarball}")
    counts: dict[str, int] = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[0] == "train":
                if counts.get(parts[1], 0) < per_class:
                    counts[parts[1]] = counts.get(parts[1], 0) + 1
                    tar.extract(member, tmp_path, filter="data")
            if len(counts) == 10 and all(c >= per_class for c in counts.values()):
                break
    return tmp_path / "train"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_trains_two_steps_on_cpu(recipe: str, tmp_path: Path) -> None:
    path = REPO / "configs" / f"{recipe}.toml"
    extra = []
    if "mnist" in recipe:
        if not (SHARED_DATA / "mnist").is_dir():
            pytest.skip("real MNIST is not available")
        extra = [f"data.root={SHARED_DATA / 'mnist'}", "data.limit=64"]
    else:
        extra = [f"data.root={cifar_subset(tmp_path / 'cifar')}"]
    config = load_config(path, [*COMMON, *NARROW[recipe.split("-")[0]], *extra])
    assert config.generator.name == recipe.split("-")[0]
    trainer = Trainer(config, tmp_path / "run")
    last = trainer.fit()
    assert (last / "weights.safetensors").is_file() and trainer.step == 2
    assert (tmp_path / "run" / "samples" / "step-00000002.png").is_file()
    trained = load_generator(tmp_path / "run")
    labels = torch.arange(4) % 10 if trained.module.num_classes else None
    x = trained.sample(4, generator=torch.Generator().manual_seed(0), labels=labels)
    assert x.shape == (4, *trainer.dataset.spec.shape) and torch.isfinite(x).all()


def test_cdcgan_samples_the_asked_class_from_the_cli(tmp_path: Path) -> None:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("real MNIST is not available")
    config = load_config(REPO / "configs" / "cdcgan-mnist.toml",
                         [*COMMON, *NARROW["cdcgan"], f"data.root={SHARED_DATA / 'mnist'}", "data.limit=64"])
    Trainer(config, tmp_path / "run").fit()
    out = tmp_path / "three.npy"
    assert main(["sample", str(tmp_path / "run"), "-n", "6", "--class", "3", "--out", str(out)]) == 0
    assert np.load(out).shape == (6, 1, 16, 16)
    assert main(["sample", str(tmp_path / "run"), "-n", "2", "--class", "10", "--out", str(out)]) == 2
