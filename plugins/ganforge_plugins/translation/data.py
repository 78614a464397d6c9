"""Data for image-to-image translation: ground-truth tasks built from real MNIST with kornia, and
folders of your own images.

Three shapes of data, one per procedure:

- :class:`PairedData` (pix2pix): aligned ``a[i] -> b[i]``;
- :class:`UnpairedData` (CycleGAN): domains ``x`` and ``y`` with no correspondence; a ground-truth
  task also carries ``x_truth`` (what ``G(x)`` should be) and ``y_truth`` (what ``F(y)`` should be),
  which training never sees;
- :class:`DomainData` (StarGAN): images with a domain index each; a ground-truth task's test split
  carries ``truth [N, K, C, H, W]``, every image rendered in every domain.

Ground-truth tasks (the 28x28 digit is transformed, then centred on the canvas):

- ``edges2mnist`` (paired): A = the edges of a real digit (kornia's Sobel magnitude, normalised per
  image, or Canny's binary edges), B = the digit;
- ``cifar-colorize`` (paired): A = a CIFAR-10 image in grayscale (kornia's ``rgb_to_grayscale``,
  ITU-R 601 luma), B = the colour image; ``root`` is ``cifar10-jpeg.tar.gz`` or the folder holding it,
  read without unpacking; ``limit`` takes images evenly over the (class-sorted) split;
- ``mnist-thin2bold`` (unpaired): X = digits of the first half of the split eroded (2x2 square), Y =
  digits of the other half dilated (3x3 cross) (kornia.morphology); the truth for ``G(x)`` is ``x``'s
  own digit dilated, for ``F(y)`` ``y``'s own digit eroded;
- ``mnist-styles`` (StarGAN): domains plain / bold (dilated) / thin (eroded) / italic (sheared by
  -0.3, kornia.geometry.shear); each training digit appears in one random domain only.

Folders (``root``): ``aligned`` (``A/`` and ``B/`` with matching file names, or side-by-side ``AB``
images twice as wide as high), ``unaligned`` (``trainA/`` and ``trainB/``; ``testA/``, ``testB/``
for ``split = "test"``), ``domains`` (one sub-folder per domain). Images keep their size, which must
be the same for every image (or are resized to ``resolution`` when it is set).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import torch
import torch.nn.functional as F
from attrs import validators as v
from ganforge import DataError, hookimpl, power_of_two, read_image
from torch import Tensor

from ganforge_plugins.datasets.idx import FILES, _open, read_idx

GROUND_TRUTH_TASKS = ("edges2mnist", "cifar-colorize", "mnist-thin2bold", "mnist-styles")
FOLDERS = ("aligned", "unaligned", "domains")
TASKS = GROUND_TRUTH_TASKS + FOLDERS
KIND = {"edges2mnist": "paired", "cifar-colorize": "paired", "aligned": "paired",
        "mnist-thin2bold": "unpaired", "unaligned": "unpaired", "mnist-styles": "domains", "domains": "domains"}
STYLES = ("plain", "bold", "thin", "italic")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SHEAR = -0.3  # italic: x' = x - 0.3 y about the centre, the top leaning right


@attrs.frozen(kw_only=True)
class TranslationDataConfig:
    name: str = attrs.field(default="edges2mnist", validator=v.in_(TASKS))
    root: str = "../shared/data/mnist"  # the MNIST idx files, or your folder
    split: str = attrs.field(default="train", validator=v.in_(("train", "test")))
    resolution: int = attrs.field(default=32, validator=power_of_two(4, 1024))  # MNIST canvas; folders resize to it
    limit: int = attrs.field(default=0, validator=v.ge(0))  # at most this many digits (0 = all)
    edges: str = attrs.field(default="sobel", validator=v.in_(("sobel", "canny")))  # edges2mnist
    channels: int = attrs.field(default=3, validator=v.in_((1, 3)))  # folders: 1 = grayscale, 3 = RGB
    seed: int = 0  # mnist-styles: which domain each training digit is shown in

    @property
    def kind(self) -> str:
        return KIND[self.name]


@attrs.frozen(kw_only=True)
class PairedData:
    a: Tensor  # [N, Ca, H, W] in [-1, 1]
    b: Tensor  # [N, Cb, H, W]
    names: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class UnpairedData:
    x: Tensor  # [N, C, H, W]
    y: Tensor  # [M, C', H, W]
    x_truth: Tensor | None = None  # [N, C', H, W]: G(x) should be this
    y_truth: Tensor | None = None  # [M, C, H, W]: F(y) should be this


@attrs.frozen(kw_only=True)
class DomainData:
    images: Tensor  # [N, C, H, W]
    domains: Tensor  # [N] int64
    domain_names: tuple[str, ...]
    truth: Tensor | None = None  # [N, K, C, H, W]: image i in domain k


# -- kornia transformations of [N, 1, 28, 28] digits in [0, 1] ---------------------------------------


def sobel_edges(x: Tensor) -> Tensor:
    """Sobel gradient magnitude, divided by each image's maximum: ``[N, 1, H, W]`` in ``[0, 1]``."""
    import kornia

    mag = kornia.filters.sobel(x)
    return mag / mag.flatten(1).amax(1).clamp(min=1e-6)[:, None, None, None]


