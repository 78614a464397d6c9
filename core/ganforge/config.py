"""Run configuration: attrs classes, loaded from TOML with one strict cattrs converter.

A component section is ``name = "..."`` plus that plugin's own parameters::

    [loss]
    name = "non-saturating"

    [generator]
    name = "dcgan"
    latent_dim = 64

The section is structured into a :class:`Choice` whose ``params`` is an instance of the plugin's
attrs config class, looked up in the registry by ``name``. A config file only states what differs
from the embedded default (a DCGAN on scikit-learn's digits); ``--set a.b=v`` overrides apply last.
Changing a component's ``name`` drops the parameters given for the previous one, which belonged to
another config class.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import os
import re
import sys
import tomllib
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import cattrs
import tomli_w
from attrs import validators as v
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn

from .errors import ConfigError, GanforgeError
from .manager import PluginManager, get_plugin_manager

T = TypeVar("T")

# -- component choices --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Choice:
    """A component picked by name, with its plugin's structured config as ``params``.

    ``factory`` is the registered factory, attached when the choice is structured through a plugin
    manager (or given by a plugin that builds a default choice), so that a component can build the
    components its config names without reaching for a process-wide manager: ``choice.build(...)``.
    """

    family: ClassVar[str]
    name: str
    params: Any
    factory: Any = attrs.field(default=None, eq=False, repr=False)

    def build(self, **context: Any) -> Any:
        """``factory(params, **context)``: the component this choice names."""
        if self.factory is None:
            raise GanforgeError(f"{self.family} {self.name!r} was not resolved through a plugin manager")
        return self.factory(self.params, **context)


@attrs.frozen(kw_only=True)
class DatasetChoice(Choice):
    family = "dataset"


@attrs.frozen(kw_only=True)
class GeneratorChoice(Choice):
    family = "generator"


@attrs.frozen(kw_only=True)
class DiscriminatorChoice(Choice):
    family = "discriminator"


@attrs.frozen(kw_only=True)
class LossChoice(Choice):
    family = "loss"


@attrs.frozen(kw_only=True)
class RegularizerChoice(Choice):
    family = "regularizer"


@attrs.frozen(kw_only=True)
class SamplerChoice(Choice):
    family = "sampler"


@attrs.frozen(kw_only=True)
class CallbackChoice(Choice):
    family = "callback"


@attrs.frozen(kw_only=True)
class LoggerChoice(Choice):
    family = "logger"


@attrs.frozen(kw_only=True)
class ProcedureChoice(Choice):
    family = "procedure"


@attrs.frozen(kw_only=True)
class LayerChoice(Choice):
    """A network building block a network's config names (``norm = {name = "pixel-norm"}``)."""

    family = "layer"

    def build(self, *, called_with: tuple[str, ...] = ("x",), slot: str = "", **context: Any) -> Any:
        """The layer, checked to accept the inputs its slot calls it with (``("x", "w")`` for a
        StyleGAN style block): a layer put in the wrong slot (``style = {name = "batch-norm"}``) is
        refused here, from its ``forward`` signature, instead of failing inside torch at the first
        step. Reading the signature runs nothing, so no RNG or running statistic is touched."""
        layer = super().build(**context)
        takes = _positional_inputs(getattr(layer, "forward", None))
        if takes is not None and not takes[0] <= len(called_with) <= takes[1]:
            wanted = f"{takes[0]}" if takes[0] == takes[1] else f"{takes[0]} to {takes[1]}"
            raise ConfigError(
                f"{slot + ': ' if slot else ''}layer {self.name!r}: this slot calls it as "
                f"layer({', '.join(called_with)}), but its forward "
                f"takes {wanted} input(s); choose a layer made for this slot (see `ganforge plugins`)")
        return layer


def _positional_inputs(forward: Any) -> tuple[float, float] | None:
    """(required, most) positional inputs of a bound ``forward``; None when it has no readable signature."""
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    most = math.inf if any(p.kind is p.VAR_POSITIONAL for p in params) else len(positional)
    return required, most


@attrs.frozen(kw_only=True)
class InversionChoice(Choice):
    """An inversion method ``ganforge invert`` runs (``method = {name = "hybrid", steps = 200}``)."""

    family = "inversion"


@attrs.frozen(kw_only=True)
class LossTermChoice(Choice):
    """A loss term a procedure's config names (``cycle = {name = "l1"}``)."""

    family = "loss-term"


