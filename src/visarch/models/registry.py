"""The model registry: a name -> (config class, builder) table with helpful errors."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["create", "create_on_meta", "get_config", "list_models", "register"]

_MODELS: dict[str, tuple[type, Callable[..., nn.Module], dict]] = {}


def register(name: str, config_cls: type, **preset):
    """Decorator: register ``builder(config) -> nn.Module`` as ``name``, with config fields ``preset``.

    Several names may share one builder and config class with different presets (ResNet-50
    for CIFAR and for ImageNet, ViT-B and ViT-L, ...).

    Args:
        name: the name :func:`~visarch.models.registry.create` will know the model by; it must be new.
        config_cls: the model's config dataclass.
        **preset: config fields this name sets, over the dataclass's defaults.

    Returns:
        The decorator, which records the builder and returns it unchanged.

    Raises:
        TypeError: if ``config_cls`` is not a dataclass or ``preset`` names a field it lacks.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls must be a dataclass, got {config_cls!r}")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(preset) - fields
    if unknown:
        raise TypeError(f"preset for {name!r} sets unknown config fields {sorted(unknown)}")

    def decorate(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = (config_cls, builder, preset)
        return builder

    return decorate


def list_models() -> list[str]:
    """The registered names, sorted."""
    return sorted(_MODELS)


def _lookup(name):
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (known: {', '.join(list_models())})")
    return _MODELS[name]


def get_config(name: str, **overrides):
    """The config ``create(name, **overrides)`` would build from.

    Args:
        name: a registered model name.
        **overrides: config fields to set, over the name's preset and the dataclass's defaults.

    Returns:
        An instance of the model's config dataclass.

    Raises:
        ValueError: for an unknown name, with the closest registered names as suggestions.
        TypeError: if ``overrides`` names a field the config lacks.
    """
    config_cls, _, preset = _lookup(name)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"{name!r} has no config fields {sorted(unknown)}; its fields are {sorted(fields)}")
    return config_cls(**{**preset, **overrides})


def create(name: str, **overrides) -> nn.Module:
    """Build the model ``name``; keyword arguments override fields of its config.

    Args:
        name: a registered model name (see :func:`~visarch.models.registry.list_models`).
        **overrides: config fields to set, over the name's preset and the dataclass's defaults.

    Returns:
        The model, freshly initialised, in training mode.
    """
    _, builder, _ = _lookup(name)
    return builder(get_config(name, **overrides))


def create_on_meta(name: str, **overrides) -> nn.Module:
    """:func:`~visarch.models.registry.create` on the ``meta`` device, which allocates no memory.

    The model's shapes, parameter count and (with :func:`visarch.cost.model_macs`) arithmetic can be read
    for a model of any size, without memory or computation; its parameters hold no values.

    Args:
        name: a registered model name.
        **overrides: config fields to set, as for :func:`~visarch.models.registry.create`.
    """
    with torch.device("meta"):
        return create(name, **overrides)