def canny_edges(x: Tensor) -> Tensor:
    """Canny's binary edge map (kornia, thresholds 0.1 / 0.2, 5x5 Gaussian of sigma 1)."""
    import kornia

    return kornia.filters.canny(x)[1]


def bold(x: Tensor) -> Tensor:
    """Dilation by a 3x3 cross: strokes about 2 pixels wider."""
    import kornia

    return kornia.morphology.dilation(x, torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]))


def thin(x: Tensor) -> Tensor:
    """Erosion by a 2x2 square: strokes about 1 pixel narrower, none erased."""
    import kornia

    return kornia.morphology.erosion(x, torch.ones(2, 2))


def italic(x: Tensor) -> Tensor:
    """Horizontal shear by ``SHEAR`` about the image centre."""
    import kornia

    shear = torch.tensor([[SHEAR, 0.0]], dtype=x.dtype).expand(x.shape[0], 2)
    return kornia.geometry.transform.shear(x, shear).clamp(0.0, 1.0)


STYLE_FUNCTIONS = {"plain": lambda x: x, "bold": bold, "thin": thin, "italic": italic}


def style(x: Tensor, name: str) -> Tensor:
    """A ``mnist-styles`` domain of ``[N, 1, H, W]`` digits in ``[0, 1]``."""
    return STYLE_FUNCTIONS[name](x)


# -- MNIST tasks -------------------------------------------------------------------------------------


