"""The 2-D lab: mixtures with known modes, the mode-coverage metrics, MLP networks, ``ganforge lab``."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ganforge import ConfigError, DataSpec, RunConfig, get_plugin_manager, structure_as
from ganforge_plugins.datasets.mixtures import Grid25Config, Ring8Config, grid25, grid_centres, ring8, ring_centres
from ganforge_plugins.lab.command import (
    DEFAULT_COMBINATIONS,
    Combination,
    LabConfig,
    compose,
    describe,
    estimated_cost,
    longest_first,
    plan,
)
from ganforge_plugins.lab.metrics import mode_stats, nearest_mode
from ganforge_plugins.models.mlp import MLPDiscriminator, MLPDiscriminatorConfig, MLPGenerator, MLPGeneratorConfig
from PIL import Image

MANAGER = get_plugin_manager()

# -- datasets -----------------------------------------------------------------------------------


def test_ring8_has_eight_modes_on_a_circle_of_radius_two() -> None:
    data = ring8(Ring8Config())
    assert data.spec == DataSpec(shape=(2,)) and data.labels is None and data.sigma == 0.02
    assert data.images.shape == (100_000, 2) and data.images.dtype == torch.float32
    c = data.centres.double()
    assert c.shape == (8, 2)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64), atol=1e-6)
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    assert torch.allclose(angles, torch.arange(8, dtype=torch.float64) * math.pi / 4, atol=1e-6)
    assert torch.allclose(data.centres[2], torch.tensor([0.0, 2.0]), atol=1e-6)


def test_grid25_has_a_five_by_five_grid_over_minus_four_to_four() -> None:
    data = grid25(Grid25Config())
    assert data.sigma == 0.05 and data.centres.shape == (25, 2)
    points = {(round(float(x)), round(float(y))) for x, y in data.centres}
    assert points == {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert torch.equal(grid_centres(5, 4.0), data.centres)
    assert torch.equal(ring_centres(8, 2.0), ring8(Ring8Config(n=10)).centres)


@pytest.mark.parametrize("make, config", [(ring8, Ring8Config(n=50_000)), (grid25, Grid25Config(n=50_000))],
                         ids=["ring8", "grid25"])
def test_samples_follow_the_mixture(make, config) -> None:
    data = make(config)
    k = len(data.centres)
    # every sample's nearest centre is the mode it was drawn from (modes are 40+ sigma apart)
    index, _ = nearest_mode(data.images, data.centres)
    assert torch.equal(index, data.modes)
    # equal weights: each mode's share within 4 standard errors of 1/k
    share = torch.bincount(data.modes, minlength=k).double() / len(data.modes)
    assert (share - 1 / k).abs().max() < 4 * math.sqrt((1 / k) * (1 - 1 / k) / len(data.modes))
    # isotropic N(centre, sigma^2): per-axis std within 2 % of sigma, centred on the mode
    offsets = (data.images - data.centres[data.modes]).double()
    assert torch.allclose(offsets.std(dim=0), torch.full((2,), data.sigma, dtype=torch.float64), rtol=0.02)
    assert offsets.mean(dim=0).abs().max() < 4 * data.sigma / math.sqrt(len(offsets))
    # hence 98.9 % of real samples are high quality (chi-square, 2 dof: 1 - exp(-9/2))
    stats = mode_stats(data.images[:2500], data.centres, data.sigma)
    assert stats.modes_covered == k and abs(stats.high_quality - (1 - math.exp(-4.5))) < 0.01


def test_the_sample_is_fixed_by_its_seed_and_size() -> None:
    a, b = ring8(Ring8Config(n=1000, seed=3)), ring8(Ring8Config(n=1000, seed=3))
    c = ring8(Ring8Config(n=1000, seed=4))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert len(grid25(Grid25Config(n=123)).images) == 123


@pytest.mark.parametrize("field, value", [("n", 0), ("sigma", 0.0), ("sigma", -0.1), ("seed", -1)])
def test_bad_mixture_settings_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        structure_as(RunConfig, {**compose(LabConfig(), DEFAULT_COMBINATIONS[0], "ring8", 0),
                                 "data": {"name": "ring8", field: value}}, MANAGER)


# -- metrics ------------------------------------------------------------------------------------

RING = ring_centres()
SIGMA = 0.02


def test_every_mode_hit_exactly_covers_all_modes() -> None:
    samples = RING.repeat(100, 1)  # 800 samples, 100 at each centre
    stats = mode_stats(samples, RING, SIGMA)
    assert stats.modes_covered == 8 and stats.high_quality == 1.0 and stats.counts == (100,) * 8


def test_a_collapsed_generator_covers_one_mode() -> None:
    samples = RING[3] + 0.01 * torch.randn(2500, 2, generator=torch.Generator().manual_seed(0))
    stats = mode_stats(samples, RING, SIGMA)
    # 0.01 = sigma / 2: all but a chi-square tail of exp(-0.06^2 / (2 * 0.01^2)) ~ 1.5e-8 is within 3 sigma
    assert stats.modes_covered == 1 and stats.high_quality == 1.0 and stats.counts[3] == 2500


def test_off_centre_samples_are_low_quality() -> None:
    direction = torch.tensor([0.6, 0.8])
    just_in = RING + 2.99 * SIGMA * direction
    just_out = RING + 3.01 * SIGMA * direction
    between = (RING + RING.roll(1, 0)) / 2  # midpoints on the chords between neighbouring modes
    assert mode_stats(just_in, RING, SIGMA).high_quality == 1.0
    assert mode_stats(just_out, RING, SIGMA).high_quality == 0.0
    mixed = torch.cat([just_in, just_out, between, torch.full((8, 2), float("nan"))])
    stats = mode_stats(mixed, RING, SIGMA)
    assert stats.high_quality == 8 / 32 and stats.modes_covered == 8 and stats.counts == (1,) * 8


def test_a_mode_needs_one_percent_of_the_samples() -> None:
    far = torch.full((2500 - 8 * 25 + 1, 2), 10.0)  # fills the batch with low-quality samples
    samples = torch.cat([RING.repeat(25, 1)[:-1], far])  # mode 7 gets 24 samples, the others 25
    assert len(samples) == 2500
    stats = mode_stats(samples, RING, SIGMA)
    assert stats.counts == (25,) * 7 + (24,) and stats.modes_covered == 7
    assert stats.high_quality == pytest.approx(199 / 2500)
    assert mode_stats(samples, RING, SIGMA, min_fraction=24 / 2500).modes_covered == 8


def test_metrics_refuse_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"samples: expected \[N, 2\]"):
        mode_stats(torch.zeros(5, 3), RING, SIGMA)


# -- MLP networks -------------------------------------------------------------------------------


def test_mlp_generator_is_linear_for_vectors_and_tanh_for_images() -> None:
    g = MLPGenerator(MLPGeneratorConfig(latent_dim=4, width=8, depth=2), DataSpec(shape=(2,)))
    assert g.latent_spaces[0].shape == (4,) and not any(isinstance(m, torch.nn.Tanh) for m in g.modules())
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert g(z).shape == (64, 2) and g(100 * z).abs().max() > 1.0  # unbounded output
    image = MLPGenerator(MLPGeneratorConfig(latent_dim=4, width=8, depth=2), DataSpec(shape=(3, 4, 4)))
    x = image(100 * z)
    assert x.shape == (64, 3, 4, 4) and x.abs().max() <= 1.0


def test_mlp_layers_follow_the_config() -> None:
    config = MLPGeneratorConfig(latent_dim=5, width=7, depth=3, activation="elu", batch_norm=True)
    g = MLPGenerator(config, DataSpec(shape=(2,)))
    linears = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 7), (7, 7), (7, 2)]
    assert sum(isinstance(m, torch.nn.ELU) for m in g.modules()) == 3
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules()) == 3


def test_packing_scores_consecutive_samples_jointly() -> None:
    d = MLPDiscriminator(MLPDiscriminatorConfig(width=8, depth=2, pack=2), DataSpec(shape=(2,)))
    x = torch.randn(6, 2)
    logits = d(x)
    assert logits.shape == (3,)
    assert torch.allclose(logits, d.net(torch.cat([x[0::2], x[1::2]], dim=1)).flatten())
    with pytest.raises(ConfigError, match=r"discriminator.pack: 2 must divide the batch size, got a batch of 5"):
        d(torch.randn(5, 2))


def test_a_batch_that_packing_cannot_split_is_refused_before_training(tmp_path: Path) -> None:
    from ganforge import Trainer

    raw = compose(LabConfig(), Combination(name="pac3", overrides={"discriminator": {"pack": 3}}), "grid25", 0)
    config = structure_as(RunConfig, raw, get_plugin_manager())
    with pytest.raises(ConfigError, match=r"train.batch_size: 256 must be a multiple of 3: discriminator 'mlp' "
                                          r"scores samples in groups of 3"):
        Trainer(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    raw["train"]["batch_size"] = 255
    assert Trainer(structure_as(RunConfig, raw, get_plugin_manager()), tmp_path / "ok").config.train.batch_size == 255


def test_scale_sets_the_networks_units() -> None:
    spec = DataSpec(shape=(2,))
    torch.manual_seed(0)
    g1 = MLPGenerator(MLPGeneratorConfig(width=8, scale=1.0), spec)
    g4 = MLPGenerator(MLPGeneratorConfig(width=8, scale=4.0), spec)
    g4.net.load_state_dict(g1.net.state_dict())
    z = torch.randn(16, g1.latent_spaces[0].shape[0])
    assert torch.allclose(g4(z), 4 * g1(z))
    d1 = MLPDiscriminator(MLPDiscriminatorConfig(width=8, scale=1.0), spec)
    d4 = MLPDiscriminator(MLPDiscriminatorConfig(width=8, scale=4.0), spec)
    d4.net.load_state_dict(d1.net.state_dict())
    x = torch.randn(16, 2)
    assert torch.allclose(d4(4 * x), d1(x), atol=1e-6)
    assert float(g4.state_dict()["scale"]) == 4.0  # saved with the weights


def test_he_initialised_generator_spreads_its_samples() -> None:
    torch.manual_seed(0)
    z = torch.randn(4000, 16)
    he = MLPGenerator(MLPGeneratorConfig(init="he"), DataSpec(shape=(2,)))(z).detach()
    default = MLPGenerator(MLPGeneratorConfig(init="pytorch"), DataSpec(shape=(2,)))(z).detach()
    assert he.std(dim=0).min() > 0.3 and default.std(dim=0).max() < 0.1


def test_bad_mlp_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="activation"):
        MLPGeneratorConfig(activation="gelu")
    with pytest.raises(ValueError, match="pack"):
        MLPDiscriminatorConfig(pack=0)


# -- composing runs -----------------------------------------------------------------------------


def test_a_combination_composes_into_an_ordinary_run_config() -> None:
    combination = Combination(
        name="wgan-ish", loss="hinge", regularizers=({"name": "r1", "gamma": 0.5},), n_critic=3,
        optim={"d": {"lr": 4e-4}}, overrides={"discriminator": {"pack": 2}, "train": {"steps": 7}},
    )
    lab = LabConfig(base={"generator": {"width": 32}}, combinations=(combination,))
    config = structure_as(RunConfig, compose(lab, combination, "grid25", 5), MANAGER)
    assert config.data.name == "grid25" and config.loss.name == "hinge"
    assert [r.name for r in config.regularizers] == ["r1"] and config.regularizers[0].params.gamma == 0.5
    assert config.train.n_critic == 3 and config.train.seed == 5 and config.train.steps == 7
    assert config.optim.d.lr == 4e-4 and config.optim.g.lr == 1e-3  # the rest of the base optimiser stays
    assert config.discriminator.params.pack == 2 and config.generator.params.width == 32
    assert config.output.checkpoint_every > config.train.steps and not config.output.progress
    assert describe(combination) == ("hinge + r1 (gamma=0.5), n_critic 3, optim.d.lr=0.0004, discriminator.pack=2, "
                                     "train.steps=7")


def test_every_run_is_checked_before_training(tmp_path: Path) -> None:
    bad = LabConfig(combinations=(Combination(name="typo", loss="minimx"),
                                  Combination(name="zero", n_critic=1, regularizers=({"name": "r1", "gamma": -1},))))
    with pytest.raises(ConfigError) as info:
        plan(bad, tmp_path, MANAGER)
    text = str(info.value)
    assert "combination 'typo'" in text and "unknown loss 'minimx'" in text
    assert "combination 'zero'" in text and "gamma" in text
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="n_critic"):
        Combination(name="x", n_critic=0)
    with pytest.raises(ValueError, match="must be distinct, got a more than once"):
        LabConfig(combinations=(Combination(name="a"), Combination(name="a")))


def test_a_bad_dataset_is_reported_once_for_every_combination(tmp_path: Path) -> None:
    lab = LabConfig(datasets=("ring8", "ring"))
    with pytest.raises(ConfigError) as info:
        plan(lab, tmp_path, MANAGER)
    text = str(info.value)
    assert text.count("unknown dataset 'ring'") == 1, text  # not once per combination
    assert text.startswith("invalid run config of every combination on 'ring':") and "did you mean 'ring8'" in text
    one = LabConfig(datasets=("ring",), combinations=(Combination(name="solo"),))
    with pytest.raises(ConfigError, match="invalid run config of combination 'solo' on 'ring'"):
        plan(one, tmp_path, MANAGER)


def test_the_longest_runs_are_started_first(tmp_path: Path) -> None:
    jobs = plan(LabConfig(), tmp_path, MANAGER)
    cost = {(j.combination, j.dataset): j.cost for j in jobs}
    # the wider, deeper best combination with 3x the grid steps costs more than any base run
    assert cost[("ns-gan-pac2-r1", "grid25")] > cost[("ns-gan-pac2-r1", "ring8")] > cost[("gan", "grid25")]
    assert cost[("gan", "ring8")] == cost[("ns-gan", "ring8")]  # same networks, same steps
    order = [jobs[i] for i in longest_first(jobs)]
    assert [(j.combination, j.dataset) for j in order[:3]] == [("ns-gan-pac2-r1", "grid25")] * 3
    assert [j.seed for j in order[:3]] == [0, 1, 2]  # ties keep the job order
    assert all(a.cost >= b.cost for a, b in itertools.pairwise(order))
    # the cost follows updates x batch x parameters: twice the steps double it
    base = structure_as(RunConfig, jobs[0].raw, MANAGER)
    longer = structure_as(RunConfig, {**jobs[0].raw, "train": {**jobs[0].raw["train"], "steps": 2 * base.train.steps}},
                          MANAGER)
    assert estimated_cost(longer, MANAGER) == 2 * estimated_cost(base, MANAGER)


# -- the command --------------------------------------------------------------------------------

TINY_LAB = [
    "--set", "seeds=[0, 1]", "--set", "base.train.steps=30", "--set", "base.train.batch_size=64",
    "--set", "base.generator.width=16", "--set", "base.discriminator.width=16", "--set", "samples=500",
    "--set", "base.data.n=2000",
]


def _lab(args: list[str], env: dict[str, str], cwd: Path, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganforge", "lab", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def test_lab_command_writes_table_picture_and_json(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    out = tmp_path / "lab"
    done = _lab(["--out", str(out), "--combinations", "gan,ns-gan", *TINY_LAB], subprocess_env, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "lab.json").read_text())
    assert {"date", "torch", "machine", "wall_time_s", "runs", "medians", "settings"} <= set(report)
    runs = report["runs"]
    assert len(runs) == 2 * 2 * 2  # combinations x datasets x seeds
    # in the planned order, though two workers finish them in another
    assert [(r["combination"], r["dataset"], r["seed"]) for r in runs] == [
        (c, d, s) for c in ("gan", "ns-gan") for d in ("ring8", "grid25") for s in (0, 1)]
    for r in runs:
        assert r["error"] is None and r["steps"] == 30 and r["wall_time_s"] > 0
        assert r["num_modes"] == (8 if r["dataset"] == "ring8" else 25)
        assert 0 <= r["modes_covered"] <= r["num_modes"] and 0.0 <= r["high_quality"] <= 1.0
        assert Path(r["run_dir"], "config.toml").is_file()  # an ordinary run directory
    table = (out / "lab-table.md").read_text()
    assert "| `gan` | minimax |" in table and "| `ns-gan` | non-saturating |" in table
    assert "ring8 modes" in table and "grid25 HQ %" in table
    with Image.open(out / "lab.png") as picture:
        assert picture.format == "PNG" and picture.width >= 2 * 256 and picture.height >= 2 * 256
    # the same --out again is refused rather than overwritten
    again = _lab(["--out", str(out), "--combinations", "gan", *TINY_LAB], subprocess_env, tmp_path)
    assert again.returncode == 2 and "already holds lab runs" in again.stderr


def test_lab_command_reports_bad_settings_before_training(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    done = _lab(["--out", str(tmp_path / "x"), "--set", "seeds=[-1]"], subprocess_env, tmp_path)
    assert done.returncode == 2 and "seeds" in done.stderr
    done = _lab(["--out", str(tmp_path / "x"), "--datasets", "digits"], subprocess_env, tmp_path)
    assert done.returncode == 2 and "'digits' is not a 2-D mixture" in done.stderr
    done = _lab(["--out", str(tmp_path / "x"), "--combinations", "nope"], subprocess_env, tmp_path)
    assert done.returncode == 2 and "--combinations: unknown nope" in done.stderr
    # a name twice would train one run twice (and count it twice in a median): a sentence, not a traceback
    for argv, field in ((["--combinations", "gan,gan"], "combinations"), (["--datasets", "ring8,ring8"], "datasets"),
                        (["--set", "seeds=[0,0]"], "seeds")):
        done = _lab(["--out", str(tmp_path / "x"), *argv], subprocess_env, tmp_path)
        assert done.returncode == 2 and f"{field}" in done.stderr and "more than once" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_default_lab_meets_the_acceptance(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Issue 3: both datasets, 3 seeds, default combinations, 2 CPU cores; the best combination covers
    8/8 ring and >= 24/25 grid modes with >= 85 % high quality (medians). Its 10-minute budget is a
    benchmark number, reported in lab.json and the committed table (375 s), not a timing assert: the
    same code took 375 s on one 2-core machine and over 600 s on another (the timeout only guards a hang)."""
    out = tmp_path / "lab"
    done = _lab(["--out", str(out)], subprocess_env, tmp_path, timeout=2400)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "lab.json").read_text())
    assert report["wall_time_s"] > 0 and report["jobs"] <= 2 and report["threads"] == 1
    medians = {(m["combination"], m["dataset"]): m for m in report["medians"]}
    names = [c.name for c in DEFAULT_COMBINATIONS]
    assert {m["dataset"] for m in report["medians"]} == {"ring8", "grid25"}
    assert all(m["runs"] == 3 for m in report["medians"])

    def meets(name: str) -> bool:
        ring, grid = medians[(name, "ring8")], medians[(name, "grid25")]
        return (ring["modes_covered"] == 8 and grid["modes_covered"] >= 24
                and ring["high_quality"] >= 0.85 and grid["high_quality"] >= 0.85)

    best = [n for n in names if meets(n)]
    assert best, {k: (m["modes_covered"], round(m["high_quality"], 3)) for k, m in medians.items()}
    # the plain minimax GAN does measurably worse than the best on some dataset
    gan = [medians[("gan", d)] for d in ("ring8", "grid25")]
    top = [medians[(best[0], d)] for d in ("ring8", "grid25")]
    assert any(g["modes_covered"] < t["modes_covered"] or g["high_quality"] < t["high_quality"] - 0.1
               for g, t in zip(gan, top, strict=True))
