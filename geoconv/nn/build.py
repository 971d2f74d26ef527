"""Models from a config: the model registry and :func:`build_model`.

A model kind (``model.kind`` in a config) is a registry entry: a factory
``factory(op, in_channels, grid, params, padding_mode, classes=None, **model_options)``.
The built-ins are ``stack`` (:class:`~geoconv.nn.models.OpStack`), ``classifier``
(:class:`~geoconv.nn.models.Classifier`) and ``unet`` (:class:`~geoconv.nn.unet.UNet`);
third-party packages add kinds through the entry-point group ``geoconv.models``.

>>> import torch
>>> model = build_model({"op": {"name": "conv", "params": {}}, "grid": {"name": "planar"},
...                      "model": {"kind": "stack", "depth": 2, "channels": 4}}, in_channels=1)
>>> type(model).__name__, tuple(model(torch.zeros(1, 1, 8, 8)).shape)
('OpStack', (1, 4, 8, 8))
"""

from __future__ import annotations

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


@register_model("classifier")
def _classifier(classes: int | None = None, **kwargs: Any) -> nn.Module:
    from geoconv.nn.models import Classifier

    if classes is None:
        raise GeoconvError("a classifier model needs a number of classes")
    return Classifier(classes=classes, **kwargs)


@register_model("unet")
def _unet(classes: int | None = None, **kwargs: Any) -> nn.Module:
    from geoconv.nn.unet import UNet

    if classes is None:
        raise GeoconvError("a unet model needs its number of output channels (classes; 1 for a binary mask)")
    return UNet(out_channels=classes, **kwargs)


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
