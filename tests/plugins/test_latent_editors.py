"""InterFaceGAN, GANSpace and vector arithmetic: planted directions recovered on linear toys, layer-range
edits, conditional projection, direction files bound to their generator, and bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import torch
from ganforge import ConfigError, DataSpec, Editor, LatentSpace, get_plugin_manager
from ganforge_plugins.latent.arithmetic import VectorArithmetic, VectorArithmeticConfig, arithmetic, mean_latent
from ganforge_plugins.latent.ganspace import GANSpace, GANSpaceConfig, pca
from ganforge_plugins.latent.interfacegan import (
    InterFaceGAN,
    InterFaceGANConfig,
    project_out,
    rank_within,
    svm_direction,
)
from ganforge_plugins.latent.spaces import render, sample_latents
from ganforge_plugins.models.dcgan import DCGANGenerator, DCGANGeneratorConfig
from ganforge_plugins.models.stylegan import StyleGANGenerator, StyleGANGeneratorConfig

from tests.plugins.latent_toys import LeftHalfBrightness, LinearStyleToy, cos

CPU = torch.device("cpu")
MANAGER = get_plugin_manager()


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_dcgan(seed: int = 0) -> DCGANGenerator:
    torch.manual_seed(seed)
    return DCGANGenerator(DCGANGeneratorConfig(base_channels=4, latent_dim=8), DataSpec(shape=(1, 16, 16))).eval()


def tiny_stylegan() -> StyleGANGenerator:
    torch.manual_seed(0)
    return StyleGANGenerator(StyleGANGeneratorConfig(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                                                     channel_max=8), DataSpec(shape=(1, 32, 32))).eval()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("component", MANAGER.registries["editor"], ids=lambda c: c.name)
def test_editors_build_from_default_config_and_round_trip(component) -> None:
    from ganforge.config import make_converter

    editor = component.factory(component.config())
    assert isinstance(editor, Editor) and editor.space in ("z", "w", "w+")
    conv = make_converter(MANAGER)
    assert conv.structure(conv.unstructure(component.config()), component.config) == component.config()


# -- InterFaceGAN ---------------------------------------------------------------------------------


def test_svm_direction_recovers_a_planted_normal() -> None:
    x = torch.randn(3000, 16, generator=rng(1))
    truth = torch.randn(16, generator=rng(2))
    scores = x @ truth + 0.1 * torch.randn(3000, generator=rng(3))
    n = svm_direction(x, scores, 300)
    assert float(n.norm()) == pytest.approx(1.0, abs=1e-5)
    assert cos(n, truth) > 0.95
    assert cos(svm_direction(x, -scores, 300), truth) < -0.95  # it points towards higher scores


@pytest.mark.parametrize("space", ["z", "w", "w+"])
def test_interfacegan_recovers_the_brightness_normal_of_a_linear_generator(space: str) -> None:
    toy = LinearStyleToy(scales=[3.0, 2.0] + [1.0] * 10)
    editor = InterFaceGAN(InterFaceGANConfig(space=space, attribute="brightness", num_samples=2000, num_keep=200))
    editor.fit(toy, device=CPU, generator_rng=rng(0))
    truth = toy.brightness_normal_z() if space == "z" else toy.brightness_normal_w()
    found = editor.direction[0] if space == "w+" else editor.direction
    assert cos(found, truth) > 0.9
    # and editing along it raises the measured brightness linearly with alpha
    latents = sample_latents(toy, 8, space, generator_rng=rng(9))
    scorer = MANAGER.get("scorer", "brightness").factory(MANAGER.get("scorer", "brightness").config())
    b = torch.stack([scorer.score(render(toy, editor.edit(latents, a), space))[:, 0] for a in (-2.0, 0.0, 2.0)])
    assert bool((b[0] < b[1]).all() and (b[1] < b[2]).all())


def test_interfacegan_on_a_dcgan_moves_ink_in_the_edit_direction() -> None:
    g = tiny_dcgan()
    editor = InterFaceGAN(InterFaceGANConfig(attribute="brightness", num_samples=600, num_keep=100))
    editor.fit(g, device=CPU, generator_rng=rng(0))
    z = torch.randn(64, 8, generator=rng(5))
    scorer = MANAGER.get("scorer", "brightness").factory(MANAGER.get("scorer", "brightness").config())
    with torch.no_grad():
        lo, hi = (scorer.score(g(editor.edit(z, a)))[:, 0] for a in (-2.0, 2.0))
    assert float((hi > lo).float().mean()) > 0.9


def test_conditional_direction_is_orthogonal_to_the_condition_and_keeps_it_fixed() -> None:
    toy = LinearStyleToy(seed=3)
    scorers = {"left": LeftHalfBrightness()}
    cond = InterFaceGAN(InterFaceGANConfig(space="z", attribute="brightness", condition=("left",), num_samples=2000,
                                           num_keep=200), scorers=scorers)
    cond.fit(toy, device=CPU, generator_rng=rng(0))
    assert abs(float(cond.direction @ cond.conditions["left"])) < 1e-5
    assert cos(cond.unconditioned, cond.conditions["left"]) > 0.3  # the two attributes are correlated
    z = sample_latents(toy, 16, "z", generator_rng=rng(4))
    left = LeftHalfBrightness()

    def change(direction: torch.Tensor) -> float:
        return float((left.score(toy(z + 2 * direction)) - left.score(toy(z))).abs().mean())

    assert change(cond.direction) < 0.2 * change(cond.unconditioned)


class ConfoundedToy(torch.nn.Module):
    """``z`` in R^4 drawn as a 1 x 1 x 4 image: pixel 0 is the attribute ``2 z1 + z0`` and pixel 1 the
    class coordinate ``z1``, so that the attribute's extremes are chosen mostly by class."""

    latent_spaces = (LatentSpace(name="z", shape=(4,)),)
    num_classes = None

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([2 * z[:, 1] + z[:, 0], z[:, 1], z[:, 2], z[:, 3]], 1).reshape(-1, 1, 1, 4) / 10


