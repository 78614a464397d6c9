"""``ganforge studio RUN [--port P] [--host 127.0.0.1]``: explore and edit a trained generator in the
browser (``pip install "ganforge[studio]"``).

It loads the run's generator, binds the port itself (so that a port in use is one clear sentence,
not a server's traceback) and serves :mod:`.app` with uvicorn until Ctrl-C. It binds to localhost
unless told otherwise; any other host is served with a warning, since the studio has no login.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from typing import Any

import attrs
from attrs import validators as v
from ganforge import ConfigError, hookimpl, load_generator, resolve_device

LOCAL = ("127.0.0.1", "localhost", "::1")


@attrs.frozen(kw_only=True)
class StudioConfig:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8765, validator=[v.ge(0), v.le(65535)])  # 0: any free port
    device: str = "auto"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a ConfigError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: not an address this machine has ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.bind(address)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: {host}:{port} is in use (another studio or server?); choose another "
                              "port with --port, or --port 0 for any free one") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"--port {port}: not allowed to listen on {host}:{port} (ports below 1024 need "
                              "privileges); choose a port above 1024") from None
        raise ConfigError(f"--host {host!r} --port {port}: cannot listen there: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def require_extra() -> None:
    missing = []
    for module in ("starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"ganforge studio needs {', '.join(missing)}: pip install \"ganforge[studio]\"")


class Served:
    """A studio served on a thread (for tests and benchmarks): ``url``, and ``stop()``."""

    def __init__(self, studio: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import threading
        import time

        import uvicorn

        from ganforge_plugins.studio.app import create_app

        self.studio = studio
        self.sock = bind(host, port)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(studio), log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("the studio server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.studio.close()
        self.sock.close()


class StudioCommand:
    """Serve the studio page for one run."""

    def __init__(self, config: StudioConfig) -> None:
        self.config = config

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run", help="run directory or checkpoint directory")
        parser.add_argument("--port", type=int, help="port to listen on (8765; 0: any free port)")
        parser.add_argument("--host", help="address to listen on (127.0.0.1: this machine only)")
        parser.add_argument("--device", help="auto, cpu or cuda")

    def run(self, args: argparse.Namespace, manager: Any) -> int:
        changes = {k: getattr(args, k) for k in ("port", "host", "device") if getattr(args, k, None) is not None}
        try:
            config = attrs.evolve(self.config, **changes)
        except ValueError as exc:
            raise ConfigError(f"studio: {exc}") from None
        require_extra()
        import uvicorn

        from ganforge_plugins.studio.app import create_app
        from ganforge_plugins.studio.engine import Studio

        trained = load_generator(args.run, device=resolve_device(config.device), manager=manager)
        if not trained.spec.is_image:
            raise ConfigError(f"{args.run}: the generator makes vectors of shape {trained.spec.shape}; the studio "
                              "shows images")
        sock = bind(config.host, config.port)
        host, port = sock.getsockname()[:2]
        studio = Studio(trained, manager)
        if config.host not in LOCAL:
            print(f"studio: warning: listening on {config.host}, so other machines can reach it; it has no login",
                  file=sys.stderr)
        shown = f"[{host}]" if ":" in host else host
        print(f"studio: {studio.run} (step {trained.checkpoint.step}) at http://{shown}:{port}/ "
              "(Ctrl-C stops it)", file=sys.stderr, flush=True)
        server = uvicorn.Server(uvicorn.Config(create_app(studio), log_level="warning", access_log=False))
        try:
            server.run(sockets=[sock])
        finally:
            studio.close()
            sock.close()
        return 0


@hookimpl
def ganforge_register_commands(register):
    register("studio", StudioCommand, StudioConfig)
