"""Do generated samples look like digits? A classifier trained on the real digits says.

``python -m tests.quality SAMPLES.npy`` prints the numbers; the slow acceptance test asserts them.
"""

from __future__ import annotations

import sys

import numpy as np
from ganforge_plugins.datasets.digits import Digits, DigitsConfig
from sklearn.linear_model import LogisticRegression


def real_digits(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real digits at ``resolution``: images ``[N, 1, R, R]`` in [0, 1] and labels."""
    real = Digits.from_config(DigitsConfig(resolution=resolution))
    return (real.images.numpy() + 1.0) / 2.0, real.labels.numpy()


def digit_classifier(resolution: int) -> LogisticRegression:
    """Multinomial logistic regression on scikit-learn's real digits at ``resolution``, in [0, 1]."""
    x, y = real_digits(resolution)
    return LogisticRegression(max_iter=3000).fit(x.reshape(len(x), -1), y)


def digit_quality(samples: np.ndarray, classifier: LogisticRegression | None = None,
                  labels: np.ndarray | None = None) -> dict[str, object]:
    """``samples``: ``[N, 1, R, R]`` in [0, 1]. Returns the fraction classified with p >= 0.8 and
    the fraction of samples per predicted class; with the ``labels`` the samples were drawn for
    (a conditional generator), also the fraction the classifier reads as that label."""
    n, _, r, _ = samples.shape
    classifier = classifier or digit_classifier(r)
    proba = classifier.predict_proba(samples.reshape(n, -1))
    predicted = proba.argmax(1)
    per_class = np.bincount(predicted, minlength=10) / n
    quality: dict[str, object] = {
        "n": n,
        "confident_fraction": float((proba.max(1) >= 0.8).mean()),
        "class_fractions": [round(float(f), 4) for f in per_class],
        "min_class_fraction": float(per_class.min()),
    }
    if labels is not None:
        quality["label_agreement"] = float((predicted == labels).mean())
    return quality


def within_class_spread(images: np.ndarray, labels: np.ndarray, per_class: int = 100) -> float:
    """Mean L2 distance between two images of the same class (the first ``per_class`` of each),
    averaged over classes: small when a generator draws one image, or a few, per class."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    spreads = []
    for c in np.unique(labels):
        group = flat[labels == c][:per_class]
        if len(group) < 2:
            continue
        sq = (group**2).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * group @ group.T, 0.0)
        spreads.append(np.sqrt(d2)[np.triu_indices(len(group), 1)].mean())
    return float(np.mean(spreads))


if __name__ == "__main__":
    print(digit_quality(np.load(sys.argv[1])))