class Attribute:
    attributes = ("a",)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :1]


class TenClasses:
    """A ten-class "classifier" of the class coordinate: one-hot of its decile bin under N(0, 1)."""

    attributes = tuple(str(k) for k in range(10))
    edges = torch.tensor([-1.28, -0.84, -0.52, -0.25, 0.0, 0.25, 0.52, 0.84, 1.28])

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.bucketize(x[:, 0, 0, 1] * 10, self.edges), 10).float()


def test_balance_by_fits_the_attribute_within_a_class_and_keeps_the_class() -> None:
    scorers = {"a": Attribute(), "cls": TenClasses()}
    cfg = InterFaceGANConfig(space="z", attribute="a", num_samples=4000, num_keep=400)
    plain, balanced = InterFaceGAN(cfg, scorers=scorers), InterFaceGAN(
        attrs.evolve(cfg, balance_by="cls"), scorers=scorers)
    for editor in (plain, balanced):
        editor.fit(ConfoundedToy(), device=CPU, generator_rng=rng(0))
    e0 = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert cos(plain.direction, e0) < 0.5  # mostly the class coordinate: 2 z1 dominates 2 z1 + z0
    assert cos(balanced.direction, e0) > 0.9  # within a decile z1 varies little: mostly the attribute's own axis
    z = torch.randn(500, 4, generator=rng(7))
    cls = scorers["cls"]

    def kept(editor: InterFaceGAN) -> float:
        before = cls.score(ConfoundedToy()(z)).argmax(1)
        return float((cls.score(ConfoundedToy()(editor.edit(z, 0.5))).argmax(1) == before).float().mean())

    # deciles 0.25 wide: the plain direction leaves them at once, the balanced one keeps most
    assert kept(balanced) > 0.5 > 0.25 > kept(plain)
    with pytest.raises(ConfigError, match=r"balance_by: 'a' scores one attribute \(\['a'\]\); expected a classifier"):
        InterFaceGAN(attrs.evolve(cfg, balance_by="a"), scorers=scorers).fit(
            ConfoundedToy(), device=CPU, generator_rng=rng(0))
    with pytest.raises(ConfigError, match="balance_by: unknown scorer 'digits'"):
        InterFaceGAN(attrs.evolve(cfg, balance_by="digits"), scorers=scorers).fit(
            ConfoundedToy(), device=CPU, generator_rng=rng(0))


