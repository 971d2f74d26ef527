"""Activation functions by name, shared by gated convs and the blocks in :mod:`geoconv.nn`.

>>> make_activation("leaky_relu")
LeakyReLU(negative_slope=0.2)
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from geoconv._checks import check_choice

__all__ = ["ACTIVATIONS", "make_activation"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    # 0.2 is the slope used by gated convs (Yu et al. 2019) and most GAN/inpainting work.
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
"""Activation names and their module factories."""


def make_activation(name: str) -> nn.Module:
    """Build the activation called ``name`` (one of :data:`ACTIVATIONS`)."""
    return ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]()
