"""The regularizers against their formulas, with every kind of discriminator the engine meets (batch
norm, conditional, PatchGAN maps, PacGAN packs), under mixed precision, and inside the trainer."""

from __future__ import annotations

import json
import math
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from ganforge import ConfigError, Constraint, DataSpec, Penalty, PenaltyContext, get_plugin_manager, hookimpl
from ganforge.config import load_config
from ganforge.manager import PluginManager
from ganforge.registry import PluginInfo
from ganforge.training import Trainer
from ganforge_plugins.models.dcgan import (
    DCGANDiscriminator,
    DCGANDiscriminatorConfig,
    DCGANGenerator,
    DCGANGeneratorConfig,
)
from ganforge_plugins.regularizers.drift import DriftPenalty, DriftPenaltyConfig
from ganforge_plugins.regularizers.r1_r2 import R1Config, R1Penalty, R2Config, R2Penalty
from ganforge_plugins.regularizers.weight_clipping import WeightClipping, WeightClippingConfig
from ganforge_plugins.regularizers.wgan_gp import WGANGradientPenalty, WGANGradientPenaltyConfig, interpolate
from torch import Tensor, nn

from tests.conftest import TINY

PENALTIES = ["wgan-gp", "r1", "r2", "drift"]
REGULARIZERS = [*PENALTIES, "weight-clipping"]
SHAPE = (1, 8, 8)


def build(name: str, **params: Any) -> Any:
    component = get_plugin_manager().get("regularizer", name)
    return component.factory(component.config(**params))


def context(d: nn.Module, real: Tensor, fake: Tensor, labels: Tensor | None = None) -> PenaltyContext:
    return PenaltyContext(generator=nn.Identity(), discriminator=d, real=real, fake=fake, labels=labels,
                          fake_labels=labels, latents=torch.zeros(len(real), 1), real_logits=d(real, labels),
                          fake_logits=d(fake, labels), step=0)


# -- test discriminators -----------------------------------------------------------------------


class LinearCritic(nn.Module):
    """``f(x) = w . x + b``: its input gradient is ``w`` everywhere."""

    def __init__(self, w: Tensor, bias: float = 0.0) -> None:
        super().__init__()
        self.num_classes = None
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(bias, dtype=w.dtype))

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        return x.flatten(1) @ self.w + self.b  # [N]


class QuadrantCritic(nn.Module):
    """A PatchGAN-shaped critic: a 2x2 map, patch ``p`` linear in its own quadrant, ``w_p . x_p``."""

    def __init__(self, w: Tensor) -> None:  # w: [4, 4 * 4] for 8x8 inputs
        super().__init__()
        self.num_classes = None
        self.w = nn.Parameter(w.clone())

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        q = x[:, 0].unfold(1, 4, 4).unfold(2, 4, 4).reshape(len(x), 4, 16)  # [N, 4 quadrants, 16]
        return (q * self.w).sum(-1).view(len(x), 1, 2, 2)  # [N, 1, 2, 2]


