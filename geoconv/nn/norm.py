r"""Normalisation layers for any grid layout ``(B, C, *spatial)``.

A planar signal is ``(B, C, H, W)``; a cube-map signal is ``(B, C, 6, F, F)`` and a
HEALPix signal ``(B, C, 12, n, n)``. Every layer here treats all the dims after the
channel dim as one set of pixels, so on the sphere the statistics are taken over all
faces together, exactly as ``torch.nn.BatchNorm2d`` takes them over all pixels of an
image. For a channel :math:`c` and the set :math:`S` of values it normalises over,

.. math::

    y = \gamma_c \, \frac{x - \operatorname{mean}_S(x)}{\sqrt{\operatorname{var}_S(x) + \epsilon}} + \beta_c

with the biased variance, where :math:`S` is

- ``batch``: the batch and every pixel (running statistics are kept for evaluation);
- ``instance``: every pixel of one sample;
- ``group``: every pixel of one sample and the channels of :math:`c`'s group;
- ``none``: nothing; the layer is the identity.

On 4-D input the layers equal ``nn.BatchNorm2d``, ``nn.InstanceNorm2d`` and
``nn.GroupNorm`` with torch's defaults (instance norm without affine parameters or
running statistics), and they keep the same ``state_dict`` keys.

Examples
--------
>>> import torch
>>> norm = make_norm("batch", 4)
>>> y = norm(torch.randn(2, 4, 6, 8, 8))   # a cube-map signal: (B, C, 6, F, F)
>>> y.shape
torch.Size([2, 4, 6, 8, 8])
>>> bool(y.mean(dim=(0, 2, 3, 4)).abs().max() < 1e-5)
True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geoconv._checks import check_choice, check_int
from geoconv.errors import ParameterError, ShapeError

__all__ = ["NORMS", "BatchNorm", "GroupNorm", "InstanceNorm", "make_norm"]

NORMS: tuple[str, ...] = ("batch", "group", "instance", "none")
"""The normalisation kinds :func:`make_norm` builds."""


def _check_input(x: object, channels: int, kind: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"x must be a torch.Tensor of shape (B, C, *spatial), got {type(x).__name__}")
    if x.dim() < 3:
        raise ShapeError(
            f"{kind} norm needs x of shape (B, C, *spatial) with at least one spatial dim, "
            f"got a {x.dim()}-D tensor of shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ShapeError(f"{kind} norm was built for {channels} channels; x has shape {tuple(x.shape)}")
    return x


def _pixels(x: torch.Tensor) -> int:
    return math.prod(x.shape[2:])


class BatchNorm(nn.BatchNorm1d):
    """Batch normalisation over the batch and all spatial dims of ``(B, C, *spatial)``.

    Equal to ``nn.BatchNorm2d`` on 4-D input, with the same parameters, buffers and
    ``state_dict`` keys; see :mod:`geoconv.nn.norm` for the formula.

    Shapes
    ------
    ``(B, C, *spatial) -> (B, C, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> BatchNorm(3)(torch.randn(4, 3, 12, 2, 2)).shape   # HEALPix, nside 2
    torch.Size([4, 3, 12, 2, 2])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.num_features, "batch")
        if self.training and x.shape[0] * _pixels(x) < 2:
            raise ShapeError(
                f"batch norm in training mode needs more than one value per channel; x has shape {tuple(x.shape)}"
            )
        # flatten(2) is a view for contiguous input; BatchNorm1d on (B, C, L) is BatchNorm2d's maths.
        return super().forward(x.flatten(2)).view(x.shape)


class InstanceNorm(nn.InstanceNorm1d):
    """Instance normalisation over all spatial dims of each sample of ``(B, C, *spatial)``.

    Equal to ``nn.InstanceNorm2d`` on 4-D input (by default without affine parameters
    or running statistics, as in torch).

    Shapes
    ------
    ``(B, C, *spatial) -> (B, C, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> y = InstanceNorm(2)(torch.randn(3, 2, 6, 4, 4))
    >>> bool(y.mean(dim=(2, 3, 4)).abs().max() < 1e-5)
    True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.num_features, "instance")
        if (self.training or not self.track_running_stats) and _pixels(x) < 2:
            raise ShapeError(f"instance norm needs more than one pixel per channel; x has shape {tuple(x.shape)}")
        return super().forward(x.flatten(2)).view(x.shape)


class GroupNorm(nn.GroupNorm):
    """Group normalisation of ``(B, C, *spatial)``: ``nn.GroupNorm`` with checked input.

    Shapes
    ------
    ``(B, C, *spatial) -> (B, C, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> GroupNorm(2, 8)(torch.randn(1, 8, 5, 5)).shape
    torch.Size([1, 8, 5, 5])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_check_input(x, self.num_channels, "group"))


def make_norm(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """Build the normalisation layer ``kind`` for ``channels`` channels.

    Parameters
    ----------
    kind : str
        One of :data:`NORMS`: ``batch``, ``group``, ``instance`` or ``none``.
    channels : int
        The channel count ``C`` of the input ``(B, C, *spatial)``.
    groups : int
        Channel groups for ``group`` (it must divide ``channels``); ignored otherwise.

    Returns
    -------
    torch.nn.Module
        :class:`BatchNorm`, :class:`GroupNorm`, :class:`InstanceNorm` or ``nn.Identity``.

    Raises
    ------
    GeoconvError
        For an unknown ``kind`` (with the closest names), ``channels < 1``, or
        ``groups`` that does not divide ``channels``.

    Examples
    --------
    >>> norm = make_norm("group", 16, groups=4)
    >>> type(norm).__name__, norm.num_groups
    ('GroupNorm', 4)
    >>> make_norm("bacth", 16)
    Traceback (most recent call last):
    ...
    geoconv.errors.UnknownNameError: unknown norm: 'bacth'; did you mean 'batch'? ...
    """
    kind = check_choice("norm", kind, NORMS)
    channels = check_int("channels", channels, minimum=1)
    if kind == "batch":
        return BatchNorm(channels)
    if kind == "instance":
        return InstanceNorm(channels)
    if kind == "group":
        groups = check_int("groups", groups, minimum=1)
        if channels % groups:
            divisors = [g for g in range(1, channels + 1) if channels % g == 0]
            raise ParameterError(
                f"group norm needs groups to divide the channel count: groups={groups}, channels={channels}; "
                f"groups that divide {channels}: {divisors}"
            )
        return GroupNorm(groups, channels)
    return nn.Identity()
