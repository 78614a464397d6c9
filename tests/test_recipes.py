"""The named recipes in configs/: each states its paper's objective and hyper-parameters, and each
runs with ``ganforge train configs/<name>.toml``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ganforge.cli import main
from ganforge.config import load_config

from tests.conftest import REPO, TINY

CONFIGS = REPO / "configs"

# name -> (loss, regularizers, n_critic, optimiser of both players as (name, lr, betas or None))
RECIPES: dict[str, tuple[str, list[dict[str, Any]], int, tuple[str, float, tuple[float, float] | None]]] = {
    "gan": ("minimax", [], 1, ("adam", 2e-4, (0.5, 0.999))),
    "dcgan": ("non-saturating", [], 1, ("adam", 2e-4, (0.5, 0.999))),
    "wgan": ("wgan", [{"name": "weight-clipping", "clip": 0.01}], 5, ("rmsprop", 5e-5, None)),
    "wgan-gp": ("wgan", [{"name": "wgan-gp", "weight": 10.0, "variant": "two-sided", "every": 1}], 5,
                ("adam", 1e-4, (0.0, 0.9))),
    "lsgan": ("lsgan", [], 1, ("adam", 2e-4, (0.5, 0.999))),
    "hinge": ("hinge", [], 1, ("adam", 2e-4, (0.5, 0.999))),
}


def tiny_args(*extra: str) -> list[str]:
    args: list[str] = []
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return args


def test_every_recipe_is_shipped() -> None:
    assert {p.stem for p in CONFIGS.glob("*.toml")} >= set(RECIPES)


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_states_its_papers_settings(name: str) -> None:
    loss, regularizers, n_critic, (opt, lr, betas) = RECIPES[name]
    config = load_config(CONFIGS / f"{name}.toml")
    assert config.loss.name == loss
    assert [{"name": r.name, **_fields(r.params)} for r in config.regularizers] == regularizers
    assert config.train.n_critic == n_critic
    for side in (config.optim.g, config.optim.d):
        assert (side.name, side.lr) == (opt, lr)
        if betas is not None:
            assert side.betas == betas
    assert (config.data.name, config.generator.name, config.discriminator.name) == ("digits", "dcgan", "dcgan")


def _fields(params: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(params)


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_trains_with_the_cli(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", str(CONFIGS / f"{name}.toml"), "--out", str(run), *tiny_args()]) == 0, capsys.readouterr().err
    assert load_config(run / "config.toml") == load_config(CONFIGS / f"{name}.toml", TINY)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    n_critic = RECIPES[name][2]
    assert records[-1]["images_seen"] == 3 * n_critic * 16  # images go through the critic steps
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in records)
    if name == "wgan-gp":
        assert all(math.isfinite(r["wgan-gp"]) and r["wgan-gp"] >= 0 for r in records)
    assert (run / "checkpoints" / "step-00000003" / "weights.safetensors").is_file()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000002.png", "step-00000003.png"]


def test_a_recipe_runs_as_a_real_command(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "ganforge", "train", "configs/wgan-gp.toml", "--out", str(run),
                           *tiny_args("train.steps=2")], capture_output=True, text=True, cwd=REPO, env=subprocess_env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (run / "checkpoints" / "step-00000002" / "weights.safetensors").is_file()


@pytest.mark.parametrize(("name", "extra", "expected"), [
    ("wgan", ["train.n_critic=0"], "train.n_critic: must be >= 1: 0"),
    ("wgan-gp", ['regularizers=[{name = "wgan-gp", weight = -10.0}]'], "regularizers[0].weight: must be >= 0.0: -10.0"),
    ("wgan", ['regularizers=[{name = "weight-clipping", clip = -0.01}]'], "regularizers[0].clip: must be > 0.0: -0.01"),
    ("dcgan", ['regularizers=[{name = "r1", gamma = -1.0}]'], "regularizers[0].gamma: must be >= 0.0: -1.0"),
    ("dcgan", ['regularizers=[{name = "r1", every = 0}]'], "regularizers[0].every: must be >= 1: 0"),
    ("lsgan", ["loss.b=0.0"], "loss.b: must differ from 'a'"),
])
def test_bad_recipe_overrides_fail_before_training(name: str, extra: list[str], expected: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / f"{name}.toml"), "--out", str(out), *tiny_args(*extra)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganforge: error: ") and expected in err and "Traceback" not in err
    assert not out.exists()
