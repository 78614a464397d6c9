"""``train.memory_format = "channels_last"``: the networks' 4-d weights, their moving averages and
their optimiser state are NHWC, every first-party architecture and procedure trains to the same numbers
as in the default layout, a run resumes bit-identically, and its checkpoints load anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from ganforge import ConfigError, load_checkpoint, load_generator
from ganforge.config import load_config
from ganforge.training import Trainer

from tests.conftest import REPO, TINY

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = ["train.device=cpu", "output.keep_last=0"]
# architecture -> settings over TINY's (the default cDCGAN); PGGAN grows during the 48 images of the run
ARCHITECTURES: dict[str, list[str]] = {
    "dcgan": ["generator.name=dcgan", "discriminator.name=dcgan"],
    "cdcgan": [],
    "pggan": ["generator.name=pggan", "discriminator.name=pggan", "generator.channel_base=64",
              "generator.channel_max=16", "discriminator.channel_base=64", "discriminator.channel_max=16",
              "generator.progressive=true", "discriminator.progressive=true", "generator.fade_images=32",
              "discriminator.fade_images=32", "generator.stabilize_images=16", "discriminator.stabilize_images=16"],
    "stylegan": ["generator.name=stylegan", "discriminator.name=stylegan", "generator.latent_dim=8",
                 "generator.w_dim=8", "generator.channel_base=64", "generator.channel_max=8",
                 "discriminator.channel_base=64", "discriminator.channel_max=8"],
}
# pix2pix without its dropout: a mask is drawn in memory order, so in NHWC each pixel gets another draw
# (the same distribution, other numbers)
TRANSLATION = {"pix2pix": ("pix2pix-edges2mnist.toml", ["generator.base_channels=8", "generator.dropout=0"]),
               "cyclegan": ("cyclegan-mnist-thin2bold.toml", ["generator.base_channels=8", "generator.n_blocks=2"]),
               "stargan": ("stargan-mnist-styles.toml", ["generator.base_channels=8", "generator.n_blocks=2"])}


def gan(out: Path, architecture: str, *extra: str) -> Trainer:
    return Trainer(load_config(None, [*TINY, *CPU, *ARCHITECTURES[architecture], *extra]), out)


def translation(out: Path, procedure: str, root: Path, *extra: str) -> Trainer:
    recipe, narrow = TRANSLATION[procedure]
    settings = [f"data.root={json.dumps(str(root))}", "data.resolution=16", "data.limit=64", "data.test_limit=16",
                "train.steps=3", "train.batch_size=8", "discriminator.base_channels=8", "output.progress=false",
                "output.log_every=1", "output.sample_every=3", "output.checkpoint_every=3", "procedure.grid_size=4",
                *CPU, *narrow, *extra]
    return Trainer(load_config(REPO / "configs" / "translation" / recipe, settings), out)


def is_nhwc(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def conv_tensors(t: Trainer) -> dict[str, list[torch.Tensor]]:
    """The 4-d tensors (with more than one pixel, whose layouts differ) of the networks, their moving
    averages and their optimisers' state."""
    def four_d(tensors: Any) -> list[torch.Tensor]:
        return [x for x in tensors if isinstance(x, torch.Tensor) and x.ndim == 4 and x[0, 0].numel() > 1
                and x.shape[1] > 1]
    state = [v for opt in t.updates.optimizers.values() for s in opt.state.values() for v in s.values()]
    return {"networks": four_d(p for m in t.networks().values() for p in m.parameters()),
            "averages": four_d(p for e in t.emas.values() for p in e.module.parameters()),
            "optimizer state": four_d(state)}


def trained_state(t: Trainer) -> list[torch.Tensor]:
    """The networks, their averages and the optimisers' moments, in a fixed order."""
    state = [v for opt in t.updates.optimizers.values() for s in opt.state.values() for v in s.values()]
    return [*(v for m in t.networks().values() for v in m.state_dict().values()),
            *(v for e in t.emas.values() for v in e.module.state_dict().values()), *state]


