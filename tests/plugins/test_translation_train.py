"""CPU smoke runs of the translation procedures (tiny networks, 16x16 digits, a few dozen steps):
each trains, its losses fall, it writes checkpoints, a JSONL log and input | output | truth grids;
``ganforge translate`` applies a checkpoint; bad configs are refused before anything runs."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from ganforge import CheckpointError, ConfigError, DataError, get_plugin_manager, load_checkpoint, structure_as
from ganforge_plugins.translation.command import Translate, TranslateConfig, load_translator
from ganforge_plugins.translation.data import TranslationDataConfig
from ganforge_plugins.translation.train import TranslationConfig, build, resolve, train
from PIL import Image

MANAGER = get_plugin_manager()
TINY: dict[str, dict[str, Any]] = {
    "pix2pix": {"generator": {"base_channels": 8}, "discriminator": {"base_channels": 8, "n_layers": 2}},
    "cyclegan": {"generator": {"base_channels": 8, "n_blocks": 2},
                 "discriminator": {"base_channels": 8, "n_layers": 2}},
    "stargan": {"generator": {"base_channels": 8, "n_blocks": 2}, "discriminator": {"base_channels": 8}},
}
TASK = {"pix2pix": "edges2mnist", "cyclegan": "mnist-thin2bold", "stargan": "mnist-styles"}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(method: str, root: Path, **changes: Any) -> TranslationConfig:
    settings: dict[str, Any] = {
        "method": method, "steps": 40, "batch_size": 8, "log_every": 1, "sample_every": 20, "checkpoint_every": 20,
        "eval_size": 64, "grid_size": 4, "progress": False, "device": "cpu", "lr": 1e-3,  # fast enough for 40 steps
        "data": TranslationDataConfig(name=TASK[method], root=str(root), resolution=16, limit=512),
        **TINY[method], **changes}
    return TranslationConfig(**settings)


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def first_last(records: list[dict[str, Any]], key: str, n: int = 8) -> tuple[float, float]:
    values = [r[key] for r in records if key in r]
    return statistics.mean(values[:n]), statistics.mean(values[-n:])


def test_pix2pix_trains_on_edges2mnist(mnist_root: Path, tmp_path: Path) -> None:
    config = tiny("pix2pix", mnist_root, steps=60, sample_every=30, checkpoint_every=30)
    before = build(config, MANAGER).evaluate()["test_l1"]
    last = train(config, MANAGER, tmp_path / "run")
    records = log(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 61))
    start, end = first_last(records, "l1")
    assert end < 0.7 * start, (start, end)  # the L1 term falls
    assert last["test_l1"] < 0.7 * before, (before, last["test_l1"])  # on unseen digits too
    assert {"d_loss", "g_adv", "g_loss", "l1", "lr"} <= set(records[0])
    # a grid per sample step: 4 rows of input | output | ground truth, 16x16 tiles with 2-pixel borders
    grids = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step-00000030.png", "step-00000060.png"]
    assert image_size(grids[-1]) == (3 * 18 + 2, 4 * 18 + 2)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.step == 60 and ckpt.meta["kind"] == "translation" and ckpt.meta["method"] == "pix2pix"
    assert set(ckpt.weights) == {"generator", "discriminator"}
    assert {"optimizers", "schedulers", "data_rng"} <= set(ckpt.state)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*")) == \
        ["step-00000030", "step-00000060"]
    # the run's config.toml states every default and loads back to the same config
    import tomllib

    saved = structure_as(TranslationConfig, tomllib.loads((tmp_path / "run" / "config.toml").read_text()), MANAGER)
    assert resolve(saved, MANAGER).generator == resolve(config, MANAGER).generator
    assert saved.lr == 1e-3 and saved.batch_size == 8 and saved.n_critic == 1 and saved.l1_weight == 100.0


def test_pix2pix_without_the_adversarial_term_trains_the_generator_alone(mnist_root: Path, tmp_path: Path) -> None:
    config = tiny("pix2pix", mnist_root, steps=4, adversarial_weight=0.0)
    train(config, MANAGER, tmp_path / "l1")
    assert set(load_checkpoint(tmp_path / "l1").weights) == {"generator"}
    assert "d_loss" not in log(tmp_path / "l1")[0]


def test_cyclegan_trains_on_mnist_thin2bold(mnist_root: Path, tmp_path: Path) -> None:
    config = tiny("cyclegan", mnist_root)
    procedure = build(config, MANAGER)
    assert procedure.pool_x.size == 50 and procedure.resolved.loss.name == "lsgan"
    assert procedure.optimizers["generator"].defaults["betas"] == (0.5, 0.999)
    last = train(config, MANAGER, tmp_path / "run")
    records = log(tmp_path / "run")
    start, end = first_last(records, "cycle")
    assert end < 0.8 * start, (start, end)
    assert {"test_cycle", "test_l1", "test_l1_f"} <= set(last)
    lrs = [r["lr"] for r in records]  # constant for the first half, then linearly to zero
    assert lrs[0] == lrs[18] == pytest.approx(1e-3) and lrs[29] == pytest.approx(0.5e-3) and lrs[-1] == 0.0
    ckpt = load_checkpoint(tmp_path / "run")
    assert set(ckpt.weights) == {"generator", "generator_f", "discriminator_x", "discriminator_y"}
    assert ckpt.state["pool_x"]["images"].shape == (50, 1, 16, 16)


def test_stargan_trains_on_mnist_styles_and_translates_to_a_named_domain(mnist_root: Path, tmp_path: Path) -> None:
    config = tiny("stargan", mnist_root, steps=30, sample_every=30, checkpoint_every=30)
    procedure = build(config, MANAGER)
    assert procedure.resolved.n_critic == 5 and [r.name for r in procedure.resolved.regularizers] == ["wgan-gp"]
    assert procedure.resolved.loss.name == "wgan"
    last = train(config, MANAGER, tmp_path / "run")
    records = log(tmp_path / "run")
    start, end = first_last(records, "rec")
    assert end < 0.8 * start, (start, end)  # the reconstruction term falls
    start, end = first_last(records, "d_cls")
    assert end < start  # the auxiliary classifier learns the domains
    assert {"test_aux_accuracy", "test_l1"} <= set(last)
    # a grid row: input, the 4 translations, the 4 ground truths
    assert image_size(tmp_path / "run" / "samples" / "step-00000030.png") == (9 * 18 + 2, 4 * 18 + 2)
    net, target, meta = load_translator(tmp_path / "run", MANAGER, to="italic")
    assert meta["domains"] == ["plain", "bold", "thin", "italic"] and int(target) == 3
    with pytest.raises(ConfigError, match="unknown target domain 'cursive'; this model knows: plain, bold, thin, ital"):
        load_translator(tmp_path / "run", MANAGER, to="cursive")
    with pytest.raises(ConfigError, match="needs a target domain"):
        load_translator(tmp_path / "run", MANAGER)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        Image.new("L", (28, 28), 60 * i).save(inputs / f"d{i}.png")
    args = type("Args", (), {"checkpoint": str(tmp_path / "run"), "input_dir": str(inputs),
                             "out": str(tmp_path / "out"), "to": "bold"})()
    assert Translate(TranslateConfig(device="cpu")).run(args, MANAGER) == 0
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in outs] == ["d0.png", "d1.png", "d2.png"] and image_size(outs[0]) == (16, 16)
    with torch.no_grad():  # the files hold what the generator computes
        x = torch.full((1, 1, 16, 16), 60 / 255 * 2 - 1)
        y = (net(x, torch.tensor([1])) + 1) / 2
    with Image.open(outs[1]) as image:
        saved = torch.frombuffer(bytearray(image.convert("L").tobytes()), dtype=torch.uint8).float().view(16, 16) / 255
    assert (saved - y[0, 0]).abs().max() < 0.01


@pytest.mark.slow  # three interpreters loading torch and the plugins: about 35 s on a busy 2-core machine
def test_translation_train_command_line(mnist_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "p2p.toml"
    config.write_text(f'method = "pix2pix"\nsteps = 2\nbatch_size = 4\n[data]\nname = "edges2mnist"\n'
                      f'root = "{mnist_root}"\nresolution = 16\nlimit = 32\n')
    sets = ["--set", "generator.base_channels=4", "--set", "discriminator.base_channels=4", "--set", "eval_size=8",
            "--set", "device=cpu"]
    run = subprocess.run([sys.executable, "-m", "ganforge", "translation-train", str(config), *sets, "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert load_checkpoint(tmp_path / "run").step == 2
    bad = subprocess.run([sys.executable, "-m", "ganforge", "translation-train", str(config), "--set",
                          "method=cyclegan", "--out", str(tmp_path / "bad")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "cyclegan trains on unpaired data, but 'edges2mnist' is paired" in bad.stderr
    assert not (tmp_path / "bad").exists()
    (tmp_path / "in").mkdir()
    Image.new("L", (16, 16)).save(tmp_path / "in" / "a.png")
    out = subprocess.run([sys.executable, "-m", "ganforge", "translate", str(tmp_path / "run"), str(tmp_path / "in"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "a.png").is_file()


def test_bad_configs_are_refused_before_training(mnist_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.name: pix2pix trains on paired data, but 'mnist-styles' is domains"):
        resolve(tiny("pix2pix", mnist_root, data=TranslationDataConfig(name="mnist-styles")), MANAGER)
    with pytest.raises(ConfigError) as exc:
        resolve(tiny("pix2pix", mnist_root, generator={"name": "unet2"}, discriminator={"base_channels": -1}), MANAGER)
    assert "generator.name: unknown generator 'unet2'" in str(exc.value)
    assert "discriminator.base_channels" in str(exc.value) and "-1" in str(exc.value)
    with pytest.raises(ConfigError, match=r"auxiliary domain classifier.*'patchgan' has none"):
        build(tiny("stargan", mnist_root, discriminator={"name": "patchgan"}), MANAGER)
    with pytest.raises(ConfigError, match="conditioned on the 4 target domains"):
        build(tiny("stargan", mnist_root, generator={"name": "unet"}), MANAGER)
    with pytest.raises(ConfigError, match=r"regularizers\[0\].name: unknown regularizer 'wgan-pg'"):
        build(tiny("cyclegan", mnist_root, regularizers=({"name": "wgan-pg"},)), MANAGER)
    with pytest.raises(ValueError, match="'method' must be in"):
        TranslationConfig(method="unit")
    # unpaired folders given to pix2pix
    for side in ("trainA", "trainB"):
        (tmp_path / side).mkdir()
        Image.new("RGB", (16, 16)).save(tmp_path / side / "1.png")
    with pytest.raises(DataError, match="unpaired folders"):
        build(tiny("pix2pix", mnist_root, data=TranslationDataConfig(name="aligned", root=str(tmp_path),
                                                                   resolution=16), test_split="none"), MANAGER)


def test_translate_refuses_a_gan_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_translator(tmp_path / "nothing", MANAGER)


@pytest.mark.slow  # reads the CIFAR-10 tarball twice (train and test): about 30 s on a busy machine
def test_pix2pix_maps_one_channel_to_three_on_cifar_colorize(tmp_path: Path) -> None:
    tarball = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
    if not tarball.is_file():
        pytest.skip("the CIFAR-10 jpeg tarball is not available")
    data = TranslationDataConfig(name="cifar-colorize", root=str(tarball), resolution=16, limit=64)
    config = tiny("pix2pix", tarball, data=data, steps=3, eval_size=16, sample_every=3)
    procedure = build(config, MANAGER)
    assert procedure.networks["generator"].latent_spaces[0].shape == (1, 16, 16)  # grayscale in
    assert procedure.networks["discriminator"].condition_channels == 1  # scores concat(gray, colour)
    last = train(config, MANAGER, tmp_path / "run")
    assert 0 < last["test_l1"] < 1
    assert image_size(tmp_path / "run" / "samples" / "step-00000003.png") == (3 * 18 + 2, 4 * 18 + 2)


RECIPES = Path(__file__).resolve().parents[2] / "configs" / "translation"


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.toml")))
def test_translation_recipes_load_and_resolve(recipe: str) -> None:
    from ganforge import load_settings

    config = load_settings(TranslationConfig, RECIPES / recipe, (), MANAGER)
    resolved = resolve(config, MANAGER)
    assert config.method in recipe and config.data.name in recipe
    expected = {"pix2pix": ("unet", "patchgan", "non-saturating"),
                "cyclegan": ("resnet-generator", "patchgan", "lsgan"),
                "stargan": ("resnet-generator", "stargan", "wgan")}[config.method]
    assert (resolved.generator.name, resolved.discriminator.name, resolved.loss.name) == expected


def test_cyclegan_on_your_own_unaligned_folders(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    for side, shade in (("trainA", 40), ("trainB", 200)):
        (tmp_path / side).mkdir()
        for i in range(6):
            noise = torch.randint(0, 30, (16, 16), generator=gen, dtype=torch.uint8)
            Image.fromarray((noise + shade).numpy(), mode="L").convert("RGB").save(tmp_path / side / f"{i}.png")
    data = TranslationDataConfig(name="unaligned", root=str(tmp_path), resolution=16)
    config = tiny("cyclegan", tmp_path, data=data, steps=3, batch_size=2, sample_every=3)
    last = train(config, MANAGER, tmp_path / "run")  # no testA/ testB/: the grids show training images
    assert "test_l1" not in last and (tmp_path / "run" / "samples" / "step-00000003.png").is_file()
    net, _, meta = load_translator(tmp_path / "run", MANAGER, to="A")
    assert meta["method"] == "cyclegan" and net.latent_spaces[0].shape == (3, 16, 16)
    with pytest.raises(ConfigError, match=r"translates to domain A .* or B"):
        load_translator(tmp_path / "run", MANAGER, to="C")
