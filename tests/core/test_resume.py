"""Exact resume: a run interrupted by SIGTERM (checkpoint at the next step) or by SIGKILL (after
its last checkpoint) and resumed ends with parameters bit-identical to an uninterrupted run, for
the DCGAN, WGAN-GP and PGGAN recipes, the last interrupted mid-fade (CPU, deterministic)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ganforge.checkpoint import load_checkpoint

from tests.conftest import REPO, TINY

STEPS = 12
RECIPES = {
    "dcgan": (None, []),
    "wgan-gp": (REPO / "configs" / "wgan-gp.toml", ["train.n_critic=2"]),
    "pggan": (None, [
        "generator.name=pggan", "discriminator.name=pggan", "generator.latent_dim=16",
        "generator.channel_base=64", "generator.channel_max=16", "discriminator.channel_base=64",
        "discriminator.channel_max=16", "generator.progressive=true", "discriminator.progressive=true",
        "generator.fade_images=96", "discriminator.fade_images=96", "generator.stabilize_images=32",
        "discriminator.stabilize_images=32",
    ]),
}


def command(recipe: str, out: Path, *extra: str) -> list[str]:
    config, settings = RECIPES[recipe]
    args = [sys.executable, "-m", "ganforge", "train", *([str(config)] if config else []), "--out", str(out)]
    for item in [*TINY, *settings, "output.checkpoint_every=2", "output.keep_last=0", *extra]:
        args += ["--set", item]
    return args


def weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run)
    assert ckpt.step == STEPS
    return {f"{net}.{k}": v for net, w in ckpt.weights.items() for k, v in w.items()}


def interrupt(recipe: str, run: Path, sig: int, env: dict[str, str]) -> int:
    """Start a long run, wait until it has logged (SIGTERM) or checkpointed (SIGKILL) a few steps,
    then send ``sig``; returns the step of the checkpoint it left."""
    proc = subprocess.Popen(command(recipe, run, "train.steps=100000"), stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    if sig == signal.SIGKILL:
        # step 6 complete: `latest` names step 4 or 6 (the kill may fall between rename and pointer)
        ready = lambda: (run / "checkpoints" / "step-00000006").is_dir()  # noqa: E731
    else:
        ready = lambda: (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 5  # noqa: E731
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err  # not 0: the run did not finish
    step = load_checkpoint(run).step
    assert 4 <= step < STEPS, f"interrupted at step {step}; the run went too fast or too slow"
    return step


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_interrupted_and_resumed_equals_uninterrupted(recipe: str, sig: int, tmp_path: Path,
                                                       subprocess_env: dict[str, str]) -> None:
    env = {**subprocess_env, "OMP_NUM_THREADS": "1"}  # the same kernels in every process
    straight = tmp_path / "straight"
    done = subprocess.run(command(recipe, straight, f"train.steps={STEPS}"), capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr

    run = tmp_path / "interrupted"
    step = interrupt(recipe, run, sig, env)
    if recipe == "pggan":  # the interruption fell inside a fade-in
        ckpt = load_checkpoint(run)
        assert 0.0 < float(ckpt.weights["generator"]["alpha"]) < 1.0, "not interrupted mid-fade"
    resumed = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(run), "--set",
                              f"train.steps={STEPS}"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from step {step}" in resumed.stderr

    a, b = weights(straight), weights(run)
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert differing == []
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1] == STEPS


def test_the_comparison_can_fail(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Bit-identity is not vacuous here: two runs that differ only in their seed differ."""
    env = {**subprocess_env, "OMP_NUM_THREADS": "1"}
    a, b = tmp_path / "a", tmp_path / "b"
    for run, seed in ((a, 0), (b, 1)):
        subprocess.run(command("dcgan", run, f"train.steps={STEPS}", f"train.seed={seed}"), check=True,
                       capture_output=True, env=env)
    wa, wb = weights(a), weights(b)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_a_torchrun_restart_continues_the_run_its_command_line_names(tmp_path: Path,
                                                                     subprocess_env: dict[str, str]) -> None:
    run = tmp_path / "run"
    first = subprocess.run(command("dcgan", run, "train.steps=2"), capture_output=True, text=True, env=subprocess_env)
    assert first.returncode == 0, first.stderr
    again = command("dcgan", run, "train.steps=4")  # the same command line, as torchrun re-runs it
    refused = subprocess.run(again, capture_output=True, text=True, env=subprocess_env)
    assert refused.returncode == 2 and "already holds a run" in refused.stderr  # not a restart: never overwrite
    restarted = subprocess.run(again, capture_output=True, text=True,
                               env={**subprocess_env, "TORCHELASTIC_RESTART_COUNT": "1"})
    assert restarted.returncode == 0, restarted.stderr
    assert f"resuming {run} from step 2" in restarted.stderr
    assert load_checkpoint(run).step == 4
