"""``MODELS`` registry and ``build_model``: one name per head variant, timm-style.

Adding a variant is one small builder function with ``@MODELS.register("name")`` in the module
that defines the head; nothing else changes. A builder takes ``dim``, ``num_frames`` and the
user's config keys and returns a ``TemporalHead``; it uses ``make_config`` so that every
variant rejects unknown keys and keys that the variant itself fixes (``difference`` of
``tdb-sub``, say) with a message that names them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from vrlib.registry import Registry

from .base import HeadConfig, TemporalHead

MODELS: Registry[Callable[..., TemporalHead]] = Registry("temporal model")

C = TypeVar("C", bound=HeadConfig)


def make_config(cls: type[C], cfg: dict[str, Any], **fixed: Any) -> C:
    """Build config dataclass ``cls`` from user keys ``cfg`` plus the variant's ``fixed`` keys.

    Raises:
        TypeError: a key in ``cfg`` is not a field of ``cls``, or is fixed by the variant.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        valid = sorted(fields - set(fixed))
        raise TypeError(f"unknown config key(s) {unknown}; valid keys: {valid}")
    clash = sorted(set(cfg) & set(fixed))
    if clash:
        raise TypeError(
            f"config key(s) {clash} are fixed by this variant "
            f"({', '.join(f'{k}={fixed[k]!r}' for k in clash)}); pick another model name instead"
        )
    return cls(**cfg, **fixed)


def build_model(name: str, dim: int = 512, num_frames: int = 12, **cfg: Any) -> TemporalHead:
    """Build the temporal head registered as ``name``.

    Keys whose value is None are dropped first, so a parameter file or CLI that leaves an option
    unset keeps the head's own default (timm's convention). The resolved config is on
    ``model.config`` (a dataclass) for saving next to a run.

    Args:
        name: one of ``MODELS.names()`` (e.g. "meanP", "seqTransf", "tdb", "tdb+tab-tdb").
        dim: feature size D of frame and text features.
        num_frames: T the head is built for (size of its frame position table).
        **cfg: head-specific options (e.g. layers=4, heads=None, centers=5, w=0.5).

    Raises:
        KeyError: unknown ``name`` (the message lists the valid names).
        TypeError: unknown or variant-fixed config key (the message names it).
        ValueError: a bad config value (the message names the key and what is allowed).
    """
    builder = MODELS.get(name)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    try:
        model = builder(dim=dim, num_frames=num_frames, **cfg)
    except (TypeError, ValueError) as err:
        raise type(err)(f"build_model({name!r}): {err}") from err
    model.name = name
    return model
