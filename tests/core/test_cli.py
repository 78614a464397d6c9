"""The command line: bad input gets one clear paragraph and exit status 2, before any training,
and nothing already in a run directory is lost."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ganforge import load_generator
from ganforge.cli import main
from PIL import Image

from tests.conftest import TINY


def tiny_args(*extra: str) -> list[str]:
    args: list[str] = []
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return args


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ganforge: error: ") and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--out", str(run), *tiny_args()]) == 0
    return run


def test_train_and_sample_png_and_npy(trained_run: Path, tmp_path: Path) -> None:
    assert main(["sample", str(trained_run), "-n", "5", "--seed", "3", "--out", str(tmp_path / "a.npy")]) == 0
    assert main(["sample", str(trained_run / "checkpoints" / "step-00000003"), "-n", "5", "--seed", "3",
                 "--out", str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (5, 1, 16, 16) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)  # the run directory resolves to its latest checkpoint
    assert main(["sample", str(trained_run), "-n", "5", "--seed", "4", "--out", str(tmp_path / "c.npy")]) == 0
    assert not np.array_equal(a, np.load(tmp_path / "c.npy"))
    assert main(["sample", str(trained_run), "-n", "9", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_conditional_model_draws_every_class_in_turn_or_the_one_asked_for(trained_run: Path, tmp_path: Path) -> None:
    trained = load_generator(trained_run)  # the embedded default is class-conditional
    assert trained.num_classes == 10
    assert main(["sample", str(trained_run), "-n", "20", "--seed", "3", "--out", str(tmp_path / "all.npy")]) == 0
    assert main(["sample", str(trained_run), "-n", "20", "--seed", "3", "--class", "4",
                 "--out", str(tmp_path / "fours.npy")]) == 0
    every, fours = np.load(tmp_path / "all.npy"), np.load(tmp_path / "fours.npy")
    cycled = ((trained.sample(20, generator=torch.Generator().manual_seed(3),
                              labels=torch.arange(20) % 10) + 1) / 2).numpy()
    np.testing.assert_allclose(every, cycled, atol=1e-6)
    np.testing.assert_allclose(every[4::10], fours[4::10], atol=1e-6)  # same latents, same class
    assert not np.allclose(every[3::10], fours[3::10], atol=1e-3)  # same latents, another class
    assert main(["sample", str(trained_run), "-n", "20", "--out", str(tmp_path / "grid.png")]) == 0
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (10 * 18 + 2, 2 * 18 + 2)  # one column per class


def test_an_unconditional_model_takes_no_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "dcgan"
    assert main(["train", "--out", str(run), *tiny_args(), "--set", "generator.name=dcgan",
                 "--set", "discriminator.name=dcgan"]) == 0
    assert load_generator(run).num_classes is None
    capsys.readouterr()
    assert "unconditional and takes no class" in error_of(
        ["sample", str(run), "--class", "3", "--out", str(tmp_path / "x.png")], capsys
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["loss.name=wgan-gpp"], "loss.name: unknown loss 'wgan-gpp'; choose one of:"),
        (["train.batch_size=big"], "train.batch_size: expected an integer, got 'big'"),
        (["train.steps=-5"], "train.steps: must be >= 1: -5"),
        (["generator.colour=1"], "generator: unknown key(s) colour"),
        (["data.name=mnist", "data.root=/no/such/mnist"], "data.root: directory '/no/such/mnist' does not exist"),
        (["train.device=cuda:7"] if not __import__("torch").cuda.is_available() else ["train.device=tpu"],
         "train.device"),
    ],
)
def test_bad_config_fails_before_anything_is_written(
    extra: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    err = error_of(["train", "--out", str(out), *tiny_args(*extra)], capsys)
    assert expected in err
    assert not out.exists()


def test_an_existing_run_is_never_overwritten(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(trained_run)
    err = error_of(["train", "--out", str(trained_run), *tiny_args()], capsys)
    assert "already holds a run" in err
    assert snapshot(trained_run) == before


def test_unwritable_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    err = error_of(["train", "--out", str(blocker / "run"), *tiny_args()], capsys)
    assert f"cannot write to output directory '{blocker / 'run'}'" in err
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_sample_refuses_a_corrupt_checkpoint(
    damage: str, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(trained_run), str(copy)], check=True)
    weights = copy / "checkpoints" / "step-00000003" / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x00garbage" * 10)
    out = tmp_path / "s.png"
    err = error_of(["sample", str(copy), "--out", str(out)], capsys)
    assert "weights.safetensors is corrupt or truncated" in err
    assert not out.exists()


def test_sample_rejects_a_bad_request(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong_suffix = ["sample", str(trained_run), "--out", str(tmp_path / "x.jpg")]
    assert "expected a file ending in .png" in error_of(wrong_suffix, capsys)
    assert "--class 12: expected a class index in [0, 9] (0, 1, 2, 3" in error_of(
        ["sample", str(trained_run), "--class", "12", "--out", str(tmp_path / "x.png")], capsys
    )
    assert "is not a checkpoint" in error_of(["sample", str(tmp_path), "--out", str(tmp_path / "x.png")], capsys)


def test_config_show_prints_the_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "generator.latent_dim=12"]) == 0
    out = capsys.readouterr().out
    assert '[generator]\nname = "cdcgan"\nlatent_dim = 12\n' in out


def test_errors_print_no_traceback_in_a_real_process(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ganforge", "train", "--out", str(tmp_path / "r"), "--set", "loss.name=nope"],
        capture_output=True, text=True, env=subprocess_env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("ganforge: error: invalid config:") and "Traceback" not in proc.stderr


def test_each_plugin_commands_help_shows_an_override_of_its_own_settings(capsys: pytest.CaptureFixture[str]) -> None:
    helps = {}
    for command in ("lab", "eval", "invert"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    assert "e.g. --set seeds=[" in helps["lab"]
    assert "seeds" not in helps["eval"] and "e.g. --set num_samples=" in helps["eval"]


def test_a_bad_device_is_named_with_the_option_it_came_from(trained_run: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.png")
    assert "--device: expected auto, cpu, cuda, cuda:N or mps, got 'banana'" in error_of(
        ["sample", str(trained_run), "--out", out, "--device", "banana"], capsys)
    assert "--device: expected auto" in error_of(["eval", str(trained_run), "--device", "cuda:x"], capsys)
    assert "--device: expected auto" in error_of(["interpolate", str(trained_run), "--device", "gpu"], capsys)
    if not torch.cuda.is_available():
        assert "--device: 'cuda' was asked for, but CUDA is not available" in error_of(
            ["sample", str(trained_run), "--out", out, "--device", "cuda"], capsys)
    assert not (tmp_path / "x.png").exists()