def test_rank_within_is_the_percentile_inside_each_group() -> None:
    scores = torch.tensor([5.0, 1.0, 3.0, 100.0, -100.0])
    groups = torch.tensor([0, 0, 0, 1, 1])
    torch.testing.assert_close(rank_within(scores, groups),
                               torch.tensor([5 / 6, 1 / 6, 3 / 6, 3 / 4, 1 / 4], dtype=torch.float64))


def test_project_out_removes_a_span() -> None:
    d = torch.tensor([1.0, 1.0, 1.0])
    out = project_out(d, [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0])])
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(project_out(d, []), d)
    with pytest.raises(ConfigError, match="condition"):
        project_out(d, [d])


def test_interfacegan_layer_range_moves_only_those_styles_by_alpha_each() -> None:
    toy = LinearStyleToy(scales=[3.0, 2.0] + [1.0] * 10)
    cfg = InterFaceGANConfig(space="w+", attribute="brightness", num_samples=2000, num_keep=200)
    whole, middle = InterFaceGAN(cfg), InterFaceGAN(attrs.evolve(cfg, layers="middle"))
    for editor in (whole, middle):
        editor.fit(toy, device=CPU, generator_rng=rng(0))
    torch.testing.assert_close(middle.direction[2], whole.direction[2])  # the same W normal, on style 2 only
    ws = sample_latents(toy, 5, "w+", generator_rng=rng(1))
    delta = (middle.edit(ws, 1.5) - ws).norm(dim=2)  # [N, num_ws]
    torch.testing.assert_close(delta[:, 2], torch.full((5,), 1.5))
    assert bool((delta[:, [0, 1, 3]] == 0).all())
    # the toy renders the mean of its styles: one style of four moves the brightness a quarter as far
    scorer = MANAGER.get("scorer", "brightness").factory(MANAGER.get("scorer", "brightness").config())

    def rise(editor: InterFaceGAN) -> torch.Tensor:
        return scorer.score(render(toy, editor.edit(ws, 2.0), "w+"))[:, 0] - scorer.score(render(toy, ws, "w+"))[:, 0]

    torch.testing.assert_close(rise(middle), rise(whole) / 4, rtol=1e-4, atol=1e-6)
    assert bool((rise(middle) > 0).all())


def test_interfacegan_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"'layers' must be 'all' with space = 'w': a style range \('middle'\) "
                                         r"confines the edit to W\+ and needs space = 'w\+'"):
        InterFaceGANConfig(space="w", layers="middle")
    with pytest.raises(ConfigError, match=r"layers: must be one of .* got 'midle'"):
        InterFaceGAN(InterFaceGANConfig(space="w+", layers="midle")).fit(LinearStyleToy(), device=CPU,
                                                                         generator_rng=rng())
    with pytest.raises(ValueError, match=r"'num_keep' must be at most num_samples / 2 = 5 \(got 6\)"):
        InterFaceGANConfig(num_samples=10, num_keep=6)
    with pytest.raises(ValueError, match="'space'"):
        InterFaceGANConfig(space="s")
    with pytest.raises(ConfigError, match=r"space: DCGANGenerator has no latent space 'w'.*mapping network.*\['z'\]"):
        InterFaceGAN(InterFaceGANConfig(space="w")).fit(tiny_dcgan(), device=CPU, generator_rng=rng())
    toy = LinearStyleToy()
    with pytest.raises(ConfigError, match=r"attribute: unknown scorer 'thikness'"):
        InterFaceGAN(InterFaceGANConfig(attribute="thikness", num_samples=8, num_keep=2)).fit(
            toy, device=CPU, generator_rng=rng())
    with pytest.raises(ConfigError, match=r"attribute: the scorer has no attribute 'bold'; it scores \['ink'\]"):
        InterFaceGAN(InterFaceGANConfig(attribute="ink:bold", num_samples=8, num_keep=2)).fit(
            toy, device=CPU, generator_rng=rng())
    with pytest.raises(ConfigError, match="call fit"):
        InterFaceGAN(InterFaceGANConfig()).edit(torch.zeros(2, 12), 1.0)
    editor = InterFaceGAN(InterFaceGANConfig(attribute="brightness", num_samples=40, num_keep=10))
    editor.fit(toy, device=CPU, generator_rng=rng())
    with pytest.raises(ValueError, match=r"expected latents \[N, 12\] in 'z', got \(2, 5\)"):
        editor.edit(torch.zeros(2, 5), 1.0)
    with pytest.raises(ValueError, match="alpha has 3 values for 2 latents"):
        editor.edit(torch.zeros(2, 12), torch.ones(3))


