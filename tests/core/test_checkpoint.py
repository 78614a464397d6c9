"""Checkpoints: atomic, self-contained, and read without trusting their contents."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from ganforge import CheckpointError
from ganforge.checkpoint import find_checkpoint, load_checkpoint, load_weights, save_checkpoint
from torch import nn

from tests.conftest import TINY


def save(directory: Path, step: int, net: nn.Module, keep_last: int = 0) -> Path:
    return save_checkpoint(
        directory, step, networks={"generator": net},
        state={"step": step, "rng": torch.arange(step * 3, dtype=torch.uint8)},
        meta={"note": "test"}, config_toml='x = 1\n', keep_last=keep_last,
    )


def test_round_trip_and_latest(tmp_path: Path) -> None:
    net = nn.Linear(3, 2)
    save(tmp_path, 1, net)
    with torch.no_grad():
        net.weight.add_(1.0)
    save(tmp_path, 2, net)
    ckpt = load_checkpoint(tmp_path)  # a checkpoints/ directory resolves through `latest`
    assert ckpt.step == 2 and ckpt.meta["note"] == "test" and ckpt.config_toml == "x = 1\n"
    other = nn.Linear(3, 2)
    load_weights(other, ckpt, "generator")
    assert torch.equal(other.weight, net.weight)
    assert torch.equal(ckpt.state["rng"], torch.arange(6, dtype=torch.uint8))


def test_keep_last_prunes_the_oldest(tmp_path: Path) -> None:
    net = nn.Linear(2, 2)
    for step in range(1, 6):
        save(tmp_path, step, net, keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000004", "step-00000005"]


@pytest.mark.parametrize("name", ["weights.safetensors", "state.pt", "meta.json"])
def test_truncated_files_are_refused(tmp_path: Path, name: str) -> None:
    path = save(tmp_path, 1, nn.Linear(8, 8))
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{name} is corrupt"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", ["weights.safetensors", "state.pt", "meta.json"])
def test_a_damaged_latest_checkpoint_names_the_previous_one(tmp_path: Path, name: str) -> None:
    for step in (1, 2, 3):
        save(tmp_path, step, nn.Linear(8, 8), keep_last=3)
    (tmp_path / "step-00000002" / "state.pt").unlink()  # incomplete: not one to offer
    damaged = tmp_path / "step-00000003" / name
    damaged.write_bytes(damaged.read_bytes()[:10])
    with pytest.raises(CheckpointError, match=f"{name} is corrupt") as info:
        load_checkpoint(tmp_path / "step-00000003")
    assert f"--resume {tmp_path / 'step-00000001'} continues from it" in str(info.value)
    assert load_checkpoint(tmp_path / "step-00000001").meta["step"] == 1


def test_a_damaged_only_checkpoint_offers_none(tmp_path: Path) -> None:
    path = save(tmp_path, 1, nn.Linear(8, 8))
    (path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "previous checkpoint" not in str(info.value)


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_a_pickle_carrying_code_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path, 1, nn.Linear(2, 2))
    torch.save({"step": 1, "evil": Payload()}, path / "state.pt")
    with pytest.raises(CheckpointError, match=r"never unpickles code; refusing to load it .*GLOBAL .*system"):
        load_checkpoint(path)


def test_bytes_that_are_no_pickle_are_called_corrupt_not_code(tmp_path: Path) -> None:
    path = save(tmp_path, 1, nn.Linear(2, 2))
    (path / "state.pt").write_bytes(b"garbage, not a training state")
    with pytest.raises(CheckpointError, match=r"state\.pt is corrupt or truncated") as info:
        load_checkpoint(path)
    assert "unpickles code" not in str(info.value)


def test_another_architecture_is_refused(tmp_path: Path) -> None:
    ckpt = load_checkpoint(save(tmp_path, 1, nn.Linear(4, 4)))
    with pytest.raises(CheckpointError, match="another architecture"):
        load_weights(nn.Linear(4, 5), ckpt, "generator")
    with pytest.raises(CheckpointError, match="no 'discriminator' weights"):
        load_weights(nn.Linear(4, 4), ckpt, "discriminator")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        find_checkpoint(tmp_path)


KILL_DURING_SECOND_CHECKPOINT = """
import os, signal, sys
import safetensors.torch
from ganforge.cli import main

real_save = safetensors.torch.save_file
calls = []

def dying_save(tensors, filename, *args, **kwargs):
    calls.append(filename)
    if len(calls) == 2:  # the second checkpoint: write half a file, then die like a killed job
        real_save(tensors, filename, *args, **kwargs)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(tensors, filename, *args, **kwargs)

safetensors.torch.save_file = dying_save
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    run = tmp_path / "run"
    script = tmp_path / "die.py"
    script.write_text(textwrap.dedent(KILL_DURING_SECOND_CHECKPOINT))
    args = [sys.executable, str(script), "train", "--out", str(run)]
    for item in [*TINY, "train.steps=6"]:
        args += ["--set", item]
    proc = subprocess.run(args, capture_output=True, text=True, env=subprocess_env, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    assert list((run / "checkpoints").glob(".tmp-step-00000004-*"))  # the half-written one
    ckpt = load_checkpoint(run)
    assert ckpt.step == 2
    sample = subprocess.run(
        [sys.executable, "-m", "ganforge", "sample", str(run), "-n", "4", "--out", str(tmp_path / "s.npy")],
        capture_output=True, text=True, env=subprocess_env, timeout=300,
    )
    assert sample.returncode == 0, sample.stderr


FORMAT_1 = Path(__file__).parent / "data" / "format1-checkpoint"  # written by ganforge before procedures


def test_a_format_1_checkpoint_still_samples_and_refuses_to_resume(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from ganforge import load_generator
    from ganforge.cli import main

    ckpt = load_checkpoint(FORMAT_1)
    assert ckpt.meta["format"] == 1 and ckpt.meta["procedure"] == "gan"
    assert ckpt.meta["data_specs"]["data"]["shape"] == [1, 16, 16]
    trained = load_generator(FORMAT_1)
    samples = trained.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 1, 16, 16) and torch.isfinite(samples).all()
    run = tmp_path / "run"
    shutil.copytree(FORMAT_1, run / "checkpoints" / "step-00000001")
    (run / "checkpoints" / "latest").write_text("step-00000001\n")
    assert main(["train", "--resume", str(run)]) == 2
    assert "written by an earlier ganforge" in capsys.readouterr().err


def test_write_output_makes_its_directories_and_names_a_file_in_the_way(tmp_path: Path) -> None:
    from ganforge import OutputError, make_output_dir, write_output

    deep = tmp_path / "a" / "b" / "grid.png"
    write_output(deep, lambda tmp: tmp.write_bytes(b"png"))
    assert deep.read_bytes() == b"png" and [p.name for p in deep.parent.iterdir()] == ["grid.png"]  # no temporaries
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for target in (notes / "grid.png", notes / "sub" / "grid.png"):
        with pytest.raises(OutputError, match=re.escape(f"cannot write {str(target)!r}: {str(notes)!r} is a file, "
                                                        "not a directory")):
            write_output(target, lambda tmp: tmp.write_bytes(b"png"))
    with pytest.raises(OutputError, match=re.escape(f"{str(notes)!r} is a file, not a directory")):
        make_output_dir(notes)
    assert notes.read_text() == "mine"
