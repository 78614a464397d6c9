"""pix2pix, CycleGAN and StarGAN as procedures of the one training loop, on CPU (tiny networks, 16x16
digits, a few dozen steps): each trains through ``Trainer``, its losses fall, it writes checkpoints in
the one meta schema, a JSONL log and input | output | truth grids; ``ganforge translate`` applies a
checkpoint; bad configs are refused before anything runs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch
from ganforge import ConfigError, DataError, Trainer, get_plugin_manager, load_checkpoint, load_config, load_run
from ganforge_plugins.translation.command import Translate, TranslateConfig
from PIL import Image

MANAGER = get_plugin_manager()
RECIPES = Path(__file__).resolve().parents[2] / "configs" / "translation"
RECIPE = {"pix2pix": "pix2pix-edges2mnist.toml", "cyclegan": "cyclegan-mnist-thin2bold.toml",
          "stargan": "stargan-mnist-styles.toml"}
TINY: dict[str, list[str]] = {
    "pix2pix": ["generator.base_channels=8", "discriminator.base_channels=8"],
    "cyclegan": ["generator.base_channels=8", "generator.n_blocks=2", "discriminator.base_channels=8"],
    "stargan": ["generator.base_channels=8", "generator.n_blocks=2", "discriminator.base_channels=8"],
}

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(procedure: str, root: Path, *extra: str) -> list[str]:
    return [f"data.root={json.dumps(str(root))}", "data.resolution=16", "data.limit=512", "data.test_limit=64",
            "train.steps=40", "train.batch_size=8", "train.device=\"cpu\"", "optim.g.lr=1e-3", "optim.d.lr=1e-3",
            "output.log_every=1", "output.sample_every=20", "output.checkpoint_every=20", "output.progress=false",
            "output.keep_last=0", "procedure.grid_size=4", *TINY[procedure], *extra]


def trainer(procedure: str, root: Path, out: Path, *extra: str) -> Trainer:
    return Trainer(load_config(RECIPES / RECIPE[procedure], tiny(procedure, root, *extra), MANAGER), out,
                   manager=MANAGER)


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def first_last(records: list[dict[str, Any]], key: str, n: int = 8) -> tuple[float, float]:
    values = [r[key] for r in records if key in r]
    return statistics.mean(values[:n]), statistics.mean(values[-n:])


def test_pix2pix_trains_on_edges2mnist(mnist_root: Path, tmp_path: Path) -> None:
    t = trainer("pix2pix", mnist_root, tmp_path / "run", "train.steps=60", "output.sample_every=30",
                "output.checkpoint_every=30")
    before = t.evaluate()["test_l1"]
    t.fit()
    records = log(tmp_path / "run")
    losses = [r for r in records if "loss_g" in r]
    assert [r["step"] for r in losses] == list(range(1, 61))
    start, end = first_last(losses, "reconstruction")
    assert end < 0.7 * start, (start, end)  # the L1 term falls
    last = [r for r in records if "test_l1" in r][-1]
    assert last["test_l1"] < 0.7 * before, (before, last["test_l1"])  # on unseen digits too
    assert {"loss_d", "loss_g", "g_adversarial", "reconstruction"} <= set(losses[0])
    # a grid per sample step: 4 rows of input | output | ground truth, 16x16 tiles with 2-pixel borders
    grids = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step-00000030.png", "step-00000060.png"]
    assert image_size(grids[-1]) == (3 * 18 + 2, 4 * 18 + 2)
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt.step == 60 and ckpt.meta["procedure"] == "pix2pix"
    assert ckpt.meta["data_specs"]["source"]["shape"] == [1, 16, 16]
    assert set(ckpt.weights) == {"generator", "discriminator"}  # pix2pix keeps no moving average
    assert set(ckpt.state["optimizers"]) == {"g", "d"}
    # the recorded config states the paper's defaults and rebuilds the same run
    config = load_config(tmp_path / "run" / "config.toml", (), MANAGER)
    assert config == t.config
    assert config.loss.name == "non-saturating" and config.optim.g.decay_start == 0.5
    params = config.procedure.params
    assert params.reconstruction_weight == 100.0 and params.reconstruction.name == "l1"


def test_eval_and_sample_on_a_translation_run(mnist_root: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from ganforge.cli import main

    trainer("pix2pix", mnist_root, tmp_path / "run", "train.steps=3", "output.sample_every=3").fit()
    logged = [r for r in log(tmp_path / "run") if "test_l1" in r][-1]["test_l1"]
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--device", "cpu"]) == 0  # the procedure's own held-out errors
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["test_l1"] == pytest.approx(logged, rel=1e-5)
    assert result["protocol"]["procedure"] == "pix2pix"
    assert main(["sample", str(tmp_path / "run"), "--out", str(tmp_path / "s.png")]) == 2
    assert "translates images instead of sampling from a prior; use `ganforge translate" in capsys.readouterr().err
    # the GAN metrics' options do not apply to a translation run: refused, not silently ignored
    assert main(["eval", str(tmp_path / "run"), "--device", "cpu", "--metrics", "fid", "-n", "100"]) == 2
    err = capsys.readouterr().err
    assert "--metrics, -n: run" in err and "translates images (procedure 'pix2pix')" in err
    # translate never writes over its inputs, nor two inputs onto one output
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("L", (16, 16), 40).save(inputs / name)
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    assert main(["translate", str(tmp_path / "run"), str(inputs), "--out", str(inputs)]) == 2
    assert "is INPUT_DIR: the translations" in capsys.readouterr().err
    Image.new("L", (16, 16), 200).convert("RGB").save(inputs / "a.jpg")
    assert main(["translate", str(tmp_path / "run"), str(inputs), "--out", str(tmp_path / "out")]) == 2
    assert "a.jpg and a.png -> a.png" in capsys.readouterr().err and not (tmp_path / "out").exists()
    (inputs / "a.jpg").unlink()
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before
    assert main(["translate", str(tmp_path / "run"), str(inputs), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_pix2pix_without_the_adversarial_term_trains_the_generator_alone(mnist_root: Path, tmp_path: Path) -> None:
    trainer("pix2pix", mnist_root, tmp_path / "l1", "train.steps=4", "procedure.adversarial_weight=0.0").fit()
    assert set(load_checkpoint(tmp_path / "l1").weights) == {"generator"}
    assert "loss_d" not in log(tmp_path / "l1")[0] and load_checkpoint(tmp_path / "l1").meta["images_seen"] == 32


def test_cyclegan_trains_on_mnist_thin2bold(mnist_root: Path, tmp_path: Path) -> None:
    t = trainer("cyclegan", mnist_root, tmp_path / "run")
    assert t.procedure.pool_x.size == 50 and t.config.loss.name == "lsgan"
    assert t.updates.optimizers["g"].defaults["betas"] == (0.5, 0.999)
    # G and F share one optimiser, D_X and D_Y the other (the authors' itertools.chain)
    g_params = t.updates.optimizers["g"].param_groups[0]["params"]
    assert len(g_params) == 2 * len(list(t.network("generator").parameters()))
    t.fit()
    records = [r for r in log(tmp_path / "run") if "cycle" in r]
    start, end = first_last(records, "cycle")
    assert end < 0.8 * start, (start, end)
    tests = [r for r in log(tmp_path / "run") if "test_cycle" in r]
    assert {"test_cycle", "test_l1", "test_l1_f"} <= set(tests[-1])
    ckpt = load_checkpoint(tmp_path / "run")
    assert set(ckpt.weights) == {"generator", "generator_f", "discriminator_x", "discriminator_y"}
    assert ckpt.state["procedure"]["pool_x"]["images"].shape == (50, 1, 16, 16)


def test_the_learning_rate_is_constant_then_decays_linearly(mnist_root: Path, tmp_path: Path) -> None:
    t = trainer("cyclegan", mnist_root, tmp_path / "run", "train.steps=10", "procedure.pool_size=0")
    seen = []
    for _ in range(10):
        t.train_step()
        seen.append(t.updates.optimizers["g"].param_groups[0]["lr"])
    assert seen[:5] == [pytest.approx(1e-3)] * 5 and seen[5] == pytest.approx(1e-3) and seen[7] == pytest.approx(0.6e-3)
    assert seen[9] == pytest.approx(0.2e-3)


def test_stargan_trains_on_mnist_styles_and_translates_to_a_named_domain(mnist_root: Path, tmp_path: Path) -> None:
    t = trainer("stargan", mnist_root, tmp_path / "run", "train.steps=30", "output.sample_every=30",
                "output.checkpoint_every=30")
    c = t.config
    assert c.train.n_critic == 5 and [r.name for r in c.regularizers] == ["wgan-gp"] and c.loss.name == "wgan"
    t.fit()
    records = [r for r in log(tmp_path / "run") if "loss_g" in r]
    start, end = first_last(records, "reconstruction")
    assert end < 0.8 * start, (start, end)  # the reconstruction term falls
    start, end = first_last(records, "d_classification")
    assert end < start  # the auxiliary classifier learns the domains
    assert {"test_aux_accuracy", "test_l1"} <= set(log(tmp_path / "run")[-1])
    # a grid row: input, the 4 translations, the 4 ground truths
    assert image_size(tmp_path / "run" / "samples" / "step-00000030.png") == (9 * 18 + 2, 4 * 18 + 2)
    run = load_run(tmp_path / "run")
    assert run.procedure.translation(run.specs, "italic")[2] == 3
    with pytest.raises(ConfigError, match="unknown target domain 'cursive'; this model knows: plain, bold, thin, ital"):
        run.procedure.translation(run.specs, "cursive")
    with pytest.raises(ConfigError, match="needs a target domain"):
        run.procedure.translation(run.specs, None)
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
        y = (run.networks["generator"](x, torch.tensor([1])) + 1) / 2
    with Image.open(outs[1]) as image:
        saved = torch.frombuffer(bytearray(image.convert("L").tobytes()), dtype=torch.uint8).float().view(16, 16) / 255
    assert (saved - y[0, 0]).abs().max() < 0.01


def test_the_paper_stargan_generator_is_the_procedure_default(mnist_root: Path, tmp_path: Path) -> None:
    config = load_config(None, ["procedure.name=stargan", "data.name=mnist-styles",
                                f"data.root={json.dumps(str(mnist_root))}"], MANAGER)
    assert config.generator.name == "stargan" and config.discriminator.name == "stargan"
    assert config.optim.g.lr == 1e-4 and config.train.batch_size == 16


def test_bad_configs_are_refused_before_training(mnist_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.name: pix2pix trains on paired data, but the dataset holds domains"):
        trainer("pix2pix", mnist_root, tmp_path / "a", "data.name=mnist-styles")
    with pytest.raises(ConfigError, match=r"data.name: cyclegan trains on unpaired data.*samples without a source"):
        Trainer(load_config(None, ["procedure.name=cyclegan"], MANAGER), tmp_path / "b", manager=MANAGER)
    with pytest.raises(ConfigError) as exc:
        load_config(RECIPES / RECIPE["pix2pix"], ["generator.name=unet2", "discriminator.base_channels=-1"], MANAGER)
    assert "generator.name: unknown generator 'unet2'" in str(exc.value)
    with pytest.raises(ConfigError, match="auxiliary domain classifier"):
        trainer("stargan", mnist_root, tmp_path / "c", "discriminator.name=patchgan")
    with pytest.raises(ConfigError, match="conditioned on the 4 target domains"):
        trainer("stargan", mnist_root, tmp_path / "d", "generator.name=unet")
    with pytest.raises(ConfigError, match=r"procedure.cycle.name: unknown loss-term 'l3'.*did you mean"):
        load_config(RECIPES / RECIPE["cyclegan"], ["procedure.cycle.name=l3"], MANAGER)
    with pytest.raises(ConfigError, match=r"procedure\.cycle\.name: 'cross-entropy' is a classification term"):
        trainer("cyclegan", mnist_root, tmp_path / "e", "procedure.cycle.name=cross-entropy")
    with pytest.raises(ConfigError, match=r"regularizers\[0\].name: unknown regularizer 'wgan-pg'"):
        load_config(RECIPES / RECIPE["cyclegan"], ['regularizers=[{name = "wgan-pg"}]'], MANAGER)
    # unpaired folders given to pix2pix
    for side in ("trainA", "trainB"):
        (tmp_path / side).mkdir()
        Image.new("RGB", (16, 16)).save(tmp_path / side / "1.png")
    with pytest.raises(DataError, match="unpaired folders"):
        trainer("pix2pix", mnist_root, tmp_path / "f", "data.name=aligned", f"data.root={json.dumps(str(tmp_path))}",
                "data.test_split=\"none\"")
    # a generator penalty a translation procedure would never evaluate, and a callback that cannot judge
    # its data, are refused when the run is built (the first ran silently, the second failed at step 1)
    with pytest.raises(ConfigError, match=r"'path-length' penalises the generator, but procedure 'cyclegan' "
                                          r"applies penalties to the discriminator only"):
        trainer("cyclegan", mnist_root, tmp_path / "g", 'regularizers=[{name = "path-length"}]')
    with pytest.raises(ConfigError, match=r"callbacks\[0\] 'eval': it compares the generator's samples with the "
                                          r"training images, and dataset 'edges2mnist' \(procedure 'pix2pix'\)"):
        trainer("pix2pix", mnist_root, tmp_path / "h", 'callbacks=[{name = "eval", metrics = ["fid"]}]')
    assert trainer("pix2pix", mnist_root, tmp_path / "i", 'regularizers=[{name = "r1"}]').config.regularizers
    assert not any((tmp_path / name).exists() for name in "abcdefgh")


def test_a_cycle_term_is_swapped_from_the_config_alone(mnist_root: Path, tmp_path: Path) -> None:
    l1 = trainer("cyclegan", mnist_root, tmp_path / "l1", "train.steps=1")
    l2 = trainer("cyclegan", mnist_root, tmp_path / "l2", "train.steps=1", "procedure.cycle.name=l2")
    assert type(l1.procedure.cycle).__name__ == "L1" and type(l2.procedure.cycle).__name__ == "L2"
    x = torch.zeros(1, 1, 2, 2)
    y = torch.full((1, 1, 2, 2), 2.0)
    assert l1.procedure.cycle(x, y).item() == 2.0 and l2.procedure.cycle(x, y).item() == 4.0


def test_translate_refuses_a_gan_checkpoint(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    from tests.conftest import TINY as GAN_TINY

    t = Trainer(load_config(None, [*GAN_TINY, "train.steps=1"], MANAGER), tmp_path / "gan", manager=MANAGER)
    t.fit()
    (tmp_path / "in").mkdir()
    args = type("Args", (), {"checkpoint": str(tmp_path / "gan"), "input_dir": str(tmp_path / "in"),
                             "out": str(tmp_path / "out"), "to": None})()
    with pytest.raises(Exception, match="trained by procedure 'gan', which does not translate images"):
        Translate(TranslateConfig(device="cpu")).run(args, MANAGER)


@pytest.mark.slow  # reads the CIFAR-10 tarball twice (train and test): about 30 s on a busy machine
def test_pix2pix_maps_one_channel_to_three_on_cifar_colorize(tmp_path: Path) -> None:
    tarball = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
    if not tarball.is_file():
        pytest.skip("the CIFAR-10 jpeg tarball is not available")
    t = Trainer(load_config(RECIPES / "pix2pix-cifar-colorize.toml",
                            [*tiny("pix2pix", tarball, "train.steps=3", "output.sample_every=3", "data.limit=64",
                                   "data.test_limit=16")], MANAGER), tmp_path / "run", manager=MANAGER)
    assert t.network("generator").latent_spaces[0].shape == (1, 16, 16)  # grayscale in
    assert t.network("discriminator").condition_channels == 1  # scores concat(gray, colour)
    t.fit()
    assert 0 < log(tmp_path / "run")[-1]["test_l1"] < 1
    assert image_size(tmp_path / "run" / "samples" / "step-00000003.png") == (3 * 18 + 2, 4 * 18 + 2)


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.toml")))
def test_translation_recipes_load_and_resolve(recipe: str) -> None:
    config = load_config(RECIPES / recipe, (), MANAGER)
    assert config.procedure.name in recipe and config.data.name in recipe
    expected = {"pix2pix": ("unet", "patchgan", "non-saturating"),
                "cyclegan": ("resnet-generator", "patchgan", "lsgan"),
                "stargan": ("resnet-generator", "stargan", "wgan")}[config.procedure.name]
    assert (config.generator.name, config.discriminator.name, config.loss.name) == expected


def test_cyclegan_on_your_own_unaligned_folders(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    for side, shade in (("trainA", 40), ("trainB", 200)):
        (tmp_path / side).mkdir()
        for i in range(6):
            noise = torch.randint(0, 30, (16, 16), generator=gen, dtype=torch.uint8)
            Image.fromarray((noise + shade).numpy(), mode="L").convert("RGB").save(tmp_path / side / f"{i}.png")
    t = trainer("cyclegan", tmp_path, tmp_path / "run", "data.name=unaligned", f"data.root={json.dumps(str(tmp_path))}",
                "data.resolution=16", "train.steps=3",
                "train.batch_size=2", "output.sample_every=3")
    t.fit()  # no testA/ testB/: the grids show training images
    assert not any("test_l1" in r for r in log(tmp_path / "run"))
    assert (tmp_path / "run" / "samples" / "step-00000003.png").is_file()
    run = load_run(tmp_path / "run")
    role, source, _ = run.procedure.translation(run.specs, "A")
    assert role == "generator_f" and run.networks[role].latent_spaces[0].shape == (3, 16, 16) == source.shape
    with pytest.raises(ConfigError, match=r"translates to domain A .* or B"):
        run.procedure.translation(run.specs, "C")