def load_mnist_digits(root: str | Path, split: str, limit: int = 0) -> Tensor:
    """``[N, 1, 28, 28]`` real MNIST digits in ``[0, 1]`` from the local idx files."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root: directory {str(root)!r} does not exist (expected the MNIST idx files)")
    stem = FILES[split][0]
    images = read_idx(_open(root, stem), expected_dims=3, source=str(root / stem))
    if limit:
        images = images[:limit]
    return torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)


def to_canvas(x: Tensor, resolution: int) -> Tensor:
    """``[N, C, 28, 28]`` in ``[0, 1]`` -> ``[N, C, R, R]`` in ``[-1, 1]``: centred by zero padding, or
    resized below 28."""
    h = x.shape[-1]
    if resolution >= h:
        before = (resolution - h) // 2
        x = F.pad(x, (before, resolution - h - before) * 2)
    else:
        x = F.interpolate(x, size=(resolution,) * 2, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0) * 2.0 - 1.0


def edges2mnist(config: TranslationDataConfig) -> PairedData:
    digits = load_mnist_digits(config.root, config.split, config.limit)
    edges = sobel_edges(digits) if config.edges == "sobel" else canny_edges(digits)
    return PairedData(a=to_canvas(edges, config.resolution), b=to_canvas(digits, config.resolution))


CIFAR_TARBALL = "cifar10-jpeg.tar.gz"


def load_cifar10(root: str | Path, split: str, limit: int = 0) -> Tensor:
    """``[N, 3, 32, 32]`` CIFAR-10 images in ``[0, 1]`` from the jpeg tarball (``train/<class>/NNNN.jpg``)."""
    import io
    import tarfile

    path = Path(root).expanduser()
    if path.is_dir():
        path = path / CIFAR_TARBALL
    if not path.is_file():
        raise DataError(f"data.root: {str(path)!r} does not exist (expected {CIFAR_TARBALL} or the folder holding it)")
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.startswith(f"{split}/") and member.name.endswith(".jpg"):
                    blobs[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"data.root: cannot read {path}: {exc}") from None
    names = sorted(blobs)
    if not names:
        raise DataError(f"data.root: {path} holds no {split}/<class>/*.jpg images")
    if limit and limit < len(names):
        names = [names[i * len(names) // limit] for i in range(limit)]  # evenly over the classes
    images = []
    for name in names:
        try:
            images.append(read_image(io.BytesIO(blobs[name]), channels=3, name=f"{path}:{name}"))
        except DataError as exc:
            raise DataError(f"data.root: {exc}") from None
    return torch.stack(images)


def cifar_colorize(config: TranslationDataConfig) -> PairedData:
    import kornia

    colour = load_cifar10(config.root, config.split, config.limit)
    gray = kornia.color.rgb_to_grayscale(colour)
    if config.resolution != colour.shape[-1]:
        colour, gray = (F.interpolate(x, size=(config.resolution,) * 2, mode="bilinear", antialias=True,
                                      align_corners=False).clamp(0.0, 1.0) for x in (colour, gray))
    return PairedData(a=gray * 2.0 - 1.0, b=colour * 2.0 - 1.0)


def mnist_thin2bold(config: TranslationDataConfig) -> UnpairedData:
    digits = load_mnist_digits(config.root, config.split, config.limit)
    half = len(digits) // 2
    if half == 0:
        raise DataError(f"data: mnist-thin2bold needs at least 2 digits, got {len(digits)}")
    xs, ys = digits[:half], digits[half:2 * half]  # two disjoint halves: no digit is in both domains
    r = config.resolution
    return UnpairedData(x=to_canvas(thin(xs), r), y=to_canvas(bold(ys), r),
                        x_truth=to_canvas(bold(xs), r), y_truth=to_canvas(thin(ys), r))


def mnist_styles(config: TranslationDataConfig) -> DomainData:
    digits = load_mnist_digits(config.root, config.split, config.limit)
    k = len(STYLES)
    domains = torch.randint(k, (len(digits),), generator=torch.Generator().manual_seed(config.seed))
    images = torch.empty(len(digits), 1, config.resolution, config.resolution)
    for d, name in enumerate(STYLES):
        chosen = domains == d
        if chosen.any():
            images[chosen] = to_canvas(style(digits[chosen], name), config.resolution)
    truth = None
    if config.split == "test":  # every digit in every domain: the answer for every source -> target pair
        truth = torch.stack([to_canvas(style(digits, name), config.resolution) for name in STYLES], dim=1)
    return DomainData(images=images, domains=domains, domain_names=STYLES, truth=truth)


# -- folders -------------------------------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _read(path: Path, channels: int) -> Tensor:
    try:
        return read_image(path, channels=channels)
    except DataError as exc:
        raise DataError(f"data.root: {exc}") from None


def load_images(paths: list[Path], channels: int, resolution: int | None, *, what: str) -> Tensor:
    """``[N, C, H, W]`` in ``[-1, 1]``; every image must have the size of the first."""
    if not paths:
        raise DataError(f"data.root: {what} holds no images ({', '.join(EXTENSIONS)})")
    images = [_read(p, channels) for p in paths]
    first = images[0].shape[1:]
    for path, image in zip(paths, images, strict=True):
        if image.shape[1:] != first:
            raise DataError(f"data.root: images of different sizes: {paths[0]} is {first[1]}x{first[0]} but "
                            f"{path} is {image.shape[2]}x{image.shape[1]} (width x height); make them one size")
    x = torch.stack(images)
    if resolution is not None and tuple(first) != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0) * 2.0 - 1.0


def _subfolders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _root(config: TranslationDataConfig) -> Path:
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root: directory {str(root)!r} does not exist")
    return root


def aligned(config: TranslationDataConfig) -> PairedData:
    """Pairs from ``A/`` and ``B/`` with matching file names, or side-by-side ``AB`` images."""
    root = _root(config)
    subs = _subfolders(root)
    unpaired = [s for s in subs if s in ("trainA", "trainB", "testA", "testB")]
    if unpaired and not {"A", "B"} <= set(subs):
        raise DataError(f"data.root: {root} holds unpaired folders ({', '.join(s + '/' for s in unpaired)}), the "
                        f"CycleGAN layout; pix2pix needs aligned pairs: A/ and B/ with matching file names, or "
                        f"side-by-side AB images (use method = \"cyclegan\" with data.name = \"unaligned\" for "
                        f"unpaired data)")
    if {"A", "B"} <= set(subs):
        a_paths, b_paths = _images_in(root / "A"), _images_in(root / "B")
        a_names, b_names = {p.stem for p in a_paths}, {p.stem for p in b_paths}
        if a_names != b_names:
            only_a, only_b = sorted(a_names - b_names), sorted(b_names - a_names)
            parts = []
            if only_a:
                parts.append(f"in A/ only: {', '.join(only_a[:10])}" + (" ..." if len(only_a) > 10 else ""))
            if only_b:
                parts.append(f"in B/ only: {', '.join(only_b[:10])}" + (" ..." if len(only_b) > 10 else ""))
            raise DataError(f"data.root: A/ and B/ in {root} must hold images of the same names; " + "; ".join(parts))
        b_by_name = {p.stem: p for p in b_paths}
        b_paths = [b_by_name[p.stem] for p in a_paths]
        a = load_images(a_paths, config.channels, None, what=f"{root / 'A'}")
        b = load_images(b_paths, config.channels, None, what=f"{root / 'B'}")
        if a.shape[2:] != b.shape[2:]:
            raise DataError(f"data.root: images of different sizes: {a_paths[0]} is {a.shape[3]}x{a.shape[2]} but "
                            f"{b_paths[0]} is {b.shape[3]}x{b.shape[2]} (width x height)")
        a, b = _resize(a, config.resolution), _resize(b, config.resolution)
        return PairedData(a=a, b=b, names=tuple(p.stem for p in a_paths))
    paths = _images_in(root)
    if not paths:
        raise DataError(f"data.root: {root} holds neither A/ and B/ folders nor side-by-side AB images")
    ab = load_images(paths, config.channels, None, what=str(root))
    h, w = ab.shape[2:]
    if w != 2 * h:
        raise DataError(f"data.root: side-by-side AB images must be twice as wide as high; {paths[0]} is {w}x{h}")
    return PairedData(a=_resize(ab[..., :h], config.resolution), b=_resize(ab[..., h:], config.resolution),
                      names=tuple(p.stem for p in paths))


def _resize(x: Tensor, resolution: int) -> Tensor:
    if x.shape[2:] == (resolution, resolution):
        return x
    unit = (x + 1.0) / 2.0
    unit = F.interpolate(unit, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return unit.clamp(0.0, 1.0) * 2.0 - 1.0


def unaligned(config: TranslationDataConfig) -> UnpairedData:
    root = _root(config)
    prefix = "train" if config.split == "train" else "test"
    folders = [root / f"{prefix}A", root / f"{prefix}B"]
    missing = [f.name + "/" for f in folders if not f.is_dir()]
    if missing:
        raise DataError(f"data.root: {root} lacks {', '.join(missing)}; unpaired data lives in {prefix}A/ and "
                        f"{prefix}B/")
    x = load_images(_images_in(folders[0]), config.channels, None, what=str(folders[0]))
    y = load_images(_images_in(folders[1]), config.channels, None, what=str(folders[1]))
    return UnpairedData(x=_resize(x, config.resolution), y=_resize(y, config.resolution))


def domain_folders(config: TranslationDataConfig) -> DomainData:
    root = _root(config)
    names = tuple(_subfolders(root))
    if len(names) < 2:
        raise DataError(f"data.root: {root} must hold one sub-folder per domain, at least 2; found "
                        f"{', '.join(names) or 'none'}")
    images, domains = [], []
    for d, name in enumerate(names):
        x = _resize(load_images(_images_in(root / name), config.channels, None, what=str(root / name)),
                    config.resolution)
        images.append(x)
        domains.append(torch.full((len(x),), d, dtype=torch.long))
    return DomainData(images=torch.cat(images), domains=torch.cat(domains), domain_names=names)


LOADERS = {"edges2mnist": edges2mnist, "cifar-colorize": cifar_colorize, "mnist-thin2bold": mnist_thin2bold,
           "mnist-styles": mnist_styles, "aligned": aligned, "unaligned": unaligned, "domains": domain_folders}


def load_translation_data(config: TranslationDataConfig) -> PairedData | UnpairedData | DomainData:
    """The data ``config`` names."""
    return LOADERS[config.name](config)


# -- registered datasets --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TranslationTaskConfig:
    """A translation dataset: a ground-truth task built from real MNIST or CIFAR-10, or a folder of yours.

    ``edges`` applies to edges2mnist, ``channels`` to the folders, ``seed`` to mnist-styles. The
    held-out split (``test_split``, at most ``test_limit`` images) is what the procedures' preview grids
    and logged errors use; training never sees it.
    """

    root: str = "../shared/data/mnist"  # the MNIST idx files, the CIFAR-10 tarball, or your folder
    split: str = attrs.field(default="train", validator=v.in_(("train", "test")))
    resolution: int = attrs.field(default=32, validator=power_of_two(4, 1024))
    limit: int = attrs.field(default=0, validator=v.ge(0))  # at most this many images (0 = all)
    edges: str = attrs.field(default="sobel", validator=v.in_(("sobel", "canny")))
    channels: int = attrs.field(default=3, validator=v.in_((1, 3)))
    seed: int = attrs.field(default=0, validator=v.ge(0))
    test_split: str = attrs.field(default="test", validator=v.in_(("test", "train", "none")))
    test_limit: int = attrs.field(default=256, validator=v.ge(1))


@attrs.frozen(kw_only=True)
class TranslationDataset:
    """A registered translation dataset: its ``kind`` (``paired``, ``unpaired`` or ``domains``), the
    training split and the held-out one (``None`` without one)."""

    name: str
    kind: str
    train: PairedData | UnpairedData | DomainData
    test: PairedData | UnpairedData | DomainData | None


def load_task(name: str, config: TranslationTaskConfig) -> TranslationDataset:
    fields = {f.name: getattr(config, f.name) for f in attrs.fields(TranslationDataConfig) if f.name != "name"}
    data = TranslationDataConfig(name=name, **fields)
    train = load_translation_data(data)
    test = None
    no_test_folders = name == "unaligned" and config.test_split == "test" and not all(
        (Path(config.root).expanduser() / f"test{side}").is_dir() for side in "AB")
    if config.test_split != "none" and not no_test_folders:  # without testA/ testB/ the grids show training images
        test = load_translation_data(attrs.evolve(data, split=config.test_split, limit=config.test_limit))
    return TranslationDataset(name=name, kind=KIND[name], train=train, test=test)


def _task(name: str) -> Callable[[TranslationTaskConfig], TranslationDataset]:
    def factory(config: TranslationTaskConfig) -> TranslationDataset:
        return load_task(name, config)

    factory.__doc__ = f"{KIND[name].capitalize()} translation data: {_SUMMARIES[name]}."
    return factory


_SUMMARIES = {
    "edges2mnist": "the edges of real MNIST digits -> the digits",
    "cifar-colorize": "grayscale CIFAR-10 -> colour",
    "mnist-thin2bold": "thin MNIST digits <-> bold ones, unaligned",
    "mnist-styles": "MNIST digits in four styles (plain, bold, thin, italic)",
    "aligned": "your folder of A/ and B/ image pairs",
    "unaligned": "your folders trainA/ and trainB/",
    "domains": "your folder with one sub-folder per domain",
}


@hookimpl
def ganforge_register_datasets(register):
    for name in LOADERS:
        register(name, _task(name), TranslationTaskConfig)
