"""The run directory: its creation and its lock (one writer at a time), the metrics log and the
logging backends."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .checkpoint import LATEST, atomic_write_text, make_output_dir, step_name
from .config import LoggerChoice
from .errors import GanforgeError, OutputError
from .manager import PluginManager
from .protocols import Logger

LOCK = ".lock"
_RUN_MARKERS = ("config.toml", "checkpoints")


class RunLock:
    """Exclusive ownership of a run directory: an OS file lock (``flock``) on ``RUN/.lock``, held
    while the run writes and released when the process exits, also when it is killed, since the
    kernel drops the lock with the process. The file records the owner's pid and host for the
    message another writer gets."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write to output directory {str(self.path.parent)!r}: "
                              f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise OutputError(f"run directory {str(self.path.parent)!r} is in use by {owner}; wait for it to "
                              "finish (or stop it), or choose another --out") from None
        self._fd = fd
        return self

    def record_owner(self) -> None:
        """Write this process's pid and host into the lock file, for the message a second writer gets
        (only once the run is accepted: a refused writer leaves the file as it was)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.ctime()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return f"another ganforge process ({text})" if text else "another ganforge process"


def prepare_run_dir(out: Path, *, resume: bool = False) -> RunLock:
    """Create ``out``, take its lock and check it, before the run writes anything: a new run needs a
    directory that is empty or does not exist yet (a run's directory, or one holding the user's own
    files, is refused, naming what is there); a resumed one must be a run. Returns the held lock;
    the caller releases it when the run ends."""
    if not resume:
        # before the lock file too: a directory of the user's gets nothing written into it
        _check_new(out, under_lock=False)
    make_output_dir(out)
    lock = RunLock(out).acquire()
    try:
        if not resume:
            _check_new(out, under_lock=True)  # again: two writers started together cannot both find it empty
        probe = out / f".write-probe-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"cannot write to output directory {str(out)!r}: {exc.strerror or exc}") from None
        lock.record_owner()
    except BaseException:
        lock.release()
        raise
    return lock


def _check_new(out: Path, *, under_lock: bool) -> None:
    if not out.is_dir():
        return
    names = sorted(p.name for p in out.iterdir())
    if LOCK in names and not under_lock:
        # a run, perhaps being written right now: its lock file comes before any other file it writes, so
        # one listing that shows its temporaries shows the lock too (the check under the lock decides;
        # testing for the lock apart from this listing let a writer see a winner's .config.toml.tmp-PID)
        return
    entries = [name for name in names if name != LOCK]
    if any(name in entries for name in _RUN_MARKERS):
        raise OutputError(f"output directory {str(out)!r} already holds a run; choose another --out so that "
                          "its checkpoints and samples are not overwritten (or --resume it)")
    if entries:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise OutputError(f"output directory {str(out)!r} is not empty and is not a ganforge run (it holds "
                          f"{shown}); choose a new or empty directory so that nothing of yours is overwritten")


def set_aside_after(path: Path, step: int) -> Path | None:
    """On resuming a run at ``step``: move the records of the metrics log ``path`` that a process
    logged after ``step`` (it went on past the checkpoint it is resumed from, then was killed, or a
    user resumes an earlier checkpoint) to ``metrics.superseded-after-step-NNNNNNNN.jsonl`` beside it,
    so that the log holds one record per logged step of the run as it continues and nothing already
    written is lost. The moved records are written (and synced) before the log is replaced, so a crash
    in between leaves them twice, never nowhere. Lines that are not records stay. Returns the file the
    records went to, or None when there were none."""
    if not path.is_file():
        return None
    kept: list[str] = []
    later: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        logged = record.get("step") if isinstance(record, dict) else None
        (later if isinstance(logged, int) and logged > step else kept).append(line)
    if not later:
        return None
    aside = path.with_name(f"{path.stem}.superseded-after-{step_name(step)}{path.suffix}")
    with aside.open("a", encoding="utf-8") as f:
        f.writelines(line if line.endswith("\n") else line + "\n" for line in later)
        f.flush()
        os.fsync(f.fileno())
    atomic_write_text(path, "".join(kept))
    return aside


_STEP_ITEM = re.compile(r"step-(\d{8})(\.png)?")


def supersede_after(run_dir: Path, step: int) -> list[Path]:
    """On resuming a run at ``step``, set aside everything a process wrote after ``step`` that the
    continued run would write again: the metrics records (:func:`set_aside_after`), the checkpoints
    ``checkpoints/step-N`` and the preview grids ``samples/step-N.png`` with ``N > step``. They move
    into ``superseded-after-step-NNNNNNNN/`` beside them, by renames, so that a checkpoint of the
    abandoned continuation is never overwritten or pruned by the new one; ``latest`` is pointed at
    the resumed checkpoint first, so it never names a checkpoint that moved. Returns where things
    went (empty when nothing was later)."""
    moved: list[Path] = []
    log = set_aside_after(run_dir / "metrics.jsonl", step)
    if log is not None:
        moved.append(log)
    checkpoints = run_dir / "checkpoints"
    latest = checkpoints / LATEST
    if latest.is_file() and (checkpoints / step_name(step)).is_dir():
        try:
            named = _STEP_ITEM.fullmatch(latest.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            named = None
        if named is None or int(named.group(1)) != step:
            atomic_write_text(latest, step_name(step) + "\n")
    for folder, directories in ((checkpoints, True), (run_dir / "samples", False)):
        later = [p for p in sorted(folder.iterdir()) if (m := _STEP_ITEM.fullmatch(p.name)) and int(m.group(1)) > step
                 and (p.is_dir() if directories else p.is_file())] if folder.is_dir() else []
        if not later:
            continue
        aside = folder / f"superseded-after-{step_name(step)}"
        n = 1
        while any((aside / p.name).exists() for p in later):  # a second abandonment at the same step
            n += 1
            aside = folder / f"superseded-after-{step_name(step)}.{n}"
        aside.mkdir(exist_ok=True)
        for path in later:
            os.rename(path, aside / path.name)
        moved.append(aside)
    return moved


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
