"""Hook specifications: how a plugin registers components.

A plugin is a module (or object) exposed through the ``ganforge`` entry-point group that implements
some of these hooks with :data:`hookimpl`. Each hook receives a ``register`` callable bound to one
component family::

    from ganforge import hookimpl

    @hookimpl
    def ganforge_register_losses(register):
        register("hinge", HingeLoss, HingeLossConfig)

``register(name, factory, config)`` records ``factory`` under ``name``. ``config`` is the plugin's
attrs class; a config section ``{name = "hinge", margin = 1.0}`` is structured into it and the
component is built as ``factory(config, **context)``, the context depending on the family (see each
hook). Names are global per family: registering a taken name is an error that names both plugins.
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

PROJECT = "ganforge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The ``register`` callable handed to every ``ganforge_register_*`` hook."""

    def __call__(self, name: str, factory: Any, config: type, /) -> None: ...


@hookspec
def ganforge_register_datasets(register: Register) -> None:
    """Register datasets: ``factory(config) -> Dataset`` (see :class:`ganforge.Dataset`)."""


@hookspec
def ganforge_register_generators(register: Register) -> None:
    """Register generators: ``factory(config, data: DataSpec) -> nn.Module`` implementing
    :class:`ganforge.Generator`, with outputs of shape ``data.shape``."""


@hookspec
def ganforge_register_discriminators(register: Register) -> None:
    """Register discriminators: ``factory(config, data: DataSpec) -> nn.Module`` implementing
    :class:`ganforge.Discriminator` for inputs of shape ``data.shape``."""


@hookspec
def ganforge_register_losses(register: Register) -> None:
    """Register adversarial losses: ``factory(config) -> Loss``."""


@hookspec
def ganforge_register_regularizers(register: Register) -> None:
    """Register regularizers: ``factory(config) -> Penalty | Constraint``."""


@hookspec
def ganforge_register_samplers(register: Register) -> None:
    """Register latent samplers: ``factory(config) -> Sampler``."""


@hookspec
def ganforge_register_editors(register: Register) -> None:
    """Register latent editors: ``factory(config) -> Editor``."""


@hookspec
def ganforge_register_callbacks(register: Register) -> None:
    """Register training callbacks: ``factory(config) -> Callback`` (see :class:`ganforge.Callback`),
    run every ``callback.every`` generator steps, their results logged with the losses."""


@hookspec
def ganforge_register_commands(register: Register) -> None:
    """Register ``ganforge NAME`` subcommands: ``factory(config) -> Command`` (see
    :class:`ganforge.Command`). The CLI gives every plugin command ``-c/--config FILE`` and
    ``--set KEY=VALUE`` options that are structured into its config class; the factory may define
    ``add_arguments(parser)`` (a static or class method) for its own arguments."""


@hookspec
def ganforge_register_feature_extractors(register: Register) -> None:
    """Register feature extractors for metrics: ``factory(config) -> FeatureExtractor`` (see
    :class:`ganforge.FeatureExtractor`)."""


@hookspec
def ganforge_register_metrics(register: Register) -> None:
    """Register sample-quality metrics: ``factory(config) -> Metric`` (see :class:`ganforge.Metric`)."""


@hookspec
def ganforge_register_scorers(register: Register) -> None:
    """Register attribute scorers that editors consume: ``factory(config) -> AttributeScorer``
    (see :class:`ganforge.AttributeScorer`)."""


@hookspec
def ganforge_register_loggers(register: Register) -> None:
    """Register logging backends: ``factory(config, run_dir: Path) -> Logger`` (see
    :class:`ganforge.Logger`). ``metrics.jsonl`` is always written; loggers are extra."""


@hookspec
def ganforge_register_procedures(register: Register) -> None:
    """Register training procedures: ``factory(config, loss: Loss, manager: PluginManager) -> Procedure``
    (see :class:`ganforge.Procedure`), given the run's adversarial loss (``[loss]``) and the manager to
    build the loss terms its config names. The factory may carry ``defaults``, raw config sections
    merged under the user's file (its paper's networks, losses and optimiser settings)."""


@hookspec
def ganforge_register_loss_terms(register: Register) -> None:
    """Register non-adversarial loss terms that procedures compose by name: ``factory(config) ->
    LossTerm`` (see :class:`ganforge.LossTerm`), e.g. L1 reconstruction, cycle consistency's distance,
    domain classification."""


@hookspec
def ganforge_register_layers(register: Register) -> None:
    """Register network building blocks that networks take by name from their config (normalisations,
    discriminator heads, style blocks): ``factory(config, *, channels: int, **context) -> nn.Module``.
    ``channels`` is the width of the feature map the layer sees; a network may pass more context
    (``w_dim`` for a style block, ``resolution`` for noise inputs). A layer that changes the width sets
    ``extra_channels`` (minibatch stddev appends maps); one that takes a style is called ``layer(x, w)``.
    Its docstring gives its formula and paper."""


@hookspec
def ganforge_register_inversions(register: Register) -> None:
    """Register GAN inversion methods that ``ganforge invert --method NAME`` looks up: ``factory(config)
    -> InversionMethod`` (see :class:`ganforge.InversionMethod`)."""
