"""The run directory: its creation, the metrics log, logging backends and the progress line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import LoggerChoice
from .errors import GanforgeError, OutputError
from .manager import PluginManager
from .protocols import Logger


def prepare_run_dir(out: Path, *, resume: bool = False) -> None:
    """Create ``out`` (or check it for a resume) and prove it writable before any training."""
    if not resume and out.exists() and ((out / "config.toml").exists() or (out / "checkpoints").exists()):
        raise OutputError(
            f"output directory {str(out)!r} already holds a run; choose another --out so that its "
            "checkpoints and samples are not overwritten"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{id(out)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {str(out)!r}: {exc.strerror or exc}") from None


class MetricsLog:
    """Appends one JSON object per line; a line is flushed whole, so a crash loses no logged step."""

    def __init__(self, path: Path | None) -> None:
        self._file = path.open("a", encoding="utf-8") if path is not None else None  # None: not rank 0

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Loggers:
    """The optional logging backends of a run: one that raises is reported once and dropped, so an
    optional logger never stops training."""

    def __init__(self, choices: Sequence[LoggerChoice], run_dir: Path, manager: PluginManager) -> None:
        self._loggers: list[Logger] = []
        for i, choice in enumerate(choices):
            try:
                self._loggers.append(manager.get("logger", choice.name).factory(choice.params, run_dir=run_dir))
            except GanforgeError:
                raise
            except Exception as exc:
                self._failed(f"output.loggers[{i}] {choice.name!r}", exc)

    def __bool__(self) -> bool:
        return bool(self._loggers)

    def each(self, call: Callable[[Logger], None]) -> None:
        for lg in list(self._loggers):
            try:
                call(lg)
            except Exception as exc:
                self._loggers.remove(lg)
                self._failed(type(lg).__name__, exc)

    def scalars(self, step: int, record: Mapping[str, Any]) -> None:
        if self._loggers:
            values = {k: float(v) for k, v in record.items()
                      if k not in ("step", "time") and isinstance(v, int | float)}
            self.each(lambda lg: lg.scalars(step, values))

    def close(self) -> None:
        self.each(lambda lg: lg.close())

    @staticmethod
    def _failed(which: str, exc: BaseException) -> None:
        print(f"ganforge: warning: logger {which} failed and is dropped; training goes on "
              f"({type(exc).__name__}: {exc})", file=sys.stderr)


_NOT_LOSSES = ("step", "images_seen", "images_per_sec", "sec_per_kimg", "peak_mem_mb", "time")


class Progress:
    """A one-line progress display on stderr, redrawn in place on a terminal."""

    def __init__(self, total: int, *, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._drawn = False

    def update(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        step = record["step"]
        width = 24
        done = int(width * step / self.total)
        losses = " ".join(
            f"{k.removeprefix('loss_')}={v:.3f}" for k, v in record.items()
            if k not in _NOT_LOSSES and isinstance(v, int | float)
        )
        bar = "#" * done + "." * (width - done)
        line = f"[{bar}] step {step}/{self.total} {losses} {record['images_per_sec']:.0f} img/s"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
            self._drawn = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def message(self, text: str) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = False
        sys.stderr.write(text + "\n")

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = False
