"""Config: TOML + overrides structured by one strict converter, with errors a user can act on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import attrs
import pytest
import torch
from ganforge import ConfigError, hookimpl, linear_decay
from ganforge.config import RunConfig, load_config, parse_override, structure, to_toml
from ganforge.manager import PluginManager
from ganforge.registry import PluginInfo


def load_error(*overrides: str, path: str | Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_the_embedded_default_is_a_conditional_dcgan_on_digits() -> None:
    config = load_config()
    assert (config.data.name, config.generator.name, config.discriminator.name) == ("digits", "cdcgan", "cdcgan")
    assert config.discriminator.params.conditioning == "concat"  # Mirza & Osindero's one-hot input maps
    assert config.loss.name == "non-saturating" and config.sampler.name == "gaussian"
    assert config.optim.g.lr == 2e-4 and config.optim.g.betas == (0.5, 0.999)  # DCGAN's Adam


def test_resolved_config_round_trips_through_toml() -> None:
    config = load_config(None, ["generator.latent_dim=7", "optim.d.name=rmsprop", "train.n_critic=5"])
    again = structure(tomllib.loads(to_toml(config)))
    assert again == config
    assert isinstance(again.generator.params, type(config.generator.params))


def test_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[generator]\nname = "dcgan"\nlatent_dim = 32\n[optim.g]\nlr = 1e-3\n')
    config = load_config(path, ["optim.g.lr=1e-4", "loss.name=minimax"])
    assert config.generator.params.latent_dim == 32
    assert config.optim.g.lr == 1e-4  # the override wins over the file
    assert config.optim.g.betas == (0.5, 0.999)  # untouched keys keep their defaults
    assert config.loss.name == "minimax"


def test_override_values_parse_as_toml_with_strings_as_fallback() -> None:
    assert parse_override("optim.g.betas=[0.0, 0.9]") == {"optim": {"g": {"betas": [0.0, 0.9]}}}
    assert parse_override("loss.name=wgan-gp") == {"loss": {"name": "wgan-gp"}}
    assert parse_override("output.progress=false") == {"output": {"progress": False}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("optim.g.lr")


def test_changing_a_component_name_drops_the_previous_plugins_params() -> None:
    manager = PluginManager()
    manager.load()

    @attrs.frozen(kw_only=True)
    class OtherConfig:
        width: int = 4

    class Plugin:
        @hookimpl
        def ganforge_register_generators(self, register):  # type: ignore[no-untyped-def]
            register("other", lambda config, data: None, OtherConfig)

    manager.register(Plugin(), PluginInfo(name="test-other", module=__name__))
    config = load_config(None, ["generator.latent_dim=3", "generator.name=other"], manager)
    assert config.generator.params == OtherConfig()
    same = load_config(None, ["generator.latent_dim=3", "generator.name=cdcgan"], manager)
    assert same.generator.params.latent_dim == 3  # same plugin: its params stay


def test_unknown_component_names_the_path_the_choices_and_the_closest() -> None:
    from ganforge import get_plugin_manager

    message = load_error("loss.name=minimx")
    choices = ", ".join(get_plugin_manager().registries["loss"].names())
    assert "minimax, non-saturating" in choices
    assert f"loss.name: unknown loss 'minimx'; choose one of: {choices} (did you mean 'minimax'?)" in message


def test_wrong_type_names_path_value_and_expectation() -> None:
    assert "generator.latent_dim: expected an integer, got 'abc'" in load_error("generator.latent_dim=abc")
    assert "train.batch_size: expected an integer, got 3.5" in load_error("train.batch_size=3.5")
    assert "train.steps: expected an integer, got True" in load_error("train.steps=true")
    assert "output.progress: expected true or false, got 1" in load_error("output.progress=1")


def test_int_is_accepted_where_a_float_is_expected() -> None:
    assert load_config(None, ["optim.g.lr=1"]).optim.g.lr == 1.0


def test_out_of_range_names_path_bound_and_value() -> None:
    assert "train.batch_size: must be >= 1: 0" in load_error("train.batch_size=0")
    assert "optim.g.lr: must be > 0.0: -0.1" in load_error("optim.g.lr=-0.1")
    assert "optim.d.name: must be in ('adam', 'adamw', 'rmsprop', 'sgd')" in load_error("optim.d.name=adagrad")
    assert "optim.g.betas: must be two numbers in [0, 1)" in load_error("optim.g.betas=[0.5, 1.5]")
    assert "data.resolution: must be a power of two between 4 and 256 (got 12)" in load_error("data.resolution=12")


def test_extra_keys_are_rejected_with_the_accepted_ones() -> None:
    message = load_error("generator.latnet_dim=8")
    expected = "latent_dim, embedding_dim, base_channels, max_channels"
    assert f"generator: unknown key(s) latnet_dim; expected one of: {expected}" in message
    assert "top level: unknown key(s) trian" in load_error("trian.steps=3")

    assert "(did you mean 'latent_dim' for 'latnet_dim'?)" in message
    assert "(did you mean 'train' for 'trian'?)" in load_error("trian.steps=3")
    assert "did you mean" not in load_error("generator.colour=1")  # no key is near: no guess


def test_every_problem_is_reported_at_once() -> None:
    message = load_error("train.steps=0", "generator.latent_dim=x", "loss.gamma=1")
    assert message.count("\n") == 3
    for part in ("train.steps", "generator.latent_dim", "loss: unknown key(s) gamma"):
        assert part in message


def test_a_required_field_is_reported_missing() -> None:
    assert "data.root: required, but missing" in load_error("data.name=mnist")


def test_bad_files_are_named(tmp_path: Path) -> None:
    assert "does not exist" in load_error(path=tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 3\n")
    assert f"config file '{bad}' is not valid TOML" in load_error(path=bad)


def test_saved_config_is_a_complete_description() -> None:
    text = to_toml(load_config())
    data = tomllib.loads(text)
    assert set(data) == {f.name for f in attrs.fields(RunConfig)}
    assert data["generator"] == {"name": "cdcgan", "latent_dim": 100, "embedding_dim": 50, "base_channels": 64,
                                 "max_channels": 1024}


def test_linear_decay_is_constant_then_linear_to_zero() -> None:
    assert [linear_decay(s, 100, 100) for s in (0, 50, 100, 125, 150, 175, 200, 300)] == \
        [1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert linear_decay(10_000, 5, 0) == 1.0  # no decay phase


def test_linear_decay_drives_an_optimiser_to_zero() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([w], lr=2e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_decay(s, 4, 4))
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2e-4] * 5 + [1.5e-4, 1e-4, 0.5e-4])


def test_a_comma_separated_override_is_refused_with_the_list_spelling() -> None:
    with pytest.raises(ConfigError, match=r"'0,1' is not one value; write a list in brackets, seeds=\[0,1\]"):
        parse_override("seeds=0,1")
    assert parse_override("seeds=[0,1]") == {"seeds": [0, 1]}
    assert parse_override("loss.name=wgan-gp") == {"loss": {"name": "wgan-gp"}}  # a bare word is still a string


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e39"])
def test_non_finite_numbers_are_refused_where_every_bound_would_pass_them(value: str) -> None:
    # (1e39 is finite in Python but inf in float32: Adam's update with lr = 1e39 was a RuntimeError)
    shown = re.escape(str(float(value)))
    with pytest.raises(ConfigError, match=rf"optim\.d\.lr: expected a finite number .*, got {shown}"):
        load_config(None, [f"optim.d.lr={value}"])
    assert load_config(None, ["optim.d.lr=3e38"]).optim.d.lr == 3e38


# -- paths in a config file are relative to the file (run-safety issue) ---------------------------------


def test_relative_paths_in_a_file_resolve_against_its_directory_and_overrides_against_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "mine.toml").write_text('[data]\nname = "image-folder"\nroot = "../pictures"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(recipes / "mine.toml").data.params.root == str(tmp_path / "pictures")
    assert load_config(Path("../recipes/mine.toml")).data.params.root == str(tmp_path / "pictures")
    overridden = load_config(recipes / "mine.toml", ["data.root=here"])
    # a --set path means the working directory's, and is recorded absolute: a resume from elsewhere finds it
    assert overridden.data.params.root == str(elsewhere / "here")
    assert load_config(None, ["data.name=image-folder", "data.root=/data/y"]).data.params.root == "/data/y"
    (recipes / "abs.toml").write_text('[data]\nname = "image-folder"\nroot = "/data/x"\n')
    assert load_config(recipes / "abs.toml").data.params.root == "/data/x"


def test_every_recipe_names_the_same_data_from_any_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.conftest import REPO

    recipes = sorted((REPO / "configs").rglob("*.toml"))
    roots = {}
    for cwd in (REPO, tmp_path):
        monkeypatch.chdir(cwd)
        roots[cwd] = {r.name: getattr(load_config(r).data.params, "root", None) for r in recipes}
    assert roots[REPO] == roots[tmp_path]
    mnist = [name for name, root in roots[REPO].items() if root and root.endswith("mnist")]
    assert mnist and all(roots[REPO][name] == str((REPO.parent / "shared" / "data" / "mnist").absolute())
                         for name in mnist)


@pytest.mark.parametrize(("override", "message"), [
    ("train=5", "train: expected a table ([section] or { key = value }), got 5"),
    ("optim.g.betas=[0.5]", "optim.g.betas: expected 2 values in brackets, got 1: [0.5]"),
    ("optim.g.betas=0.5", "optim.g.betas: expected 2 values in brackets, got 0.5"),
    ('regularizers={name="r1"}', "regularizers: expected an array ([...], or [[section]] tables, one per item), "
                                 "got a table {'name': 'r1'}"),
    ('regularizers=[{name="r1", gamma="x"}]', "regularizers[0].gamma: expected a finite number"),
])
def test_a_value_of_the_wrong_shape_is_named_with_what_was_expected(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value) and "TypeError" not in str(info.value)
    assert "ValueError" not in str(info.value)


def test_the_right_shapes_still_structure() -> None:
    config = load_config(None, ["optim.g.betas=[0.5, 0.9]", 'regularizers=[{name="r1", gamma=2.0}]'])
    assert config.optim.g.betas == (0.5, 0.9) and config.regularizers[0].params.gamma == 2.0


def test_renaming_a_section_says_which_of_the_users_parameters_it_drops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "mine.toml"
    recipe.write_text('[generator]\nname = "dcgan"\nlatent_dim = 16\nbase_channels = 8\n')
    config = load_config(recipe, ["generator.name=cdcgan", "generator.latent_dim=16"])
    err = capsys.readouterr().err
    assert "--set generator.name=cdcgan replaces generator 'dcgan'" in err and "base_channels = 8" in err
    assert "latent_dim" not in err  # given again for the new plugin: not lost
    assert config.generator.params.latent_dim == 16 and config.generator.params.base_channels != 8
    load_config(recipe, ["generator.latent_dim=32"])  # no rename: nothing to say
    load_config(None, ["generator.name=dcgan"])  # drops only the embedded default's parameters: nothing to say
    assert capsys.readouterr().err == ""


def test_an_override_indexes_a_list_of_tables(tmp_path: Path) -> None:
    recipe = tmp_path / "r1.toml"
    recipe.write_text('[[regularizers]]\nname = "r1"\ngamma = 0.3\nevery = 16\n'
                      '[[regularizers]]\nname = "path-length"\nevery = 4\n')
    config = load_config(recipe, ["regularizers.0.every=4", "regularizers.1.weight=1.5"])
    first, second = config.regularizers
    assert (first.name, first.params.gamma, first.params.every) == ("r1", 0.3, 4)  # the item's other keys are kept
    assert (second.name, second.params.every, second.params.weight) == ("path-length", 4, 1.5)
    assert load_config(None, ["optim.g.betas.1=0.9"]).optim.g.betas == (0.5, 0.9)  # a plain list, too


def test_an_override_past_a_lists_end_names_its_length_and_how_to_add(tmp_path: Path) -> None:
    recipe = tmp_path / "r1.toml"
    recipe.write_text('[[regularizers]]\nname = "r1"\n')
    assert ("regularizers.1: regularizers has 1 item, so its indices are 0 to 0; give the whole list to add "
            "one (--set 'regularizers=[{name = \"...\"}]'") in load_error("regularizers.1.every=4", path=recipe)
    assert "regularizers.0: regularizers has no items" in load_error("regularizers.0.every=4")
    assert "output.loggers.0: output.loggers has no items" in load_error("output.loggers.0.name=tensorboard")
    assert ("optim.g.betas has 2 items, so its indices are 0 to 1; give the whole list to change its length "
            "(--set 'optim.g.betas=[...]')") in load_error("optim.g.betas.2=0.9")


def test_renaming_a_list_item_starts_it_afresh_and_says_what_it_drops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r1.toml"
    recipe.write_text('[[regularizers]]\nname = "r1"\ngamma = 0.3\nevery = 16\n')
    config = load_config(recipe, ["regularizers.0.name=wgan-gp"])
    assert config.regularizers[0].name == "wgan-gp" and config.regularizers[0].params.every == 1
    err = capsys.readouterr().err
    assert "--set regularizers.0.name=wgan-gp replaces regularizers.0 'r1'" in err
    assert "gamma = 0.3, every = 16" in err


@attrs.frozen(kw_only=True)
class _Seeds:
    seeds: tuple[int, ...] = attrs.field(default=(0,), validator=attrs.validators.and_(
        attrs.validators.min_len(1), attrs.validators.max_len(3)))


@pytest.mark.parametrize(("seeds", "message"), [([], "seeds: expected a length of at least 1, got 0"),
                                                ([1, 2, 3, 4], "seeds: expected a length of at most 3, got 4")])
def test_a_list_of_the_wrong_length_is_named_with_its_bound(seeds: list[int], message: str) -> None:
    from ganforge.config import structure_as

    with pytest.raises(ConfigError) as info:
        structure_as(_Seeds, {"seeds": seeds})
    assert message in str(info.value) and "ValueError" not in str(info.value)


@attrs.frozen(kw_only=True)
class _Part:
    x: int = 0


@attrs.frozen(kw_only=True)
class _CommandSettings:
    seeds: tuple[int, ...] = (0, 1, 2)
    parts: tuple[_Part, ...] = (_Part(),)


def test_a_commands_own_settings_index_their_lists_too() -> None:
    from ganforge.config import load_settings

    assert load_settings(_CommandSettings, None, ["seeds.1=9"]).seeds == (0, 9, 2)  # the class default's items
    with pytest.raises(ConfigError, match=re.escape("parts.0: the config gives no parts to index (its default is "
                                                    "not a list of plain values); give the whole list")):
        load_settings(_CommandSettings, None, ["parts.0.x=1"])
    assert load_settings(_CommandSettings, None, ["parts=[{x = 1}, {x = 2}]", "parts.1.x=5"]).parts == (
        _Part(x=1), _Part(x=5))


class _OneInput(torch.nn.Module):
    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return x * scale


class _Styled(torch.nn.Module):
    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x + w


def test_a_layer_is_checked_against_the_inputs_of_its_slot() -> None:
    from ganforge.config import LayerChoice

    one = LayerChoice(name="one", params=None, factory=lambda params, **_: _OneInput())
    styled = LayerChoice(name="styled", params=None, factory=lambda params, **_: _Styled())
    assert isinstance(one.build(channels=4), _OneInput)  # an optional second input still fits (x)
    assert isinstance(one.build(called_with=("x", "w")), _OneInput)  # ... and (x, w)
    assert isinstance(styled.build(called_with=("x", "w")), _Styled)
    with pytest.raises(ConfigError, match=re.escape("generator.norm: layer 'styled': this slot calls it as "
                                                    "layer(x), but its forward takes 2 input(s)")):
        styled.build(slot="generator.norm")
    with pytest.raises(ConfigError, match=re.escape("layer 'one': this slot calls it as layer(x, w, c), but its "
                                                    "forward takes 1 to 2 input(s)")):
        one.build(called_with=("x", "w", "c"))


def test_a_one_input_layer_in_the_stylegan_style_slot_is_refused_before_training(tmp_path: Path) -> None:
    from ganforge import Trainer

    from tests.conftest import TINY, TINY_STYLEGAN

    path = tmp_path / "style.toml"
    path.write_text(TINY_STYLEGAN)
    tiny = [item for item in TINY if "base_channels" not in item and "latent_dim" not in item]
    config = load_config(path, [*tiny, 'generator.style={name = "batch-norm"}'])
    with pytest.raises(ConfigError, match=re.escape("generator.style: layer 'batch-norm': this slot calls it as "
                                                    "layer(x, w), but its forward takes 1 input(s)")):
        Trainer(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    Trainer(load_config(path, tiny), tmp_path / "adain")  # the default style block builds