def losses(run: Path) -> list[dict[str, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith("loss")} for r in records if "loss_d" in r]


def assert_same_numbers(a: list[dict[str, float]], b: list[dict[str, float]], rel: float = 1e-4) -> None:
    """Step 1 starts both runs from the same weights and batch: its losses agree to rounding."""
    assert a[0].keys() == b[0].keys() and a[0]
    for key in a[0]:
        assert b[0][key] == pytest.approx(a[0][key], rel=rel, abs=1e-6), key
    assert all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in b)


def check_layouts(contiguous: Trainer, channels_last: Trainer) -> None:
    for where, tensors in conv_tensors(channels_last).items():
        if where == "averages" and not channels_last.emas:
            continue
        assert tensors and all(is_nhwc(x) for x in tensors), where
    assert not any(is_nhwc(x) for xs in conv_tensors(contiguous).values() for x in xs)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_each_architecture_trains_in_channels_last_to_the_same_numbers(architecture: str, tmp_path: Path) -> None:
    a = gan(tmp_path / "a", architecture)
    a.fit()
    b = gan(tmp_path / "b", architecture, "train.memory_format=channels_last")
    b.fit()
    check_layouts(a, b)
    assert_same_numbers(losses(tmp_path / "a"), losses(tmp_path / "b"))
    if architecture == "pggan":  # it grew during the run: the new blocks took the layout too
        assert float(b.network("generator").alpha) > 0.0


@pytest.mark.parametrize("procedure", list(TRANSLATION))
def test_each_translation_procedure_trains_in_channels_last_to_the_same_numbers(
        procedure: str, mnist_root: Path, tmp_path: Path) -> None:
    a = translation(tmp_path / "a", procedure, mnist_root)
    a.fit()
    b = translation(tmp_path / "b", procedure, mnist_root, "train.memory_format=channels_last")
    b.fit()
    check_layouts(a, b)
    assert_same_numbers(losses(tmp_path / "a"), losses(tmp_path / "b"))


def test_the_comparison_can_fail(tmp_path: Path) -> None:
    """Another seed's step 1 is not within the tolerance, and a contiguous run is not NHWC."""
    a = gan(tmp_path / "a", "dcgan")
    a.fit()
    b = gan(tmp_path / "b", "dcgan", "train.seed=1")
    b.fit()
    with pytest.raises(AssertionError):
        assert_same_numbers(losses(tmp_path / "a"), losses(tmp_path / "b"))
    with pytest.raises(AssertionError):
        check_layouts(a, b)


@pytest.mark.parametrize("architecture", ["dcgan", "pggan", "stylegan"])
def test_a_channels_last_run_resumes_bit_identically(architecture: str, tmp_path: Path) -> None:
    nhwc = "train.memory_format=channels_last"
    straight = gan(tmp_path / "straight", architecture, nhwc, "train.steps=5")
    straight.fit()
    gan(tmp_path / "resumed", architecture, nhwc, "train.steps=2").fit()
    resumed = gan(tmp_path / "resumed", architecture, nhwc, "train.steps=5")
    resumed.load_training_state(load_checkpoint(tmp_path / "resumed"))
    assert resumed.step == 2
    resumed.fit()
    check_layouts(gan(tmp_path / "unused", architecture), resumed)  # loading kept the layout
    for x, y in zip(trained_state(straight), trained_state(resumed), strict=True):
        assert torch.equal(x, y)


def test_a_channels_last_checkpoint_samples_as_the_run_did(tmp_path: Path) -> None:
    """Checkpoints hold plain tensors: a channels-last run's generator loads and samples the same."""
    t = gan(tmp_path / "run", "stylegan", "train.memory_format=channels_last")
    t.fit()
    loaded = load_generator(tmp_path / "run")
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = t.sampling_generator.eval()(z)
        got = loaded.module(z)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_an_unknown_memory_format_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.memory_format: must be in \('contiguous', 'channels_last'\) "
                                          r"\(got 'nhwc'\)"):
        load_config(None, [*TINY, "train.memory_format=nhwc"])
