"""What the planar shift probes share: evaluation mode, input checks, shifts, crops and relative errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from geoconv._checks import check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError

__all__ = [
    "Model",
    "check_axis",
    "check_images",
    "check_model",
    "check_output_stride",
    "check_shifts",
    "crop_window",
    "shift_dims",
    "evaluating",
    "global_pool",
    "relative_error",
    "run_model",
]

Model = Callable[[torch.Tensor], torch.Tensor]
"""Any callable ``(B, C, H, W) -> tensor``."""


@contextlib.contextmanager
def evaluating(model: object) -> Iterator[None]:
    """Run ``model`` in eval mode, then give every submodule its own mode back.

    A measurement must not depend on dropout draws or on batch statistics (which couple
    the samples of a batch and, for crop shifts, the crop itself); restoring each
    submodule's flag, not just the root's, leaves a partly frozen model as it was.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def check_model(model: object, name: str = "model") -> Model:
    """Return ``model`` if it can be called on a tensor."""
    if not callable(model):
        raise ParameterError(f"{name} must be a torch.nn.Module or a callable on tensors, got {type(model).__name__}")
    return model  # type: ignore[return-value]


def check_images(x: object, name: str = "x") -> torch.Tensor:
    return check_tensor(x, ndim=4, name=name, layout="(B, C, H, W)", floating=True)


def run_model(model: Model, x: torch.Tensor, name: str = "model") -> torch.Tensor:
    y = model(x)
    if not isinstance(y, torch.Tensor) or y.dim() not in (2, 4):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ShapeError(
            f"{name} must return a feature map (B, C', H', W') or pooled outputs (B, K) for input of shape "
            f"{tuple(x.shape)}, got {shape}"
        )
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"{name} changed the batch size: input {tuple(x.shape)}, output {tuple(y.shape)}")
    return y


def check_axis(axis: object) -> int | None:
    """``None`` (rows and columns), ``-2`` (rows) or ``-1`` (columns); 2 and 3 are accepted as aliases."""
    if axis is None:
        return None
    if isinstance(axis, int) and not isinstance(axis, bool) and axis in (-2, -1, 2, 3):
        return axis - 4 if axis > 0 else axis
    raise ParameterError(f"axis must be None (rows and columns), -2 (rows) or -1 (columns), got {axis!r}")


def shift_dims(axis: int | None) -> tuple[int, ...]:
    return (-2, -1) if axis is None else (axis,)


def check_shifts(shifts: object, kind: str) -> tuple[int, ...]:
    if isinstance(shifts, int) and not isinstance(shifts, bool):
        shifts = (shifts,)
    if isinstance(shifts, torch.Tensor):
        shifts = shifts.tolist()
    if not isinstance(shifts, Sequence) or isinstance(shifts, str):
        raise ParameterError(f"shifts must be a sequence of integers, got {shifts!r} ({type(shifts).__name__})")
    if len(shifts) == 0:
        raise ParameterError("shifts must contain at least one shift, got an empty sequence")
    minimum = 0 if kind == "crop" else None
    checked = tuple(check_int(f"shifts[{i}]", s, minimum=minimum) for i, s in enumerate(shifts))
    return checked


def relative_error(difference: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``‖difference‖ / ‖reference‖`` as a 0-d tensor (nan when both are zero)."""
    return torch.linalg.vector_norm(difference) / torch.linalg.vector_norm(reference)


def global_pool(y: torch.Tensor) -> torch.Tensor:
    return y.mean(dim=(-2, -1)) if y.dim() == 4 else y


def crop_window(x: torch.Tensor, offset: int, size: Sequence[int], dims: tuple[int, ...]) -> torch.Tensor:
    for dim, length in zip(dims, size, strict=True):
        x = x.narrow(dim, offset, length)
    return x


def check_output_stride(
    y: torch.Tensor, x: torch.Tensor, stride: tuple[int, int], dims: tuple[int, ...], kind: str
) -> None:
    if kind != "circular" or y.dim() != 4:
        return
    for dim in dims:
        axis = dim + 2
        if y.shape[dim] * stride[axis] != x.shape[dim]:
            implied = x.shape[dim] / y.shape[dim]
            raise ShapeError(
                f"output_stride={stride} but the model maps x of shape {tuple(x.shape)} to {tuple(y.shape)}: a "
                f"circular shift needs output size * output_stride == input size along each shifted axis "
                f"(the data suggest a stride of {implied:g}; with 'same' padding, make H and W divisible by it)"
            )
