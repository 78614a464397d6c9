"""The training loop: Algorithm 1 of Goodfellow et al. 2014, reproducible and resumable."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ganforge import ConfigError
from ganforge.checkpoint import load_checkpoint
from ganforge.config import load_config
from ganforge.training import Trainer

from tests.conftest import TINY


def trainer(out: Path, *extra: str) -> Trainer:
    return Trainer(load_config(None, [*TINY, *extra]), out)


def params(t: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for net in t.networks().values() for p in net.state_dict().values()]


def test_a_run_leaves_config_metrics_samples_and_checkpoints(tmp_path: Path) -> None:
    t = trainer(tmp_path)
    last = t.fit()
    assert last == tmp_path / "checkpoints" / "step-00000003"
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-00000002.png", "step-00000003.png"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) and r["images_per_sec"] > 0 for r in records)
    assert load_config(tmp_path / "config.toml") == t.config  # the saved config loads back equal


def test_n_critic_discriminator_updates_per_generator_update(tmp_path: Path) -> None:
    t = trainer(tmp_path, "train.n_critic=4", "train.steps=2", "train.batch_size=8")
    t.fit()
    assert (t.step, t.updates.updates["d"], t.updates.updates["g"], t.images_seen) == (2, 8, 2, 64)


def test_generator_update_leaves_discriminator_untouched(tmp_path: Path) -> None:
    t = trainer(tmp_path)
    G, D, u = t.network("generator"), t.network("discriminator"), t.updates
    u.optimizers["d"].zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in D.parameters()]
    g_before = [p.detach().clone() for p in G.parameters()]
    with u.phase("g"):  # the generator's phase: D is read but not trained
        labels = u.batch()["labels"]
        loss = t.loss.generator_loss(u.net("discriminator")(u.net("generator")(u.latents(), labels), labels), None)
        u.minimise(loss)
    assert all(p.grad is None for p in D.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters(), strict=True))
    assert u.updates == {"d": 0, "g": 1}


def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    a, b, c = trainer(tmp_path / "a"), trainer(tmp_path / "b"), trainer(tmp_path / "c", "train.seed=1")
    for t in (a, b, c):
        t.fit()
    assert all(torch.equal(x, y) for x, y in zip(params(a), params(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(params(a), params(c), strict=True))


def test_resume_continues_bit_identically(tmp_path: Path) -> None:
    straight = trainer(tmp_path / "straight", "train.steps=5")
    straight.fit()
    first = trainer(tmp_path / "resumed", "train.steps=2")
    first.fit()
    resumed = trainer(tmp_path / "resumed", "train.steps=5")
    resumed.load_training_state(load_checkpoint(tmp_path / "resumed"))
    assert resumed.step == 2
    resumed.fit()
    assert all(torch.equal(x, y) for x, y in zip(params(straight), params(resumed), strict=True))


def test_batch_larger_than_the_dataset_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size: 4096 is larger than the dataset"):
        trainer(tmp_path, "train.batch_size=4096")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_signal_checkpoints_at_the_next_step_exits_non_zero_and_resume_finishes(
    tmp_path: Path, subprocess_env: dict[str, str], sig: int
) -> None:
    run = tmp_path / "run"
    args = [sys.executable, "-m", "ganforge", "train", "--out", str(run)]
    for item in [*TINY, "train.steps=100000", "output.checkpoint_every=100000"]:
        args += ["--set", item]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=subprocess_env)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err  # 143 / 130, as a shell reports a process ended by the signal
    name = signal.Signals(sig).name
    assert f"stopping on signal {name}" in err and f"Continue with: ganforge train --resume {run}" in err
    step = load_checkpoint(run).step
    assert 3 <= step < 100000
    again = subprocess.run(
        [sys.executable, "-m", "ganforge", "train", "--resume", str(run), "--set", f"train.steps={step + 2}"],
        capture_output=True, text=True, env=subprocess_env, timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert load_checkpoint(run).step == step + 2


def test_linear_decay_holds_then_falls_linearly_to_zero() -> None:
    from ganforge.config import OptimizerConfig

    cfg = OptimizerConfig(lr=1e-3, decay_start=0.5)
    rates = [cfg.lr_at(step, 10) for step in range(10)]
    assert rates[:5] == [1e-3] * 5  # constant over the first half
    assert rates[5:] == pytest.approx([1e-3 * k / 5 for k in (5, 4, 3, 2, 1)])  # then linearly towards zero
    assert [OptimizerConfig(lr=1e-3).lr_at(s, 10) for s in (0, 9)] == [1e-3, 1e-3]  # decay_start = 1: constant


def test_decaying_learning_rate_reaches_the_optimisers_and_resumes_identically(tmp_path: Path) -> None:
    decay = ("optim.g.decay_start=0.4", "optim.d.decay_start=0.0")
    straight = trainer(tmp_path / "straight", "train.steps=5", *decay)
    straight.fit()
    # the rates used by the last step (step index 4 of 5)
    assert straight.updates.optimizers["g"].param_groups[0]["lr"] == pytest.approx(2e-4 * 1 / 3)
    assert straight.updates.optimizers["d"].param_groups[0]["lr"] == pytest.approx(2e-4 * 1 / 5)
    first = trainer(tmp_path / "resumed", "train.steps=5", *decay, "output.checkpoint_every=3")
    for _ in range(3):  # stop after 3 of the 5 steps, as an interrupted run would
        first.train_step()
    first.save_checkpoint()
    resumed = trainer(tmp_path / "resumed", "train.steps=5", *decay)
    resumed.load_training_state(load_checkpoint(tmp_path / "resumed"))
    resumed.fit()
    assert all(torch.equal(x, y) for x, y in zip(params(straight), params(resumed), strict=True))


def test_decay_start_outside_zero_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"optim\.g\.decay_start.*1\.5"):
        load_config(None, ["optim.g.decay_start=1.5"])


def test_a_trainer_leaves_the_callers_generators_and_deterministic_mode_as_it_found_them(tmp_path: Path) -> None:
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    assert not torch.are_deterministic_algorithms_enabled()
    t = Trainer(load_config(None, [*TINY, "train.steps=2", "train.deterministic=true"]), tmp_path / "run")
    assert torch.equal(torch.get_rng_state(), before) and not torch.are_deterministic_algorithms_enabled()
    t.fit()
    assert torch.equal(torch.get_rng_state(), before) and not torch.are_deterministic_algorithms_enabled()
    # and the run is the same whatever the caller's generator was: its networks start from its own seed
    torch.manual_seed(99)
    again = Trainer(load_config(None, [*TINY, "train.steps=2", "train.deterministic=true"]), tmp_path / "run2")
    first = Trainer(load_config(None, [*TINY, "train.steps=2", "train.deterministic=true"]), tmp_path / "run3")
    for a, b in zip(again.network("generator").parameters(), first.network("generator").parameters(), strict=True):
        assert torch.equal(a, b)
