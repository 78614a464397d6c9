"""The standard FID Inception network, from a local weights file only.

Heusel et al. 2017 (arXiv:1706.08500) compute FID on the 2048-d pool3 features of the TensorFlow
Inception-v3 graph ``pt_inception-2015-12-05``; Salimans et al. 2016 (arXiv:1606.03498) compute the
Inception Score from its 1008-way softmax. Numbers are comparable with published ones only with that
exact network and preprocessing, so this extractor reuses torch-fidelity's port of it (blocks patched
to match TensorFlow, and TensorFlow 1.x-compatible bilinear resizing to 299x299) and follows its
protocol: images in ``[-1, 1]`` are quantised to 8 bits as a PNG would store them, grayscale is repeated
to RGB, resized to 299x299 and scaled by ``(x - 128) / 128``; probabilities are ``softmax`` of the
logits without the final bias (torch-fidelity's IS convention).

The weights are read **only** from ``weights`` (a ``.pth`` state dict, read with ``weights_only=True``,
or ``.safetensors``) after its SHA-256 is checked against ``sha256``; nothing is ever downloaded. The
default ``sha256`` is that of torch-fidelity's and pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
(the name carries the hash's first 8 hex digits).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import safetensors.torch
import torch
from attrs import validators as v
from ganforge import ConfigError, DataError, hookimpl
from torch import Tensor

from ganforge_plugins.metrics.files import cache_root, check_sha256

FID_INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"


def default_weights_path() -> str:
    return str(cache_root() / "weights" / FID_INCEPTION_FILE)


def build_fid_inception() -> torch.nn.Module:
    """torch-fidelity's FID Inception-v3 architecture with uninitialised weights (nothing downloaded)."""
    from torch import nn
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.feature_extractor_inceptionv3 import (
        BasicConv2d,
        FeatureExtractorInceptionV3,
        InceptionA,
        InceptionB,
        InceptionC,
        InceptionD,
        InceptionE_1,
        InceptionE_2,
    )

    class FIDInceptionV3(FeatureExtractorInceptionV3):  # type: ignore[misc]
        # The parent's __init__ downloads weights when given no path and unpickles them with
        # weights_only=False; build the same layers here and load a checked state dict instead.
        def __init__(self) -> None:
            FeatureExtractorBase.__init__(self, "inception-v3-compat", ["2048", "logits_unbiased"])
            self.feature_extractor_internal_dtype = torch.float32
            self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
            self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
            self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
            self.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
            self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
            self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
            self.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
            self.Mixed_5b = InceptionA(192, pool_features=32)
            self.Mixed_5c = InceptionA(256, pool_features=64)
            self.Mixed_5d = InceptionA(288, pool_features=64)
            self.Mixed_6a = InceptionB(288)
            self.Mixed_6b = InceptionC(768, channels_7x7=128)
            self.Mixed_6c = InceptionC(768, channels_7x7=160)
            self.Mixed_6d = InceptionC(768, channels_7x7=160)
            self.Mixed_6e = InceptionC(768, channels_7x7=192)
            self.Mixed_7a = InceptionD(768)
            self.Mixed_7b = InceptionE_1(1280)
            self.Mixed_7c = InceptionE_2(2048)
            self.AvgPool = nn.AdaptiveAvgPool2d(output_size=(1, 1))
            self.fc = nn.Linear(2048, 1008)

    return FIDInceptionV3()


def load_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a tensors-only ``.pth`` (never unpickling code)."""
    try:
        if path.suffix == ".safetensors":
            return dict(safetensors.torch.load_file(str(path)))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"inception.weights: cannot read {str(path)!r} as a state dict: {exc}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"inception.weights: {str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


def to_uint8_rgb(x: Tensor) -> Tensor:
    """``[N, 1 or 3, H, W]`` in ``[-1, 1]`` -> ``[N, 3, H, W]`` uint8, rounded as a saved PNG would be."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"inception: expected images [N, 1 or 3, H, W], got shape {list(x.shape)}")
    q = ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return q.expand(-1, 3, -1, -1) if q.shape[1] == 1 else q


@attrs.frozen(kw_only=True)
class InceptionConfig:
    # weights: local file of the FID Inception network; never downloaded
    weights: str = attrs.field(factory=default_weights_path)
    sha256: str = attrs.field(default=FID_INCEPTION_SHA256, validator=v.matches_re(r"^[0-9a-fA-F]{64}$"))
    batch_size: int = attrs.field(default=50, validator=v.ge(1))


class InceptionFeatures:
    """Pool3 features (2048) and 1008-way probabilities of the FID Inception-v3 network, from a local file."""

    def __init__(self, config: InceptionConfig) -> None:
        path = Path(config.weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"inception.weights: {str(path)!r} does not exist. This extractor never downloads: put the FID "
                f"Inception weights ({FID_INCEPTION_FILE}, SHA-256 {config.sha256}) there or set weights = PATH; "
                "or use a domain extractor (mnist-classifier, fashion-mnist-classifier, cifar10-classifier)"
            )
        digest = check_sha256(path, config.sha256, what="inception.weights")
        net = build_fid_inception()
        try:
            net.load_state_dict(load_state_dict(path))
        except RuntimeError as exc:
            raise ConfigError(f"inception.weights: {str(path)!r} does not fit the FID Inception network: "
                              f"{exc}") from None
        self.net = net.eval().requires_grad_(False)
        self.config = config
        self.protocol = {
            "name": "inception",
            "weights": path.name,
            "weights_sha256": digest,
            "resize": "8-bit quantisation, grayscale repeated to RGB, TensorFlow-1.x-compatible bilinear to "
                      "299x299 (torch-fidelity), then (x - 128) / 128",
            "features": "pool3 (2048)",
            "probabilities": "softmax of the logits without bias over 1008 classes (torch-fidelity's IS)",
        }

    def to(self, device: torch.device | str) -> InceptionFeatures:
        self.net.to(device)
        return self

    @torch.no_grad()
    def _run(self, x: Tensor) -> tuple[Tensor, Tensor]:
        q = to_uint8_rgb(x)
        device = next(self.net.parameters()).device
        feats, logits = [], []
        for batch in q.split(self.config.batch_size):
            f, lg = self.net(batch.to(device))
            feats.append(f.float().cpu())
            logits.append(lg.float().cpu())
        return torch.cat(feats), torch.cat(logits)

    def features_and_probabilities(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats, logits = self._run(x)
        return feats, logits.double().softmax(dim=1).float()

    def features(self, x: Tensor) -> Tensor:
        return self._run(x)[0]

    def probabilities(self, x: Tensor) -> Tensor:
        return self.features_and_probabilities(x)[1]


@hookimpl
def ganforge_register_feature_extractors(register):
    register("inception", InceptionFeatures, InceptionConfig)
