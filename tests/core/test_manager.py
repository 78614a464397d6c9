"""Plugin discovery through the ``ganforge`` entry-point group, as a third party would use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from ganforge import PluginError, UnknownComponentError, get_plugin_manager
from ganforge.cli import main
from ganforge.manager import PluginLoadWarning, PluginManager, set_plugin_manager

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


def test_a_name_collision_keeps_the_first_provider_and_fails_only_what_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-clash", entry_points={"clash": "gf_clash"},
                      modules={"gf_clash": extra_loss("minimax")})
    manager = PluginManager()
    with pytest.warns(PluginLoadWarning, match="loss 'minimax' is registered twice"):
        manager.load()
    assert manager.get("loss", "non-saturating").name == "non-saturating"  # the rest works
    assert "dcgan" in manager.registries["generator"]
    with pytest.raises(PluginError) as info:
        manager.get("loss", "minimax")
    message = str(info.value)
    assert "loss 'minimax' is registered twice" in message
    assert "ganforge 0.1.0" in message and "gf-clash 1.0" in message
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"registered twice.*GANFORGE_STRICT_PLUGINS"):
        PluginManager().load()


RAISING_HOOK = """
import attrs
from ganforge import hookimpl

@attrs.frozen
class Cfg:
    pass

def factory(config):
    "a loss"

@hookimpl
def ganforge_register_losses(register):
    register("half-registered", factory, Cfg)
    raise RuntimeError("boom in the hook")
"""


@pytest.mark.parametrize(("source", "error"), [
    (RAISING_HOOK, "RuntimeError: boom in the hook"),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
], ids=["raising-hook", "sys-exit"])
def test_a_plugin_that_raises_or_exits_is_skipped_and_every_command_still_works(
    source: str, error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-bad", entry_points={"bad": "gf_bad"},
                      modules={"gf_bad": source})
    manager = PluginManager()
    with pytest.warns(PluginLoadWarning, match=error):
        manager.load()
    assert "half-registered" not in manager.registries["loss"]  # nothing of it stays half-registered
    set_plugin_manager(manager)
    try:
        assert main(["plugins"]) == 0
        assert f"FAILED: {error}" in capsys.readouterr().out
        with pytest.raises(SystemExit) as done:
            main(["--help"])
        assert done.value.code == 0
        assert main(["config", "show"]) == 0
    finally:
        set_plugin_manager(None)


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


SHADOWING_COMMAND = """
import attrs
from ganforge import hookimpl

@attrs.frozen
class Cfg:
    pass

class Train:
    "a plugin's own train"

    def __init__(self, settings):
        pass

    def run(self, args, manager):
        return 7

@hookimpl
def ganforge_register_commands(register):
    register("train", Train, Cfg)
"""


def test_a_plugin_command_named_like_a_built_in_is_not_used_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-shadow", entry_points={"shadow": "gf_shadow"},
                      modules={"gf_shadow": SHADOWING_COMMAND})
    manager = PluginManager()
    manager.load()
    set_plugin_manager(manager)
    try:
        assert main(["config", "show"]) == 0
        err = capsys.readouterr().err
        assert "gf-shadow 1.0" in err and "registers a command named 'train', like a built-in one" in err
    finally:
        set_plugin_manager(None)


def test_a_plugin_asked_for_by_name_that_fails_to_load_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "a_module_nobody_wrote", "plugins"]) == 2
    err = capsys.readouterr().err
    assert "(a_module_nobody_wrote) was asked for by name (-p or GANFORGE_PLUGINS) and failed to load" in err
    assert "no entry point, distribution or importable module has that name" in err
    install_fake_dist(tmp_path, monkeypatch, name="gf-broken", entry_points={"broken": "gf_broken"},
                      modules={"gf_broken": "raise RuntimeError('boom at import')\n"})
    monkeypatch.setenv("GANFORGE_PLUGINS", "gf-broken")
    with pytest.raises(PluginError, match=r"gf-broken.*asked for by name.*RuntimeError: boom at import"):
        PluginManager().load()
    monkeypatch.delenv("GANFORGE_PLUGINS")
    with pytest.warns(PluginLoadWarning, match="boom at import"):  # autoloaded, not asked for: skipped, as before
        PluginManager().load()


@pytest.mark.parametrize("name", ["", "Has Space", "Upper"])
def test_a_name_no_config_could_write_is_refused_at_registration(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_dist(tmp_path, monkeypatch, name="gf-names", entry_points={"names": "gf_names"},
                      modules={"gf_names": extra_loss(name)})
    manager = PluginManager()
    with pytest.warns(PluginLoadWarning, match=f"registered a loss named {name!r}; a name is what configs write"):
        manager.load()
    assert name not in manager.registries["loss"]
