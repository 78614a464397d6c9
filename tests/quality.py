"""Do generated samples look like digits? A classifier trained on the real digits says.

``python -m tests.quality SAMPLES.npy`` prints the numbers; the slow acceptance test asserts them.
"""

from __future__ import annotations

import sys

import numpy as np
from ganforge_plugins.datasets.digits import Digits, DigitsConfig
from sklearn.linear_model import LogisticRegression


def digit_classifier(resolution: int) -> LogisticRegression:
    """Multinomial logistic regression on scikit-learn's real digits at ``resolution``, in [0, 1]."""
    real = Digits.from_config(DigitsConfig(resolution=resolution))
    x = ((real.images.numpy() + 1.0) / 2.0).reshape(len(real.images), -1)
    return LogisticRegression(max_iter=3000).fit(x, real.labels.numpy())


def digit_quality(samples: np.ndarray, classifier: LogisticRegression | None = None) -> dict[str, object]:
    """``samples``: ``[N, 1, R, R]`` in [0, 1]. Returns the fraction classified with p >= 0.8 and
    the fraction of samples per predicted class."""
    n, _, r, _ = samples.shape
    classifier = classifier or digit_classifier(r)
    proba = classifier.predict_proba(samples.reshape(n, -1))
    per_class = np.bincount(proba.argmax(1), minlength=10) / n
    return {
        "n": n,
        "confident_fraction": float((proba.max(1) >= 0.8).mean()),
        "class_fractions": [round(float(f), 4) for f in per_class],
        "min_class_fraction": float(per_class.min()),
    }


if __name__ == "__main__":
    print(digit_quality(np.load(sys.argv[1])))
