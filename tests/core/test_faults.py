"""Faults a long run meets: a loss turning NaN, a logger that breaks, weights-only restarts and
TensorBoard event files read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from ganforge import Trainer, load_config
from ganforge.checkpoint import load_checkpoint
from ganforge.cli import main
from ganforge.manager import PluginManager

from tests.conftest import TINY
from tests.fakedist import installed_plugin_manager

FAULTY = """
    import attrs
    import torch
    import torch.nn.functional as F
    from ganforge import hookimpl

    @attrs.frozen(kw_only=True)
    class NaNAtConfig:
        at_call: int = 3  # the discriminator loss of this update (1-based) is NaN

    class NaNAt:
        '''The non-saturating loss, except that one discriminator update's loss is NaN.'''
        generator_needs_real = False
        def __init__(self, config):
            self.at_call = config.at_call
            self.calls = 0
        def discriminator_loss(self, real, fake):
            self.calls += 1
            loss = F.softplus(-real).mean() + F.softplus(fake).mean()
            return loss * float("nan") if self.calls == self.at_call else loss
        def generator_loss(self, fake, real=None):
            return F.softplus(-fake).mean()

    @attrs.frozen(kw_only=True)
    class BrokenConfig:
        fail_after: int = 1

    class BrokenLogger:
        '''A logger whose disk fills up.'''
        def __init__(self, config, run_dir):
            self.left = config.fail_after
        def scalars(self, step, values):
            self.left -= 1
            if self.left < 0:
                raise OSError(28, "No space left on device")
        def images(self, step, name, grid):
            pass
        def close(self):
            pass

    @hookimpl
    def ganforge_register_losses(register):
        register("nan-at", NaNAt, NaNAtConfig)

    @hookimpl
    def ganforge_register_loggers(register):
        register("broken", BrokenLogger, BrokenConfig)
"""


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginManager]:
    yield from installed_plugin_manager(tmp_path / "site", monkeypatch, name="gf-faulty", module="gf_faulty",
                                        source=FAULTY)


def params(t: Trainer) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n, net in t.networks().items() for k, v in net.state_dict().items()}


def test_nan_with_the_skip_policy_drops_the_update_and_goes_on(manager: PluginManager, tmp_path: Path) -> None:
    config = load_config(None, [*TINY, "train.steps=6", "loss.name=nan-at", "loss.at_call=3",
                                "train.nonfinite=skip"], manager)
    t = Trainer(config, tmp_path, manager=manager)
    t.fit()
    assert t.step == 6 and t.skipped == 1
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_updates"] for r in records] == [0, 0, 1, 1, 1, 1]
    assert all(torch.isfinite(p).all() for p in params(t).values())


def test_nan_with_the_stop_policy_names_loss_and_step_and_keeps_the_good_checkpoint(
    manager: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--out", str(tmp_path / "run")]
    for item in [*TINY, "train.steps=8", "loss.name=nan-at", "loss.at_call=4", "output.log_every=4",
                 "output.checkpoint_every=2"]:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "loss_d became non-finite at step 4" in err and "Traceback" not in err
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step-*")) == ["step-00000002"]  # nothing after the NaN
    good = load_checkpoint(tmp_path / "run")
    assert good.step == 2
    assert all(torch.isfinite(v).all() for w in good.weights.values() for v in w.values())


def test_a_failing_logger_never_stops_training(
    manager: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[[output.loggers]]\nname = "broken"\nfail_after = 1\n')
    t = Trainer(load_config(path, TINY, manager), tmp_path / "run", manager=manager)
    t.fit()
    assert t.step == 3 and not t.loggers
    assert "logger BrokenLogger failed and is dropped; training goes on (OSError" in capsys.readouterr().err


def test_tensorboard_event_files_hold_the_logged_scalars_and_images(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = tmp_path / "run.toml"
    path.write_text('[[output.loggers]]\nname = "tensorboard"\n')
    t = Trainer(load_config(path, TINY), tmp_path / "run")
    t.fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scalars = events.Scalars("loss_d")
    assert [s.step for s in scalars] == [r["step"] for r in logged]
    assert [s.value for s in scalars] == pytest.approx([r["loss_d"] for r in logged], rel=1e-6)
    assert {"loss_g", "images_per_sec", "sec_per_kimg", "peak_mem_mb"} <= set(events.Tags()["scalars"])
    images = events.Images("samples")
    assert [i.step for i in images] == [2, 3]
    assert images[0].width > 16 and images[0].height > 16


def test_init_from_copies_weights_only(tmp_path: Path) -> None:
    first = tmp_path / "first"
    argv = ["train", "--out", str(first)]
    for item in TINY:
        argv += ["--set", item]
    assert main(argv) == 0
    source = load_checkpoint(first)
    second = tmp_path / "second"
    assert main(["train", "--out", str(second), "--init-from", str(first), *argv[3:], "--set", "train.steps=1",
                 "--set", "train.seed=7"]) == 0  # another seed: a fresh init would differ
    after = load_checkpoint(second)
    assert after.step == 1  # counters start fresh
    assert after.state["optimizers"]["d"]["state"][0]["step"] == 1  # and so do optimisers
    fresh = Trainer(load_config(second / "config.toml"), tmp_path / "probe").network("generator").state_dict()

    def distance(weights: dict[str, torch.Tensor]) -> float:
        return sum(float((weights[k].float() - v.float()).abs().sum()) for k, v in source.weights["generator"].items())

    # one step away from the source weights, far from a fresh initialisation
    assert distance(after.weights["generator"]) < 0.1 * distance(fresh)


def test_init_from_another_architecture_names_the_settings_that_differ(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "first"
    sets = [arg for item in TINY for arg in ("--set", item)]
    assert main(["train", "--out", str(first), *sets]) == 0
    capsys.readouterr()
    code = main(["train", "--out", str(tmp_path / "second"), "--init-from", str(first), *sets,
                 "--set", "generator.base_channels=16"])
    err = capsys.readouterr().err
    assert code == 2 and "differ in the settings that shape the networks: generator.base_channels (8 there, " \
        "16 here)" in err
    assert not (tmp_path / "second").exists()


def test_resume_and_init_from_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", str(tmp_path), "--init-from", str(tmp_path)]) == 2
    assert "--resume and --init-from exclude each other" in capsys.readouterr().err
