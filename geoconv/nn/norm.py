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

Built with a spherical ``grid`` (``make_norm(kind, C, grid="equirect")``), the mean
and variance are averages weighted by each pixel's solid angle, the grid's quadrature
weights :math:`w_p` (:meth:`geoconv.grids.base.Grid.quadrature_weights`, summing to 1):

.. math::

    \operatorname{mean}_S(x) = \frac{1}{|B|}\sum_{b} \sum_p w_p x_{bp}, \qquad
    \operatorname{var}_S(x) = \frac{1}{|B|}\sum_{b} \sum_p w_p (x_{bp} - \operatorname{mean}_S)^2

(the sum over :math:`b` only for ``batch``; ``group`` also averages its channels), so that
the statistics are those of the signal on the sphere, not of the pixels: on equirect
the plain pixel statistics count the polar rows as much as the equator's and change
when the input rotates. Without a grid, or on a flat grid, the layers are unchanged.

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
from geoconv.grids import Grid, get_grid

__all__ = ["NORMS", "BatchNorm", "GroupNorm", "InstanceNorm", "Standardize", "make_norm"]

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


class _AreaWeights:
    """A mixin: the grid's quadrature weights as a non-persistent buffer, ``None`` on a flat grid.

    The buffer (flattened, summing to 1) is rebuilt when an input of another resolution,
    dtype or device arrives; it never enters the ``state_dict``.
    """

    quadrature: torch.Tensor

    def _init_weights(self, grid: str | None) -> None:
        self.grid = None if grid is None else get_grid(grid)
        # A flat grid's weights are uniform: the unweighted path is the same maths, and torch's.
        self.weighted = self.grid is not None and self.grid.spherical
        self.register_buffer("quadrature", torch.empty(0), persistent=False)  # type: ignore[attr-defined]

    def _weights(self, x: torch.Tensor) -> torch.Tensor:
        w = self.quadrature
        if w.numel() != _pixels(x) or w.dtype != x.dtype or w.device != x.device:
            self.quadrature = _grid_weights(self.grid, x).reshape(-1)
        return self.quadrature


