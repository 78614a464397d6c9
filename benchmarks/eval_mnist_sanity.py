"""Real-data sanity of the evaluation metrics on MNIST with the domain extractor (``mnist-classifier``).

FID and KID between the MNIST training and test sets should be small (two samples of one
distribution), and FID of the test set against a blurred or noised copy of itself should grow
monotonically with the blur or noise level. Writes ``benchmarks/results/eval-mnist-sanity.json`` and
``.md``::

    python benchmarks/eval_mnist_sanity.py [--root ../shared/data/mnist] [-n 10000]

``tests/plugins/test_metrics_sanity.py`` runs the same function on fewer samples and checks the
ordering.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF

BLUR_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0)
NOISE_STDS = (0.05, 0.1, 0.2, 0.4, 0.8)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``[N, C, H, W]`` images in ``[-1, 1]`` (kernel ``2 ceil(3 sigma) + 1``, reflect padding)."""
    size = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(x, [size, size], [sigma, sigma])


def noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation ``std`` (in the ``[-1, 1]`` range), clamped."""
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(-1.0, 1.0)


def sanity_table(root: str, n: int, *, blur_sigmas: tuple[float, ...] = BLUR_SIGMAS,
                 noise_stds: tuple[float, ...] = NOISE_STDS, kid_subset_size: int = 1000, kid_subsets: int = 100
                 ) -> dict[str, Any]:
    """FID/KID of train vs test and of test vs degraded test, with the protocol."""
    from ganforge_plugins.datasets.idx import MNISTConfig, mnist
    from ganforge_plugins.evaluation.pipeline import subset
    from ganforge_plugins.metrics.classifier import ClassifierFeaturesConfig, mnist_classifier
    from ganforge_plugins.metrics.fid import FIDConfig, FrechetInceptionDistance
    from ganforge_plugins.metrics.kid import KernelInceptionDistance, KIDConfig

    extractor = mnist_classifier(ClassifierFeaturesConfig())
    fid = FrechetInceptionDistance(FIDConfig())
    kid = KernelInceptionDistance(KIDConfig(subsets=kid_subsets, subset_size=min(kid_subset_size, n)))
    train = mnist(MNISTConfig(root=root, split="train")).images
    test = mnist(MNISTConfig(root=root, split="test")).images
    train = train[subset(len(train), n, 0)]
    test = test[subset(len(test), n, 1)]
    t0 = time.perf_counter()
    test_features = extractor.features(test)

    def score(x: torch.Tensor) -> dict[str, float]:
        feats = extractor.features(x)
        return {**fid.compute(test_features, feats), "kid_mean": kid.compute(test_features, feats)["kid_mean"]}

    rows = [{"comparison": "test vs train", "level": 0.0, **score(train)}]
    rows += [{"comparison": "test vs blurred test", "level": s, **score(blur(test, s))} for s in blur_sigmas]
    rows += [{"comparison": "test vs noised test", "level": s, **score(noise(test, s))} for s in noise_stds]
    return {
        "rows": rows,
        "protocol": {
            "extractor": dict(extractor.protocol),
            "samples_per_set": n,
            "real": {"dataset": "mnist", "root": str(Path(root).resolve()), "resolution": 32, "fit": "pad",
                     "train_subset_seed": 0, "test_subset_seed": 1},
            "blur": "torchvision gaussian_blur, kernel 2*ceil(3*sigma)+1, sigma in pixels at 32x32",
            "noise": "x + std * N(0, 1) in the [-1, 1] range, clamped, seed 0",
            "kid": {"subsets": kid_subsets, "subset_size": min(kid_subset_size, n), "degree": 3},
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }


def markdown(result: dict[str, Any]) -> str:
    p = result["protocol"]
    lines = [
        "# MNIST sanity of the evaluation metrics",
        "",
        f"Domain extractor `{p['extractor']['name']}` (weights SHA-256 `{p['extractor']['weights_sha256'][:16]}...`), "
        f"{p['samples_per_set']} images per set, MNIST at 32x32 (padded). Produced by "
        "`python benchmarks/eval_mnist_sanity.py`.",
        "",
        "| comparison | level | FID | KID |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['comparison']} | {r['level']:g} | {r['fid']:.3f} | {r['kid_mean']:.4f} |")
    lines += ["", f"Blur: {p['blur']}. Noise: {p['noise']}. Blur level = sigma (pixels); noise level = std.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = sanity_table(args.root, args.n)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "eval-mnist-sanity.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "eval-mnist-sanity.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
