"""The reference ops against their formulas, and the GANFORGE_KERNELS dispatch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ganforge import ConfigError
from ganforge_plugins import ops
from ganforge_plugins.ops import dispatch, reference


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- bias_act --------------------------------------------------------------------------------------


def test_bias_act_lrelu_adds_bias_along_dim_then_applies_slope_and_gain() -> None:
    x = torch.tensor([[[-2.0, 1.0]], [[0.5, -0.5]]])  # [2, 1, 2], channel dim = 2
    b = torch.tensor([1.0, -1.0])
    y = ops.bias_act(x, b, dim=2, act="lrelu")
    expected = torch.tensor([[[-1.0 * 0.2, 0.0]], [[1.5, -1.5 * 0.2]]]) * math.sqrt(2)
    torch.testing.assert_close(y, expected)


def test_bias_act_gain_alpha_clamp_and_default_gains() -> None:
    x = torch.linspace(-3, 3, 13).reshape(1, 13)
    torch.testing.assert_close(ops.bias_act(x, act="lrelu", alpha=0.1, gain=1.0), torch.where(x > 0, x, 0.1 * x))
    torch.testing.assert_close(ops.bias_act(x, act="relu", gain=2.0, clamp=1.5), (2 * x.relu()).clamp(max=1.5))
    torch.testing.assert_close(ops.bias_act(x, act="tanh"), x.tanh())  # default gain 1
    torch.testing.assert_close(ops.bias_act(x, act="relu"), x.relu() * math.sqrt(2))  # default gain sqrt 2
    torch.testing.assert_close(ops.bias_act(x), x)
    with pytest.raises(ValueError, match="unknown activation 'lerelu'"):
        ops.bias_act(x, act="lerelu")
    with pytest.raises(ValueError, match="does not match dim 1"):
        ops.bias_act(x, torch.zeros(3))


def test_bias_act_keeps_unit_second_moment_of_lrelu_with_default_gain() -> None:
    x = torch.randn(200_000, generator=rng())
    y = ops.bias_act(x[:, None], act="relu")
    assert abs(y.square().mean().item() - 1.0) < 0.02  # the He gain sqrt(2) keeps E[y^2] = E[x^2] = 1


# -- normalisation ---------------------------------------------------------------------------------


def test_adain_gives_each_channel_mean_bias_and_std_abs_scale() -> None:
    x = torch.randn(3, 5, 8, 8, generator=rng(1)) * 4 + 2
    scale = torch.randn(3, 5, generator=rng(2))
    bias = torch.randn(3, 5, generator=rng(3))
    y = ops.adain(x, scale, bias)
    torch.testing.assert_close(y.mean(dim=(2, 3)), bias, atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(2, 3), unbiased=False), scale.abs(), atol=1e-5, rtol=1e-5)


def test_adain_rejects_styles_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"must be \[N, C\] = \(2, 3\)"):
        ops.adain(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4), torch.zeros(2, 3))


def test_style_epilogue_is_noise_bias_lrelu_then_adain() -> None:
    x = torch.randn(2, 3, 4, 4, generator=rng(4))
    noise = torch.randn(2, 1, 4, 4, generator=rng(5))
    strength, bias = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.1, 0.2, 0.3])
    scale, shift = torch.randn(2, 3, generator=rng(6)), torch.randn(2, 3, generator=rng(7))
    h = torch.nn.functional.leaky_relu(x + noise * strength[None, :, None, None] + bias[None, :, None, None], 0.2)
    h = (h - h.mean((2, 3), keepdim=True)) / (h.var((2, 3), unbiased=False, keepdim=True) + 1e-8).sqrt()
    expected = h * scale[:, :, None, None] + shift[:, :, None, None]
    torch.testing.assert_close(ops.style_epilogue(x, noise, strength, bias, scale, shift), expected)


def test_pixel_norm_gives_unit_mean_square_over_channels() -> None:
    x = torch.randn(4, 7, 5, 5, generator=rng(8)) * 3
    y = ops.pixel_norm(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(4, 5, 5), atol=1e-5, rtol=0)
    # direction is kept: y is a positive multiple of x at every pixel
    ratio = y / x
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))


# -- minibatch stddev ------------------------------------------------------------------------------


def test_minibatch_stddev_of_identical_images_appends_zeros() -> None:
    x = torch.randn(1, 6, 4, 4, generator=rng(9)).expand(8, -1, -1, -1).contiguous()
    y = ops.minibatch_stddev(x)
    assert y.shape == (8, 7, 4, 4)
    assert torch.equal(y[:, :6], x)
    assert torch.equal(y[:, 6], torch.zeros(8, 4, 4))


def test_minibatch_stddev_averages_the_group_stddev_over_features_and_positions() -> None:
    x = torch.randn(8, 3, 2, 2, generator=rng(10), dtype=torch.float64)
    y = ops.minibatch_stddev(x, group_size=4, eps=0.0)
    # groups are samples {m, m + 2, m + 4, m + 6} for m = 0, 1 (NVlabs' reshape)
    for m in range(2):
        group = x[m::2]
        value = group.std(dim=0, unbiased=False).mean()
        for n in range(m, 8, 2):
            torch.testing.assert_close(y[n, 3], torch.full((2, 2), value.item(), dtype=torch.float64))


@pytest.mark.parametrize(("batch", "group"), [(8, 4), (6, 3), (2, 2), (5, 1), (3, 3), (1, 1)])
def test_minibatch_stddev_group_falls_back_to_a_divisor_of_the_batch(batch: int, group: int) -> None:
    assert ops.stddev_group_size(batch, 4) == group
    assert ops.minibatch_stddev(torch.randn(batch, 2, 3, 3)).shape == (batch, 3, 3, 3)


def test_minibatch_stddev_has_finite_second_order_gradients_at_zero_variance() -> None:
    x = torch.ones(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ops.minibatch_stddev(x)[:, -1].sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    assert torch.isfinite(g).all() and torch.isfinite(gg).all()


# -- upfirdn2d -------------------------------------------------------------------------------------


def upfirdn2d_loops(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int]) -> np.ndarray:
    """The definition, one output pixel at a time: zero insertion, zero padding, true convolution
    with f, decimation."""
    n, c, h, w = x.shape
    u = np.zeros((n, c, h * up, w * up))
    u[:, :, ::up, ::up] = x
    x0, x1, y0, y1 = pad
    p = np.zeros((n, c, h * up + y0 + y1, w * up + x0 + x1))
    p[:, :, y0 : y0 + h * up, x0 : x0 + w * up] = u
    fh, fw = f.shape
    out_h, out_w = p.shape[2] - fh + 1, p.shape[3] - fw + 1
    out = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = p[:, :, i : i + fh, j : j + fw]
            out[:, :, i, j] = (window * f[::-1, ::-1]).sum(axis=(2, 3))  # convolution flips f
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize(("up", "down", "pad"), [(1, 1, (1, 1, 1, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 0, 1, 0)),
                                                 (2, 2, (0, 2, 1, 3)), (3, 1, (1, 1, 0, 2))])
def test_upfirdn2d_matches_the_definition(up: int, down: int, pad: tuple[int, int, int, int]) -> None:
    x = torch.randn(2, 3, 5, 6, generator=rng(11), dtype=torch.float64)
    f = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)  # asymmetric: catches flips
    y = ops.upfirdn2d(x, f, up=up, down=down, padding=pad)
    expected = upfirdn2d_loops(x.numpy(), f.numpy(), up, down, pad)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)


def test_upfirdn2d_negative_padding_crops() -> None:
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    torch.testing.assert_close(ops.upfirdn2d(x, None, padding=(-1, -2, -2, 0)), x[:, :, 2:, 1:4])


def test_setup_filter_121_is_the_normalised_outer_product() -> None:
    f = ops.setup_filter([1, 2, 1])
    torch.testing.assert_close(f, torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    assert ops.setup_filter([1, 2, 1], separable=True).shape == (3,)
    torch.testing.assert_close(ops.setup_filter([1, 1], gain=4).sum(), torch.tensor(4.0))


def test_upsample2d_with_121_is_linear_interpolation_and_keeps_constants() -> None:
    f = ops.setup_filter([1, 2, 1])
    x = torch.randn(1, 2, 6, 6, generator=rng(12), dtype=torch.float64)
    y = ops.upsample2d(x, f)
    assert y.shape == (1, 2, 12, 12)
    # away from the border: copies of the samples interleaved with the means of neighbours
    torch.testing.assert_close(y[:, :, 1:-1:2, 1:-1:2], x[:, :, :-1, :-1])
    torch.testing.assert_close(y[:, :, 2:-1:2, 1:-1:2], (x[:, :, :-1, :-1] + x[:, :, 1:, :-1]) / 2)
    ones = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(ops.upsample2d(ones, f)[:, :, 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    torch.testing.assert_close(ops.downsample2d(ones, f)[:, :, 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    assert ops.downsample2d(ones, f).shape == (1, 1, 4, 4)
    assert ops.filter2d(ones, f).shape == (1, 1, 8, 8)


def test_upfirdn2d_gradient_is_upfirdn2d_with_the_flipped_filter_and_up_down_swapped() -> None:
    """The adjoint identity a fused backward relies on: <U x, y> = <x, U^T y>."""
    x = torch.randn(1, 2, 7, 7, generator=rng(13), dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[1.0, 3.0, -2.0], [0.5, 0.0, 1.0], [2.0, 1.0, 1.0]], dtype=torch.float64)
    up, down, (px0, px1, py0, py1) = 1, 2, (1, 2, 0, 1)
    y = ops.upfirdn2d(x, f, up=up, down=down, padding=(px0, px1, py0, py1))
    dy = torch.randn(y.shape, generator=rng(14), dtype=torch.float64)
    (dx,) = torch.autograd.grad(y, x, dy)
    fh, fw = f.shape
    in_h, in_w, out_h, out_w = 7, 7, y.shape[2], y.shape[3]
    p = [fw - px0 - 1, in_w * up - out_w * down + px0 - up + 1, fh - py0 - 1, in_h * up - out_h * down + py0 - up + 1]
    adjoint = ops.upfirdn2d(dy, f, up=down, down=up, padding=p, flip_filter=True)
    torch.testing.assert_close(dx, adjoint)


def test_upfirdn2d_has_second_order_gradients() -> None:
    f = ops.setup_filter([1, 2, 1]).double()
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: ops.downsample2d(t.square(), f), (x,))


# -- dispatch --------------------------------------------------------------------------------------


def test_dispatch_uses_the_reference_without_a_cuda_backend(kernels) -> None:  # type: ignore[no-untyped-def]
    x = torch.zeros(1, 2, 3, 3)
    for mode in ("auto", "ref", "", "REF"):
        kernels(mode)
        assert ops.backend_for("adain", x).name == "ref"
    kernels("cuda")
    with pytest.raises(ConfigError, match="GANFORGE_KERNELS=cuda: no CUDA implementation of 'pixel_norm'"):
        ops.pixel_norm(x)
    with pytest.raises(ConfigError, match="GANFORGE_KERNELS='fast': expected one of auto, cuda, ref"):
        kernels("fast")


def test_the_mode_is_read_from_the_environment_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from ganforge_plugins.ops import dispatch

    monkeypatch.setattr(dispatch, "_MODE", [])
    monkeypatch.setenv(ops.ENV, "ref")
    x = torch.zeros(1, 2, 3, 3)
    assert ops.backend_for("adain", x).name == "ref" and ops.mode() == "ref"
    reads = []
    monkeypatch.setattr(dispatch.os.environ, "get", lambda *a: reads.append(a) or "cuda")  # type: ignore[attr-defined]
    for _ in range(3):
        ops.pixel_norm(x)  # still ref: the environment is not read again
    assert reads == [] and ops.mode() == "ref"
    with ops.kernels_mode("cuda"):
        assert ops.mode() == "cuda"
        with pytest.raises(ConfigError, match="no CUDA implementation of 'pixel_norm'"):
            ops.pixel_norm(x)
    assert ops.mode() == "ref"  # restored
    assert dispatch.mode_from_env() == "cuda" and reads  # kernels status reads it afresh
    monkeypatch.setattr(dispatch, "_MODE", [])
    monkeypatch.setattr(dispatch.os.environ, "get", lambda *a: "fast")  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="GANFORGE_KERNELS='fast': expected one of auto, cuda, ref"):
        ops.pixel_norm(x)


def test_the_package_exports_the_dispatching_functions_not_the_op_modules() -> None:
    import sys

    for name in ops.OPS:
        assert callable(ops.__dict__[name]) and not isinstance(ops.__dict__[name], type(sys)), name
        assert sys.modules[f"ganforge_plugins.ops.{name}"].OP.name == name


def test_a_registered_backend_is_used_where_it_applies(monkeypatch: pytest.MonkeyPatch, kernels) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def fake_pixel_norm(x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        calls.append("cuda")
        return reference.pixel_norm(x, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dispatch, "_BACKENDS", dict(dispatch._BACKENDS))
    ops.register_backend("cuda", {"pixel_norm": fake_pixel_norm}, supports=lambda op, x: x.dtype == torch.float32)
    x = torch.randn(2, 3, 4, 4)
    kernels("auto")
    ops.pixel_norm(x)
    assert calls == []  # auto: a CPU tensor stays on the reference
    kernels("cuda")
    torch.testing.assert_close(ops.pixel_norm(x), reference.pixel_norm(x))
    assert calls == ["cuda"]
    with pytest.raises(ConfigError, match="no CUDA implementation of 'adain'"):
        ops.adain(x, torch.ones(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="unknown ops"):
        ops.register_backend("cuda", {"conv": fake_pixel_norm})