# -- engine settings ----------------------------------------------------------------------------


def linear_decay(step: int, constant_steps: float, decay_steps: float) -> float:
    """The learning-rate factor of pix2pix and CycleGAN (Zhu et al. 2017, section 7): 1 for
    ``step < constant_steps``, then linearly down to 0 over ``decay_steps``; 1 throughout when
    ``decay_steps <= 0``."""
    if decay_steps <= 0:
        return 1.0
    return max(0.0, 1.0 - max(0.0, step - constant_steps) / decay_steps)


OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")


def _unit_interval(instance: Any, attribute: attrs.Attribute[Any], value: tuple[float, float]) -> None:
    if len(value) != 2 or not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"'{attribute.name}' must be two numbers in [0, 1) (got {list(value)!r})")


@attrs.frozen(kw_only=True)
class OptimizerConfig:
    """One network's optimiser. ``betas`` apply to Adam(W), ``alpha`` and ``momentum`` to RMSprop
    and SGD. Defaults are DCGAN's Adam(2e-4, beta1 = 0.5) (Radford et al. 2016, section 4)."""

    name: str = attrs.field(default="adam", validator=v.in_(OPTIMIZERS))
    lr: float = attrs.field(default=2e-4, validator=v.gt(0.0))
    betas: tuple[float, float] = attrs.field(default=(0.5, 0.999), validator=_unit_interval)
    eps: float = attrs.field(default=1e-8, validator=v.gt(0.0))
    weight_decay: float = attrs.field(default=0.0, validator=v.ge(0.0))
    alpha: float = attrs.field(default=0.99, validator=[v.gt(0.0), v.lt(1.0)])
    momentum: float = attrs.field(default=0.0, validator=v.ge(0.0))
    # Linear decay (Isola et al. 2017; Zhu et al. 2017, section 7: constant, then linearly to zero
    # over the second half): the fraction of ``train.steps`` after which the learning rate falls
    # linearly to zero at the last step. 1 keeps it constant.
    decay_start: float = attrs.field(default=1.0, validator=[v.ge(0.0), v.le(1.0)])

    def lr_at(self, step: int, steps: int) -> float:
        """The learning rate for generator step ``step`` (0-based) of ``steps``."""
        start = self.decay_start * steps
        return self.lr * linear_decay(step, start, steps - start)


@attrs.frozen(kw_only=True)
class OptimConfig:
    g: OptimizerConfig = OptimizerConfig()
    d: OptimizerConfig = OptimizerConfig()


