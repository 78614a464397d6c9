"""One progress display for every command that can run for more than a few seconds.

On a terminal it is one line on stderr, redrawn in place: a bar, ``done/total``, the elapsed time, an
estimate of the time left and what the command adds (losses, images per second). Without a terminal
(a log file, CI) it writes a plain line every ``every_s`` seconds and at the end, so that a long
command is never silent. ``tick()`` lets a command that waits on others (a pool of runs) keep the
line alive between updates.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def clock(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    s = int(max(0.0, seconds) + 0.5)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``done`` of ``total`` units of work with elapsed time and ETA (see the module docstring)."""

    def __init__(self, total: int, *, label: str = "", unit: str = "", enabled: bool = True, every_s: float = 10.0,
                 stream: TextIO | None = None) -> None:
        self.total, self.label, self.unit = max(1, total), label, unit
        self.enabled = enabled
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._start = time.perf_counter()
        self._done0: int | None = None  # where this process started (a resumed run starts part way)
        self._done, self._info = 0, ""
        self._last_line = -float("inf")
        self._drawn = False

    def update(self, done: int, info: str = "") -> None:
        """``done`` units are finished; ``info`` is shown after the times."""
        if not self.enabled:
            return
        if self._done0 is None:
            self._done0 = done
            self._start = time.perf_counter() if done else self._start
        self._done, self._info = done, info
        self._show(final=done >= self.total)

    def advance(self, n: int = 1, info: str = "") -> None:
        """``n`` more units are finished (a loop that counts rather than knows where it is)."""
        self.update(self._done + n, info)

    def tick(self) -> None:
        """Redraw (on a terminal) or write a line if ``every_s`` has passed, with no new work done."""
        if self.enabled:
            self._show(final=False)

    def line(self) -> str:
        elapsed = time.perf_counter() - self._start
        done = self._done
        rate_done = done - (self._done0 or 0)
        eta = elapsed / rate_done * (self.total - done) if rate_done > 0 else None
        width = 24
        filled = int(width * min(done, self.total) / self.total)
        unit = f" {self.unit}" if self.unit else ""
        head = f"{self.label} " if self.label else ""
        times = f"elapsed {clock(elapsed)}" + (f", eta {clock(eta)}" if eta is not None and done < self.total else "")
        info = f" {self._info}" if self._info else ""
        return f"{head}[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}{unit} {times}{info}"

    def _show(self, *, final: bool) -> None:
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
            self._drawn = True
        elif final or now - self._last_line >= self.every_s:
            self.stream.write(self.line() + "\n")
            self._last_line = now
        else:
            return
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own, above the progress line."""
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
