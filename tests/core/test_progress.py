"""The one progress display: bar, done/total, elapsed time and ETA; redrawn in place on a terminal,
a line every ``every_s`` seconds (and at the end) without one."""

from __future__ import annotations

import io

import pytest
from ganforge import Progress
from ganforge.progress import clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_it_writes_a_line_per_period_and_at_the_end() -> None:
    out = io.StringIO()
    p = Progress(4, label="invert", unit="steps", every_s=3600, stream=out)
    p.update(1, "loss=0.5")
    p.update(2)
    p.tick()
    assert out.getvalue().count("\n") == 1  # the first line at once, then nothing within the period
    p.update(4)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("invert [") and "1/4 steps elapsed 0:00" in lines[0]
    assert "loss=0.5" in lines[0] and lines[1].startswith("invert [" + "#" * 24 + "] 4/4 steps")


def test_the_eta_follows_the_rate_of_this_process() -> None:
    p = Progress(10, stream=io.StringIO(), every_s=0)
    p.update(5)  # a resumed run: it starts at 5, so the rate counts from there
    p._start -= 20  # 20 s ago
    p.update(7)
    assert "7/10 elapsed 0:20, eta 0:30" in p.line()  # 2 done in 20 s, 3 to go
    p.update(10)
    assert "eta" not in p.line()


def test_on_a_terminal_it_redraws_one_line() -> None:
    out = Terminal()
    p = Progress(3, stream=out)
    for i in range(1, 4):
        p.update(i)
    p.message("a note")
    p.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 3 and text.count("\n") == 2  # the note's own line, and the note


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0:00"), (59.6, "1:00"), (3599, "59:59"), (3725, "1:02:05")])
def test_clock(seconds: float, shown: str) -> None:
    assert clock(seconds) == shown


def test_a_disabled_progress_writes_nothing() -> None:
    out = io.StringIO()
    p = Progress(2, enabled=False, stream=out)
    p.update(1)
    p.tick()
    p.close()
    assert out.getvalue() == ""


def test_train_shows_the_bar_at_once_and_at_every_logged_step(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from ganforge.cli import main

    from tests.conftest import TINY

    sets = [a for item in [*TINY, "train.steps=4", "output.log_every=2", "output.progress=true"]
            for a in ("--set", item)]
    assert main(["train", "--out", str(tmp_path / "run"), *sets]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train [")]
    assert "0/4 steps elapsed" in lines[0] and "starting" in lines[0]  # before the first step
    assert any("2/4 steps elapsed" in line and ", eta " in line and "img/s" in line for line in lines)
    assert "4/4 steps elapsed" in lines[-1]
