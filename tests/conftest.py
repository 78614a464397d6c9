from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Small networks and few steps: what a unit test needs to exercise the whole loop in seconds.
TINY = [
    "train.steps=3",
    "train.batch_size=16",
    "generator.base_channels=8",
    "generator.latent_dim=16",
    "discriminator.base_channels=8",
    "output.progress=false",
    "output.log_every=1",
    "output.sample_every=2",
    "output.checkpoint_every=2",
    "output.preview_samples=16",
]

def sets(items: list[str]) -> list[str]:
    """``--set`` options for the command line from ``KEY=VALUE`` items."""
    return [arg for item in items for arg in ("--set", item)]


# A style-based generator of the same size: what the latent-space and studio tests train (``TINY``'s
# generator and discriminator settings replaced by these).
TINY_STYLEGAN = """
[generator]
name = "stylegan"
latent_dim = 8
w_dim = 8
mapping_layers = 2
channel_base = 64
channel_max = 8

[discriminator]
name = "stylegan"
channel_base = 64
channel_max = 8
"""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow")
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --run-slow"))
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device here"))


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GANFORGE_DISABLE_PLUGIN_AUTOLOAD", "GANFORGE_PLUGINS", "GANFORGE_STRICT_PLUGINS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mnist_root() -> Path:
    root = SHARED_DATA / "mnist"
    if not root.is_dir():
        pytest.skip(f"real MNIST not found at {root}")
    return root


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GANFORGE_DISABLE_PLUGIN_AUTOLOAD", None)
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread (and do not fight other processes on a busy machine).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def kernels(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Set this process's ``GANFORGE_KERNELS`` mode (read once per process) for one test:
    ``kernels("cuda")``; the mode the process had is restored afterwards."""
    from ganforge_plugins.ops import dispatch

    monkeypatch.setattr(dispatch, "_MODE", list(dispatch._MODE))

    def set_mode(value: str) -> None:
        dispatch._MODE[:] = [dispatch.parse_mode(value)]

    return set_mode