def _device(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
        raise ValueError(f"'{attribute.name}' must be auto, cpu, cuda, cuda:N or mps (got {value!r})")


@attrs.frozen(kw_only=True)
class TrainConfig:
    """The minibatch loop of Goodfellow et al. 2014 (arXiv:1406.2661), Algorithm 1: ``n_critic``
    discriminator updates per generator update, for ``steps`` generator updates."""

    steps: int = attrs.field(default=2000, validator=v.ge(1))
    batch_size: int = attrs.field(default=64, validator=v.ge(1))
    n_critic: int = attrs.field(default=1, validator=v.ge(1))
    seed: int = attrs.field(default=0, validator=v.ge(0))
    # Generator weight averaging (Karras et al.): half-life in images, 0 disables; samples use it.
    ema_half_life: float = attrs.field(default=10_000.0, validator=v.ge(0.0))
    ema_rampup: float = attrs.field(default=0.05, validator=v.ge(0.0))
    device: str = attrs.field(default="auto", validator=_device)
    # "bf16" autocasts the forward passes; "fp16" also scales each network's loss (one GradScaler each)
    precision: str = attrs.field(default="fp32", validator=v.in_(("fp32", "bf16", "fp16")))
    compile: bool = False  # torch.compile the generator and the discriminator
    # the networks' 4-d weights (and so their activations) in NHWC: oneDNN's convolutions on the CPU
    # and cuDNN's on tensor cores run faster in it; the numbers and the checkpoints are the same
    memory_format: str = attrs.field(default="contiguous", validator=v.in_(("contiguous", "channels_last")))
    # a non-finite loss or gradient: "stop" names the loss and step (checked without a per-step host
    # sync) and writes no checkpoint from then on; "skip" drops that update and counts it
    nonfinite: str = attrs.field(default="stop", validator=v.in_(("stop", "skip")))
    deterministic: bool = False  # torch.use_deterministic_algorithms, for bit-exact resume on GPU


@attrs.frozen(kw_only=True)
class OutputConfig:
    """How often to log, draw the preview grid and checkpoint (in generator steps)."""

    log_every: int = attrs.field(default=50, validator=v.ge(1))
    sample_every: int = attrs.field(default=250, validator=v.ge(1))
    checkpoint_every: int = attrs.field(default=500, validator=v.ge(1))
    keep_last: int = attrs.field(default=3, validator=v.ge(0))  # 0 keeps every checkpoint
    preview_samples: int = attrs.field(default=64, validator=[v.ge(1), v.le(1024)])
    progress: bool = True
    loggers: tuple[LoggerChoice, ...] = ()  # extra logging backends besides metrics.jsonl (TensorBoard)


@attrs.frozen(kw_only=True)
class RunConfig:
    """Everything that defines a training run."""

    data: DatasetChoice
    procedure: ProcedureChoice
    generator: GeneratorChoice
    discriminator: DiscriminatorChoice
    loss: LossChoice
    sampler: SamplerChoice
    regularizers: tuple[RegularizerChoice, ...] = ()
    callbacks: tuple[CallbackChoice, ...] = ()
    train: TrainConfig = TrainConfig()
    optim: OptimConfig = OptimConfig()
    output: OutputConfig = OutputConfig()


COMPONENT_SECTIONS = ("data", "procedure", "generator", "discriminator", "loss", "sampler")


def _list_defaults(cls: type, prefix: str = "", instance: Any = None) -> dict[str, list[Any] | None]:
    """The settings of ``cls`` that are lists, by dotted path (``regularizers``, ``optim.g.betas``), each
    with the default it takes when a config gives none: a plain list, or None where the default is not
    one of plain values (a tuple of components)."""
    out: dict[str, list[Any] | None] = {}
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        if instance is not None:
            value = getattr(instance, field.name)
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            value = None if field.default.takes_self else field.default.factory()
        else:
            value = None if field.default is attrs.NOTHING else field.default
        hint = hints[field.name]
        if typing.get_origin(hint) is tuple:
            plain = isinstance(value, tuple) and all(isinstance(x, int | float | str | bool) for x in value)
            out[prefix + field.name] = list(value) if plain else None
        elif attrs.has(hint) and not issubclass(hint, Choice):
            out.update(_list_defaults(hint, f"{prefix}{field.name}.", value))
    return out


# the lists `--set NAME.0.KEY=VALUE` may index also where a config gives none: the default's items, or a
# clear error (instead of structuring's "expected an array, got a table")
LIST_DEFAULTS = _list_defaults(RunConfig)

DEFAULT_CONFIG: dict[str, Any] = {
    "data": {"name": "digits"},
    "procedure": {"name": "gan"},
    # half DCGAN's widths: at 16x16 they learn the digits as well, in 42% of the time (178 s against 422 s)
    "generator": {"name": "cdcgan", "base_channels": 64},
    "discriminator": {"name": "cdcgan", "conditioning": "concat", "base_channels": 64},
    "loss": {"name": "non-saturating"},
    "sampler": {"name": "gaussian"},
}
"""The embedded default: a class-conditional DCGAN on scikit-learn's bundled handwritten digits.

The digits carry labels, so the default trains DCGAN's networks with the conditional objective
``D(x|y)``, ``G(z|y)`` of Mirza & Osindero 2014 (the label as one-hot maps joined to D's input):
each sample is drawn for a class, and the sample grid shows one digit per column. The
unconditional DCGAN is ``configs/dcgan.toml``."""


# -- the converter ------------------------------------------------------------------------------


class _ScalarTypeError(TypeError):
    pass


FLOAT32_MAX = 3.4028234663852886e38


def _strict(expected: str, ok: Any, convert: Any = None) -> Any:
    def structure(value: Any, _: Any) -> Any:
        if not ok(value):
            raise _ScalarTypeError(f"expected {expected}, got {value!r}")
        return convert(value) if convert else value

    return structure


def make_converter(manager: PluginManager | None = None) -> cattrs.Converter:
    """The one converter: extra keys forbidden, no silent coercion, components via the registries."""
    manager = manager or get_plugin_manager()
    conv = cattrs.Converter(forbid_extra_keys=True)
    # cattrs would accept "3" for an int and 3.7 for an int (truncating); a config must not.
    conv.register_structure_hook(bool, _strict("true or false", lambda x: isinstance(x, bool)))
    conv.register_structure_hook(
        int, _strict("an integer", lambda x: isinstance(x, int) and not isinstance(x, bool))
    )
    # nan and inf pass every bound (inf > 0 holds; nan compares false both ways), and a number beyond
    # float32's range becomes inf in the tensors the engine computes with: no setting takes them
    conv.register_structure_hook(
        float,
        _strict("a finite number (within float32's range, |x| <= 3.4e38)",
                lambda x: isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                and abs(x) <= FLOAT32_MAX, float),
    )
    conv.register_structure_hook(str, _strict("a string", lambda x: isinstance(x, str)))

    def is_choice(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, Choice) and t is not Choice

    # a scalar where a table belongs, or a table where an array does, would reach cattrs' generated code
    # and come out as Python's own TypeError ("argument of type 'int' is not iterable"): say what is expected
    def is_table(t: Any) -> bool:
        return attrs.has(t) and not is_choice(t)

    def table_hook(cls: type) -> Callable[[Any, type], Any]:
        inner: Callable[[Any, type], Any] = make_dict_structure_fn(cls, conv)

        def structure_table(value: Any, _: type) -> Any:
            if not isinstance(value, Mapping):
                raise _ScalarTypeError(f"expected a table ([section] or {{ key = value }}), got {value!r}")
            return inner(value, cls)
        return structure_table

    def is_tuple(t: Any) -> bool:
        return typing.get_origin(t) is tuple

    def structure_tuple(value: Any, t: Any) -> Any:
        args = typing.get_args(t)
        fixed = bool(args) and args[-1] is not Ellipsis
        if isinstance(value, Mapping):
            raise _ScalarTypeError("expected an array ([...], or [[section]] tables, one per item), got a table "
                                   f"{dict(value)!r}")
        if not isinstance(value, list | tuple):
            raise _ScalarTypeError(f"expected {len(args) if fixed else 'an array of'} values in brackets, "
                                   f"got {value!r}")
        if fixed and len(value) != len(args):
            raise _ScalarTypeError(f"expected {len(args)} values in brackets, got {len(value)}: {list(value)!r}")
        return conv._structure_tuple(value, t)  # cattrs' own, with its per-item error paths

    conv.register_structure_hook_factory(is_table, table_hook)
    conv.register_structure_hook_func(is_tuple, structure_tuple)

    def structure_choice(value: Any, cls: type[Choice]) -> Choice:
        if isinstance(value, str):  # a bare name: the component with its defaults
            value = {"name": value}
        if not isinstance(value, Mapping):
            raise _ScalarTypeError(f"expected a table with a 'name' key, got {value!r}")
        if "name" not in value:
            raise ConfigError(f"'name' is missing; {manager.registries[cls.family].unknown_message('')}")
        rest = dict(value)
        name = rest.pop("name")
        registry = manager.registries[cls.family]
        if not isinstance(name, str) or name not in registry:
            raise _NamedError("name", registry.unknown_message(name))
        component = registry.get(name)
        return cls(name=name, params=conv.structure(rest, component.config), factory=component.factory)

    def unstructure_choice(choice: Choice) -> dict[str, Any]:
        return {"name": choice.name, **conv.unstructure(choice.params)}

    conv.register_structure_hook_func(is_choice, structure_choice)
    conv.register_unstructure_hook_func(is_choice, unstructure_choice)
    return conv


class _NamedError(GanforgeError):
    """An error about one key of the table being structured."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


# -- error messages -----------------------------------------------------------------------------

_ATTRS_MESSAGE = re.compile(r"^'(?P<field>\w+)' (?P<rest>.*)$", re.DOTALL)
# attrs' min_len / max_len: "Length of 'seeds' must be >= 1: 0"
_ATTRS_LENGTH = re.compile(r"^Length of '(?P<field>\w+)' must be (?P<op>[<>]=) (?P<bound>\d+): (?P<got>\d+)$")


def _leaves(exc: BaseException, path: str) -> Iterator[tuple[str, BaseException]]:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            step = f"[{note.index}]" if isinstance(exc, IterableValidationError) else f".{note.name}"  # type: ignore[union-attr]
            yield from _leaves(inner, path + step)
        for inner in without:
            yield from _leaves(inner, path)
    else:
        yield path, exc


def _describe(path: str, exc: BaseException) -> str:
    where = path.lstrip(".")
    if isinstance(exc, ForbiddenExtraKeysError):
        names = [a.name for a in attrs.fields(exc.cl)]
        known = ", ".join(names) or "no keys"
        extra = ", ".join(sorted(exc.extra_fields))
        close = {k: near[0] for k in sorted(exc.extra_fields) if (near := difflib.get_close_matches(k, names, n=1))}
        hint = f" (did you mean {', '.join(f'{m!r} for {k!r}' for k, m in close.items())}?)" if close else ""
        return f"{where or 'top level'}: unknown key(s) {extra}; expected one of: {known}{hint}"
    if isinstance(exc, _NamedError):
        return f"{where}.{exc.key}: {exc}".lstrip(".")
    if isinstance(exc, KeyError):
        return f"{where}: required, but missing"
    # attrs validators put the message first in args, followed by the attribute and bounds
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    if isinstance(exc, ValueError) and (m := _ATTRS_MESSAGE.match(text)):
        field = f"{where}.{m['field']}".lstrip(".")
        return f"{field}: {m['rest']}"
    if isinstance(exc, ValueError) and (m := _ATTRS_LENGTH.match(text)):
        field = f"{where}.{m['field']}".lstrip(".")
        least = "at least" if m["op"] == ">=" else "at most"
        return f"{field}: expected a length of {least} {m['bound']}, got {m['got']}"  # a list's or a string's
    if isinstance(exc, GanforgeError | _ScalarTypeError):
        return f"{where}: {exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


def describe_errors(exc: BaseException) -> list[str]:
    """One line per problem: ``dotted.path: what is wrong (got value)``."""
    return [_describe(path, leaf) for path, leaf in _leaves(exc, "")]


# -- loading, merging, overriding ---------------------------------------------------------------


def merge(base: dict[str, Any], override: Mapping[str, Any], _path: str = "",
          dropped: list[tuple[str, dict[str, Any]]] | None = None,
          lists: Mapping[str, list[Any] | None] | None = None) -> dict[str, Any]:
    """``override`` deep-merged onto a copy of ``base``; lists are replaced, not merged, except by
    index: a table of integer keys onto a list (``--set regularizers.0.every=4``) merges into those
    items, the list being ``base``'s or, where ``base`` has none, its default in ``lists`` (a run
    config's, :data:`LIST_DEFAULTS`, unless given). A component section (or list item) renamed by
    ``override`` starts afresh; ``dropped`` (when given) collects each such section's dotted path and
    the table it replaced."""
    lists = LIST_DEFAULTS if lists is None else lists
    out = copy.deepcopy(base)
    for key, value in override.items():
        current = out.get(key)
        if isinstance(value, Mapping) and current is None and not (value and all(map(_is_index, value))):
            current = {}  # a table the base lacks: merged into an empty one, so that its lists index as below
        if isinstance(value, Mapping) and isinstance(current, dict):
            renamed = value.get("name", current.get("name")) != current.get("name")
            if not _path and key in COMPONENT_SECTIONS and renamed and current:
                out[key] = copy.deepcopy(dict(value))  # another plugin: the old params do not apply
                if dropped is not None:
                    dropped.append((key, current))
            else:
                out[key] = merge(current, value, f"{_path}{key}.", dropped, lists)
        elif (isinstance(value, Mapping) and value and all(map(_is_index, value))
              and (isinstance(current, list) or (current is None and f"{_path}{key}" in lists))):
            items = current if current is not None else lists[f"{_path}{key}"]
            if items is None:
                raise ConfigError(f"{_path}{key}.{next(iter(value))}: the config gives no {_path}{key} to index "
                                  f"(its default is not a list of plain values); give the whole list "
                                  f"(--set '{_path}{key}=[...]')")
            out[key] = _merge_items(items, value, f"{_path}{key}", dropped, lists)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_index(key: object) -> bool:
    return isinstance(key, str) and key.isdigit() and key.isascii()


def _merge_items(items: list[Any], override: Mapping[str, Any], path: str,
                 dropped: list[tuple[str, dict[str, Any]]] | None,
                 lists: Mapping[str, list[Any] | None]) -> list[Any]:
    """``override``'s ``{"0": ...}`` entries merged into a copy of ``items`` by index; an item given
    another ``name`` is another plugin's and starts afresh, as a renamed section does."""
    out = copy.deepcopy(items)
    for key, value in override.items():
        i = int(key)
        if i >= len(out):
            have = (f"has {len(out)} item{'s' if len(out) != 1 else ''}, so its indices are 0 to {len(out) - 1}"
                    if out else "has no items")
            hint = (f"give the whole list to change its length (--set '{path}=[...]')"
                    if out and not any(isinstance(x, dict) for x in out) else
                    f"give the whole list to add one (--set '{path}=[{{name = \"...\"}}]' or a [[{path}]] table "
                    "in the config file)")
            raise ConfigError(f"{path}.{key}: {path} {have}; {hint}")
        item = out[i]
        if isinstance(value, Mapping) and isinstance(item, dict):
            if value.get("name", item.get("name")) != item.get("name"):
                out[i] = copy.deepcopy(dict(value))
                if dropped is not None:
                    dropped.append((f"{path}.{i}", item))
            else:
                out[i] = merge(item, value, f"{path}.{i}.", dropped, lists)
        else:
            out[i] = copy.deepcopy(value)
    return out


def _at(layer: Any, path: str) -> Any:
    """The table at dotted ``path`` in one config layer, through tables and list indices; None if absent."""
    node = layer
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and _is_index(part) and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def parse_override(item: str) -> dict[str, Any]:
    """``'optim.g.lr=1e-4'`` -> ``{'optim': {'g': {'lr': 0.0001}}}``; values parse as TOML,
    falling back to a bare string (``loss.name=wgan-gp``). A relative path setting (see
    :func:`is_path_key`) is made absolute against the working directory, where the user typed it,
    as a config file's are against the file's: the run's recorded config then means the same from
    anywhere (a resume from another directory)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. optim.g.lr=1e-4")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except RecursionError:
        raise ConfigError(f"--set {key}=...: the value nests arrays or tables too deeply") from None
    except tomllib.TOMLDecodeError:
        value = raw.strip()
        if "," in value and not value.startswith(("[", "{", "'", '"')):
            raise ConfigError(f"--set {item!r}: {value!r} is not one value; write a list in brackets, "
                              f"{key}=[{value}], or quote a string, {key}='{value}'") from None
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    resolved: dict[str, Any] = resolve_paths(out, Path.cwd())
    return resolved


PATH_KEYS = ("root", "out", "direction")
PATH_SUFFIXES = ("_root", "_dir", "_path", "_file")


def is_path_key(key: str) -> bool:
    """Whether a setting named ``key`` holds a file system path, by the naming convention every config
    class follows: ``root``, ``out``, ``direction``, or a name ending in ``_root``, ``_dir``, ``_path``
    or ``_file``."""
    return key in PATH_KEYS or key.endswith(PATH_SUFFIXES)


def resolve_paths(data: Any, base: Path) -> Any:
    """``data`` with every relative path setting (see :func:`is_path_key`) made absolute against
    ``base``: a config file's paths mean the same from any working directory."""
    if isinstance(data, Mapping):
        return {k: (os.path.normpath(base / v) if is_path_key(k) and isinstance(v, str) and v
                    and not os.path.isabs(os.path.expanduser(v)) else resolve_paths(v, base))
                for k, v in data.items()}
    if isinstance(data, list):
        return [resolve_paths(v, base) for v in data]
    return data


def read_toml(path: str | Path) -> dict[str, Any]:
    """A config file's tables, with its relative paths resolved against the file's directory."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
        resolved: dict[str, Any] = resolve_paths(data, path.parent.absolute())
        return resolved
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text, which TOML requires (byte "
                          f"{exc.start}: {exc.reason})") from None
    except RecursionError:
        raise ConfigError(f"config file {str(path)!r} nests tables or arrays too deeply to be a config") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def resolve_raw(path: str | Path | None = None, overrides: Iterable[str] = (),
                manager: PluginManager | None = None) -> dict[str, Any]:
    """The raw config dict: embedded default, then the procedure's defaults (its paper's networks,
    losses and optimiser settings), then the file, then the overrides."""
    overrides = list(overrides)
    layers = [read_toml(path)] if path is not None else []
    sources = [str(path)] * len(layers) + [f"--set {item}" for item in overrides]
    layers += [parse_override(item) for item in overrides]
    raw = copy.deepcopy(DEFAULT_CONFIG)
    name = raw["procedure"]["name"]
    for layer in layers:
        section = layer.get("procedure")
        if isinstance(section, Mapping) and isinstance(section.get("name"), str):
            name = section["name"]
    raw = merge(raw, procedure_defaults(name, manager))
    for i, layer in enumerate(layers):
        dropped: list[tuple[str, dict[str, Any]]] = []
        raw = merge(raw, layer, dropped=dropped)
        for key, table in dropped:
            # the parameters an earlier layer of the user's gave the plugin this one replaces: said, not silently lost
            given = {k: v for k, v in table.items() if k != "name"
                     and any(isinstance(_at(e, key), Mapping) and k in _at(e, key) for e in layers[:i])
                     and not any(isinstance(_at(e, key), Mapping) and k in _at(e, key) for e in layers[i:])}
            if given:
                shown = ", ".join(f"{k} = {v!r}" for k, v in given.items())
                print(f"ganforge: warning: {sources[i]} replaces {key} {table.get('name')!r}, and with it the "
                      f"parameters given for it ({shown}): a section's parameters belong to its plugin; give "
                      f"them again (--set {key}.KEY=VALUE) where {key} {_at(raw, key).get('name')!r} takes them",
                      file=sys.stderr)
    return raw


def procedure_defaults(name: str, manager: PluginManager | None = None) -> Mapping[str, Any]:
    """The raw config sections a procedure's factory declares as ``defaults`` (none for an unknown
    name: structuring reports that)."""
    registry = (manager or get_plugin_manager()).registries["procedure"]
    if name not in registry:
        return {}
    defaults: Mapping[str, Any] = getattr(registry.get(name).factory, "defaults", None) or {}
    return defaults


def structure(raw: Mapping[str, Any], manager: PluginManager | None = None, *, source: str = "config") -> RunConfig:
    """Structure a raw dict into a :class:`RunConfig`, or raise one :class:`ConfigError` listing
    every problem."""
    return structure_as(RunConfig, raw, manager, source=source)


def structure_as(cls: type[T], raw: Mapping[str, Any], manager: PluginManager | None = None, *,
                 source: str = "config") -> T:
    """Structure a raw dict into any attrs config class (a plugin's, a command's) with the one
    converter, or raise one :class:`ConfigError` listing every problem by its dotted path."""
    try:
        result: T = make_converter(manager).structure(raw, cls)
        return result
    except (ClassValidationError, IterableValidationError) as exc:
        lines = describe_errors(exc)
    except GanforgeError as exc:
        lines = [str(exc)]
    except (ValueError, TypeError) as exc:  # a validator of a class with no nested fields
        lines = [_describe("", exc)]
    raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(lines))


def load_settings(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = (),
                  manager: PluginManager | None = None, *, what: str = "config") -> T:
    """Load any attrs config class from an optional TOML file plus ``--set`` overrides."""
    raw: dict[str, Any] = read_toml(path) if path is not None else {}
    lists = _list_defaults(cls) if attrs.has(cls) else {}
    for item in overrides:
        raw = merge(raw, parse_override(item), lists=lists)
    source = f"{what} {str(path)!r}" if path is not None else what
    return structure_as(cls, raw, manager, source=source)


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    manager: PluginManager | None = None,
) -> RunConfig:
    """Load a run config: embedded default < TOML file < ``--set`` overrides."""
    source = f"config {str(path)!r}" if path is not None else "config"
    return structure(resolve_raw(path, overrides, manager), manager, source=source)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(x) for k, x in value.items() if x is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(x) for x in value]
    return value


def to_dict(config: RunConfig, manager: PluginManager | None = None) -> dict[str, Any]:
    """The config as plain data. TOML has no null, so ``None`` values are left out: a config
    field that may be ``None`` must default to ``None`` for the round trip to hold."""
    result: dict[str, Any] = _drop_none(make_converter(manager).unstructure(config))
    return result


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"g": {"lr": 1e-4}}} -> {"optim.g.lr": 1e-4}``; lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def to_toml(config: RunConfig, manager: PluginManager | None = None) -> str:
    return tomli_w.dumps(to_dict(config, manager))


def dump_toml(data: Mapping[str, Any]) -> str:
    """Unstructured config data (any plugin's) as TOML; ``None`` values are left out, as TOML has no null."""
    return tomli_w.dumps(_drop_none(dict(data)))