def test_direction_file_round_trips_and_is_refused_for_another_generator(tmp_path: Path) -> None:
    toy = LinearStyleToy()
    editor = InterFaceGAN(InterFaceGANConfig(attribute="brightness", num_samples=200, num_keep=50))
    editor.fit(toy, device=CPU, generator_rng=rng())
    path = editor.save(tmp_path / "bright.safetensors", toy)
    side = json.loads((tmp_path / "bright.safetensors.json").read_text())
    assert side["kind"] == "direction" and side["space"] == "z" and side["attribute"] == "brightness"
    assert len(side["generator"]["fingerprint"]) == 64
    again = InterFaceGAN(InterFaceGANConfig(direction=str(path)))
    again.fit(toy, device=CPU, generator_rng=rng())
    torch.testing.assert_close(again.direction, editor.direction)
    other = LinearStyleToy(seed=1)
    with pytest.raises(ConfigError, match=r"generator: .*bright.safetensors' belongs to another generator"):
        InterFaceGAN(InterFaceGANConfig(direction=str(path))).fit(other, device=CPU, generator_rng=rng())
    with pytest.raises(ConfigError, match=r"space: .* holds a direction in 'z', the editor edits 'w'"):
        InterFaceGAN(InterFaceGANConfig(space="w", direction=str(path))).fit(toy, device=CPU, generator_rng=rng())
    with pytest.raises(ConfigError, match=r"path: .*never pickle"):
        editor.save(tmp_path / "bright.pt", toy)


# -- GANSpace -------------------------------------------------------------------------------------


def test_pca_matches_a_planted_anisotropic_distribution() -> None:
    basis, _ = torch.linalg.qr(torch.randn(6, 6, generator=rng(7)))
    scales = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25, 0.1])
    x = (torch.randn(20000, 6, generator=rng(8)) * scales) @ basis.T + 3.0
    mean, comps, var, ratio = pca(x, 6)
    torch.testing.assert_close(mean, torch.full((6,), 3.0), atol=0.1, rtol=0)
    for k in range(3):
        assert abs(cos(comps[k], basis[:, k])) > 0.99
    torch.testing.assert_close(var, scales.square(), rtol=0.05, atol=0.01)
    torch.testing.assert_close(ratio.sum(), torch.tensor(1.0))
    torch.testing.assert_close(comps @ comps.T, torch.eye(6), atol=1e-5, rtol=0)


def test_ganspace_recovers_the_top_axis_of_w() -> None:
    toy = LinearStyleToy(scales=[5.0, 2.0] + [1.0] * 10)
    editor = GANSpace(GANSpaceConfig(num_samples=4000))
    editor.fit(toy, device=CPU, generator_rng=rng(0))
    assert abs(cos(editor.components[0], toy.rotation[0])) > 0.99
    assert abs(cos(editor.components[1], toy.rotation[1])) > 0.95
    assert float(editor.explained_variance_ratio[0]) == pytest.approx(25 / 39, abs=0.03)
    assert bool((editor.explained_variance[:-1] >= editor.explained_variance[1:]).all())
    assert float(editor.explained_variance[0]) > float(editor.explained_variance[9])
    w = sample_latents(toy, 5, "w", generator_rng=rng(1))
    moved = editor.edit(w, 2.0) - w  # two standard deviations along PC1
    torch.testing.assert_close(moved.norm(dim=1), torch.full((5,), 2 * float(editor.explained_variance[0].sqrt())))


