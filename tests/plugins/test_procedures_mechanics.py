"""The loop's guarantees hold for every procedure, not only for ``gan``: a run SIGKILLed mid-run (or
inside a checkpoint write) and resumed ends bit-identical to an uninterrupted one (networks, optimiser
state, image pools); a 2-process gloo DDP CycleGAN equals the 1-process run; bf16 autocast trains; the
``nonfinite`` policies skip or stop as they do for ``gan``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from ganforge import GanforgeError, Trainer, get_plugin_manager, load_checkpoint, load_config
from ganforge.manager import PluginManager

from tests.core.test_faults import FAULTY
from tests.fakedist import installed_plugin_manager

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "translation"
RECIPE = {"pix2pix": "pix2pix-edges2mnist.toml", "cyclegan": "cyclegan-mnist-thin2bold.toml",
          "stargan": "stargan-mnist-styles.toml"}
NETS = {"pix2pix": ["generator.base_channels=4", "discriminator.base_channels=4"],
        "cyclegan": ["generator.base_channels=4", "generator.n_blocks=1", "discriminator.base_channels=4"],
        "stargan": ["generator.base_channels=4", "generator.n_blocks=1", "discriminator.base_channels=4",
                    "train.n_critic=2"]}
STEPS = 12


def settings(procedure: str, root: Path, *extra: str) -> list[str]:
    return [f"data.root={json.dumps(str(root))}", "data.resolution=16", "data.limit=128", "data.test_limit=16",
            "train.batch_size=4", "output.progress=false", "output.log_every=1", "output.sample_every=4",
            "output.checkpoint_every=2", "output.keep_last=0", "procedure.grid_size=2",
            *(["procedure.pool_size=6"] if procedure == "cyclegan" else []), *NETS[procedure], *extra]


def command(procedure: str, root: Path, out: Path, *extra: str, prefix: tuple[str, ...] = ()) -> list[str]:
    args = [*(prefix or (sys.executable, "-m", "ganforge")), "train", str(RECIPES / RECIPE[procedure]), "--out",
            str(out)]
    for item in settings(procedure, root, *extra):
        args += ["--set", item]
    return args


def state_of(run: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the last checkpoint: weights, optimiser moments, pools, RNG states."""
    ckpt = load_checkpoint(run)
    assert ckpt.step == STEPS
    out = {f"weights.{net}.{k}": v for net, w in ckpt.weights.items() for k, v in w.items()}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, torch.Tensor):
            out[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)

    walk("state", {k: ckpt.state[k] for k in ("optimizers", "procedure", "streams", "rng_procedure")})
    return out


