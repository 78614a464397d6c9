"""The evaluation protocol shared by ``ganforge eval`` and the ``eval`` training callback.

A number is only comparable with another computed under the same protocol, so every result carries
it: the feature extractor (name, weights SHA-256, resizing), each metric's settings, the generated
side (checkpoint, step, sample count, seed) and the real side (dataset, its settings and split, sample
count, the seed of the subset). Features of the real side are cached on disk under the SHA-256 of
that protocol (``<cache>/reference/<key>.safetensors``), so a second evaluation against the same
reference extracts only the generated samples.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import safetensors.torch
import torch
from ganforge import Choice, DataError, DataSpec, GanforgeError, atomic_write
from torch import Tensor

from ganforge_plugins.metrics.classifier import DATASETS
from ganforge_plugins.metrics.fid import FIDConfig
from ganforge_plugins.metrics.files import cache_root
from ganforge_plugins.metrics.inception_score import ISConfig
from ganforge_plugins.metrics.kid import KIDConfig
from ganforge_plugins.metrics.precision_recall import PRConfig

CACHE_FORMAT = 2  # 2: entries also record how well the extractor classifies the real data


@attrs.frozen(kw_only=True)
class ExtractorChoice(Choice):
    """A feature extractor picked by name, with its plugin's config (``{name = "mnist-classifier"}``)."""

    family: ClassVar[str] = "feature-extractor"


@attrs.frozen(kw_only=True)
class MetricChoice(Choice):
    """A metric picked by name, with its plugin's config (``{name = "kid", subset_size = 500}``)."""

    family: ClassVar[str] = "metric"


DEFAULT_METRICS = (
    MetricChoice(name="fid", params=FIDConfig()),
    MetricChoice(name="kid", params=KIDConfig()),
    MetricChoice(name="is", params=ISConfig()),
    MetricChoice(name="pr", params=PRConfig()),
)

# dataset name -> the domain extractor trained on it
AUTO_EXTRACTORS = {"digits": "digits-classifier", "mnist": "mnist-classifier",
                   "fashion-mnist": "fashion-mnist-classifier", "cifar10": "cifar10-classifier"}


def auto_extractor(dataset_name: str | None, spec: DataSpec) -> str:
    """The domain classifier for a known dataset (by name, else by its class names), else ``inception``."""
    if dataset_name in AUTO_EXTRACTORS:
        return AUTO_EXTRACTORS[dataset_name]
    for name, (channels, _, class_names) in DATASETS.items():
        if spec.class_names == class_names and spec.channels == channels:
            return AUTO_EXTRACTORS[name]
    return "inception"


def metric_choices(names: str, manager: Any, configured: Sequence[MetricChoice] = ()) -> tuple[MetricChoice, ...]:
    """``"fid,kid"`` as metric choices: the configured ones' settings where given, else the defaults."""
    known = {c.name: c for c in configured}
    out = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name in known:
            out.append(known[name])
        else:
            comp = manager.get("metric", name)  # an unknown name lists the choices
            out.append(MetricChoice(name=name, params=comp.config()))
    if not out:
        raise GanforgeError("--metrics: name at least one metric, e.g. fid,kid,is,pr")
    return tuple(out)


def build_metrics(choices: Sequence[MetricChoice], manager: Any) -> list[tuple[str, Any]]:
    return [(c.name, manager.get("metric", c.name).factory(c.params)) for c in choices]


def build_extractor(choice: ExtractorChoice | None, manager: Any, *, dataset_name: str | None,
                    spec: DataSpec, device: torch.device) -> tuple[ExtractorChoice, Any]:
    if choice is None:
        name = auto_extractor(dataset_name, spec)
        choice = ExtractorChoice(name=name, params=manager.get("feature-extractor", name).config())
    extractor = manager.get("feature-extractor", choice.name).factory(choice.params)
    move = getattr(extractor, "to", None)
    if callable(move):
        move(device)
    return choice, extractor


def check_counts(metrics: Sequence[tuple[str, Any]], *, generated: int, real: int | None) -> None:
    """Refuse, before any work, sample counts below what a metric needs."""
    problems = []
    for name, metric in metrics:
        need = int(metric.min_samples)
        if generated < need:
            problems.append(f"{name} needs at least {need} generated samples, got {generated}")
        if metric.needs == "features" and real is not None and real < need:
            problems.append(f"{name} needs at least {need} real samples, got {real}")
    if problems:
        raise GanforgeError("too few samples: " + "; ".join(problems)
                            + " (draw more samples, or lower the metric's subset size / splits)")


