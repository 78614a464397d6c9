"""The extension points other plugins build on: plugin subcommands, training callbacks and
networks that follow the training schedule, each exercised through a third-party distribution."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ganforge import ConfigError, Trainer, load_config
from ganforge.cli import main
from ganforge.manager import PluginManager

from tests.conftest import TINY
from tests.fakedist import installed_plugin_manager

PLUGIN = """
    import attrs
    import torch
    from attrs import validators as v
    from ganforge import hookimpl

    @attrs.frozen(kw_only=True)
    class EchoConfig:
        times: int = attrs.field(default=1, validator=v.ge(1))
        word: str = "hello"

    class Echo:
        '''Print a word a number of times.'''
        def __init__(self, config):
            self.config = config
        @staticmethod
        def add_arguments(parser):
            parser.add_argument("target")
        def run(self, args, manager):
            print(" ".join([self.config.word] * self.config.times) + " " + args.target)
            return 0

    @attrs.frozen(kw_only=True)
    class MeanConfig:
        every: int = attrs.field(default=2, validator=v.ge(1))
        n: int = 8

    class SampleMean:
        '''Mean of n samples from the run's sampling generator.'''
        def __init__(self, config):
            self.every = config.every
            self.n = config.n
            self.calls = []
        def __call__(self, run):
            self.calls.append(run.step)
            x = run.sample(self.n, generator=torch.Generator(run.device).manual_seed(0))
            assert x.shape[0] == self.n and not x.requires_grad
            return {"sample_mean": float(x.mean())}

    class Picky:
        '''Refuses every run when it is built.'''
        every = 1
        def __init__(self, config):
            pass
        def check(self, run):
            from ganforge import ConfigError
            raise ConfigError(f"cannot judge {run.config.data.name!r}")
        def __call__(self, run):
            raise AssertionError("never called: check() refused the run")

    @attrs.frozen(kw_only=True)
    class NoConfig:
        pass

    class Sideways:
        '''A penalty whose target is neither network.'''
        target = "both"
        every = 1
        needs_labels = False
        def __init__(self, config):
            pass
        def penalty(self, ctx):
            return ctx.real.sum() * 0

    class Never:
        '''A penalty due every 0 updates.'''
        target = "discriminator"
        every = 0
        needs_labels = False
        def __init__(self, config):
            pass
        def penalty(self, ctx):
            return ctx.real.sum() * 0

    class Fussy:
        '''A loss whose own check raises a plain ValueError.'''
        def __init__(self, config):
            raise ValueError("fussy needs a margin")

    class Unreduced:
        '''A non-saturating loss that forgets to average over the batch.'''
        generator_needs_real = False
        def __init__(self, config):
            pass
        def discriminator_loss(self, real_logits, fake_logits):
            return torch.nn.functional.softplus(-real_logits) + torch.nn.functional.softplus(fake_logits)
        def generator_loss(self, fake_logits, real_logits):
            return torch.nn.functional.softplus(-fake_logits).mean()

    class PerSample:
        '''A penalty that returns one value per sample.'''
        target = "discriminator"
        every = 1
        needs_labels = False
        def __init__(self, config):
            pass
        def penalty(self, ctx):
            return ctx.real.flatten(1).pow(2).mean(1) * 0.0

    @hookimpl
    def ganforge_register_regularizers(register):
        register("sideways", Sideways, NoConfig)
        register("never", Never, NoConfig)
        register("per-sample", PerSample, NoConfig)

    @hookimpl
    def ganforge_register_losses(register):
        register("fussy", Fussy, NoConfig)
        register("unreduced", Unreduced, NoConfig)

    @hookimpl
    def ganforge_register_commands(register):
        register("echo", Echo, EchoConfig)

    @hookimpl
    def ganforge_register_callbacks(register):
        register("sample-mean", SampleMean, MeanConfig)
        register("picky", Picky, NoConfig)
