"""What the gradient-based locality probes share: shape checks, placement, random inputs, one backward pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import ParameterError, ShapeError

__all__ = ["centre_gradient", "check_index", "check_shape", "placement", "random_inputs"]


def check_shape(name: str, shape: object, lengths: tuple[int, ...] = (3,)) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, Sequence) or isinstance(shape, str) or len(shape) not in lengths:
        expected = " or ".join(f"{n} integers" for n in lengths)
        raise ParameterError(f"{name} must be a sequence of {expected} (e.g. (C, H, W)), got {shape!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(shape))


def placement(model: object, device: torch.device | str | None, dtype: torch.dtype | None) -> tuple[Any, Any]:
    tensors = [*model.parameters(), *model.buffers()] if isinstance(model, nn.Module) else []
    floating = [t for t in tensors if t.is_floating_point()]
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    if dtype is None:
        dtype = floating[0].dtype if floating else torch.get_default_dtype()
    return torch.device(device), dtype


def random_inputs(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def centre_gradient(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, output_index: tuple[int, int] | None
) -> torch.Tensor:
    """``∂(Σ_c y[b, c, i, j]) / ∂x`` for each sample ``b``, shape of ``x``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = model(x)
        if not isinstance(y, torch.Tensor) or y.dim() != 4:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ShapeError(f"the model must return a feature map (B, C', H', W'), got {shape}")
        if output_index is None:
            i, j = y.shape[-2] // 2, y.shape[-1] // 2
        else:
            i, j = output_index
            if not (0 <= i < y.shape[-2] and 0 <= j < y.shape[-1]):
                raise ShapeError(
                    f"output_index={output_index} lies outside the output map of shape {tuple(y.shape[-2:])}"
                )
        # Samples do not interact in eval mode, so one backward pass gives every per-sample gradient.
        (grad,) = torch.autograd.grad(y[:, :, i, j].sum(), x)
    return grad


def check_index(output_index: object) -> tuple[int, int] | None:
    if output_index is None:
        return None
    if not isinstance(output_index, Sequence) or isinstance(output_index, str) or len(output_index) != 2:
        raise ParameterError(f"output_index must be a pair (row, col) of the output map, got {output_index!r}")
    return check_int("output_index[0]", output_index[0]), check_int("output_index[1]", output_index[1])