def check_extractor(metrics: Sequence[tuple[str, Any]], extractor_name: str, extractor: Any, shape: Sequence[int]
                    ) -> None:
    """The extractor takes images of this shape (tried on two blank ones, so that a wrong channel count
    fails before any data is loaded), and gives probabilities where a metric needs them (IS)."""
    needs_probs = any(m.needs == "probabilities" for _, m in metrics)
    _, probs = extract(extractor, torch.zeros(2, *shape), probabilities=needs_probs)
    if needs_probs and probs is None:
        names = [n for n, m in metrics if m.needs == "probabilities"]
        raise GanforgeError(f"{', '.join(names)} needs class probabilities, but feature extractor "
                            f"{extractor_name!r} has no classifier head")


def extract(extractor: Any, images: Tensor, *, probabilities: bool) -> tuple[Tensor, Tensor | None]:
    """Features (and class probabilities) of one batch of images."""
    both = getattr(extractor, "features_and_probabilities", None)
    if probabilities and callable(both):
        feats, probs = both(images)
        return feats, probs
    feats = extractor.features(images)
    return feats, (extractor.probabilities(images) if probabilities else None)


def extract_batched(extractor: Any, batches: Callable[[], Any], *, probabilities: bool
                    ) -> tuple[Tensor, Tensor | None]:
    feats, probs = [], []
    for images in batches():
        f, p = extract(extractor, images, probabilities=probabilities)
        feats.append(f.float().cpu())
        if p is not None:
            probs.append(p.float().cpu())
    return torch.cat(feats), (torch.cat(probs) if probs else None)


def generated_batches(sample: Callable[[int], Tensor], n: int, batch_size: int) -> Callable[[], Any]:
    def batches() -> Any:
        done = 0
        while done < n:
            b = min(batch_size, n - done)
            yield sample(b).detach()
            done += b

    return batches


def compute_metrics(metrics: Sequence[tuple[str, Any]], real: Tensor, fake: Tensor, fake_probs: Tensor | None
                    ) -> dict[str, float]:
    out: dict[str, float] = {}
    for _, metric in metrics:
        if metric.needs == "probabilities":
            out.update(metric.compute(None, fake_probs))
        else:
            out.update(metric.compute(real, fake))
    return {k: float(v) for k, v in out.items()}


def check_shapes(real: Sequence[int], generated: Sequence[int]) -> None:
    if tuple(real) != tuple(generated):
        raise DataError(
            f"real images are {'x'.join(map(str, real))} but generated ones are {'x'.join(map(str, generated))}; "
            "both sides must have the same channels and size (set the real dataset's resolution/channels to "
            "the generator's)"
        )