class PackedLinearCritic(nn.Module):
    """PacGAN with packs of 2: ``f(x_2i, x_2i+1) = w . concat(x_2i, x_2i+1)``, one value per pack."""

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.num_classes = None
        self.w = nn.Parameter(w.clone())

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        return x.reshape(len(x) // 2, -1) @ self.w  # [N / 2]


class ConditionalPatchCritic(nn.Module):
    """A conditional discriminator with batch norm and a PatchGAN map output: the label is embedded as
    extra input channels (as in Mirza & Osindero 2014, which feed y to both players)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, 8 * 8)
        self.net = nn.Sequential(
            nn.Conv2d(2, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 3, 1, 1),
        )

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        if labels is None:
            raise ValueError("ConditionalPatchCritic needs labels")
        y = self.embed(labels).view(len(x), 1, 8, 8)
        return self.net(torch.cat([x, y], dim=1))  # [N, 1, 4, 4]


def batch(n: int = 6, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(n, *SHAPE, generator=gen, dtype=dtype) * 2 - 1
    return real, torch.rand(n, *SHAPE, generator=gen, dtype=dtype) * 2 - 1


def scaled_w(norm: float) -> Tensor:
    w = torch.randn(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return w * (norm / w.norm())


# -- formulas on a linear critic ---------------------------------------------------------------


@pytest.mark.parametrize("norm", [0.5, 2.0])
@pytest.mark.parametrize(("variant", "formula"), [
    ("two-sided", lambda g: (g - 1) ** 2),
    ("one-sided", lambda g: max(0.0, g - 1) ** 2),
    ("zero-centred", lambda g: g**2),
])
def test_gradient_penalty_of_a_linear_critic(norm: float, variant: str, formula: Any) -> None:
    d = LinearCritic(scaled_w(norm))
    real, fake = batch(dtype=torch.float64)
    value = WGANGradientPenalty(WGANGradientPenaltyConfig(variant=variant)).penalty(context(d, real, fake))
    assert value.item() == pytest.approx(10.0 * formula(norm), rel=1e-10, abs=1e-12)


def test_gradient_penalty_backpropagates_its_second_order_term() -> None:
    # d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||: only create_graph=True gives it
    d = LinearCritic(scaled_w(2.0))
    real, fake = batch(dtype=torch.float64)
    value = WGANGradientPenalty(WGANGradientPenaltyConfig()).penalty(context(d, real, fake))
    (grad,) = torch.autograd.grad(value, d.w)
    w = d.w.detach()
    assert torch.allclose(grad, 2 * 10.0 * (w.norm() - 1) * w / w.norm(), rtol=1e-10)


def test_interpolates_lie_on_the_segment_between_real_and_fake() -> None:
    real, fake = batch(n=256)
    torch.manual_seed(0)
    x_hat = interpolate(real, fake)
    direction = (real - fake).flatten(1)
    eps = ((x_hat - fake).flatten(1) * direction).sum(1) / direction.square().sum(1)  # [N]
    assert torch.allclose(fake + eps.view(-1, 1, 1, 1) * (real - fake), x_hat, atol=1e-6)  # one eps per sample
    assert eps.min() >= 0 and eps.max() <= 1 and 0.2 < eps.std() < 0.4  # U[0, 1] has std 0.29
    with pytest.raises(ValueError, match="differ in shape"):
        interpolate(real, fake[:3])


@pytest.mark.parametrize("gamma", [10.0, 0.5])
def test_r1_and_r2_of_a_linear_critic(gamma: float) -> None:
    d = LinearCritic(scaled_w(3.0))
    real, fake = batch(dtype=torch.float64)
    ctx = context(d, real, fake)
    assert R1Penalty(R1Config(gamma=gamma)).penalty(ctx).item() == pytest.approx(gamma / 2 * 9.0, rel=1e-10)
    assert R2Penalty(R2Config(gamma=gamma)).penalty(ctx).item() == pytest.approx(gamma / 2 * 9.0, rel=1e-10)


def test_r1_looks_at_real_data_and_r2_at_fakes() -> None:
    # D(x) = sum(x^2) / 2 has gradient x: R1 = gamma/2 E||x||^2 on the reals, R2 on the fakes
    class Quadratic(nn.Module):
        num_classes = None

        def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
            return 0.5 * x.flatten(1).square().sum(1)

    real, fake = batch(dtype=torch.float64)
    fake = 3 * fake
    ctx = context(Quadratic(), real, fake)
    r1 = R1Penalty(R1Config()).penalty(ctx).item()
    r2 = R2Penalty(R2Config()).penalty(ctx).item()
    assert r1 == pytest.approx(5.0 * real.flatten(1).square().sum(1).mean().item(), rel=1e-10)
    assert r2 == pytest.approx(5.0 * fake.flatten(1).square().sum(1).mean().item(), rel=1e-10)


def test_drift_is_epsilon_times_mean_squared_real_output() -> None:
    d = LinearCritic(scaled_w(1.0), bias=2.0)
    real, fake = batch(dtype=torch.float64)
    ctx = context(d, real, fake)
    expected = 0.001 * d(real).square().mean().item()
    assert DriftPenalty(DriftPenaltyConfig()).penalty(ctx).item() == pytest.approx(expected, rel=1e-12)
    ctx.real_logits = None  # recomputed from the real batch when the caller has no logits
    assert DriftPenalty(DriftPenaltyConfig(epsilon=0.5)).penalty(ctx).item() == pytest.approx(500 * expected)
    # it acts on the logits of the main loss term: the gradient reaches D through them
    ctx.real_logits = d(real)
    (grad,) = torch.autograd.grad(DriftPenalty(DriftPenaltyConfig()).penalty(ctx), d.b)
    assert grad.item() == pytest.approx(0.002 * d(real).mean().item(), rel=1e-10)


def test_patch_map_penalties_see_each_samples_mean_prediction() -> None:
    # The losses average the 4 patch predictions, so the critic value of an image is their mean,
    # whose input gradient is concat(w_p) / 4: norm ||W|| / 4.
    w = torch.randn(4, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    w = w * (8.0 / w.norm())  # ||W|| = 8, gradient norm 2
    d = QuadrantCritic(w)
    real, fake = batch(dtype=torch.float64)
    ctx = context(d, real, fake)
    assert ctx.real_logits is not None and ctx.real_logits.shape == (6, 1, 2, 2)
    assert WGANGradientPenalty(WGANGradientPenaltyConfig()).penalty(ctx).item() == pytest.approx(10.0, rel=1e-10)
    assert R1Penalty(R1Config()).penalty(ctx).item() == pytest.approx(5.0 * 4.0, rel=1e-10)
    expected_drift = 0.001 * ctx.real_logits.square().mean().item()
    assert DriftPenalty(DriftPenaltyConfig()).penalty(ctx).item() == pytest.approx(expected_drift, rel=1e-12)


def test_pacgan_penalties_take_the_gradient_per_pack() -> None:
    d = PackedLinearCritic(scaled_w(1.0).repeat(2) * 1.5 / math.sqrt(2.0))  # ||w|| = 1.5 over a pack
    real, fake = batch(dtype=torch.float64)
    ctx = context(d, real, fake)
    assert R1Penalty(R1Config()).penalty(ctx).item() == pytest.approx(5.0 * 2.25, rel=1e-10)
    assert WGANGradientPenalty(WGANGradientPenaltyConfig()).penalty(ctx).item() == pytest.approx(2.5, rel=1e-10)


# -- any discriminator, mixed precision --------------------------------------------------------


def dcgan_pair() -> tuple[nn.Module, nn.Module]:
    spec = DataSpec(shape=(1, 16, 16))
    g = DCGANGenerator(DCGANGeneratorConfig(base_channels=4, latent_dim=8), spec)
    return g, DCGANDiscriminator(DCGANDiscriminatorConfig(base_channels=4), spec)


def check_penalty(reg: Any, ctx: PenaltyContext, d: nn.Module) -> Tensor:
    value = reg.penalty(ctx)
    assert value.shape == () and value.dtype == torch.float32 and torch.isfinite(value)
    grads = torch.autograd.grad(value, [p for p in d.parameters() if p.dim() > 1], allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(g is None or (g.dtype == torch.float32 and torch.isfinite(g).all()) for g in grads)
    return value.detach()


@pytest.mark.parametrize("name", PENALTIES)
def test_penalties_with_a_batch_norm_discriminator(name: str) -> None:
    torch.manual_seed(0)
    g, d = dcgan_pair()
    assert any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    z = torch.randn(4, 8)
    real, fake = torch.rand(4, 1, 16, 16) * 2 - 1, g(z).detach()
    ctx = PenaltyContext(generator=g, discriminator=d, real=real, fake=fake, labels=None, fake_labels=None,
                         latents=z, real_logits=d(real), fake_logits=d(fake), step=0)
    assert check_penalty(build(name), ctx, d) > 0


@pytest.mark.parametrize("name", PENALTIES)
def test_penalties_with_a_conditional_patch_discriminator(name: str) -> None:
    torch.manual_seed(0)
    d = ConditionalPatchCritic()
    real, fake = batch()
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    ctx = context(d, real, fake, labels)
    assert ctx.real_logits is not None and ctx.real_logits.shape == (6, 1, 4, 4)
    torch.manual_seed(1)
    value = check_penalty(build(name), ctx, d)
    # the labels reach the discriminator: other labels, another penalty
    other = context(d, real, fake, (labels + 1) % 3)
    torch.manual_seed(1)
    assert not torch.isclose(build(name).penalty(other).detach(), value)
    with pytest.raises(ValueError, match="needs labels"):  # a conditional D is not silently scored without
        build(name).penalty(PenaltyContext(**{**attrs_dict(ctx), "labels": None, "fake_labels": None,
                                              "real_logits": None}))


def attrs_dict(ctx: PenaltyContext) -> dict[str, Any]:
    import attrs

    return attrs.asdict(ctx, recurse=False)


@pytest.mark.parametrize("name", PENALTIES)
@pytest.mark.parametrize("net", ["dcgan", "conditional-patch"])
def test_penalties_under_bfloat16_autocast(name: str, net: str) -> None:
    torch.manual_seed(0)
    if net == "dcgan":
        d: nn.Module = dcgan_pair()[1].eval()  # eval: the same batch statistics for both passes
        real, fake = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
        labels = None
    else:
        d = ConditionalPatchCritic().eval()
        real, fake = batch()
        labels = torch.tensor([0, 1, 2, 2, 1, 0])
    reg = build(name)
    torch.manual_seed(3)
    full = reg.penalty(context(d, real, fake, labels)).detach()
    torch.manual_seed(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ctx = context(d, real, fake, labels)
        assert ctx.real_logits is not None and ctx.real_logits.dtype == torch.bfloat16  # autocast is on
        value = check_penalty(reg, ctx, d)
    if name == "drift":  # computed from the main term's bfloat16 logits: bfloat16 accuracy
        assert torch.allclose(value, full, rtol=2e-2)
    else:  # the gradient penalties run in float32 inside autocast: the float32 result
        assert torch.allclose(value, full, rtol=1e-5)


# -- weight clipping -----------------------------------------------------------------------------


def test_weight_clipping_confines_every_parameter() -> None:
    torch.manual_seed(0)
    _, d = dcgan_pair()
    before = {n: p.detach().clone() for n, p in d.named_parameters()}
    assert max(p.abs().max().item() for p in before.values()) > 0.5  # batch-norm scales near 1
    clip = WeightClipping(WeightClippingConfig())
    assert isinstance(clip, Constraint) and not isinstance(clip, Penalty) and clip.target == "discriminator"
    clip.constrain(d)
    for name, p in d.named_parameters():
        assert p.abs().max().item() <= 0.01, name
        inside = before[name].abs() <= 0.01
        assert torch.equal(p[inside], before[name][inside])  # weights already inside are untouched
        assert torch.equal(p[~inside], 0.01 * before[name][~inside].sign())


# -- configs and the trainer ---------------------------------------------------------------------


@pytest.mark.parametrize("name", REGULARIZERS)
def test_regularizers_are_discriminator_side_and_need_no_labels(name: str) -> None:
    reg = build(name)
    assert reg.target == "discriminator" and reg.needs_labels is False
    assert isinstance(reg, Penalty) == (name in PENALTIES)


@pytest.mark.parametrize(("table", "message"), [
    ('{name = "wgan-gp", weight = -10.0}', r"regularizers\[0\]\.weight: must be >= 0.0: -10.0"),
    ('{name = "wgan-gp", variant = "one_sided"}', r"regularizers\[0\]\.variant: must be in .*'one-sided'.*one_sided"),
    ('{name = "wgan-gp", every = 0}', r"regularizers\[0\]\.every: must be >= 1: 0"),
    ('{name = "r1", gamma = -1.0}', r"regularizers\[0\]\.gamma: must be >= 0.0: -1.0"),
    ('{name = "r2", every = 0}', r"regularizers\[0\]\.every: must be >= 1: 0"),
    ('{name = "drift", epsilon = -0.001}', r"regularizers\[0\]\.epsilon: must be >= 0.0: -0.001"),
    ('{name = "weight-clipping", clip = -0.01}', r"regularizers\[0\]\.clip: must be > 0.0: -0.01"),
    ('{name = "weight-clipping", clip = 0.0}', r"regularizers\[0\]\.clip: must be > 0.0: 0.0"),
    ('{name = "r1", lambda = 1.0}', r"regularizers\[0\]: unknown key\(s\) lambda; expected one of: gamma, every"),
    ('{name = "gradient-penalty"}', r"regularizers\[0\]\.name: unknown regularizer 'gradient-penalty'"),
])
def test_bad_regularizer_settings_are_config_errors(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"regularizers=[{table}]"])


def test_n_critic_below_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.n_critic: must be >= 1: 0"):
        load_config(None, ["train.n_critic=0"])


def test_lazy_interval_evaluates_r1_every_nth_discriminator_update(tmp_path: Path) -> None:
    config = load_config(None, [*TINY, "train.steps=5", 'regularizers=[{name = "r1", every = 4}]'])
    Trainer(config, tmp_path).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "r1" in r] == [1, 5]  # d updates 0 and 4
    assert all(math.isfinite(r["r1"]) and r["r1"] > 0 for r in records if "r1" in r)


class NeedsLabelsConfig:
    pass


def manager_with(**hooks: Any) -> PluginManager:
    manager = PluginManager()
    manager.load()
    plugin = types.SimpleNamespace(**{name: hookimpl(f) for name, f in hooks.items()})
    manager.register(plugin, PluginInfo(name="test-plugin", module=__name__))
    assert not manager.failures
    return manager


def test_a_regularizer_that_needs_labels_refuses_unlabelled_data(tmp_path: Path) -> None:
    import attrs
    from PIL import Image

    @attrs.frozen
    class LabelPenaltyConfig:
        pass

    class LabelPenalty:
        target = "discriminator"
        every = 1
        needs_labels = True

        def __init__(self, config: LabelPenaltyConfig) -> None:
            pass

        def penalty(self, ctx: PenaltyContext) -> Tensor:
            raise AssertionError("must not train")

    def ganforge_register_regularizers(register: Any) -> None:
        register("test-needs-labels", LabelPenalty, LabelPenaltyConfig)

    manager = manager_with(ganforge_register_regularizers=ganforge_register_regularizers)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(20):
        Image.new("L", (16, 16), 10 * i).save(images / f"{i}.png")
    overrides = [*TINY, "generator.name=dcgan", "discriminator.name=dcgan", "data.name=image-folder",
                 f"data.root={str(images)!r}", "data.resolution=16",
                 "data.channels=1", "train.batch_size=4", 'regularizers=[{name = "test-needs-labels"}]']
    config = load_config(None, overrides, manager)
    with pytest.raises(ConfigError, match=r"regularizers\[0\]\.name: 'test-needs-labels' needs class labels, but "
                                          r"dataset 'image-folder' is unlabelled"):
        Trainer(config, tmp_path / "run", manager=manager)
    assert not (tmp_path / "run").exists()
    # the same data without that regularizer trains
    Trainer(load_config(None, overrides[:-1], manager), tmp_path / "ok", manager=manager).fit()


def test_every_penalty_trains_a_conditional_discriminator_in_the_trainer(tmp_path: Path) -> None:
    @attrs_frozen
    class CondConfig:
        pass

    def factory(config: CondConfig, data: DataSpec) -> nn.Module:
        assert data.num_classes == 10 and data.shape == (1, 8, 8)
        return ConditionalPatchCritic(num_classes=10)

    def ganforge_register_discriminators(register: Any) -> None:
        register("test-conditional-patch", factory, CondConfig)

    manager = manager_with(ganforge_register_discriminators=ganforge_register_discriminators)
    regs = ", ".join(f'{{name = "{n}"}}' for n in PENALTIES)
    config = load_config(None, [*TINY, "data.resolution=8", "discriminator.name=test-conditional-patch",
                                "loss.name=wgan", "train.n_critic=2", f"regularizers=[{regs}]"], manager)
    trainer = Trainer(config, tmp_path, manager=manager)
    assert trainer.procedure.d_conditional
    seen: list[Tensor | None] = []
    _, first = trainer.updates.penalties["d"][0]
    original = first.penalty
    first.penalty = lambda ctx: (seen.append(ctx.labels), original(ctx))[1]
    trainer.fit()
    assert seen and all(labels is not None and labels.shape == (16,) for labels in seen)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    keys = {"wgan-gp", "r1", "r2", "drift"}
    assert all(keys <= r.keys() and all(math.isfinite(r[k]) for k in keys) for r in records)


def attrs_frozen(cls: type) -> type:
    import attrs

    return attrs.frozen(cls)


# -- composition with the architectures of the other issues, through config alone ---------------

ARCHITECTURES = {  # discriminator -> (generator, tiny overrides)
    "dcgan": ("dcgan", ["discriminator.base_channels=8"]),
    "patchgan": ("dcgan", ["discriminator.base_channels=8"]),
    "cdcgan": ("cdcgan", ["discriminator.base_channels=8"]),
    "mlp": ("dcgan", ["discriminator.pack=2"]),
    "pggan": ("dcgan", []),
    "stylegan": ("dcgan", []),
}
COMBINATIONS = [
    ("wgan", '[{name = "wgan-gp", variant = "one-sided"}, {name = "drift"}]'),
    ("hinge", '[{name = "r1", every = 2}, {name = "r2"}]'),
    ("lsgan", '[{name = "wgan-gp", variant = "zero-centred"}]'),
    ("wgan", '[{name = "weight-clipping"}]'),
]


@pytest.mark.parametrize("discriminator", [
    pytest.param(name, marks=[pytest.mark.slow] if name in ("pggan", "stylegan") else []) for name in ARCHITECTURES
])
def test_losses_and_regularizers_compose_with_every_architecture(discriminator: str, tmp_path: Path) -> None:
    manager = get_plugin_manager()
    if discriminator not in manager.registries["discriminator"]:
        pytest.skip(f"discriminator {discriminator!r} is not installed")
    generator, overrides = ARCHITECTURES[discriminator]
    for i, (loss, regularizers) in enumerate(COMBINATIONS):
        config = load_config(None, [
            *TINY, "train.steps=2", "train.batch_size=8", "train.n_critic=2", f"generator.name={generator}",
            "generator.base_channels=8", f"discriminator.name={discriminator}", *overrides, f"loss.name={loss}",
            f"regularizers={regularizers}",
        ])
        trainer = Trainer(config, tmp_path / str(i))
        trainer.fit()
        records = [json.loads(line) for line in (tmp_path / str(i) / "metrics.jsonl").read_text().splitlines()]
        assert len(records) == 2 and all(math.isfinite(v) for r in records for v in r.values())
        if "weight-clipping" in regularizers:
            assert all(p.abs().max() <= 0.01 for p in trainer.network("discriminator").parameters())
        else:
            assert any(k in ("wgan-gp", "drift", "r1", "r2") for k in records[0])


def test_every_penalty_trains_under_the_trainers_bfloat16_autocast(tmp_path: Path) -> None:
    regs = ", ".join(f'{{name = "{n}"}}' for n in PENALTIES)
    config = load_config(None, [*TINY, "train.precision=bf16", "loss.name=wgan", "train.n_critic=2",
                                f"regularizers=[{regs}]"])
    Trainer(config, tmp_path).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    keys = {"wgan-gp", "r1", "r2", "drift"}
    assert all(keys <= r.keys() and all(math.isfinite(r[k]) and r[k] > 0 for k in keys) for r in records)


def test_an_unconditional_critic_may_be_any_module_taking_only_x() -> None:
    d = nn.Sequential(nn.Flatten(), nn.Linear(64, 1, bias=False)).double()  # forward(x) only, output [N, 1]
    with torch.no_grad():
        d[1].weight.copy_(scaled_w(2.0)[None])
    real, fake = batch(dtype=torch.float64)
    ctx = PenaltyContext(generator=nn.Identity(), discriminator=d, real=real, fake=fake, labels=None,
                         fake_labels=None, latents=real, real_logits=None, fake_logits=None, step=0)
    assert build("wgan-gp").penalty(ctx).item() == pytest.approx(10.0, rel=1e-10)  # 10 (2 - 1)^2
    assert build("r1").penalty(ctx).item() == pytest.approx(20.0, rel=1e-10)  # 10/2 * 2^2
    assert build("drift").penalty(ctx).item() == pytest.approx(0.001 * d(real).square().mean().item(), rel=1e-12)
