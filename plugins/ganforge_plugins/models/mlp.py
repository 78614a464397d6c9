"""Fully connected generator and discriminator, the networks of the 2-D mode-collapse experiments.

Goodfellow et al. 2014 (arXiv:1406.2661) trained multilayer perceptrons on both sides; the 2-D
mixture benchmarks of VEEGAN (Srivastava et al. 2017, arXiv:1705.07761) and PacGAN (Lin et al.
2018, arXiv:1712.04086, appendix) use MLPs of a few hundred units per layer. Hidden layers are
``Linear -> activation`` (``depth`` of them, ``width`` units each). For vector data the generator's
output layer is linear (samples live in their natural units); for images it is ``tanh`` and
reshaped to ``C x H x W``, so that it meets the engine's ``[-1, 1]`` convention.

PacGAN packing (Lin et al. 2018, section 3): with ``pack = m`` the discriminator scores ``m``
samples jointly, concatenating consecutive samples of a batch, ``D(x_1, ..., x_m)``. A mode-collapsed
generator then yields packs that are visibly less diverse than real ones, which penalises mode
collapse. The batch (``[N, *S]``, ``N`` a multiple of ``m``) gives ``N / m`` logits; losses average
over every prediction, so they need no change.

Units: ``scale`` sets the networks' working units for vector data, the generator emitting
``scale * net(z)`` and the discriminator scoring ``net(x / scale)`` (a fixed input normalisation), so
that one initialisation and learning rate fit a ring of radius 2 and a grid reaching 4. The
generator starts from He et al.'s initialisation (arXiv:1502.01852), which keeps the spread of its
samples through the depth instead of collapsing them onto a point as PyTorch's default does; the
discriminator keeps PyTorch's default, whose random biases place its ReLU kinks across the unit box.
"""

from __future__ import annotations

import math

import attrs
import torch
from attrs import validators as v
from ganforge import ConfigError, DataSpec, LatentSpace, hookimpl
from torch import Tensor, nn

ACTIVATIONS = ("relu", "leaky-relu", "elu", "silu", "tanh")
INITS = ("he", "pytorch")  # He et al. 2015 normal, or PyTorch's default uniform


@attrs.frozen(kw_only=True)
class MLPGeneratorConfig:
    latent_dim: int = attrs.field(default=16, validator=v.ge(1))  # z
    width: int = attrs.field(default=256, validator=v.ge(1))  # units per hidden layer
    depth: int = attrs.field(default=3, validator=v.ge(1))  # hidden layers
    activation: str = attrs.field(default="relu", validator=v.in_(ACTIVATIONS))
    leaky_slope: float = attrs.field(default=0.2, validator=[v.ge(0.0), v.lt(1.0)])
    batch_norm: bool = False  # after each hidden linear layer, as PacGAN's generator
    init: str = attrs.field(default="he", validator=v.in_(INITS))  # weight initialisation
    scale: float = attrs.field(default=1.0, validator=v.gt(0.0))  # vector outputs are scale * net(z)


@attrs.frozen(kw_only=True)
class MLPDiscriminatorConfig:
    width: int = attrs.field(default=256, validator=v.ge(1))
    depth: int = attrs.field(default=3, validator=v.ge(1))
    activation: str = attrs.field(default="leaky-relu", validator=v.in_(ACTIVATIONS))
    leaky_slope: float = attrs.field(default=0.2, validator=[v.ge(0.0), v.lt(1.0)])
    pack: int = attrs.field(default=1, validator=v.ge(1))  # PacGAN: samples scored jointly
    init: str = attrs.field(default="pytorch", validator=v.in_(INITS))
    scale: float = attrs.field(default=1.0, validator=v.gt(0.0))  # vector inputs are scored as net(x / scale)


def activation(name: str, leaky_slope: float) -> nn.Module:
    """The hidden-layer nonlinearity ``name`` (one of :data:`ACTIVATIONS`)."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky-relu":
        return nn.LeakyReLU(leaky_slope)
    if name == "elu":
        return nn.ELU()
    if name == "silu":
        return nn.SiLU()
    if name == "tanh":
        return nn.Tanh()
    raise ConfigError(f"activation: unknown {name!r}; choose one of: {', '.join(ACTIVATIONS)}")


def mlp(n_in: int, width: int, depth: int, n_out: int, act: str, slope: float,
        batch_norm: bool = False) -> nn.Sequential:
    """``depth`` hidden ``Linear(width) [-> BatchNorm] -> act`` layers, then ``Linear(n_out)``."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(n_in if i == 0 else width, width, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(activation(act, slope))
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def he_init(module: nn.Module, slope: float) -> None:
    """He et al. 2015 (arXiv:1502.01852) normal init, zero biases: activations keep their scale
    through the depth, so an untrained generator already spreads its samples instead of
    collapsing them onto a point (PyTorch's default init shrinks them layer by layer)."""
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, a=slope, nonlinearity="leaky_relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _slope(config: MLPGeneratorConfig | MLPDiscriminatorConfig) -> float:
    """The negative slope He init assumes: the leaky slope, 0 for ReLU and the smooth ones."""
    return config.leaky_slope if config.activation == "leaky-relu" else 0.0


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """``[N, *S] -> [N / pack, pack * prod(S)]``: consecutive samples side by side (PacGAN)."""
    n = x.shape[0]
    if n % pack:
        raise ConfigError(f"discriminator.pack: {pack} must divide the batch size, got a batch of {n}")
    return x.reshape(n // pack, -1)


class MLPGenerator(nn.Module):
    """MLP generator: z -> hidden layers -> linear output (vectors) or tanh image."""

    def __init__(self, config: MLPGeneratorConfig, data: DataSpec) -> None:
        super().__init__()
        self.latent_spaces = (LatentSpace(name="z", shape=(config.latent_dim,)),)
        self.num_classes = None
        self.shape = tuple(data.shape)
        self.register_buffer("scale", torch.tensor(float(config.scale)))  # saved with the weights: their units
        self.net = mlp(config.latent_dim, config.width, config.depth, math.prod(self.shape), config.activation,
                       config.leaky_slope, config.batch_norm)
        self.out = nn.Tanh() if data.is_image else nn.Identity()  # images live in [-1, 1]
        if config.init == "he":
            self.net.apply(lambda m: he_init(m, _slope(config)))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.out(self.net(z) * self.scale).reshape(-1, *self.shape)  # [N, Z] -> [N, *S]


class MLPDiscriminator(nn.Module):
    """MLP discriminator on flattened samples, optionally packed (PacGAN) -> one logit per pack."""

    def __init__(self, config: MLPDiscriminatorConfig, data: DataSpec) -> None:
        super().__init__()
        self.num_classes = None
        self.pack = config.pack
        self.batch_multiple = config.pack  # the engine checks the batch size against it before training
        self.register_buffer("scale", torch.tensor(float(config.scale)))
        self.net = mlp(config.pack * math.prod(data.shape), config.width, config.depth, 1, config.activation,
                       config.leaky_slope)
        if config.init == "he":
            self.net.apply(lambda m: he_init(m, _slope(config)))

    def forward(self, x: Tensor, labels: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        return self.net(pack_samples(x, self.pack) / self.scale).flatten()  # [N / pack]


@hookimpl
def ganforge_register_generators(register):
    register("mlp", MLPGenerator, MLPGeneratorConfig)


@hookimpl
def ganforge_register_discriminators(register):
    register("mlp", MLPDiscriminator, MLPDiscriminatorConfig)
