"""torch.distributed through torchrun: a 2-process gloo run on CPU equals a 1-process run with the
same global batch, and only rank 0 writes files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ganforge.checkpoint import load_checkpoint

from tests.conftest import TINY

# A model without batch norm: DDP averages gradients, but batch statistics stay per rank.
SETTINGS = [*TINY, "data.name=ring8", "generator.name=mlp", "generator.width=32", "generator.latent_dim=8",
            "discriminator.name=mlp", "discriminator.width=32", "train.batch_size=32", "train.steps=6",
            "output.checkpoint_every=3", "output.keep_last=0"]


def train(out: Path, nproc: int, env: dict[str, str], *extra: str,
          settings: list[str] = SETTINGS) -> subprocess.CompletedProcess[str]:
    if nproc == 1:
        launcher = [sys.executable, "-m", "ganforge"]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                    "--master-port", "29517", "-m", "ganforge"]
    args = [*launcher, "train", "--out", str(out)]
    for item in [*settings, *extra]:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"}, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["loss.name=wgan", "regularizers=[{name = \"wgan-gp\"}]"]],
                         ids=["non-saturating", "wgan-gp"])
def test_two_gloo_processes_equal_one_with_the_same_global_batch(
    extra: list[str], tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    if shutil.which("torchrun") is None and not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    one = train(tmp_path / "one", 1, subprocess_env, *extra)
    assert one.returncode == 0, one.stderr
    two = train(tmp_path / "two", 2, subprocess_env, *extra)
    assert two.returncode == 0, two.stderr

    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert a.step == b.step == 6 and a.meta["images_seen"] == b.meta["images_seen"] == 6 * 32
    assert b.meta["world_size"] == 2
    for net in ("generator", "discriminator", "generator_ema"):
        for key, value in a.weights[net].items():
            diff = float((b.weights[net][key].double() - value.double()).abs().max())
            assert diff <= 1e-5, f"{net}.{key} differs by {diff:.3g}"

    # rank 0 alone writes: one record per logged step, one copy of every file
    records = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    files_one = sorted(str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*") if p.is_file())
    files_two = sorted(str(p.relative_to(tmp_path / "two")) for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert files_one == files_two
    assert len(b.state["rng_ranks"]) == 2  # every rank's own generator state is kept


@pytest.mark.slow
def test_two_gloo_processes_train_in_channels_last_as_in_the_default_layout(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """DDP's gradient buckets take NHWC gradients: two processes of a convolutional GAN give the same
    weights in either layout (TINY's cDCGAN, whose batch norm is per rank in both)."""
    conv = [*TINY, "train.batch_size=32", "train.steps=6", "output.checkpoint_every=3", "output.keep_last=0"]
    runs = {}
    for fmt in ("contiguous", "channels_last"):
        done = train(tmp_path / fmt, 2, subprocess_env, f"train.memory_format={fmt}", settings=conv)
        assert done.returncode == 0, done.stderr
        runs[fmt] = load_checkpoint(tmp_path / fmt)
    a, b = runs["contiguous"], runs["channels_last"]
    assert a.step == b.step == 6 and b.meta["world_size"] == 2
    worst = max(float((b.weights[net][key].double() - value.double()).abs().max())
                for net in ("generator", "discriminator") for key, value in a.weights[net].items())
    assert worst <= 1e-4, f"the layouts differ by {worst:.3g}"


def test_the_global_batch_must_divide_over_the_ranks(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    two = train(tmp_path / "odd", 2, subprocess_env, "train.batch_size=31")
    assert two.returncode != 0
    assert "train.batch_size: 31 is the global batch and must divide evenly over 2 processes" in two.stderr
    assert not (tmp_path / "odd").exists()


def _join_alone(port: int) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def test_a_train_command_leaves_the_group_it_joined_and_keeps_the_callers() -> None:
    """A gloo group left to interpreter exit can abort a finished rank; the command leaves its own."""
    from ganforge.distributed import joined_for_the_command

    with joined_for_the_command():
        _join_alone(29541)
        assert torch.distributed.is_initialized()
    assert not torch.distributed.is_initialized()
    try:
        with pytest.raises(RuntimeError), joined_for_the_command():  # an error: left for torchrun to end
            _join_alone(29542)
            raise RuntimeError("a rank failed")
        assert torch.distributed.is_initialized()
    finally:
        torch.distributed.destroy_process_group()
    _join_alone(29543)  # the caller's group
    try:
        with joined_for_the_command():
            pass
        assert torch.distributed.is_initialized()
    finally:
        torch.distributed.destroy_process_group()
