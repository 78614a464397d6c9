"""Plugin discovery through the ``ganforge`` entry-point group, as a third party would use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from ganforge import PluginError, UnknownComponentError, get_plugin_manager
from ganforge.cli import main
from ganforge.manager import PluginLoadWarning, PluginManager

from tests.fakedist import install_fake_dist

EXTRA_LOSS = """
    import attrs
    from ganforge import hookimpl

    @attrs.frozen
    class Cfg:
        pass

    class Extra:
        '''An extra loss from a third party.'''
        generator_needs_real = False
        def __init__(self, config): pass

    @hookimpl
    def ganforge_register_losses(register):
        register({name!r}, Extra, Cfg)
"""


def extra_loss(name: str) -> str:
    return EXTRA_LOSS.replace("{name!r}", repr(name))


def test_first_party_plugins_come_through_the_entry_point_group() -> None:
    manager = PluginManager()
    manager.load()
    providers = {c.provider.distribution for r in manager.registries.values() for c in r}
    assert providers == {"ganforge"}
    assert {"digits", "mnist", "fashion-mnist", "image-folder"} <= set(manager.registries["dataset"].names())
    assert manager.get("loss", "minimax").provider.module == "ganforge_plugins.losses.gan"


def test_third_party_plugin_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-extra", version="2.3",
                      entry_points={"extra": "gf_extra"}, modules={"gf_extra": extra_loss("extra-loss")})
    manager = PluginManager()
    manager.load()
    comp = manager.get("loss", "extra-loss")
    assert (comp.provider.distribution, comp.provider.version) == ("gf-extra", "2.3")
    assert comp.summary == "An extra loss from a third party."


def test_duplicate_name_is_an_error_naming_both_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-clash", entry_points={"clash": "gf_clash"},
                      modules={"gf_clash": extra_loss("minimax")})
    with pytest.raises(PluginError) as info:
        PluginManager().load()
    message = str(info.value)
    assert "loss 'minimax' is registered twice" in message
    assert "ganforge 0.1.0" in message and "gf-clash 1.0" in message


def test_broken_plugin_is_reported_and_the_rest_keep_working(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-broken", version="0.9", entry_points={"broken": "gf_broken"},
                      modules={"gf_broken": "import a_module_that_does_not_exist\n"})
    manager = PluginManager()
    with pytest.warns(PluginLoadWarning, match=r"gf-broken 0\.9.*ModuleNotFoundError.*a_module_that_does_not_exist"):
        manager.load()
    assert [f.plugin.distribution for f in manager.failures] == ["gf-broken"]
    assert "dcgan" in manager.registries["generator"]


def test_strict_mode_makes_a_broken_plugin_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-broken", entry_points={"broken": "gf_broken"},
                      modules={"gf_broken": "raise RuntimeError('boom at import')\n"})
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"gf-broken.*RuntimeError: boom at import"):
        PluginManager().load()


def test_misspelled_hook_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = "from ganforge import hookimpl\n@hookimpl\ndef ganforge_register_loss(register):\n    pass\n"
    install_fake_dist(tmp_path, monkeypatch, name="gf-typo", entry_points={"typo": "gf_typo"},
                      modules={"gf_typo": source})
    manager = PluginManager()
    with pytest.warns(PluginLoadWarning, match="ganforge_register_loss"):
        manager.load()
    assert manager.failures[0].plugin.name == "typo"


def test_disabled_autoload_loads_only_what_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-extra", entry_points={"extra": "gf_extra"},
                      modules={"gf_extra": extra_loss("extra-loss")})
    monkeypatch.setenv("GANFORGE_DISABLE_PLUGIN_AUTOLOAD", "1")
    nothing = PluginManager()
    nothing.load()
    assert sum(len(r) for r in nothing.registries.values()) == 0

    monkeypatch.setenv("GANFORGE_PLUGINS", "gf-extra,gan-losses")  # a distribution and an entry point
    some = PluginManager()
    some.load()
    assert some.registries["loss"].names() == ["extra-loss", "minimax", "non-saturating"]
    assert len(some.registries["generator"]) == 0


def test_a_module_path_loads_a_plugin_that_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "local_plugin.py").write_text(extra_loss("local-loss").replace("\n    ", "\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GANFORGE_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = PluginManager()
    manager.load(["local_plugin"])
    assert manager.registries["loss"].names() == ["local-loss"]
    assert manager.get("loss", "local-loss").provider.distribution is None


def test_unknown_name_lists_choices_and_the_closest_match() -> None:
    manager = PluginManager()
    manager.load()
    with pytest.raises(UnknownComponentError) as info:
        manager.get("loss", "non-saturatin")
    choices = ", ".join(manager.registries["loss"].names())
    assert "minimax, non-saturating" in choices
    assert str(info.value) == f"unknown loss 'non-saturatin'; choose one of: {choices} (did you mean 'non-saturating'?)"


def test_plugins_command_lists_distribution_version_and_components(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "dcgan  [ganforge 0.1.0]  ganforge_plugins.models.dcgan" in out
    assert any(line.split()[:2] == ["generator", "dcgan"] for line in out.splitlines())
    assert any(line.split()[:2] == ["loss", "non-saturating"] for line in out.splitlines())


def test_plugins_command_lists_every_layer_and_inversion_method(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    rows = {tuple(line.split()[:2]) for line in capsys.readouterr().out.splitlines()}
    manager = get_plugin_manager()
    for family in ("layer", "inversion"):
        names = [c.name for c in manager.registries[family]]
        assert len(names) >= 3, family
        missing = [name for name in names if (family, name) not in rows]
        assert not missing, f"{family}: {missing}"
