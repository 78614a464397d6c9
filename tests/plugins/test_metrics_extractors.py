"""Feature extractors: the FID Inception network's plumbing (weights we make here, since the real ones
cannot be had offline), hash checks that refuse the wrong file, and the committed domain classifiers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch
from ganforge import ConfigError, DataError, get_plugin_manager
from ganforge_plugins.metrics.classifier import MANIFEST, WEIGHTS_DIR, ClassifierFeaturesConfig, mnist_classifier
from ganforge_plugins.metrics.files import sha256_file
from ganforge_plugins.metrics.inception import InceptionConfig, InceptionFeatures, build_fid_inception

MANAGER = get_plugin_manager()


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A randomly initialised FID Inception state dict saved as .pth, and its SHA-256."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(build_fid_inception().state_dict(), path)
    return path, sha256_file(path)


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    import urllib.request

    import torch.hub

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_inception_loads_a_local_file_checked_by_hash_and_never_downloads(
    inception_weights: tuple[Path, str], no_downloads: None
) -> None:
    path, digest = inception_weights
    extractor = MANAGER.get("feature-extractor", "inception").factory(InceptionConfig(weights=str(path), sha256=digest))
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    feats, probs = extractor.features_and_probabilities(gray)
    assert feats.shape == (2, 2048) and probs.shape == (2, 1008)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2), atol=1e-5)
    # grayscale is repeated to RGB: the same features as the explicit 3-channel image
    assert torch.allclose(extractor.features(gray[:1].expand(-1, 3, -1, -1)), feats[:1], atol=1e-5)
    assert extractor.protocol["weights_sha256"] == digest and extractor.protocol["name"] == "inception"
    assert "299" in extractor.protocol["resize"]


def test_inception_reads_safetensors_too(inception_weights: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = inception_weights
    st = tmp_path / "inception.safetensors"
    safetensors.torch.save_file(torch.load(path, weights_only=True), str(st))
    extractor = InceptionFeatures(InceptionConfig(weights=str(st), sha256=sha256_file(st)))
    assert extractor.features(torch.zeros(1, 3, 16, 16)).shape == (1, 2048)


def test_inception_refuses_a_file_with_the_wrong_hash(inception_weights: tuple[Path, str]) -> None:
    path, digest = inception_weights
    with pytest.raises(ConfigError) as info:
        InceptionFeatures(InceptionConfig(weights=str(path)))  # the default: the real network's hash
    message = str(info.value)
    assert digest in message and "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in message
    assert "expected" in message


def test_inception_without_weights_explains_instead_of_downloading(tmp_path: Path, no_downloads: None) -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        InceptionFeatures(InceptionConfig(weights=str(tmp_path / "missing.pth")))


def test_inception_refuses_pickled_code_and_foreign_state_dicts(tmp_path: Path) -> None:
    bad = tmp_path / "code.pth"
    torch.save({"x": Path("/")}, bad)  # not a tensor: weights_only loading refuses it
    with pytest.raises(ConfigError, match="cannot read"):
        InceptionFeatures(InceptionConfig(weights=str(bad), sha256=sha256_file(bad)))
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ConfigError, match="does not fit"):
        InceptionFeatures(InceptionConfig(weights=str(other), sha256=sha256_file(other)))


# -- domain classifiers --------------------------------------------------------------------------


def manifest() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(MANIFEST.read_text())
    return data


@pytest.mark.parametrize("name", ["mnist-classifier", "fashion-mnist-classifier", "cifar10-classifier"])
def test_committed_weights_are_small_hashed_and_documented(name: str) -> None:
    entry = manifest()[name]
    path = WEIGHTS_DIR / str(entry["file"])
    assert path.stat().st_size < 1_000_000
    assert sha256_file(path) == entry["sha256"]
    assert "ganforge train-classifier" in str(entry["command"]) and float(str(entry["test_accuracy"])) > 0.6
    extractor = MANAGER.get("feature-extractor", name).factory(ClassifierFeaturesConfig())
    assert extractor.protocol["weights_sha256"] == entry["sha256"]
    channels = 3 if name.startswith("cifar") else 1
    x = torch.rand(5, channels, 32, 32) * 2 - 1
    feats, probs = extractor.features(x), extractor.probabilities(x)
    assert feats.shape == (5, 128) and probs.shape == (5, 10)
    assert torch.allclose(probs.sum(dim=1), torch.ones(5), atol=1e-5)


def test_classifier_refuses_wrong_channels_and_unresized_sizes() -> None:
    extractor = mnist_classifier(ClassifierFeaturesConfig())
    with pytest.raises(DataError, match="expects 1-channel images, got 3 channels"):
        extractor.features(torch.zeros(2, 3, 32, 32))
    with pytest.raises(DataError, match=r"expected images \[N, C, H, W\]"):
        extractor.features(torch.zeros(2, 32, 32))
    strict = mnist_classifier(ClassifierFeaturesConfig(resize="none"))
    with pytest.raises(DataError, match="expects 32x32 images, got 28x28"):
        strict.features(torch.zeros(2, 1, 28, 28))
    assert extractor.features(torch.zeros(2, 1, 16, 16)).shape == (2, 128)  # resized, as its protocol says


def test_classifier_refuses_weights_with_the_wrong_hash(tmp_path: Path) -> None:
    entry = manifest()["mnist-classifier"]
    copy = tmp_path / "mnist.safetensors"
    shutil.copy(WEIGHTS_DIR / str(entry["file"]), copy)
    state = safetensors.torch.load_file(str(copy))
    state["head.bias"] = state["head.bias"] + 1
    safetensors.torch.save_file(state, str(copy))
    with pytest.raises(ConfigError) as info:
        mnist_classifier(ClassifierFeaturesConfig(weights=str(copy), sha256=str(entry["sha256"])))
    assert str(entry["sha256"]) in str(info.value) and sha256_file(copy) in str(info.value)
    with pytest.raises(ValueError, match="sha256"):
        ClassifierFeaturesConfig(sha256="not-a-hash")


def test_mnist_classifier_classifies_real_mnist(mnist_root: Path) -> None:
    from ganforge_plugins.datasets.idx import MNISTConfig, mnist

    data = mnist(MNISTConfig(root=str(mnist_root), split="test", limit=2000))
    extractor = mnist_classifier(ClassifierFeaturesConfig())
    accuracy = (extractor.probabilities(data.images).argmax(dim=1) == data.labels).float().mean()
    assert accuracy > 0.98


def test_fashion_mnist_classifier_classifies_real_fashion_mnist() -> None:
    from ganforge_plugins.datasets.idx import FashionMNISTConfig, fashion_mnist
    from ganforge_plugins.metrics.classifier import fashion_mnist_classifier

    if not Path(FashionMNISTConfig().root).is_dir():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    data = fashion_mnist(FashionMNISTConfig(split="test", limit=2000))
    extractor = fashion_mnist_classifier(ClassifierFeaturesConfig())
    accuracy = (extractor.probabilities(data.images).argmax(dim=1) == data.labels).float().mean()
    assert accuracy > 0.85
