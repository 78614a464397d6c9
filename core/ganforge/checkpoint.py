"""The one checkpoint format, written atomically and read without unpickling code.

A checkpoint is a directory ``RUN/checkpoints/step-NNNNNNNN/`` holding

- ``weights.safetensors``: every network's ``state_dict``, keys prefixed ``generator.`` etc.;
- ``state.pt``: the training state (optimisers, RNG states, data order, counters), read back with
  ``torch.load(weights_only=True)`` so that a file carrying code is refused;
- ``meta.json``: format version, step and image counters, component names, torch version;
- ``config.toml``: the resolved run config, so that the directory alone rebuilds the networks.

It is written into a temporary directory beside its final place, every file fsynced, then renamed;
``checkpoints/latest`` names the newest complete one and is replaced atomically afterwards. A crash
at any moment therefore leaves the previous checkpoint complete and ``latest`` pointing at it. A
checkpoint whose weights are not all finite is never written. ``latest`` is followed only to a
checkpoint of its own directory (``step-NNNNNNNN``), never to an absolute path or out through ``..``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import safetensors
import safetensors.torch
import torch
from torch import Tensor

from .errors import CheckpointError, GanforgeError, OutputError

FORMAT_VERSION = 2  # 2: meta.json records the procedure and the data spec of every kind of image it trained on
READABLE = (1, 2)
WEIGHTS = "weights.safetensors"
STATE = "state.pt"
META = "meta.json"
CONFIG = "config.toml"
LATEST = "latest"
_REQUIRED = (WEIGHTS, STATE, META, CONFIG)
_STEP = re.compile(r"step-\d{8}")


class NonFiniteWeightsError(GanforgeError):
    """A checkpoint was refused because some network's weights are NaN or infinite."""

    def __init__(self, networks: list[str]) -> None:
        super().__init__(f"non-finite weights in {', '.join(networks)}")
        self.networks = networks


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(tmp)`` into a temporary file beside it, fsync, then rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        _fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_path(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def make_output_dir(path: Path, *, what: str | None = None) -> Path:
    """``path`` created as a directory (and its parents) for a user's output; an ``OSError`` becomes an
    :class:`OutputError` that starts with ``what`` (default: ``cannot write to output directory PATH``)
    and names the file standing in the way, where mkdir's own "File exists" / "Not a directory" does
    not say which."""
    what = what or f"cannot write to output directory {str(path)!r}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise OutputError(f"{what}: {str(blocker)!r} is a file, not a directory") from None
    except OSError as exc:
        raise OutputError(f"{what}: {exc.strerror or exc}") from None
    return path


def write_output(path: Path, write: Callable[[Path], object]) -> None:
    """A user-facing output file: its directory made with :func:`make_output_dir`, then
    :func:`atomic_write`; an ``OSError`` becomes an :class:`OutputError` naming the path."""
    make_output_dir(path.parent, what=f"cannot write {str(path)!r}")
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def step_name(step: int) -> str:
    return f"step-{step:08d}"


@attrs.frozen(kw_only=True)
class Checkpoint:
    """A checkpoint read back: tensors per network, the training state and its metadata."""

    path: Path
    weights: dict[str, dict[str, Tensor]]
    state: dict[str, Any]
    meta: dict[str, Any]
    config_toml: str

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def save_checkpoint(
    directory: Path,
    step: int,
    *,
    networks: Mapping[str, torch.nn.Module],
    state: Mapping[str, Any],
    meta: Mapping[str, Any],
    config_toml: str,
    keep_last: int = 0,
) -> Path:
    """Write checkpoint ``step`` under ``directory`` (``RUN/checkpoints``) and point ``latest`` at it.

    Raises :class:`NonFiniteWeightsError`, writing nothing, when a network's weights are not all
    finite. ``keep_last > 0`` then deletes older checkpoints beyond the newest ``keep_last``.
    """
    tensors = {
        f"{prefix}.{key}": value.detach().to("cpu").contiguous()
        for prefix, net in networks.items()
        for key, value in net.state_dict().items()
    }
    poisoned = sorted({key.partition(".")[0] for key, t in tensors.items()
                       if t.is_floating_point() and not bool(torch.isfinite(t).all())})
    if poisoned:
        raise NonFiniteWeightsError(poisoned)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / step_name(step)
    tmp = directory / f".tmp-{step_name(step)}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    aside = directory / f".replaced-{step_name(step)}-{os.getpid()}"
    try:
        safetensors.torch.save_file(tensors, str(tmp / WEIGHTS))
        torch.save(dict(state), tmp / STATE)
        full_meta = {"format": FORMAT_VERSION, "step": step, "torch": torch.__version__, **meta}
        (tmp / META).write_text(json.dumps(full_meta, indent=2, sort_keys=True), encoding="utf-8")
        (tmp / CONFIG).write_text(config_toml, encoding="utf-8")
        for name in _REQUIRED:
            _fsync_path(tmp / name)
        _fsync_path(tmp)
        if final.exists():  # a run restarted from an earlier checkpoint writes this step again:
            os.rename(final, aside)  # set aside, not deleted, until the new one is in place
        os.rename(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside.exists() and not final.exists():
            os.rename(aside, final)
        raise OutputError(f"could not write checkpoint {final}: {exc}") from exc
    _fsync_path(directory)
    atomic_write_text(directory / LATEST, final.name + "\n")
    shutil.rmtree(aside, ignore_errors=True)
    if keep_last > 0:
        _prune(directory, keep_last, protect=final.name)
    return final


def recover(directory: Path) -> None:
    """Undo what a writer killed mid-checkpoint left in ``directory`` (``RUN/checkpoints``), to be
    called while holding the run's lock: a checkpoint set aside for its replacement goes back if the
    replacement never arrived, and partial writes and stale ``latest`` temporaries are removed."""
    if not directory.is_dir():
        return
    for aside in directory.glob(".replaced-step-*"):
        final = directory / aside.name.removeprefix(".replaced-").rsplit("-", 1)[0]
        if final.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(aside, final)
    for stale in directory.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in directory.glob(f".{LATEST}.tmp-*"):
        stale.unlink(missing_ok=True)


def _prune(directory: Path, keep_last: int, *, protect: str) -> None:
    steps = sorted(p for p in directory.glob("step-*") if p.is_dir())
    for old in steps[:-keep_last]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)
    for stale in directory.glob(".tmp-step-*"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory, a ``checkpoints`` directory or itself."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if (path / META).exists() or (path / WEIGHTS).exists():
        return path
    for directory in (path / "checkpoints", path):
        latest = directory / LATEST
        if latest.is_file():
            return _follow(latest)
    steps = sorted(p.name for d in (path / "checkpoints", path) if d.is_dir() for p in d.iterdir()
                   if _STEP.fullmatch(p.name) and p.is_dir())
    if steps:  # a run whose pointer is gone: its checkpoints are there, named one by one
        where = path / "checkpoints" if (path / "checkpoints" / steps[-1]).is_dir() else path
        raise CheckpointError(f"{str(path)!r} has no {LATEST} pointer, but holds checkpoints ({', '.join(steps[-3:])}"
                              f"{', ...' if len(steps) > 3 else ''}); name one: {where / steps[-1]}")
    raise CheckpointError(
        f"{str(path)!r} is not a checkpoint: expected a run directory, its checkpoints/ directory, "
        f"or a checkpoint directory holding {', '.join(_REQUIRED)}"
    )


def _follow(latest: Path) -> Path:
    """The checkpoint ``latest`` names: a ``step-NNNNNNNN`` directory beside it, nothing else."""
    try:
        name = latest.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{latest} cannot be read ({exc})") from None
    if not _STEP.fullmatch(name):
        raise CheckpointError(f"{latest} names {name[:200]!r}, which is not a checkpoint of this run: expected "
                              "a name like step-00000500 in the same directory; resume from a checkpoint of the run "
                              "instead (--resume RUN/checkpoints/step-NNNNNNNN)")
    target = latest.parent / name
    if target.is_symlink() or not target.is_dir():
        raise CheckpointError(f"{latest} names {name}, which does not exist in {latest.parent}")
    return target


def _earlier(ckpt: Path) -> str:
    """Where a damaged checkpoint of a run leaves its user: the newest earlier one, named so that it
    can be given to --resume or read as it is; nothing when the run has no other."""
    if not _STEP.fullmatch(ckpt.name):
        return ""
    earlier = sorted(p for p in ckpt.parent.iterdir() if _STEP.fullmatch(p.name) and p.name < ckpt.name
                     and p.is_dir() and all((p / name).is_file() for name in _REQUIRED))
    if not earlier:
        return ""
    return f"; the run's previous checkpoint is {earlier[-1]} (--resume {earlier[-1]} continues from it)"


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint, refusing missing, truncated or unsafe files with a clear error."""
    ckpt = find_checkpoint(path)
    missing = [name for name in _REQUIRED if not (ckpt / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {ckpt} is incomplete: missing {', '.join(missing)}")
    try:
        meta = json.loads((ckpt / META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
            raise ValueError("no integer 'step'")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {ckpt}: {META} is corrupt ({exc}){_earlier(ckpt)}") from None
    if meta.get("format") not in READABLE:
        raise CheckpointError(
            f"checkpoint {ckpt} has format {meta.get('format')!r}; this ganforge reads formats "
            f"{', '.join(map(str, READABLE))}"
        )
    try:
        flat = safetensors.torch.load_file(str(ckpt / WEIGHTS), device=str(map_location))
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {ckpt}: {WEIGHTS} is corrupt or truncated ({exc}){_earlier(ckpt)}") from None
    try:
        state = torch.load(ckpt / STATE, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler names the GLOBAL (a class or function) it refuses to import;
        # anything else it stumbles on ("Unsupported operand") is bytes that are no pickle at all
        refused = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), None)
        if refused is None:
            raise CheckpointError(f"checkpoint {ckpt}: {STATE} is corrupt or truncated (not a readable "
                                  f"training state){_earlier(ckpt)}") from None
        raise CheckpointError(
            f"checkpoint {ckpt}: {STATE} holds more than tensors and plain data, and ganforge "
            f"never unpickles code; refusing to load it ({refused[:200]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {ckpt}: {STATE} is corrupt or truncated ({exc}){_earlier(ckpt)}") from None
    weights: dict[str, dict[str, Tensor]] = {}
    for key, value in flat.items():
        prefix, _, rest = key.partition(".")
        weights.setdefault(prefix, {})[rest] = value
    config_toml = (ckpt / CONFIG).read_text(encoding="utf-8")
    if meta["format"] == 1:
        meta, config_toml = _from_format_1(meta, config_toml)
    return Checkpoint(path=ckpt, weights=weights, state=state, meta=meta, config_toml=config_toml)


def _from_format_1(meta: dict[str, Any], config_toml: str) -> tuple[dict[str, Any], str]:
    """A format-1 checkpoint (before procedures) read as format 2: its one data spec is the ``gan``
    procedure's, and its config gains the ``[procedure]`` table it did not have. Its weights load
    unchanged; its training state is of the old loop's layout, so it cannot be resumed."""
    meta = dict(meta)
    if "data_spec" in meta:
        meta["data_specs"] = {"data": meta.pop("data_spec")}
    meta.setdefault("procedure", "gan")
    if "[procedure]" not in config_toml:
        config_toml = config_toml.rstrip("\n") + '\n\n[procedure]\nname = "gan"\n'
    return meta, config_toml


def load_weights(network: torch.nn.Module, checkpoint: Checkpoint, prefix: str) -> None:
    """Load one network's weights, refusing a checkpoint of another architecture."""
    if prefix not in checkpoint.weights:
        raise CheckpointError(f"checkpoint {checkpoint.path} holds no '{prefix}' weights")
    try:
        network.load_state_dict(checkpoint.weights[prefix], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise CheckpointError(
            f"checkpoint {checkpoint.path} does not fit this {prefix}: it was written for another "
            f"architecture or config ({detail[:400]})"
        ) from None