def protocol_key(protocol: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a protocol (what reference features depend on)."""
    return hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **protocol}, sort_keys=True).encode()).hexdigest()


def tensor_sha256(x: Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def subset(n_total: int, n: int, seed: int) -> Tensor:
    """Indices of a random subset of ``min(n, n_total)`` items, drawn with ``seed``."""
    order = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    return order[: min(n, n_total)].sort().values


@attrs.define
class Reference:
    features: Tensor
    shape: tuple[int, ...]
    key: str
    path: Path
    hit: bool
    info: dict[str, Any] = attrs.field(factory=dict)  # e.g. the extractor's accuracy on the labelled real data


class ReferenceCache:
    """Real-side features on disk, one safetensors file per protocol key."""

    def __init__(self, directory: str = "") -> None:
        self.directory = cache_root(directory) / "reference"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def load(self, key: str) -> Reference | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safetensors.safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                feats = f.get_tensor("features")
            shape = tuple(json.loads(meta["shape"]))
            info = json.loads(meta.get("info", "{}"))
            if not isinstance(info, dict):
                raise ValueError("info is not an object")
        except (OSError, KeyError, ValueError, safetensors.SafetensorError):
            return None  # unreadable: recompute and overwrite
        return Reference(features=feats, shape=shape, key=key, path=path, hit=True, info=info)

    def save(self, key: str, features: Tensor, shape: Sequence[int], protocol: Mapping[str, Any],
             info: Mapping[str, Any] | None = None) -> Reference:
        path = self.path(key)
        meta = {"shape": json.dumps(list(shape)), "protocol": json.dumps(protocol, sort_keys=True),
                "info": json.dumps(dict(info or {}), sort_keys=True)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: safetensors.torch.save_file({"features": features.contiguous()},
                                                                       str(tmp), metadata=meta))
        except OSError:
            pass  # a read-only cache only costs the recomputation
        return Reference(features=features, shape=tuple(shape), key=key, path=path, hit=False, info=dict(info or {}))

    def get_or_compute(self, protocol: Mapping[str, Any], compute: Callable[[], tuple[Any, ...]]) -> Reference:
        """The cached reference of ``protocol``, or ``compute()``'s ``(features, shape[, info])`` saved."""
        key = protocol_key(protocol)
        found = self.load(key)
        if found is not None:
            return found
        features, shape, *info = compute()
        return self.save(key, features, shape, protocol, info[0] if info else None)


# -- can the extractor see this data? -------------------------------------------------------------

WEAK_ACCURACY = 0.5  # below this on labelled real data, the extractor's features cannot tell the data apart
GOOD_ACCURACY = 0.9  # below this, a warning


def labelled_accuracy(extractor: Any, probs: Tensor | None, labels: Tensor | None,
                      class_names: Sequence[str]) -> dict[str, Any]:
    """How well the extractor's classifier labels the real images: ``{"real_accuracy", "chance",
    "labelled"}``, or why it cannot be measured (``{"real_accuracy_unmeasured": why}``)."""
    names = tuple(getattr(extractor, "class_names", ()) or ())
    if probs is None or not names:
        return {"real_accuracy_unmeasured": "the extractor has no classifier head"}
    if labels is None:
        return {"real_accuracy_unmeasured": "the real data has no labels"}
    if tuple(class_names) != names:
        return {"real_accuracy_unmeasured": "the extractor's classes are not the data's",
                "extractor_classes": list(names)[:12], "data_classes": list(class_names)[:12]}
    accuracy = float((probs.argmax(1) == labels.to(probs.device)).double().mean())
    return {"real_accuracy": round(accuracy, 4), "chance": round(1 / len(names), 4), "labelled": len(labels)}


def domain_problems(extractor_name: str, extractor: Any, info: Mapping[str, Any], real_name: str,
                    real_resolution: int | None) -> tuple[list[str], str | None]:
    """``(warnings, refusal)`` about an extractor that cannot see the real data: its accuracy on the
    labelled real images, classes that are not the data's, or a resolution far from its own."""
    warnings, refusal = [], None
    dataset = getattr(extractor, "dataset", None)
    better = AUTO_EXTRACTORS.get(real_name)
    hint = f"; use --extractor {better}" if better and better != extractor_name else ""
    acc = info.get("real_accuracy")
    if acc is not None:
        chance = info["chance"]
        text = (f"feature extractor {extractor_name!r}" + (f" (trained on {dataset!r})" if dataset else "")
                + f" labels only {acc:.1%} of the real {real_name!r} images correctly (chance {chance:.1%})")
        if acc < WEAK_ACCURACY:
            refusal = (f"{text}: its features cannot tell these images apart, so FID, KID and IS would be numbers "
                       f"in a space blind to the data{hint} (or --allow-weak-extractor to compute them anyway)")
        elif acc < GOOD_ACCURACY:
            warnings.append(f"{text}: the metrics see the data only partly{hint}")
    elif "extractor_classes" in info:
        warnings.append(f"feature extractor {extractor_name!r} was trained on other classes "
                        f"({', '.join(info['extractor_classes'][:4])}, ...) than the real {real_name!r} data's "
                        f"({', '.join(info['data_classes'][:4])}, ...){hint}")
    native = getattr(extractor, "resolution", None)
    if native and real_resolution and not native / 2 <= real_resolution <= native * 2:
        warnings.append(f"feature extractor {extractor_name!r} works at {native}x{native}; the "
                        f"{real_resolution}x{real_resolution} images are resized by {native / real_resolution:g}x")
    return warnings, refusal


def versions() -> dict[str, str]:
    import ganforge

    out = {"ganforge": ganforge.__version__, "torch": torch.__version__}
    try:
        import torch_fidelity

        out["torch_fidelity"] = str(torch_fidelity.__version__)
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    return out


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._t, 3)
        self._t = now
