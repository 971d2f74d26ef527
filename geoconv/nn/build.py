"""Models from a config: the model registry and :func:`build_model`.

A model kind (``model.kind`` in a config) is a registry entry: a factory
``factory(op, in_channels, grid, params, padding_mode, classes=None, **model_options)``.
The built-ins are ``stack`` (:class:`~geoconv.nn.models.OpStack`), ``classifier``
(:class:`~geoconv.nn.models.Classifier`), ``unet`` (:class:`~geoconv.nn.unet.UNet`), and the
two models of Cohen et al. (2018), ``cnn`` (:class:`~geoconv.nn.reference.PlainCNN`) and
``s2cnn`` (:class:`~geoconv.nn.reference.S2CNN`);
third-party packages add kinds through the entry-point group ``geoconv.models``.

>>> import torch
>>> model = build_model({"op": {"name": "conv", "params": {}}, "grid": {"name": "planar"},
...                      "model": {"kind": "stack", "depth": 2, "channels": 4}}, in_channels=1)
>>> type(model).__name__, tuple(model(torch.zeros(1, 1, 8, 8)).shape)
('OpStack', (1, 4, 8, 8))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from geoconv._registry import Registry
from geoconv.errors import GeoconvError

__all__ = ["ENTRY_POINT_GROUP", "MODELS", "build_model", "register_model"]

ENTRY_POINT_GROUP = "geoconv.models"
"""The entry-point group third-party packages declare their model kinds under."""

ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model kind", ENTRY_POINT_GROUP)
"""Model kind -> factory."""


def register_model(name: str, *, override: bool = False) -> Callable[[ModelFactory], ModelFactory]:
    """Register a model factory under ``name`` (a decorator).

    The factory is called as ``factory(op=..., in_channels=..., grid=..., params=...,
    padding_mode=..., classes=..., **options)``, where ``options`` are the config's other
    ``model`` keys.
    """

    return MODELS.decorator(name, override=override)


@register_model("stack")
def _stack(classes: int | None = None, **kwargs: Any) -> nn.Module:
    from geoconv.nn.models import OpStack

    return OpStack(**kwargs)


def _needs_classes(kind: str, module: str, attr: str, keyword: str = "classes", what: str = "a number of classes"):
    """A factory for a model class that needs ``classes`` (passed on as ``keyword``), imported when first built."""

    def factory(classes: int | None = None, **kwargs: Any) -> nn.Module:
        if classes is None:
            raise GeoconvError(f"a {kind} model needs {what}")
        return getattr(importlib.import_module(module), attr)(**{keyword: classes}, **kwargs)

    factory.__qualname__ = f"{kind}_factory"
    return factory


for _kind, _module, _attr, _keyword, _what in (
    ("classifier", "geoconv.nn.models", "Classifier", "classes", "a number of classes"),
    ("unet", "geoconv.nn.unet", "UNet", "out_channels", "its number of output channels (classes; 1 for a binary mask)"),
    ("cnn", "geoconv.nn.reference", "PlainCNN", "classes", "a number of classes"),
    ("s2cnn", "geoconv.nn.reference", "S2CNN", "classes", "a number of classes"),
):
    MODELS.register(_kind, _needs_classes(_kind, _module, _attr, _keyword, _what))


def build_model(plain: Mapping[str, Any], in_channels: int, classes: int | None = None) -> nn.Module:
    """Build the model a validated config names.

    Parameters
    ----------
    plain : mapping
        A config as a plain dict with ``op`` (``name``, ``params``), ``grid`` (``name``),
        ``model`` (``kind`` and the kind's options) and optionally ``padding_mode``.
    in_channels : int
        Input channels.
    classes : int, optional
        Classes of a classifier, output channels of a U-Net.

    Raises
    ------
    GeoconvError
        For an unknown model kind (with the closest names) or a missing ``classes``.
    """
    model = dict(plain["model"])
    factory = MODELS.get(model.pop("kind"))
    op = plain["op"]
    return factory(
        op=op["name"],
        in_channels=in_channels,
        grid=plain["grid"]["name"],
        params=op.get("params") or {},
        padding_mode=plain.get("padding_mode"),
        classes=classes,
        **model,
    )
