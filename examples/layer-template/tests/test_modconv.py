"""The modulated convolution against its equations, written out per sample, and the property that
motivates demodulation: unit-variance inputs give unit-variance outputs whatever the style."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from ganforge import get_plugin_manager, load_config
from ganforge_modconv_example.modconv import ModulatedConv2d, ModulatedConvConfig, modulated_conv


def layer(demodulate: bool = True) -> ModulatedConv2d:
    torch.manual_seed(0)
    module = modulated_conv(ModulatedConvConfig(demodulate=demodulate), channels=6, in_channels=5, w_dim=4)
    assert isinstance(module, ModulatedConv2d)
    return module.double()


def test_it_equals_equations_1_to_3_computed_one_sample_at_a_time() -> None:
    conv = layer()
    x, w = torch.randn(3, 5, 8, 8, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    for n in range(3):
        s = w[n] @ (conv.affine_weight * conv.affine_gain).T + conv.affine_bias  # A(w)
        w1 = conv.weight * conv.weight_gain * s[None, :, None, None]  # eq. 1
        w2 = w1 / (w1.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()  # eq. 3
        torch.testing.assert_close(conv(x, w)[n], F.conv2d(x[n : n + 1], w2, padding=1)[0])


def test_demodulation_keeps_unit_variance_whatever_the_style() -> None:
    x = torch.randn(64, 5, 16, 16, dtype=torch.float64)
    loud = torch.full((64, 4), 5.0, dtype=torch.float64)  # a style far from 1
    demodulated = layer(True)(x, loud)
    assert abs(float(demodulated.std()) - 1) < 0.1
    assert float(layer(False)(x, loud).std()) > 2  # without eq. 3 the style's scale passes through


def test_ganforge_lists_it_and_a_stylegan_generator_takes_it_from_a_config() -> None:
    manager = get_plugin_manager()
    assert "example-modulated-conv" in {c.name for c in manager.registries["layer"]}
    run = load_config(None, ["generator.name=stylegan", "generator.style=example-modulated-conv"], manager)
    assert run.generator.params.style.name == "example-modulated-conv"
