"""The path length penalty (StyleGAN2, eq. 4) against its formula on a generator whose Jacobian is
known, its moving average, and inside the trainer: lazy, resumed exactly, refused for a generator
without W."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from ganforge import ConfigError, PenaltyContext, get_plugin_manager, load_checkpoint
from ganforge.config import load_config
from ganforge.training import Trainer
from ganforge_plugins.regularizers.path_length import PathLengthConfig, PathLengthPenalty, path_lengths
from torch import Tensor, nn

from tests.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

STYLEGAN = ["generator.name=stylegan", "discriminator.name=stylegan", "generator.latent_dim=8", "generator.w_dim=8",
            "generator.channel_base=64", "generator.channel_max=8", "discriminator.channel_base=64",
            "discriminator.channel_max=8", "train.device=cpu", "output.keep_last=0"]


class LinearStyleGenerator(nn.Module):
    """``w = M z``; ``image = A . vec(ws)``: the Jacobian of the synthesis is ``A`` everywhere, so
    ``||J^T y||`` is known in closed form."""

    def __init__(self, z_dim: int = 3, w_dim: int = 4, num_ws: int = 2, shape: tuple[int, int, int] = (1, 2, 3)):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.num_ws, self.w_dim, self.shape = num_ws, w_dim, shape
        self.m = nn.Parameter(torch.randn(w_dim, z_dim, generator=gen, dtype=torch.float64))
        self.a = nn.Parameter(torch.randn(math.prod(shape), num_ws * w_dim, generator=gen, dtype=torch.float64))

    def mapping(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return z @ self.m.T

    def synthesis(self, ws: Tensor) -> Tensor:
        return (ws.flatten(1) @ self.a.T).reshape(len(ws), *self.shape)


def context(g: nn.Module, z: Tensor, seed: int = 0) -> PenaltyContext:
    fake = torch.zeros(len(z), *g.shape, dtype=z.dtype)
    return PenaltyContext(generator=g, discriminator=nn.Identity(), real=fake, fake=fake, labels=None,
                          fake_labels=None, latents=z, real_logits=None, fake_logits=None, step=0,
                          rng=torch.Generator().manual_seed(seed))


def by_hand(g: LinearStyleGenerator, n: int, seed: int) -> Tensor:
    """``||J^T y||`` per sample with the penalty's own noise: ``J^T y = A^T y / sqrt(HW)`` reshaped to
    ``[num_ws, w_dim]``, its squared norm averaged over the styles."""
    y = torch.randn(n, *g.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    y = y / math.sqrt(g.shape[1] * g.shape[2])
    jt_y = (y.flatten(1) @ g.a).reshape(n, g.num_ws, g.w_dim)
    return jt_y.square().sum(2).mean(1).sqrt()


def test_lengths_are_the_jacobian_transpose_times_the_noise() -> None:
    g = LinearStyleGenerator()
    ws = torch.randn(5, g.num_ws, g.w_dim, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(5, *g.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(path_lengths(g, ws, noise), by_hand(g, 5, 3))


def test_penalty_is_weight_times_squared_deviation_from_the_moving_average() -> None:
    g = LinearStyleGenerator()
    pen = PathLengthPenalty(PathLengthConfig(weight=2.0, decay=0.25, shrink=2))
    z = torch.randn(8, 3, dtype=torch.float64)
    lengths = by_hand(g, 4, seed=0)  # batch 8 shrunk to 4; the context's noise comes from seed 0
    a = torch.zeros((), dtype=torch.float64).lerp(lengths.mean(), 0.25)
    value = pen.penalty(context(g, z, seed=0))
    torch.testing.assert_close(value, 2.0 * (lengths - a).square().mean())
    torch.testing.assert_close(pen.mean, a)
    lengths2 = by_hand(g, 4, seed=1)
    pen.penalty(context(g, z, seed=1))
    torch.testing.assert_close(pen.mean, a.lerp(lengths2.mean(), 0.25))  # a follows the lengths
    # the deviation, not the lengths themselves: another average gives another penalty
    other = PathLengthPenalty(PathLengthConfig(weight=2.0, decay=1.0, shrink=2))
    assert not torch.allclose(other.penalty(context(g, z, seed=0)), value)


def test_a_non_finite_batch_leaves_the_average_as_it_was() -> None:
    g = LinearStyleGenerator()
    pen = PathLengthPenalty(PathLengthConfig(decay=0.5))
    z = torch.randn(8, 3, dtype=torch.float64)
    pen.penalty(context(g, z))
    before = pen.mean.clone()
    with torch.no_grad():
        g.a[0, 0] = float("nan")
    assert not torch.isfinite(pen.penalty(context(g, z, seed=1)))  # the nonfinite policy's to handle
    assert torch.equal(pen.mean, before) and bool(torch.isfinite(before))


def test_the_penalty_reaches_the_synthesis_and_the_mapping_parameters() -> None:
    g = LinearStyleGenerator()
    pen = PathLengthPenalty(PathLengthConfig(decay=0.5))
    pen.penalty(context(g, torch.randn(8, 3, dtype=torch.float64))).backward()
    assert g.a.grad is not None and float(g.a.grad.abs().sum()) > 0
    # the lengths of a linear synthesis do not depend on w: the mapping gets a zero gradient, not None
    assert g.m.grad is None or float(g.m.grad.abs().sum()) == 0


def test_state_round_trips() -> None:
    g = LinearStyleGenerator()
    pen = PathLengthPenalty(PathLengthConfig(decay=0.5))
    pen.penalty(context(g, torch.randn(8, 3, dtype=torch.float64)))
    fresh = PathLengthPenalty(PathLengthConfig(decay=0.5))
    fresh.load_state_dict(pen.state_dict())
    assert torch.equal(fresh.mean, pen.mean) and float(fresh.mean) > 0


def test_registered_as_a_lazy_generator_penalty() -> None:
    component = get_plugin_manager().get("regularizer", "path-length")
    pen = component.factory(component.config())
    assert pen.target == "generator" and pen.every == 4 and pen.config.weight == 2.0 and pen.config.shrink == 2


def train(out: Path, *extra: str) -> Trainer:
    return Trainer(load_config(None, [*TINY, *STYLEGAN, 'regularizers=[{name = "path-length", every = 2}]',
                                      *extra]), out)


def weights(t: Trainer) -> list[Tensor]:
    return list(t.networks()["generator"].state_dict().values())


def test_trains_a_stylegan_every_nth_generator_update(tmp_path: Path) -> None:
    train(tmp_path, "train.steps=5").fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "path-length" in r] == [1, 3, 5]  # g updates 0, 2 and 4
    assert all(math.isfinite(r["path-length"]) and r["path-length"] >= 0 for r in records if "path-length" in r)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_trains_under_the_trainers_mixed_precision(precision: str, tmp_path: Path) -> None:
    """The lengths are differentiated in float32 with autocast off, as R1's input gradient is."""
    train(tmp_path, "train.steps=3", f"train.precision={precision}").fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    values = [r["path-length"] for r in records if "path-length" in r]
    assert len(values) == 2 and all(math.isfinite(x) and x > 0 for x in values)