def test_ganspace_layer_range_edits_only_those_styles() -> None:
    g = tiny_stylegan()
    editor = GANSpace(GANSpaceConfig(layers="coarse", component=1, num_samples=300))
    editor.fit(g, device=CPU, generator_rng=rng(0))
    assert editor.space == "w+"
    ws = sample_latents(g, 3, "w+", generator_rng=rng(1))
    delta = (editor.edit(ws, 1.5) - ws).norm(dim=2)  # [N, num_ws]
    assert bool((delta[:, :4] > 0).all()) and bool((delta[:, 4:] == 0).all())
    with torch.no_grad():
        assert (g.synthesis(editor.edit(ws, 3.0)) - g.synthesis(ws)).abs().mean() > 1e-4


def test_ganspace_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pca_space: DCGANGenerator has no latent space 'w'"):
        GANSpace(GANSpaceConfig()).fit(tiny_dcgan(), device=CPU, generator_rng=rng())
    with pytest.raises(ConfigError, match=r"layers: DCGANGenerator has no latent space 'w\+'"):
        GANSpace(GANSpaceConfig(pca_space="z", layers="coarse")).fit(tiny_dcgan(), device=CPU, generator_rng=rng())
    with pytest.raises(ConfigError, match=r"layers: .* needs pca_space = 'w'"):
        GANSpace(GANSpaceConfig(pca_space="z", layers="coarse")).fit(LinearStyleToy(), device=CPU,
                                                                      generator_rng=rng())
    with pytest.raises(ValueError, match=r"'component' must be < num_components = 3 \(got 3\)"):
        GANSpaceConfig(component=3, num_components=3)
    z_editor = GANSpace(GANSpaceConfig(pca_space="z", num_samples=100))
    z_editor.fit(tiny_dcgan(), device=CPU, generator_rng=rng())  # any generator: PCA of z
    path = z_editor.save(tmp_path / "pcs.safetensors", tiny_dcgan())
    loaded = GANSpace(GANSpaceConfig(pca_space="z", direction=str(path)))
    loaded.fit(tiny_dcgan(), device=CPU, generator_rng=rng())
    torch.testing.assert_close(loaded.components, z_editor.components)
    with pytest.raises(ConfigError, match="belongs to another generator"):
        GANSpace(GANSpaceConfig(pca_space="z", direction=str(path))).fit(tiny_dcgan(seed=1), device=CPU,
                                                                           generator_rng=rng())


# -- vector arithmetic ----------------------------------------------------------------------------


def test_vector_arithmetic_direction_is_the_difference_of_group_means() -> None:
    toy = LinearStyleToy()
    editor = VectorArithmetic(VectorArithmeticConfig(attribute="brightness", num_samples=2000, num_keep=200))
    editor.fit(toy, device=CPU, generator_rng=rng(0))
    assert cos(editor.direction, toy.brightness_normal_z()) > 0.9
    z = sample_latents(toy, 4, "z", generator_rng=rng(1))
    torch.testing.assert_close(editor.edit(z, 1.0) - z, editor.direction.expand(4, -1))
    latents = torch.tensor([[0.0, 0.0], [2.0, 4.0], [4.0, 8.0]])
    torch.testing.assert_close(mean_latent(latents, torch.tensor([False, True, True])), torch.tensor([3.0, 6.0]))
    torch.testing.assert_close(arithmetic(latents[2], latents[1], latents[0]), torch.tensor([2.0, 4.0]))
    with pytest.raises(ConfigError, match="no sample satisfies"):
        mean_latent(latents, torch.zeros(3, dtype=torch.bool), what="bold 3")
