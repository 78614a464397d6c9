"""Feature (perceptual) losses for GAN inversion: ``L_feat(x, y) = mean_l MSE(phi_l(x), phi_l(y))`` over
layers ``l`` of a frozen feature network ``phi``.

Image2StyleGAN (Abdal, Qin & Wonka 2019, arXiv:1904.03189, eq. 3-4) uses ImageNet VGG16 layers conv1_1,
conv1_2, conv3_2 and conv4_2; Zhu et al. 2016 (arXiv:1609.03552) also add a feature term to the pixel
loss. ImageNet weights cannot be downloaded here, so the network is pluggable by name:

- ``"auto"`` (default): ganforge's own domain classifier for the image's channels, ``mnist-classifier``
  for one channel and ``cifar10-classifier`` for three (their committed weights,
  :mod:`ganforge_plugins.metrics.classifier`); ``phi`` is its 128-d penultimate layer;
- any registered feature extractor that exposes such a differentiable classifier (``mnist-classifier``,
  ``fashion-mnist-classifier``, ``cifar10-classifier``); ``weights`` may name another weights file;
- ``"vgg16"``: torchvision's VGG16 at the four Image2StyleGAN layers, built without weights and loaded
  from the local file ``weights`` (a torchvision state dict, ``.safetensors`` or a ``.pth`` read with
  ``weights_only=True``); never downloaded. Images in ``[-1, 1]`` are mapped to ``[0, 1]``, grey
  replicated to RGB, normalised with the ImageNet mean and std, and resized bilinearly to 64x64 when
  smaller (so that conv4_2 still sees 8x8).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from ganforge import ConfigError, DataError, get_plugin_manager
from torch import Tensor, nn

VGG_LAYERS = {"conv1_1": 1, "conv1_2": 3, "conv3_2": 13, "conv4_2": 20}  # ReLU outputs in vgg16().features
VGG_MIN_SIZE = 64
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUTO = {1: "mnist-classifier", 3: "cifar10-classifier"}


def feature_mse(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """Mean over layers of the MSE between two lists of feature maps (``[N, ...]`` each)."""
    return torch.stack([F.mse_loss(x, y) for x, y in zip(a, b, strict=True)]).mean()


class FeatureNetwork(nn.Module):
    """A frozen ``phi``: ``forward(x: [N, C, H, W] in [-1, 1]) -> list of feature tensors``, differentiable in ``x``."""

    def __init__(self, name: str, channels: int, body: nn.Module, prepare: Callable[[Tensor], Tensor],
                 layers: dict[str, int] | None = None) -> None:
        super().__init__()
        self.name, self.channels, self.body, self.prepare = name, channels, body, prepare
        self.layers = layers
        self.body.eval().requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise DataError(f"feature_network: {self.name!r} takes [N, {self.channels}, H, W] images, "
                            f"got {list(x.shape)}")
        x = self.prepare(x)
        if self.layers is None:
            return [self.body(x)]
        wanted, out = set(self.layers.values()), []
        for i, layer in enumerate(self.body.children()):
            x = layer(x)
            if i in wanted:
                out.append(x)
        return out

    def loss(self, x: Tensor, y_features: list[Tensor]) -> Tensor:
        return feature_mse(self(x), y_features)


def classifier_network(name: str, channels: int, weights: str = "") -> FeatureNetwork:
    """The penultimate layer of a ganforge domain classifier registered as feature extractor ``name``."""
    from ganforge_plugins.metrics.classifier import prepare_input

    manager = get_plugin_manager()
    try:
        component = manager.get("feature-extractor", name)
    except Exception as exc:  # UnknownComponentError lists the choices
        raise ConfigError(f"feature_network: {exc} (or 'auto', 'vgg16')") from None
    fields = {"weights": weights} if weights else {}
    try:
        extractor = component.factory(component.config(**fields))
    except TypeError:
        raise ConfigError(f"feature_network: {name!r} takes no weights file") from None
    net = getattr(extractor, "net", None)
    if not isinstance(net, nn.Module) or not hasattr(net, "features"):
        raise ConfigError(f"feature_network: the feature extractor {name!r} has no differentiable network to "
                          "build a feature loss from; choose 'auto', a ganforge domain classifier or 'vgg16'")
    if getattr(extractor, "channels", channels) != channels:
        raise ConfigError(f"feature_network: {name!r} takes {extractor.channels}-channel images, the generator "
                          f"makes {channels}-channel ones")

    features = net.features

    class Penultimate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Tensor) -> Tensor:
            out: Tensor = features(x)  # type: ignore[operator]
            return out

    return FeatureNetwork(name, channels, Penultimate(),
                          lambda x: prepare_input(x, channels=channels, resize="bilinear", who=name))


def load_state(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        import safetensors.torch

        return safetensors.torch.load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ConfigError(f"feature_weights: {str(path)!r} does not hold a state dict")
    return state


def vgg16_network(weights: str, channels: int) -> FeatureNetwork:
    """VGG16's features up to conv4_2 loaded from the local file ``weights`` (never downloaded)."""
    if not weights:
        raise ConfigError("feature_weights: feature_network = 'vgg16' needs a local VGG16 weights file "
                          "(torchvision's vgg16 state dict); ganforge never downloads weights")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"feature_weights: file {str(path)!r} does not exist")
    import torchvision

    with torch.device("meta"):
        features = torchvision.models.vgg16().features[: max(VGG_LAYERS.values()) + 1]
    features = features.to_empty(device="cpu")
    for m in features:
        if isinstance(m, nn.ReLU):
            m.inplace = False  # the kept activations must not be overwritten
    state = {k.removeprefix("features."): t for k, t in load_state(path).items()}
    wanted = features.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ConfigError(f"feature_weights: {str(path)!r} is not a VGG16 state dict (missing {missing[:3]})")
    try:
        features.load_state_dict({k: state[k].float() for k in wanted})
    except RuntimeError as exc:
        raise ConfigError(f"feature_weights: {str(path)!r} is not a VGG16 state dict: {exc}") from None
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None]

    def prepare(x: Tensor) -> Tensor:
        x = (x.float() + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < VGG_MIN_SIZE:
            x = F.interpolate(x, size=(VGG_MIN_SIZE, VGG_MIN_SIZE), mode="bilinear", align_corners=False)
        return (x - mean.to(x)) / std.to(x)

    return FeatureNetwork("vgg16", channels, features, prepare, layers=VGG_LAYERS)


def build_feature_network(name: str, *, channels: int, weights: str = "",
                          device: torch.device | str = "cpu") -> FeatureNetwork:
    """The feature network ``name`` (``auto``, ``vgg16`` or a registered domain classifier) for images with
    ``channels`` channels, frozen, on ``device``."""
    if name == "vgg16":
        if channels not in (1, 3):
            raise ConfigError(f"feature_network: vgg16 takes 1- or 3-channel images, the generator makes {channels}")
        net = vgg16_network(weights, channels)
    else:
        if name == "auto":
            if channels not in AUTO:
                raise ConfigError(f"feature_network: no default feature network for {channels}-channel images; "
                                  "name one, or set feature_weight = 0")
            name = AUTO[channels]
        net = classifier_network(name, channels, weights)
    return net.to(device)
