"""``ganforge kernels build`` and ``ganforge kernels status``: the CUDA kernels of the ops layer.

    ganforge kernels status            # every op, the backend GANFORGE_KERNELS picks here, and why
    ganforge kernels build             # prebuild the extension for the visible GPUs (cached)
    ganforge kernels build --arch 9.0  # ... or for an architecture, on a machine without a GPU

See :mod:`ganforge_plugins.ops.cuda_backend` for the build cache and the fallback rules.
"""

from __future__ import annotations

import argparse
from typing import Any

import attrs
from ganforge import ConfigError, hookimpl

from ganforge_plugins.ops import cuda_backend, mode


@attrs.frozen(kw_only=True)
class KernelsConfig:
    """Settings of ``ganforge kernels`` (none beyond the command line)."""

    verbose: bool = False  # show the compiler's output while building


class KernelsCommand:
    """Build the CUDA kernels or show which backend every op uses (``ganforge kernels build|status``)."""

    def __init__(self, config: KernelsConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=("build", "status"), help="build the extension, or list the ops")
        parser.add_argument("--arch", help="TORCH_CUDA_ARCH_LIST to build for, e.g. 9.0 (default: the visible GPUs)")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        if args.action == "status":
            rows = cuda_backend.status()
            width = max(len(op) for op, _, _ in rows)
            print(f"GANFORGE_KERNELS={mode()}")
            for op, backend, why in rows:
                print(f"{op:<{width}}  {backend:<5}  {why}")
            return 0
        try:
            module = cuda_backend.build(arch=args.arch, verbose=self.config.verbose)
        except cuda_backend.KernelsUnavailable as exc:
            raise ConfigError(f"kernels build: {exc}") from exc
        print(f"built {module.__name__} from {module.__file__}")
        return 0


@hookimpl
def ganforge_register_commands(register):
    register("kernels", KernelsCommand, KernelsConfig)
