"""Contract tests over every registered attribute scorer and editor (in the style of test_contracts.py):
each builds from its default config, gives the documented shapes, refuses bad input with a clear error,
and an editor's files are bound to the generator it was fitted on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
from ganforge import AttributeScorer, ConfigError, DataError, DataSpec, Editor, get_plugin_manager
from ganforge.config import make_converter
from ganforge.registry import Component
from ganforge_plugins.latent.spaces import latent_shape, render, sample_latents
from ganforge_plugins.models.dcgan import DCGANGenerator, DCGANGeneratorConfig
from ganforge_plugins.models.stylegan import StyleGANGenerator, StyleGANGeneratorConfig

MANAGER = get_plugin_manager()
CPU = torch.device("cpu")
# fields an editor may have, shrunk so that fitting takes a moment on a CPU
SMALL = {"num_samples": 96, "num_keep": 24, "steps": 10, "classifier_steps": 10, "hidden": 16,
         "classifier_hidden": 16, "batch_size": 48, "num_components": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


def components(family: str) -> list[Any]:
    return [pytest.param(c, id=c.name) for c in MANAGER.registries[family]]


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_stylegan(seed: int = 0) -> StyleGANGenerator:
    torch.manual_seed(seed)
    return StyleGANGenerator(StyleGANGeneratorConfig(latent_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                                                     channel_max=8), DataSpec(shape=(1, 16, 16))).eval()


def small_config(component: Component) -> Any:
    config = component.config()
    fields = {a.name for a in attrs.fields(component.config)}
    return attrs.evolve(config, **{k: val for k, val in SMALL.items() if k in fields})


# -- scorers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("component", components("scorer"))
def test_scorer_contract(component: Component) -> None:
    scorer = component.factory(component.config())
    assert isinstance(scorer, AttributeScorer) and len(scorer.attributes) >= 1
    assert all(isinstance(a, str) and a for a in scorer.attributes)
    assert len(set(scorer.attributes)) == len(scorer.attributes)
    x = torch.rand(5, 1, 16, 16, generator=rng(1)) * 2 - 1
    scores = scorer.score(x)
    assert scores.shape == (5, len(scorer.attributes)) and scores.dtype.is_floating_point
    assert bool(torch.isfinite(scores).all())
    torch.testing.assert_close(scorer.score(x), scores)  # deterministic
    torch.testing.assert_close(scorer.score(x[2:3]), scores[2:3], atol=1e-5, rtol=1e-4)  # per image
    converter = make_converter(MANAGER)
    assert converter.structure(converter.unstructure(component.config()), component.config) == component.config()
    with pytest.raises(DataError, match=r"\[5, 16, 16\]"):
        scorer.score(torch.zeros(5, 16, 16))


# -- editors --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stylegan() -> StyleGANGenerator:
    return tiny_stylegan()


@pytest.mark.parametrize("component", components("editor"))
def test_editor_contract(component: Component, stylegan: StyleGANGenerator, tmp_path: Path) -> None:
    editor = component.factory(small_config(component))
    assert isinstance(editor, Editor) and editor.space in ("z", "w", "w+")
    with pytest.raises(ConfigError, match="fit"):
        editor.edit(torch.zeros(2, *latent_shape(stylegan, editor.space)), 1.0)
    editor.fit(stylegan, device=CPU, generator_rng=rng(0))
    latents = sample_latents(stylegan, 4, editor.space, generator_rng=rng(1))
    edited = editor.edit(latents, 1.0)
    assert edited.shape == latents.shape and bool(torch.isfinite(edited).all())
    assert not torch.equal(edited, latents)
    torch.testing.assert_close(editor.edit(latents, 0.0), latents)
    per_sample = editor.edit(latents, torch.tensor([0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(per_sample[1::2], edited[1::2])
    torch.testing.assert_close(per_sample[0::2], latents[0::2])
    with torch.no_grad():
        assert render(stylegan, edited, editor.space).shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="expected latents"):
        editor.edit(torch.zeros(2, 3), 1.0)
    # its file round-trips on this generator and is refused on another
    path = editor.save(tmp_path / "edit.safetensors", stylegan)
    assert (tmp_path / "edit.safetensors.json").is_file()
    fields = {a.name for a in attrs.fields(component.config)}
    assert "direction" in fields  # the config names a saved file to load instead of fitting
    loaded = component.factory(attrs.evolve(small_config(component), direction=str(path)))
    loaded.fit(stylegan, device=CPU, generator_rng=rng(5))
    torch.testing.assert_close(loaded.edit(latents, 1.0), edited)
    with pytest.raises(ConfigError, match="belongs to another generator"):
        component.factory(attrs.evolve(small_config(component), direction=str(path))).fit(
            tiny_stylegan(seed=1), device=CPU, generator_rng=rng())


@pytest.mark.parametrize("component", components("editor"))
def test_editor_refuses_a_space_the_generator_lacks(component: Component) -> None:
    """On a generator without a mapping network, an editor of W or W+ says so; a Z editor fits."""
    editor = component.factory(small_config(component))
    torch.manual_seed(0)
    dcgan = DCGANGenerator(DCGANGeneratorConfig(base_channels=4, latent_dim=8), DataSpec(shape=(1, 16, 16))).eval()
    if editor.space == "z":
        editor.fit(dcgan, device=CPU, generator_rng=rng())
        assert editor.edit(torch.zeros(2, 8), 1.0).shape == (2, 8)
    else:
        with pytest.raises(ConfigError, match=r"DCGANGenerator has no latent space 'w\+?'.*mapping network"):
            editor.fit(dcgan, device=CPU, generator_rng=rng())