def straight_and_resumed(tmp_path: Path, *, forget: bool = False) -> tuple[Trainer, Trainer]:
    """Five steps straight, and three steps then two more from the checkpoint (its saved moving
    average restarted at zero when ``forget``)."""
    straight = train(tmp_path / "straight", "train.steps=5")
    straight.fit()
    train(tmp_path / "resumed", "train.steps=3").fit()
    resumed = train(tmp_path / "resumed", "train.steps=5")
    resumed.load_training_state(load_checkpoint(tmp_path / "resumed"))
    assert resumed.step == 3
    (pen,) = [p for _, p in resumed.updates.penalties["g"]]
    assert float(pen.mean) > 0  # the moving average came back with the checkpoint
    if forget:
        pen.mean = torch.zeros(())
    resumed.fit()
    return straight, resumed


def test_a_run_with_the_penalty_resumes_bit_identically(tmp_path: Path) -> None:
    straight, resumed = straight_and_resumed(tmp_path)
    (a,), (b,) = ([p for _, p in t.updates.penalties["g"]] for t in (straight, resumed))
    assert torch.equal(a.mean, b.mean)
    for x, y in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(x, y)


def test_resuming_without_the_saved_average_is_another_run(tmp_path: Path) -> None:
    """The resume test can fail: restarting the average at zero changes the weights."""
    straight, resumed = straight_and_resumed(tmp_path, forget=True)
    assert any(not torch.equal(x, y) for x, y in zip(weights(straight), weights(resumed), strict=True))


def test_a_generator_without_w_is_refused_naming_the_regularizer(tmp_path: Path) -> None:
    t = Trainer(load_config(None, [*TINY, "train.device=cpu", 'regularizers=[{name = "path-length"}]']), tmp_path)
    with pytest.raises(ConfigError, match=r"'path-length' needs a generator with a mapping network .* got "):
        t.fit()


@pytest.mark.parametrize(("table", "message"), [
    ('{name = "path-length", weight = -1.0}', r"regularizers\[0\]\.weight: must be >= 0.0: -1.0"),
    ('{name = "path-length", decay = 0.0}', r"regularizers\[0\]\.decay: must be > 0.0: 0.0"),
    ('{name = "path-length", shrink = 0}', r"regularizers\[0\]\.shrink: must be >= 1: 0"),
])
def test_bad_settings_name_the_field(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"regularizers=[{table}]"])


def _rank_average(rank: int, port: int, z: Tensor, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        g, pen = LinearStyleGenerator(), PathLengthPenalty(PathLengthConfig(decay=0.5, shrink=1))
        ctx = context(g, z[rank * 4:(rank + 1) * 4])
        ctx.world_size, ctx.rank = 2, rank
        pen.penalty(ctx)
        torch.save(pen.mean, f"{out}/mean{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_keep_one_average_of_the_whole_batch(tmp_path: Path) -> None:
    """Each process's lengths go into one average, that of one process with the whole batch (the noise
    is drawn for the global batch and sliced per rank, as the run's other draws)."""
    z = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    one = PathLengthPenalty(PathLengthConfig(decay=0.5, shrink=1))
    one.penalty(context(LinearStyleGenerator(), z))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_rank_average, args=(port, z, str(tmp_path)), nprocs=2)
    means = [torch.load(tmp_path / f"mean{r}.pt") for r in range(2)]
    torch.testing.assert_close(means[0], one.mean)
    torch.testing.assert_close(means[1], one.mean)
    # one process's own lengths alone give another average: the check can fail
    alone = PathLengthPenalty(PathLengthConfig(decay=0.5, shrink=1))
    alone.penalty(context(LinearStyleGenerator(), z[:4]))
    assert not torch.allclose(alone.mean, one.mean)
