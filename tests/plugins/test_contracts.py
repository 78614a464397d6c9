"""Contract tests, parametrised over every registered component: each builds from its default
config, produces the documented shapes, lets gradients flow, and its config round-trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
from ganforge import ConfigError, Constraint, DataSpec, LatentSpace, Penalty, PenaltyContext, get_plugin_manager
from ganforge.config import make_converter
from ganforge.registry import Component

from tests.conftest import SHARED_DATA

MANAGER = get_plugin_manager()
SPECS = [DataSpec(shape=(1, 16, 16)), DataSpec(shape=(3, 32, 32))]


def components(family: str) -> list[Any]:
    return [pytest.param(c, id=c.name) for c in MANAGER.registries[family]]


def build_config(component: Component, **required: Any) -> Any:
    return component.config(**required)


def all_components() -> list[Any]:
    return [pytest.param(c, id=f"{c.family}-{c.name}") for r in MANAGER.registries.values() for c in r]


# Values for fields a component cannot default (a dataset's local path).
def required_fields(component: Component, tmp_path: Path) -> dict[str, Any]:
    required = [a.name for a in attrs.fields(component.config) if a.default is attrs.NOTHING]
    if component.name == "fashion-mnist" and not Path(component.config().root).is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    if required == ["root"] and component.name == "mnist":
        if not (SHARED_DATA / "mnist").is_dir():
            pytest.skip("real MNIST is not available")
        return {"root": str(SHARED_DATA / "mnist"), "limit": 256}
    if required == ["root"] and component.name == "image-folder":
        from PIL import Image

        for i in range(3):
            Image.new("RGB", (20, 24), (40 * i, 90, 200)).save(tmp_path / f"{i}.png")
        return {"root": str(tmp_path)}
    if component.factory.__module__.endswith("translation.data"):
        return translation_fields(component.name, tmp_path)
    if not required:
        return {}
    pytest.fail(f"{component.family} {component.name!r} has required config fields {required} "
                "the contract tests cannot fill")


def translation_fields(name: str, tmp_path: Path) -> dict[str, Any]:
    """Small real data for a translation dataset: MNIST or CIFAR-10 from shared/, or folders made here."""
    from PIL import Image

    if name in ("aligned", "unaligned", "domains"):
        folders = {"aligned": ("A", "B"), "unaligned": ("trainA", "trainB"), "domains": ("one", "two")}[name]
        for folder in folders:
            (tmp_path / folder).mkdir()
            for i in range(3):
                Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(tmp_path / folder / f"{i}.png")
        return {"root": str(tmp_path), "resolution": 16, "test_split": "none"}
    root = SHARED_DATA / ("cifar10-jpeg.tar.gz" if name == "cifar-colorize" else "mnist")
    if not root.exists():
        pytest.skip(f"{root} is not available")
    return {"root": str(root), "resolution": 16, "limit": 32, "test_limit": 8}


@pytest.mark.parametrize("component", all_components())
def test_config_round_trips_through_cattrs(component: Component, tmp_path: Path) -> None:
    config = component.config(**required_fields(component, tmp_path))
    converter = make_converter(MANAGER)
    assert converter.structure(converter.unstructure(config), component.config) == config


def build_network(component: Component, spec: DataSpec) -> Any:
    """Build on ``spec``; a conditional network refuses unlabelled data with a ConfigError that
    says so, and is then built on the same spec with ten classes."""
    try:
        return component.factory(component.config(), data=spec)
    except ConfigError as exc:
        if spec.num_classes is not None or "label" not in str(exc):
            raise
    labelled = attrs.evolve(spec, num_classes=10, class_names=tuple(map(str, range(10))))
    net = component.factory(component.config(), data=labelled)
    assert net.num_classes == 10
    return net


@pytest.mark.parametrize("component", components("generator"))
@pytest.mark.parametrize("spec", SPECS, ids=["1x16x16", "3x32x32"])
def test_generator_contract(component: Component, spec: DataSpec) -> None:
    g = build_network(component, spec)
    spec = attrs.evolve(spec, num_classes=g.num_classes)
    spaces = g.latent_spaces
    assert spaces and all(isinstance(s, LatentSpace) for s in spaces)
    z = torch.randn(4, *spaces[0].shape, requires_grad=True)
    labels = torch.arange(4) % spec.num_classes if g.num_classes else None
    x = g(z, labels)
    assert x.shape == (4, *spec.shape)
    assert x.min() >= -1.0 and x.max() <= 1.0
    x.square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters() if p.requires_grad)


@pytest.mark.parametrize("component", components("discriminator"))
@pytest.mark.parametrize("spec", SPECS, ids=["1x16x16", "3x32x32"])
def test_discriminator_contract(component: Component, spec: DataSpec) -> None:
    d = build_network(component, spec)
    spec = attrs.evolve(spec, num_classes=d.num_classes)
    x = torch.randn(4, *spec.shape, requires_grad=True)
    labels = torch.arange(4) % spec.num_classes if d.num_classes else None
    logits = d(x, labels)
    assert logits.shape[0] == 4 and logits.dim() in (1, 4)
    if logits.dim() == 4:
        assert logits.shape[1] == 1
    params = [p for p in d.parameters() if p.requires_grad]
    first = torch.autograd.grad(logits.mean(), params, retain_graph=True)
    assert all(g.abs().sum() > 0 for g in first)
    # second order: penalties such as R1 and WGAN-GP differentiate through the input gradient
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    second = torch.autograd.grad(grad.square().sum(), [p for p in params if p.dim() > 1], allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in second)


@pytest.mark.parametrize("component", components("loss"))
@pytest.mark.parametrize("shape", [(8,), (8, 1, 4, 4)], ids=["scalar", "patch-map"])
def test_loss_contract(component: Component, shape: tuple[int, ...]) -> None:
    loss = component.factory(component.config())
    real = torch.randn(shape, requires_grad=True)
    fake = torch.randn(shape, requires_grad=True)
    d_loss = loss.discriminator_loss(real, fake)
    g_loss = loss.generator_loss(fake, real if loss.generator_needs_real else None)
    assert d_loss.shape == () and g_loss.shape == ()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    (d_real, d_fake) = torch.autograd.grad(d_loss, (real, fake))
    assert d_real.abs().sum() > 0 and d_fake.abs().sum() > 0
    (g_fake,) = torch.autograd.grad(g_loss, fake)
    assert g_fake.abs().sum() > 0


@pytest.mark.parametrize("component", components("sampler"))
def test_sampler_contract(component: Component) -> None:
    sampler = component.factory(component.config())
    space = LatentSpace(name="z", shape=(7,))
    cpu = torch.device("cpu")
    a = sampler.sample(5, space, device=cpu, generator=torch.Generator().manual_seed(3))
    b = sampler.sample(5, space, device=cpu, generator=torch.Generator().manual_seed(3))
    c = sampler.sample(5, space, device=cpu, generator=torch.Generator().manual_seed(4))
    assert a.shape == (5, 7) and torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("component", components("dataset"))
def test_dataset_contract(component: Component, tmp_path: Path) -> None:
    dataset = component.factory(component.config(**required_fields(component, tmp_path)))
    if hasattr(dataset, "kind"):  # translation data: the tensors of its kind, in [-1, 1]
        tensors = [v for v in attrs.asdict(dataset.train, recurse=False).values() if isinstance(v, torch.Tensor)]
        assert dataset.kind in ("paired", "unpaired", "domains") and tensors
        assert all(t.min() >= -1.0 and t.max() <= 1.0 for t in tensors if t.is_floating_point())
        return
    assert dataset.images.shape[1:] == dataset.spec.shape and dataset.images.dtype == torch.float32
    if dataset.spec.is_image:
        assert dataset.images.min() >= -1.0 and dataset.images.max() <= 1.0
    if dataset.labels is not None:
        assert dataset.labels.shape == (len(dataset.images),) and dataset.labels.dtype == torch.long
        assert dataset.spec.num_classes is not None and int(dataset.labels.max()) < dataset.spec.num_classes
    else:
        assert dataset.spec.num_classes is None


@pytest.mark.parametrize("component", components("regularizer"))
def test_regularizer_contract(component: Component) -> None:
    from ganforge_plugins.models.dcgan import (
        DCGANDiscriminator,
        DCGANDiscriminatorConfig,
        DCGANGenerator,
        DCGANGeneratorConfig,
    )
    from ganforge_plugins.models.stylegan import StyleGANGenerator, StyleGANGeneratorConfig

    reg = component.factory(component.config())
    assert isinstance(reg, Penalty | Constraint)
    spec = SPECS[0]
    # a generator-side penalty may look inside the generator (the path length penalty needs W): it gets
    # the generator with the most inside, a StyleGAN's
    g = (StyleGANGenerator(StyleGANGeneratorConfig(latent_dim=8, w_dim=8, channel_base=64, channel_max=8), spec)
         if reg.target == "generator" else DCGANGenerator(DCGANGeneratorConfig(base_channels=4, latent_dim=8), spec))
    d = DCGANDiscriminator(DCGANDiscriminatorConfig(base_channels=4), spec)
    if isinstance(reg, Penalty):
        z = torch.randn(4, 8)
        real, fake = torch.rand(4, *spec.shape) * 2 - 1, g(z).detach()
        ctx = PenaltyContext(generator=g, discriminator=d, real=real, fake=fake, labels=None, fake_labels=None,
                             latents=z, real_logits=d(real), fake_logits=d(fake), step=0)
        value = reg.penalty(ctx)
        assert value.shape == () and torch.isfinite(value)
    if isinstance(reg, Constraint):
        reg.constrain(d)