"""


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginManager]:
    yield from installed_plugin_manager(tmp_path / "site", monkeypatch, name="gf-extras", module="gf_extras",
                                        source=PLUGIN)


def test_a_plugin_command_gets_its_arguments_and_structured_settings(
    manager: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "echo.toml"
    settings.write_text('word = "hi"\n')
    assert main(["echo", "world", "-c", str(settings), "--set", "times=3"]) == 0
    assert capsys.readouterr().out == "hi hi hi world\n"


def test_bad_plugin_command_settings_name_the_field(manager: PluginManager, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["echo", "x", "--set", "times=0"]) == 2
    err = capsys.readouterr().err
    assert "times: must be >= 1" in err and "Traceback" not in err
    assert main(["echo", "x", "--set", "colour=1"]) == 2
    assert "unknown key(s) colour; expected one of: times, word" in capsys.readouterr().err


def test_callbacks_run_every_k_steps_and_at_the_end_and_are_logged(manager: PluginManager, tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[[callbacks]]\nname = "sample-mean"\nevery = 2\n')
    trainer = Trainer(load_config(path, [*TINY, "train.steps=5"], manager), tmp_path / "run", manager=manager)
    trainer.fit()
    (cb,) = trainer.callbacks
    assert cb.calls == [2, 4, 5]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "sample_mean" in r] == [2, 4, 5]
    assert all(-1.0 <= r["sample_mean"] <= 1.0 for r in records if "sample_mean" in r)


def test_callbacks_come_from_the_config_file(manager: PluginManager, tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[[callbacks]]\nname = "sample-mean"\nevery = 3\n')
    config = load_config(path, TINY, manager)
    assert [c.name for c in config.callbacks] == ["sample-mean"] and config.callbacks[0].params.every == 3
    path.write_text('[[callbacks]]\nname = "sample-man"\n')
    expected = r"callbacks\[0\]\.name: unknown callback 'sample-man'.*did you mean 'sample-mean'"
    with pytest.raises(ConfigError, match=expected):
        load_config(path, TINY, manager)


def test_progressive_networks_are_told_the_image_count_before_every_update(tmp_path: Path) -> None:
    trainer = Trainer(load_config(None, [*TINY, "train.n_critic=2", "train.batch_size=8"]), tmp_path)
    seen: list[int] = []
    trainer.updates.progressive.append(seen.append)
    trainer.train_step()
    trainer.train_step()
    assert seen == [0, 8, 16, 16, 24, 32]  # D, D, G per iteration; G updates count no real images


def test_a_callback_check_and_a_malformed_penalty_are_refused_when_the_run_is_built(
        manager: PluginManager, tmp_path: Path) -> None:
    for override, message in (('callbacks=[{name = "picky"}]', "callbacks[0] 'picky': cannot judge 'digits'"),
                              ('regularizers=[{name = "sideways"}]', "the plugin's target is 'both'; a regularizer "
                                                                     "targets 'generator' or 'discriminator'"),
                              ('regularizers=[{name = "never"}]', "the penalty's every is 0; expected a whole number "
                                                                  "of updates >= 1"),
                              ("loss.name=fussy", "loss.name: 'fussy' (plugin 'gf_extras' of gf-extras")):
        with pytest.raises(ConfigError) as info:
            Trainer(load_config(None, [*TINY, override], manager), tmp_path / "run", manager=manager)
        assert message in str(info.value)
    assert "could not be built: ValueError: fussy needs a margin" in str(info.value)  # the last case's
    assert not (tmp_path / "run").exists()


def test_a_loss_or_penalty_that_is_not_a_scalar_is_named_not_a_backward_traceback(
        manager: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = [a for arg in TINY for a in ("--set", arg)]
    for i, (override, message) in enumerate((
            ("loss.name=unreduced", "minimise(loss) for optimiser 'd': expected a scalar tensor, got a tensor "
                                    "of shape [16]"),
            ('regularizers=[{name = "per-sample"}]', "regularizer 'per-sample': penalty() returned a tensor of "
                                                     "shape [16]; expected a scalar tensor"))):
        assert main(["train", "--out", str(tmp_path / f"run{i}"), *base, "--set", override]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "implicitly created" not in err
    # the same run with the reducing first-party pieces trains: the check refuses only what is wrong
    assert main(["train", "--out", str(tmp_path / "fine"), *base, "--set", "loss.name=non-saturating"]) == 0
