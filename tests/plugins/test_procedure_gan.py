"""The gan procedure in the one loop: each real batch travels with its own labels (a relativistic loss
reads real logits in the generator step, and every real image there must be scored under its own
label), and the procedure is what ``[procedure]`` names."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
import torch.nn.functional as F
from ganforge import DataSpec, Trainer, hookimpl, load_config
from ganforge.manager import PluginManager
from ganforge.registry import PluginInfo
from torch import Tensor, nn

from tests.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


@attrs.frozen(kw_only=True)
class RelativisticConfig:
    pass


class RelativisticAverage:
    """RaGAN (Jolicoeur-Martineau 2018, arXiv:1807.00734): D(x) is judged against the mean fake score
    and vice versa, so the generator step needs real logits."""

    generator_needs_real = True

    def __init__(self, config: RelativisticConfig) -> None:
        self.config = config

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()

    def generator_loss(self, fake: Tensor, real: Tensor | None) -> Tensor:
        assert real is not None
        return F.softplus(-(fake - real.mean())).mean() + F.softplus(real - fake.mean()).mean()


@attrs.frozen(kw_only=True)
class RecordingConfig:
    base_channels: int = 8


CALLS: list[tuple[Tensor, Tensor]] = []


def manager_with_recording() -> PluginManager:
    manager = PluginManager()
    manager.load()

    def recording(config: RecordingConfig, data: DataSpec) -> nn.Module:
        inner_config = manager.get("discriminator", "cdcgan").config(base_channels=config.base_channels)
        inner = manager.get("discriminator", "cdcgan").factory(inner_config, data=data)

        class Recording(nn.Module):
            num_classes = inner.num_classes

            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
                assert labels is not None
                CALLS.append((x.detach().clone(), labels.clone()))
                out: Tensor = self.inner(x, labels)
                return out

        return Recording()

    def ganforge_register_losses(register: Any) -> None:
        register("test-ragan", RelativisticAverage, RelativisticConfig)

    def ganforge_register_discriminators(register: Any) -> None:
        register("test-recording", recording, RecordingConfig)

    plugin = types.SimpleNamespace(ganforge_register_losses=hookimpl(ganforge_register_losses),
                                   ganforge_register_discriminators=hookimpl(ganforge_register_discriminators))
    manager.register(plugin, PluginInfo(name="test-plugin", module=__name__))
    return manager


def mislabelled(calls: list[tuple[Tensor, Tensor]], index: dict[bytes, int]) -> tuple[int, int]:
    """(real images scored, of which under another label than their own) over recorded D calls."""
    seen = wrong = 0
    for x, labels in calls:
        for image, label in zip(x, labels.tolist(), strict=True):
            own = index.get(image.numpy().tobytes())
            if own is not None:  # a real image (fakes are not in the dataset)
                seen += 1
                wrong += own != label
    return seen, wrong


def test_every_real_image_is_scored_under_its_own_label_in_both_steps(tmp_path: Path) -> None:
    manager = manager_with_recording()
    config = load_config(None, [*TINY, "loss.name=test-ragan", "discriminator.name=test-recording",
                                "train.steps=4"], manager)
    trainer = Trainer(config, tmp_path / "run", manager=manager)
    data = trainer.updates.streams["data"].tensors
    index = {image.numpy().tobytes(): int(label) for image, label in zip(data["images"], data["labels"], strict=True)}
    CALLS.clear()
    trainer.fit()
    # D step: real + fake, G step: fake + real (the relativistic loss), 4 iterations; previews call G only
    assert len(CALLS) == 4 * 4
    g_step_reals = [call for i, call in enumerate(CALLS) if i % 4 == 3]
    seen, wrong = mislabelled(g_step_reals, index)
    assert seen == 4 * 16 and wrong == 0
    seen, wrong = mislabelled(CALLS, index)
    assert seen == 8 * 16 and wrong == 0
    # the check can fail: the same real batches under shuffled labels are mostly mislabelled
    shuffled = [(x, labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))])
                for x, labels in g_step_reals]
    assert mislabelled(shuffled, index)[1] > 16


def test_the_procedure_is_a_registered_component_named_in_the_config(tmp_path: Path) -> None:
    config = load_config(None, TINY)
    assert config.procedure.name == "gan"
    trainer = Trainer(config, tmp_path)
    assert set(trainer.roles) == {"generator", "discriminator"} and set(trainer.emas) == {"generator"}
    assert trainer.roles["generator"].optimizer == "g" and trainer.roles["discriminator"].optimizer == "d"
    with pytest.raises(Exception, match=r"procedure\.name: unknown procedure 'gam'.*did you mean 'gan'"):
        load_config(None, [*TINY, "procedure.name=gam"])


@pytest.mark.parametrize(("generator", "discriminator", "warned"), [
    ("cdcgan", "dcgan", "the generator is class-conditional and the discriminator is not"),
    ("dcgan", "cdcgan", "the discriminator is class-conditional and the generator is not"),
    ("cdcgan", "cdcgan", None),
])
def test_a_conditional_network_beside_an_unconditional_one_is_warned_of(
        generator: str, discriminator: str, warned: str | None, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    Trainer(load_config(None, [f"generator.name={generator}", f"discriminator.name={discriminator}", *TINY]),
            tmp_path / "run")
    err = capsys.readouterr().err
    assert (warned in err) if warned else "class-conditional" not in err