def _grid_weights(grid: Grid | None, x: torch.Tensor) -> torch.Tensor:
    """The quadrature weights for ``x`` (shape ``x.shape[2:]``, summing to 1).

    ``grid`` ``None``: uniform. ``x`` in the grid's layout: the grid's own weights. ``x`` in the
    so3 layout ``(B, C, 2b, 2b, 2b)`` that ``s2_conv`` and ``so3_conv`` put out on a spherical
    grid: the SOFT grid's Haar weights (a row weight per β, uniform over α and γ). Any other
    layout is a :class:`ShapeError`: statistics weighted as if every pixel had the same area
    would be silently wrong on a sphere.
    """
    if grid is None:
        return torch.full(x.shape[2:], 1.0 / _pixels(x), dtype=x.dtype, device=x.device)
    try:
        return grid.quadrature_weights_of(x)
    except ShapeError as err:
        if grid.spherical and x.dim() == 5 and x.shape[2] == x.shape[3] == x.shape[4] and x.shape[2] % 2 == 0:
            from geoconv.ops._so3_fft import so3_quadrature_weights

            n = x.shape[2]
            rows = so3_quadrature_weights(n // 2).to(dtype=x.dtype, device=x.device) / (n * n)
            return rows[:, None, None].expand(n, n, n).contiguous()
        raise ShapeError(
            f"{err}; a norm or pooling on grid {grid.name!r} weights pixels by the grid's quadrature and takes "
            "the grid's layout or the so3 layout (B, C, 2b, 2b, 2b)"
        ) from None


def _weighted_moments(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and biased variance over the last dim of ``x`` (``w`` sums to 1)."""
    mean = x @ w
    var = (x - mean.unsqueeze(-1)).square() @ w
    return mean, var


def _update(running: torch.Tensor, value: torch.Tensor, factor: float) -> None:
    running.mul_(1 - factor).add_(value.detach().to(running.dtype), alpha=factor)


def _affine(y: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    if weight is not None:
        y = y * weight.unsqueeze(-1)
    if bias is not None:
        y = y + bias.unsqueeze(-1)
    return y


class BatchNorm(_AreaWeights, nn.BatchNorm1d):
    """Batch normalisation over the batch and all spatial dims of ``(B, C, *spatial)``.

    Equal to ``nn.BatchNorm2d`` on 4-D input, with the same parameters, buffers and
    ``state_dict`` keys; see :mod:`geoconv.nn.norm` for the formula. With a spherical
    ``grid`` the statistics are area-weighted; the running variance is then the weighted
    batch variance times :math:`n/(n-1)`, :math:`n` the values per channel, as torch's.

    Parameters
    ----------
    num_features : int
        The channel count ``C``.
    *args, **kwargs
        As for ``torch.nn.BatchNorm1d`` (``eps``, ``momentum``, ``affine``, ...).
    grid : str, optional
        The grid of the input; a spherical grid weights the statistics by pixel area.

    Shapes
    ------
    ``(B, C, *spatial) -> (B, C, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> BatchNorm(3)(torch.randn(4, 3, 12, 2, 2)).shape   # HEALPix, nside 2
    torch.Size([4, 3, 12, 2, 2])
    >>> y = BatchNorm(2, grid="equirect")(torch.randn(4, 2, 8, 16))
    >>> w = torch.sin((torch.arange(8) + 0.5) * torch.pi / 8)[:, None]   # ~ the rows' areas
    >>> bool(((y * w).sum(dim=(0, 2, 3)) / (4 * 16 * w.sum())).abs().max() < 0.02)
    True
    """

    def __init__(self, num_features: int, *args: object, grid: str | None = None, **kwargs: object) -> None:
        super().__init__(num_features, *args, **kwargs)  # type: ignore[arg-type]
        self._init_weights(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.num_features, "batch")
        if self.training and x.shape[0] * _pixels(x) < 2:
            raise ShapeError(
                f"batch norm in training mode needs more than one value per channel; x has shape {tuple(x.shape)}"
            )
        if not self.weighted:
            # flatten(2) is a view for contiguous input; BatchNorm1d on (B, C, L) is BatchNorm2d's maths.
            return super().forward(x.flatten(2)).view(x.shape)
        flat = x.flatten(2)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            mean, var = _weighted_moments(flat, self._weights(x))  # (B, C) each
            mean, var = mean.mean(0), var.mean(0) + (mean - mean.mean(0)).square().mean(0)
            if self.training and self.track_running_stats:
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                n = flat.shape[0] * flat.shape[2]
                _update(self.running_mean, mean, factor)
                _update(self.running_var, var * (n / (n - 1)), factor)
        else:
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        y = (flat - mean.unsqueeze(-1)) * torch.rsqrt(var.unsqueeze(-1) + self.eps)
        return _affine(y, self.weight, self.bias).view(x.shape)


class InstanceNorm(_AreaWeights, nn.InstanceNorm1d):
    """Instance normalisation over all spatial dims of each sample of ``(B, C, *spatial)``.

    Equal to ``nn.InstanceNorm2d`` on 4-D input (by default without affine parameters
    or running statistics, as in torch). With a spherical ``grid`` the statistics are
    area-weighted (see :mod:`geoconv.nn.norm`).

    Parameters
    ----------
    num_features : int
        The channel count ``C``.
    *args, **kwargs
        As for ``torch.nn.InstanceNorm1d`` (``eps``, ``affine``, ``track_running_stats``, ...).
    grid : str, optional
        The grid of the input; a spherical grid weights the statistics by pixel area.

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

    def __init__(self, num_features: int, *args: object, grid: str | None = None, **kwargs: object) -> None:
        super().__init__(num_features, *args, **kwargs)  # type: ignore[arg-type]
        self._init_weights(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.num_features, "instance")
        use_sample = self.training or not self.track_running_stats
        if use_sample and _pixels(x) < 2:
            raise ShapeError(f"instance norm needs more than one pixel per channel; x has shape {tuple(x.shape)}")
        if not self.weighted:
            return super().forward(x.flatten(2)).view(x.shape)
        flat = x.flatten(2)
        if use_sample:
            mean, var = _weighted_moments(flat, self._weights(x))  # (B, C) each
            if self.training and self.track_running_stats:
                # torch's instance norm keeps the batch average of the per-sample statistics.
                factor = 0.1 if self.momentum is None else self.momentum
                n = flat.shape[2]
                _update(self.running_mean, mean.mean(0), factor)
                _update(self.running_var, var.mean(0) * (n / (n - 1)), factor)
        else:
            mean = self.running_mean.to(x.dtype).expand(x.shape[0], -1)
            var = self.running_var.to(x.dtype).expand(x.shape[0], -1)
        y = (flat - mean.unsqueeze(-1)) * torch.rsqrt(var.unsqueeze(-1) + self.eps)
        return _affine(y, self.weight if self.affine else None, self.bias if self.affine else None).view(x.shape)


class GroupNorm(_AreaWeights, nn.GroupNorm):
    """Group normalisation of ``(B, C, *spatial)``: ``nn.GroupNorm`` with checked input.

    With a spherical ``grid`` the statistics are area-weighted (see :mod:`geoconv.nn.norm`).

    Parameters
    ----------
    num_groups, num_channels : int
        As for ``torch.nn.GroupNorm``.
    *args, **kwargs
        As for ``torch.nn.GroupNorm`` (``eps``, ``affine``).
    grid : str, optional
        The grid of the input; a spherical grid weights the statistics by pixel area.

    Shapes
    ------
    ``(B, C, *spatial) -> (B, C, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> GroupNorm(2, 8)(torch.randn(1, 8, 5, 5)).shape
    torch.Size([1, 8, 5, 5])
    """

    def __init__(
        self, num_groups: int, num_channels: int, *args: object, grid: str | None = None, **kwargs: object
    ) -> None:
        super().__init__(num_groups, num_channels, *args, **kwargs)  # type: ignore[arg-type]
        self._init_weights(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.num_channels, "group")
        if not self.weighted:
            return super().forward(x)
        batch, groups = x.shape[0], self.num_groups
        grouped = x.reshape(batch, groups, self.num_channels // groups, -1)
        mean, var = _weighted_moments(grouped, self._weights(x))  # (B, G, C/G) each
        # The group's variance about its pooled mean: within-channel plus between-channel parts.
        pooled = mean.mean(-1, keepdim=True)
        var = (var + (mean - pooled).square()).mean(-1, keepdim=True)
        y = (grouped - pooled.unsqueeze(-1)) * torch.rsqrt(var.unsqueeze(-1) + self.eps)
        y = y.reshape(batch, self.num_channels, -1)
        return _affine(y, self.weight if self.affine else None, self.bias if self.affine else None).view(x.shape)


def make_norm(kind: str, channels: int, groups: int = 8, grid: str | None = None) -> nn.Module:
    """Build the normalisation layer ``kind`` for ``channels`` channels.

    Parameters
    ----------
    kind : str
        One of :data:`NORMS`: ``batch``, ``group``, ``instance`` or ``none``.
    channels : int
        The channel count ``C`` of the input ``(B, C, *spatial)``.
    groups : int
        Channel groups for ``group`` (it must divide ``channels``); ignored otherwise.
    grid : str, optional
        The grid of the input: on a spherical grid the statistics are weighted by pixel
        area; ``None`` or a flat grid: plain pixel statistics (torch's layers).

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
        return BatchNorm(channels, grid=grid)
    if kind == "instance":
        return InstanceNorm(channels, grid=grid)
    if kind == "group":
        groups = check_int("groups", groups, minimum=1)
        if channels % groups:
            divisors = [g for g in range(1, channels + 1) if channels % g == 0]
            raise ParameterError(
                f"group norm needs groups to divide the channel count: groups={groups}, channels={channels}; "
                f"groups that divide {channels}: {divisors}"
            )
        return GroupNorm(groups, channels, grid=grid)
    return nn.Identity()


class Standardize(nn.Module):
    r"""A fixed per-channel standardisation of the input: :math:`y_c = (x_c - \mu_c) / \sigma_c`.

    The statistics are buffers (saved in ``state_dict``, moved by ``.to(device)``), not
    parameters: a model trained on a user's own maps (``data=folder``) starts with the
    training split's channel means and standard deviations, so the saved run applies the
    same scaling to every map it later predicts on.

    Parameters
    ----------
    mean, std : sequence of float
        One value per channel; every ``std`` > 0.

    Examples
    --------
    >>> layer = Standardize([1.0, -2.0], [2.0, 0.5])
    >>> layer(torch.tensor([[[3.0], [-1.0]]])).flatten().tolist()
    [1.0, 2.0]
    """

    def __init__(self, mean: list[float] | tuple[float, ...], std: list[float] | tuple[float, ...]) -> None:
        super().__init__()
        if len(mean) != len(std) or not len(mean):
            raise ParameterError(f"Standardize needs one mean and one std per channel, got {len(mean)} and {len(std)}")
        if not all(math.isfinite(s) and s > 0 for s in std) or not all(math.isfinite(m) for m in mean):
            raise ParameterError(f"Standardize needs finite means and stds > 0, got mean={mean!r}, std={std!r}")
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]))
        self.register_buffer("std", torch.tensor([float(s) for s in std]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, len(self.mean), "Standardize")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - self.mean.view(shape).to(x.dtype)) / self.std.view(shape).to(x.dtype)
