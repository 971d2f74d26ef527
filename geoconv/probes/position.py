r"""Where a planar model can see position: the border band, consistency and absolute position.

=================================  ============================================================
probe                              what it measures
=================================  ============================================================
:func:`border_profile`             the shift-equivariance error as a function of the distance to
                                   the border
:func:`predicted_border_band`      the band width the receptive field predicts for it
:func:`consistency`                Zhang (2019): :math:`P[\arg\max f(T_1x) = \arg\max f(T_2x)]`
:func:`absolute_position_test`     Kayhan & van Gemert (2020): can a conv + global max pool tell
                                   the same pattern at two corners apart?
=================================  ============================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geoconv._checks import check_choice, check_float, check_int, check_pair
from geoconv.errors import ParameterError, ShapeError
from geoconv.ops.registry import build_op
from geoconv.probes._planar import (
    Model,
    check_axis,
    check_images,
    check_model,
    check_output_stride,
    crop_window,
    evaluating,
    run_model,
    shift_dims,
)
from geoconv.probes.shift import SHIFT_KINDS
from geoconv.sizes import Layer, receptive_field

__all__ = ["absolute_position_test", "border_profile", "consistency", "predicted_border_band"]

_NAN = float("nan")


# --------------------------------------------------------------------------- border band


def _frame_distance(length: int, offset: int, device: torch.device) -> torch.Tensor:
    """Distance of each index to the nearest end of ``[0, length)`` and of that frame rolled by ``offset``."""
    index = torch.arange(length, device=device)
    own = torch.minimum(index, length - 1 - index)
    rolled = (index - offset) % length
    return torch.minimum(own, torch.minimum(rolled, length - 1 - rolled))


def border_profile(
    model: Model,
    x: torch.Tensor,
    shift: int,
    *,
    kind: str = "circular",
    axis: int | None = None,
    output_stride: int | tuple[int, int] = 1,
) -> torch.Tensor:
    r"""Equivariance error against the distance to the border, in output pixels.

    The error map :math:`E = F(T_s x) - T'_s F(x)` is the one of
    :func:`shift_equivariance`. For zero, reflect or replicate padding it is confined to
    pixels whose receptive field reaches past a border of *either* image, so the
    distance :math:`d(i, j)` of an output pixel is the Chebyshev distance to the nearest
    edge of both frames:

    - ``circular``: the output's own edges, and the edges of :math:`T'_s F(x)`, which the
      roll moves to the seam at :math:`t = s / S` (rows :math:`t - 1 \mid t`);
    - ``crop``: the edges of the overlap of the two windows (both windows' borders lie
      on or beyond them).

    The profile is the RMS error over the pixels at each distance, relative to the RMS of
    the reference output over all of them:

    .. math::

        p(d) = \frac{\sqrt{\operatorname{mean}_{d(i,j) = d} E^2}}
                    {\sqrt{\operatorname{mean}_{i,j} F(x)^2}},

    with means over the batch and channels as well. For a stack whose receptive field
    predicts a band of :math:`b` pixels (:func:`predicted_border_band`), :math:`p(d) = 0`
    for :math:`d \ge b` up to rounding; circular padding gives zero everywhere.

    Parameters
    ----------
    model : callable
        ``(B, C, H, W) -> (B, C', H', W')``; runs in eval mode.
    x : torch.Tensor
        ``(B, C, H, W)``; for ``crop`` the larger image the two windows come from.
    shift : int
        The shift :math:`s`, a multiple of ``output_stride`` (non-negative for ``crop``).
    kind : str
        ``"circular"`` or ``"crop"``.
    axis : int, optional
        ``None`` (diagonal), ``-2`` (rows) or ``-1`` (columns).
    output_stride : int or (int, int)
        The model's total stride.

    Returns
    -------
    torch.Tensor
        Shape ``(D,)`` on ``x``'s device, ``D - 1`` the largest distance present; entry
        ``d`` is :math:`p(d)` (``nan`` for a distance no pixel has).

    Examples
    --------
    Two zero-padded 3x3 convs: the error stays within 2 pixels of the borders.

    >>> import torch
    >>> from geoconv import build_op
    >>> net = torch.nn.Sequential(build_op("conv", 1, 2), build_op("conv", 2, 2)).double()
    >>> profile = border_profile(net, torch.randn(1, 1, 16, 16, dtype=torch.float64), 5)
    >>> bool((profile[:2] > 1e-3).all()), bool((profile[2:] < 1e-12).all())
    (True, True)
    """
    model = check_model(model)
    x = check_images(x)
    kind = check_choice("kind", kind, SHIFT_KINDS)
    axis = check_axis(axis)
    dims = shift_dims(axis)
    shift = check_int("shift", shift, minimum=0 if kind == "crop" else None)
    stride = check_pair("output_stride", output_stride, minimum=1)
    for dim in dims:
        if shift % stride[dim + 2]:
            raise ParameterError(
                f"shift={shift} is not a multiple of output_stride={stride}: no output shift corresponds to it, "
                "so the error map (and its profile) is undefined"
            )
    if kind == "crop":
        for dim in dims:
            if shift >= x.shape[dim]:
                raise ShapeError(f"a crop shift of {shift} leaves no window of x of shape {tuple(x.shape)}")
        window = [x.shape[dim] - shift for dim in dims]
    with torch.no_grad(), evaluating(model):
        if kind == "circular":
            base = run_model(model, x)
            check_output_stride(base, x, stride, dims, kind)
            moved = run_model(model, torch.roll(x, (shift,) * len(dims), dims))
        else:
            base = run_model(model, crop_window(x, 0, window, dims))
            moved = run_model(model, crop_window(x, shift, window, dims))
        if base.dim() != 4:
            raise ShapeError(
                f"border_profile needs a model that returns feature maps (B, C', H', W'), got {base.dim()}-D"
            )
        offsets = {dim: shift // stride[dim + 2] for dim in dims}
        if kind == "circular":
            reference = base
            error = moved - torch.roll(base, tuple(offsets.values()), dims)
            rolls = offsets
        else:
            reference, overlap = base, moved
            for dim, t in offsets.items():
                if t >= base.shape[dim]:
                    raise ShapeError(f"a crop shift of {shift} leaves no overlap of outputs of shape {base.shape}")
                n = base.shape[dim] - t
                reference = reference.narrow(dim, t, n)
                overlap = overlap.narrow(dim, 0, n)
            error = overlap - reference
            rolls = {}
        rows = _frame_distance(error.shape[-2], rolls.get(-2, 0), x.device)
        cols = _frame_distance(error.shape[-1], rolls.get(-1, 0), x.device)
        distance = torch.minimum(rows[:, None], cols[None, :]).flatten()
        size = int(distance.max()) + 1
        # At least float32 for the sums; float64 stays float64 (and MPS has no float64).
        acc = torch.promote_types(error.dtype, torch.float32)
        squared = error.to(acc).square().mean(dim=(0, 1)).flatten()
        counts = torch.zeros(size, dtype=acc, device=x.device).index_add_(0, distance, torch.ones_like(squared))
        sums = torch.zeros(size, dtype=acc, device=x.device).index_add_(0, distance, squared)
        scale = reference.to(acc).square().mean().sqrt()
        profile = (sums / counts).sqrt() / scale
    return profile.to(x.dtype)


def predicted_border_band(layers: Sequence[Layer]) -> int:
    r"""The width, in output pixels, of the band where padding can reach an output.

    Output pixel :math:`i` sees input pixels from :math:`i S_0 - P_0` on (see
    :func:`geoconv.sizes.receptive_field`), so it reads padding at the top/left border
    exactly when :math:`i S_0 < P_0`:

    .. math:: b = \lceil P_0 / S_0 \rceil .

    Reading padding at any layer means the composed receptive field leaves the image,
    so :math:`b` holds for the whole stack. At the bottom/right the band has the same
    width for symmetric padding at stride 1 (the "same" padding of odd kernels); with
    strides it also depends on the input size.

    Parameters
    ----------
    layers : sequence of geoconv.sizes.Layer
        From input to output; :func:`geoconv.probes.locality.layers_of` reads them off a model.

    Returns
    -------
    int
        :math:`b`; outputs at distance :math:`\ge b` from the border are exactly equivariant.

    Examples
    --------
    >>> from geoconv.sizes import Layer
    >>> predicted_border_band([Layer(3, padding=1)] * 4)
    4
    >>> predicted_border_band([Layer(3, padding=1), Layer(3, stride=2, padding=1), Layer(3, padding=1)])
    2
    """
    rf = receptive_field(layers)
    return -(-rf.padding // rf.stride)


# --------------------------------------------------------------------------- consistency


def _shift_each(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Per-sample gather: output ``[b, c, i, j] = x[b, c, rows[b, i], cols[b, j]]``."""
    batch, channels = x.shape[:2]
    x = x.gather(2, rows[:, None, :, None].expand(batch, channels, rows.shape[1], x.shape[3]))
    return x.gather(3, cols[:, None, None, :].expand(batch, channels, rows.shape[1], cols.shape[1]))


def consistency(
    classifier: Model,
    x: torch.Tensor,
    max_shift: int,
    *,
    pairs: int = 5,
    kind: str = "circular",
    generator: torch.Generator | None = None,
) -> float:
    r"""Classification consistency under random shifts (Zhang, ICML 2019).

    .. math::

        \mathrm{consistency} = P_{x,\,T_1,\,T_2}\bigl[\arg\max f(T_1 x) = \arg\max f(T_2 x)\bigr]

    For every image and each of ``pairs`` draws, two shifts :math:`(\Delta_r, \Delta_c)`
    are drawn independently and uniformly from :math:`\{0, \dots, m\}^2`:

    - ``circular``: :math:`T` rolls the image by the shift;
    - ``crop``: :math:`T` takes the window of size ``(H - m, W - m)`` at that offset
      (as in Zhang's evaluation on crops of a larger image).

    Parameters
    ----------
    classifier : callable
        ``(B, C, H, W) -> (B, K)`` logits (or scores); runs in eval mode.
    x : torch.Tensor
        ``(B, C, H, W)``.
    max_shift : int
        :math:`m \ge 0`; for ``crop`` smaller than ``H`` and ``W``.
    pairs : int
        Shift pairs per image, >= 1.
    kind : str
        ``"circular"`` or ``"crop"``.
    generator : torch.Generator, optional
        Source of the shifts (the global RNG without one).

    Returns
    -------
    float
        The fraction of the ``B * pairs`` pairs whose predicted classes agree.

    Examples
    --------
    A linear classifier on the global mean of a circular conv cannot tell rolled images apart:

    >>> import torch
    >>> from geoconv import build_op
    >>> body = torch.nn.Sequential(build_op("conv", 1, 4, padding_mode="circular"))
    >>> classifier = lambda x: body(x).mean(dim=(-2, -1))
    >>> consistency(classifier, torch.randn(8, 1, 8, 8), 4, generator=torch.Generator().manual_seed(0))
    1.0
    """
    classifier = check_model(classifier, "classifier")
    x = check_images(x)
    kind = check_choice("kind", kind, SHIFT_KINDS)
    max_shift = check_int("max_shift", max_shift, minimum=0)
    pairs = check_int("pairs", pairs, minimum=1)
    batch, _, height, width = x.shape
    if kind == "crop" and max_shift >= min(height, width):
        raise ShapeError(
            f"max_shift={max_shift} leaves no crop window of x of shape {tuple(x.shape)}; it must be smaller than "
            "H and W"
        )
    device = generator.device if generator is not None else x.device
    # (pairs, 2 shifts, rows/cols, B), drawn at once: one transfer, not one per pair.
    offsets = torch.randint(0, max_shift + 1, (pairs, 2, 2, batch), generator=generator, device=device).to(x.device)
    size = (height, width) if kind == "circular" else (height - max_shift, width - max_shift)
    row_index = torch.arange(size[0], device=x.device)
    col_index = torch.arange(size[1], device=x.device)

    def move(shift: torch.Tensor) -> torch.Tensor:
        if kind == "circular":
            # torch.roll's convention: output pixel i holds input pixel i - shift.
            rows = (row_index[None, :] - shift[0][:, None]) % height
            cols = (col_index[None, :] - shift[1][:, None]) % width
        else:
            rows = shift[0][:, None] + row_index[None, :]
            cols = shift[1][:, None] + col_index[None, :]
        return _shift_each(x, rows, cols)

    agree: list[torch.Tensor] = []
    with torch.no_grad(), evaluating(classifier):
        for pair in offsets:
            first = run_model(classifier, move(pair[0]), "classifier")
            second = run_model(classifier, move(pair[1]), "classifier")
            if first.dim() != 2:
                raise ShapeError(f"classifier must return logits (B, K), got shape {tuple(first.shape)}")
            agree.append(first.argmax(dim=1) == second.argmax(dim=1))
        return float(torch.cat(agree).float().mean())


# --------------------------------------------------------------------------- absolute position


def absolute_position_test(
    padding_mode: str,
    *,
    size: int = 12,
    pattern_size: int = 2,
    channels: int = 8,
    kernel_size: int = 3,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 0.05,
    test_samples: int = 512,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> float:
    r"""Can one conv layer + global max pool tell where a pattern is? (Kayhan & van Gemert, CVPR 2020).

    Each sample is a random pattern of ``pattern_size``\ :sup:`2` standard-normal values
    on a zero ``size x size`` image, placed at the top-left corner (class 0) or at the
    bottom-right corner (class 1); both classes use the same patterns. The model is

    .. math::

        \mathrm{logits} = W \,\max_{i,j}\, \mathrm{conv}(x)_{:, i, j} + b ,

    a ``geoconv`` ``conv`` (``kernel_size``, "same" padding, the given ``padding_mode``,
    ``channels`` filters), a global max pool and a linear head, trained with Adam on
    cross-entropy for ``steps`` batches of fresh patterns (``batch_size`` of each class)
    and tested on ``test_samples`` new patterns of each class.

    Without the border the two images are translates of each other and a conv + global
    max pool would give both the same logits. Zero padding cuts off the part of the
    pattern's response that falls beyond the border, on a different side in each
    class, so the network can read the position: accuracy near 1. With circular padding
    the bottom-right image is exactly a circular shift of the top-left one and the
    accuracy is 0.5 (chance).

    Parameters
    ----------
    padding_mode : str
        A planar padding mode of ``conv``: ``zeros``, ``constant``, ``reflect``,
        ``replicate``, ``circular``.
    size : int
        Image side, at least ``2 * pattern_size`` and the kernel size.
    pattern_size : int
        Side of the pattern, >= 1.
    channels, kernel_size : int
        The conv's filters and kernel size.
    steps, batch_size : int
        Training steps and patterns per step.
    lr : float
        Adam's learning rate.
    test_samples : int
        Test patterns (each shown at both corners).
    generator : torch.Generator, optional
        Source of the patterns and of the model's initial weights (the global RNG
        without one). The same generator state gives the same accuracy.
    device : torch.device or str, optional
        Where to train; the CPU by default.

    Returns
    -------
    float
        Test accuracy in [0, 1].

    Examples
    --------
    >>> import torch
    >>> absolute_position_test("circular", steps=20, generator=torch.Generator().manual_seed(0))
    0.5
    """
    size = check_int("size", size, minimum=1)
    pattern_size = check_int("pattern_size", pattern_size, minimum=1)
    channels = check_int("channels", channels, minimum=1)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    test_samples = check_int("test_samples", test_samples, minimum=1)
    lr = check_float("lr", lr, positive=True)
    if size < 2 * pattern_size:
        raise ParameterError(
            f"size={size} must be at least 2 * pattern_size={2 * pattern_size} so that the two corners do not overlap"
        )
    device = torch.device("cpu") if device is None else torch.device(device)
    source = generator.device if generator is not None else torch.device("cpu")
    model_seed = int(torch.randint(2**62, (1,), generator=generator, device=source))
    train = torch.randn(steps, batch_size, 1, pattern_size, pattern_size, generator=generator, device=source)
    test = torch.randn(test_samples, 1, pattern_size, pattern_size, generator=generator, device=source)
    train, test = train.to(device), test.to(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_seed)
        conv = build_op("conv", 1, channels, kernel_size=kernel_size, padding_mode=padding_mode)
        head = nn.Linear(channels, 2)
    conv, head = conv.to(device), head.to(device)

    def images(patterns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = patterns.shape[0]
        x = patterns.new_zeros(2 * n, 1, size, size)
        x[:n, :, :pattern_size, :pattern_size] = patterns
        x[n:, :, size - pattern_size :, size - pattern_size :] = patterns
        labels = torch.arange(2, device=patterns.device).repeat_interleave(n)
        return x, labels

    def logits(x: torch.Tensor) -> torch.Tensor:
        return head(conv(x).amax(dim=(-2, -1)))

    optimizer = torch.optim.Adam([*conv.parameters(), *head.parameters()], lr=lr)
    with torch.enable_grad():
        for patterns in train:
            x, labels = images(patterns)
            loss = F.cross_entropy(logits(x), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        x, labels = images(test)
        return float((logits(x).argmax(dim=1) == labels).float().mean())
