"""TensorBoard logging: every logged scalar and every preview grid, as TensorBoard event files.

Writes ``RUN/tensorboard/events.out.tfevents.*`` through ``torch.utils.tensorboard``, which needs
the ``tensorboard`` package (``pip install 'ganforge[tensorboard]'``). View with
``tensorboard --logdir RUN/tensorboard``. The engine drops a logger that fails, so a full disk or
a missing package costs the TensorBoard view, never the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs
from attrs import validators as v
from ganforge import ConfigError, hookimpl
from torch import Tensor


@attrs.frozen(kw_only=True)
class TensorBoardConfig:
    subdir: str = attrs.field(default="tensorboard", validator=v.min_len(1))  # under the run directory
    flush_secs: int = attrs.field(default=30, validator=v.ge(1))


class TensorBoardLogger:
    """Scalars and sample grids to TensorBoard event files (``torch.utils.tensorboard``)."""

    def __init__(self, config: TensorBoardConfig, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError(
                "output.loggers: 'tensorboard' needs the tensorboard package: pip install 'ganforge[tensorboard]' "
                f"({exc})"
            ) from None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / config.subdir), flush_secs=config.flush_secs)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)

    def images(self, step: int, name: str, grid: Tensor) -> None:
        self.writer.add_image(name, grid, global_step=step, dataformats="CHW")

    def close(self) -> None:
        self.writer.close()


@hookimpl
def ganforge_register_loggers(register):
    register("tensorboard", TensorBoardLogger, TensorBoardConfig)