# SIGKILL inside a checkpoint write: the weights file of step 6 is written, then the process dies
KILL_IN_WRITE = textwrap.dedent("""
    import os, signal, sys
    import safetensors.torch
    original = safetensors.torch.save_file
    def save_file(tensors, path, *args, **kwargs):
        original(tensors, path, *args, **kwargs)
        if "step-00000006" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
    safetensors.torch.save_file = save_file
    from ganforge.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill", "sigkill-in-write"])
@pytest.mark.parametrize("procedure", list(RECIPE))
def test_killed_and_resumed_equals_uninterrupted(procedure: str, how: str, mnist_root: Path, tmp_path: Path,
                                                 subprocess_env: dict[str, str]) -> None:
    if how == "sigkill-in-write" and procedure != "cyclegan":
        pytest.skip("one procedure is enough for the kill inside a write (the writer is shared)")
    env = {**subprocess_env, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    done = subprocess.run(command(procedure, mnist_root, straight, f"train.steps={STEPS}"), capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr

    run = tmp_path / "interrupted"
    if how == "sigkill":
        proc = subprocess.Popen(command(procedure, mnist_root, run, "train.steps=100000"), stderr=subprocess.PIPE,
                                text=True, env=env)
        deadline = time.time() + 300
        while time.time() < deadline and not (run / "checkpoints" / "step-00000006").is_dir() and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=300)
    else:
        killed = subprocess.run(command(procedure, mnist_root, run, "train.steps=100000",
                                        prefix=(sys.executable, "-c", KILL_IN_WRITE)),
                                capture_output=True, text=True, env=env, timeout=600)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not (run / "checkpoints" / "step-00000006").exists()  # the half-written one never appeared
    step = load_checkpoint(run).step
    assert 4 <= step < STEPS, f"interrupted at step {step}; the run went too fast or too slow"
    resumed = subprocess.run([sys.executable, "-m", "ganforge", "train", "--resume", str(run), "--set",
                              f"train.steps={STEPS}"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from step {step}" in resumed.stderr

    a, b = state_of(straight), state_of(run)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    if procedure == "cyclegan":  # the pools were filled and are part of what was compared
        assert any(k.startswith("state.procedure.pool_x") and v.numel() for k, v in a.items())


@pytest.mark.slow
def test_two_gloo_processes_train_cyclegan_as_one(mnist_root: Path, tmp_path: Path,
                                                  subprocess_env: dict[str, str]) -> None:
    if shutil.which("torchrun") is None and not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    env = {**subprocess_env, "OMP_NUM_THREADS": "1"}
    # Without the instance norms: a convolution bias that an instance norm subtracts again has rounding
    # noise for its gradient, and Adam's first steps (lr * sign(g)) turn that noise into full steps of
    # either sign in either run; such biases change no output, but they would differ by ~1e-4.
    extra = ("train.steps=6", "train.batch_size=8", "output.checkpoint_every=3", 'generator.norm="none"',
             'discriminator.norm="none"')
    one = subprocess.run(command("cyclegan", mnist_root, tmp_path / "one", *extra), capture_output=True, text=True,
                         env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    launcher = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29519",
                "-m", "ganforge")
    two = subprocess.run(command("cyclegan", mnist_root, tmp_path / "two", *extra, prefix=launcher),
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr
    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert a.step == b.step == 6 and b.meta["world_size"] == 2 and a.meta["images_seen"] == b.meta["images_seen"]
    assert set(a.weights) == {"generator", "generator_f", "discriminator_x", "discriminator_y"}
    initial = trainer("cyclegan", mnist_root, tmp_path / "init", get_plugin_manager(), *extra).networks()
    moved = 0.0
    for net in a.weights:
        for key, value in a.weights[net].items():
            diff = float((b.weights[net][key].double() - value.double()).abs().max())
            assert diff <= 1e-5, f"{net}.{key} differs by {diff:.3g}"
            moved = max(moved, float((value - initial[net].state_dict()[key]).abs().max()))
    assert moved > 1e-3  # training moved the weights far more than the tolerance: a wrong shard would show
    pools = a.state["procedure"]["pool_x"]["images"], b.state["procedure"]["pool_x"]["images"]
    assert pools[0].shape == pools[1].shape == (6, 1, 16, 16)
    assert float((pools[0] - pools[1]).abs().max()) <= 1e-5  # the global pool: the same past fakes


@pytest.fixture
def faulty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginManager]:
    yield from installed_plugin_manager(tmp_path / "site", monkeypatch, name="gf-faulty", module="gf_faulty",
                                        source=FAULTY)


def trainer(procedure: str, root: Path, out: Path, manager: PluginManager, *extra: str) -> Trainer:
    return Trainer(load_config(RECIPES / RECIPE[procedure], settings(procedure, root, *extra), manager), out,
                   manager=manager)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("procedure", list(RECIPE))
def test_bf16_autocast_trains_every_procedure(procedure: str, mnist_root: Path, tmp_path: Path,
                                              faulty: PluginManager) -> None:
    t = trainer(procedure, mnist_root, tmp_path / "run", faulty, "train.steps=2", "train.precision=bf16")
    t.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss_g" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(r["loss_g"])) for r in losses)
    assert all(torch.isfinite(p).all() for net in t.networks().values() for p in net.parameters())


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("procedure", list(RECIPE))
def test_the_nonfinite_policies_hold_for_every_procedure(procedure: str, mnist_root: Path, tmp_path: Path,
                                                         faulty: PluginManager) -> None:
    nan = ("loss.name=nan-at", "loss.at_call=2")  # the second discriminator loss evaluated is NaN
    skip = trainer(procedure, mnist_root, tmp_path / "skip", faulty, "train.steps=3", "train.nonfinite=skip", *nan)
    skip.fit()
    assert skip.step == 3 and skip.skipped == 1
    assert all(torch.isfinite(p).all() for net in skip.networks().values() for p in net.parameters())
    stop = trainer(procedure, mnist_root, tmp_path / "stop", faulty, "train.steps=3", "train.nonfinite=stop", *nan)
    with pytest.raises(GanforgeError, match=r"loss_d became non-finite at step \d"):
        stop.fit()
