"""The plugin docs keep up with the code: every hook in ``hookspecs.py`` has a row in the hook table of
``docs/writing-plugins.md``, and every registry family is named there."""

from __future__ import annotations

import re

from ganforge import hookspecs
from ganforge.registry import FAMILIES

from tests.conftest import REPO


def documented_hooks(text: str) -> set[str]:
    return set(re.findall(r"^\| `(ganforge_register_\w+)` \|", text, flags=re.MULTILINE))


def test_every_hook_has_a_row_in_the_docs_hook_table() -> None:
    text = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    hooks = {name for name in dir(hookspecs) if name.startswith("ganforge_register_")}
    assert hooks == set(FAMILIES.values())
    assert hooks - documented_hooks(text) == set()


def test_the_check_finds_a_missing_row() -> None:
    text = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    without = "\n".join(line for line in text.splitlines() if "`ganforge_register_loggers`" not in line)
    assert documented_hooks(text) - documented_hooks(without) == {"ganforge_register_loggers"}
