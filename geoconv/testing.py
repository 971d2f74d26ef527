r"""Assertions for plugin authors: the op contract and equivariance.

Two functions a test suite calls, as e3nn ships ``assert_equivariant``:

- :func:`assert_op_contract` builds a registered op (built-in or a plugin's) on a grid and
  checks the contract every op keeps: output in the grid's layout, finite, independent
  across the batch, differentiable, usable in float64, restorable from its state dict,
  and refusing bad input with a :class:`~geoconv.errors.GeoconvError` that names the
  shape. geoconv's own test suite runs it over every registered op and grid.
- :func:`assert_equivariant` measures :math:`\lVert F(Tx) - T'F(x)\rVert` on inputs and
  fails when it exceeds the tolerance; it returns the measured relative error.

Both raise :class:`AssertionError` with a message that says what broke, so they work in
pytest, unittest and plain scripts alike.

Examples
--------
>>> import torch
>>> from geoconv import build_op
>>> from geoconv.testing import assert_equivariant, assert_op_contract
>>> assert_op_contract("conv", "healpix", affine=True)
>>> conv = build_op("conv", 2, 3, padding_mode="circular")
>>> shift = lambda x: torch.roll(x, shifts=(2, 3), dims=(-2, -1))
>>> assert_equivariant(conv, shift, input_shape=(2, 2, 8, 8)) < 1e-6
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import GeoconvError, ParameterError
from geoconv.grids import get_grid
from geoconv.ops.registry import OpSpec, get_op

__all__ = ["assert_equivariant", "assert_op_contract"]

Transform = Callable[[torch.Tensor], torch.Tensor]


class _Stop(Exception):
    """A check found a failure that makes the checks after it meaningless."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _names_shape(message: str, shape: Sequence[int]) -> bool:
    # (4, 8, 8) as tuple(x.shape) prints it, or [4, 8, 8] as a list or torch.Size does.
    dims = ", ".join(str(int(d)) for d in shape)
    return f"({dims})" in message or f"[{dims}]" in message


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> tuple[bool, float]:
    """Whether ``a`` and ``b`` agree elementwise, and the largest absolute difference."""
    if a.shape != b.shape:
        return False, math.inf
    if a.numel() == 0:
        return True, 0.0
    a, b = a.detach().double(), b.detach().double()
    diff = (a - b).abs()
    return bool((diff <= atol + rtol * b.abs()).all()), float(diff.max())


class _OpContract:
    """One run of the op contract: each check appends its failures to :attr:`failures`."""

    def __init__(
        self,
        spec: OpSpec,
        grid: str,
        in_channels: int,
        out_channels: int,
        size: int,
        batch: int,
        params: Mapping[str, Any],
        seed: int,
        rtol: float,
        atol: float,
    ) -> None:
        self.spec, self.grid, self.layout = spec, grid, get_grid(grid)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.batch, self.size, self.params, self.seed = batch, size, dict(params), seed
        self.rtol, self.atol = rtol, atol
        self.failures: list[str] = []
        generator = torch.Generator().manual_seed(seed + 1)
        self.x = torch.randn(self.layout.shape(batch, in_channels, size), generator=generator)

    # -- helpers -------------------------------------------------------------------------

    def fail(self, check: str, message: str) -> None:
        self.failures.append(f"{check}: {message}")

    def build(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        try:
            module = self.spec.build(self.in_channels, self.out_channels, grid=self.grid, **self.params)
        except GeoconvError:
            raise  # a bad op name, grid or parameter is the caller's mistake, not a broken op
        except Exception as exc:
            self.fail("build", f"build_op raised {_describe(exc)}")
            raise _Stop from exc
        if not isinstance(module, nn.Module):
            self.fail("build", f"the factory must return a torch.nn.Module, got {type(module).__name__}")
            raise _Stop
        # Eval mode: dropout and batch statistics off, where an op's output is a function of its input.
        return module.eval()

    def run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = self.spec.apply(module, x)
        # Ops with extra outputs (max_pool(return_indices=True)) return the signal first.
        return out[0] if isinstance(out, tuple) else out

    def forward(self, check: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Run the op; an exception is a failure of ``check`` that stops the checks after it."""
        try:
            return self.run(module, x)
        except Exception as exc:
            self.fail(check, f"the op raised {_describe(exc)} on an input of shape {tuple(x.shape)}")
            raise _Stop from exc

    # -- the checks ----------------------------------------------------------------------

    def check_output(self, module: nn.Module) -> torch.Tensor:
        x = self.x
        y = self.forward("forward", module, x)
        if not isinstance(y, torch.Tensor):
            self.fail("forward", f"the op must return a torch.Tensor, got {type(y).__name__}")
            raise _Stop
        try:
            self.layout.check(y, name="output")
        except GeoconvError as exc:
            self.fail("layout", f"the output is not in grid {self.grid!r}'s layout {self.layout.layout}: {exc}")
            raise _Stop from exc
        expected = (self.batch, self.out_channels)
        if tuple(y.shape[:2]) != expected:
            self.fail(
                "layout",
                f"the output's (batch, channels) must be {expected} (batch {self.batch}, out_channels "
                f"{self.out_channels}), got shape {tuple(y.shape)}",
            )
            raise _Stop
        if y.dtype != x.dtype:
            self.fail("dtype", f"a {x.dtype} input must give a {x.dtype} output, got {y.dtype}")
        if not bool(torch.isfinite(y).all()):
            bad = int((~torch.isfinite(y)).sum())
            self.fail("finite", f"{bad} of {y.numel()} output values are NaN or Inf for a finite random input")
        return y

    def check_batch_independence(self, module: nn.Module, y: torch.Tensor) -> None:
        for i in range(self.batch):
            item = self.run(module, self.x[i : i + 1])
            ok, worst = _close(item, y[i : i + 1], self.rtol, self.atol)
            if not ok:
                self.fail(
                    "batch independence",
                    f"the output for batch item {i} alone differs from item {i} of the batch's output "
                    f"(largest difference {worst:.3g}); the op must not mix the items of a batch",
                )
                return

    def check_affine(self, module: nn.Module) -> None:
        # F(a x + (1 - a) x') = a F(x) + (1 - a) F(x') holds for linear and affine (biased) ops alike.
        other = torch.randn(self.x.shape, generator=torch.Generator().manual_seed(self.seed + 2))
        a = 0.3
        mixed = self.run(module, a * self.x + (1 - a) * other)
        expected = a * self.run(module, self.x) + (1 - a) * self.run(module, other)
        ok, worst = _close(mixed, expected, self.rtol, self.atol)
        if not ok:
            self.fail(
                "affine",
                f"F(0.3 x + 0.7 x') differs from 0.3 F(x) + 0.7 F(x') by up to {worst:.3g}; "
                "the op was declared affine (affine=True)",
            )

    def check_gradients(self, module: nn.Module) -> None:
        x = self.x.clone().requires_grad_(True)
        y = self.forward("gradients", module, x)
        if not y.requires_grad:
            self.fail("gradients", "the output does not require grad: the op cuts the graph (detach, no_grad, numpy)")
            return
        # A random projection, so that no op can pass by returning a constant.
        weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(self.seed + 3), dtype=y.dtype)
        (y * weights).sum().backward()
        if x.grad is None or not bool(x.grad.abs().sum() > 0):
            self.fail("gradients", "no gradient reaches the input: the output must depend on it differentiably")
        elif not bool(torch.isfinite(x.grad).all()):
            self.fail("gradients", "the input's gradient holds NaN or Inf")
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            if param.grad is None:
                self.fail("gradients", f"no gradient reaches parameter {name!r}")
            elif not bool(torch.isfinite(param.grad).all()):
                self.fail("gradients", f"the gradient of parameter {name!r} holds NaN or Inf")

    def check_float64(self, module: nn.Module, y: torch.Tensor) -> None:
        try:
            module64 = copy.deepcopy(module).to(torch.float64)
            y64 = self.run(module64, self.x.double())
        except Exception as exc:
            self.fail("float64", f"module.to(torch.float64) on a float64 input raised {_describe(exc)}")
            return
        if y64.dtype != torch.float64:
            self.fail("float64", f"a float64 module and input must give a float64 output, got {y64.dtype}")
            return
        ok, worst = _close(y64, y.double(), self.rtol, self.atol)
        if not ok:
            self.fail("float64", f"the float64 output differs from the float32 one by up to {worst:.3g}")

    def check_state_dict(self, y: torch.Tensor) -> None:
        target = self.build(self.seed + 1000)
        try:
            target.load_state_dict(self.build(self.seed).state_dict())
        except Exception as exc:
            self.fail("state_dict", f"load_state_dict(state_dict()) raised {_describe(exc)}")
            return
        if not torch.equal(self.run(target, self.x), y):
            self.fail(
                "state_dict",
                "a module of another seed with this one's state_dict loaded computes something else: "
                "state the output depends on is not saved (a non-persistent random buffer?)",
            )

    def check_deterministic(self, y: torch.Tensor) -> None:
        again = self.run(self.build(self.seed), self.x)
        if not torch.equal(again, y):
            self.fail("determinism", f"two builds under torch.manual_seed({self.seed}) compute different outputs")

    def check_empty_batch(self, module: nn.Module) -> None:
        x = torch.zeros(self.layout.shape(0, self.in_channels, self.size))
        try:
            y = self.run(module, x)
        except GeoconvError:
            return  # refusing an empty batch with a clear error is allowed
        except Exception as exc:
            self.fail("empty batch", f"an empty batch must work or raise GeoconvError; it raised {_describe(exc)}")
            return
        if not isinstance(y, torch.Tensor) or y.shape[0] != 0:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            self.fail("empty batch", f"an empty batch must give an empty batch, got {shape}")

    def check_refuses(self, module: nn.Module) -> None:
        wrong_channels = torch.randn(self.layout.shape(self.batch, self.in_channels + 1, self.size))
        for check, bad in (("wrong rank", self.x[0]), ("wrong channels", wrong_channels)):
            shape = tuple(bad.shape)
            try:
                self.run(module, bad)
            except GeoconvError as exc:
                if not _names_shape(str(exc), shape):
                    self.fail(check, f"the GeoconvError for an input of shape {shape} must name that shape: {exc}")
                continue
            except Exception as exc:
                self.fail(check, f"an input of shape {shape} must raise GeoconvError, not {_describe(exc)}")
                continue
            self.fail(
                check,
                f"an input of shape {shape} (the op expects {self.in_channels} channels in grid {self.grid!r}'s "
                f"layout {self.layout.layout}) was accepted; it must raise GeoconvError naming the shape",
            )

    def run_all(self, affine: bool) -> None:
        try:
            module = self.build(self.seed)
            y = self.check_output(module)
        except _Stop:
            return
        checks: list[tuple[str, Callable[[], None]]] = [
            ("batch independence", lambda: self.check_batch_independence(module, y)),
            ("affine", lambda: self.check_affine(module) if affine else None),
            ("gradients", lambda: self.check_gradients(module)),
            ("float64", lambda: self.check_float64(module, y)),
            ("state_dict", lambda: self.check_state_dict(y)),
            ("determinism", lambda: self.check_deterministic(y)),
            ("empty batch", lambda: self.check_empty_batch(module)),
            ("invalid input", lambda: self.check_refuses(module)),
        ]
        for name, check in checks:
            try:
                check()
            except _Stop:
                return
            except Exception as exc:  # an op that breaks inside a check fails that check, not the caller
                self.fail(name, f"the op raised {_describe(exc)}")


def assert_op_contract(
    op_name: str,
    grid: str = "planar",
    *,
    in_channels: int = 3,
    out_channels: int | None = None,
    size: int = 8,
    batch: int = 3,
    params: Mapping[str, Any] | None = None,
    affine: bool = False,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Check that the registered op ``op_name`` keeps geoconv's op contract on ``grid``.

    The op is built through the registry (``build_op(op_name, in_channels, out_channels,
    grid, **params)``), put in eval mode and driven through its spec's ``apply`` (so ops
    with extra inputs, such as ``max_unpool``, work) on random inputs of shape
    ``grid.shape(batch, in_channels, size)``. It must:

    1. return a tensor that ``grid.check`` accepts, with ``batch`` items and
       ``out_channels`` channels, of the input's dtype;
    2. be finite for a finite input;
    3. treat the items of a batch independently: the output for each item alone equals
       that item of the batch's output (to ``rtol``/``atol``);
    4. if ``affine``: satisfy ``F(a x + (1 - a) x') = a F(x) + (1 - a) F(x')``;
    5. pass gradients to the input (nonzero, finite) and to every trainable parameter;
    6. work after ``.to(torch.float64)``, giving a float64 output close to the float32 one;
    7. compute the same after a ``state_dict`` round trip into a module of another seed,
       and the same for two builds under one seed;
    8. on an empty batch (``B = 0``), return an empty batch or raise ``GeoconvError``;
    9. refuse an input of the wrong rank and one with ``in_channels + 1`` channels with a
       ``GeoconvError`` whose message names the shape it got.

    The global random state is left as it was.

    Parameters
    ----------
    op_name : str
        A registered op (``geoconv.list_ops()``), plugins included.
    grid : str
        A registered grid the op supports.
    in_channels, out_channels : int
        Channel counts; ``out_channels`` defaults to ``in_channels + 2`` (to catch an op
        that mixes the two up), or ``in_channels`` for a pooling-type op.
    size : int
        The grid's resolution parameter (image side, equirect height, face side, nside).
    batch : int
        Batch size of the inputs (>= 1).
    params : mapping, optional
        Config fields of the op (``build_op``'s keyword arguments).
    affine : bool
        The op is linear or affine (a convolution with bias, a linear resampling, average
        pooling): also check item 4. ``max_pool`` and gated ops are not.
    seed : int
        Seeds the weights and the inputs.
    rtol, atol : float
        Tolerances of the value comparisons (float32 computations).

    Raises
    ------
    AssertionError
        Listing every broken clause of the contract, each with what was seen.
    GeoconvError
        For an unknown op or grid, a grid the op does not support, or bad ``params``.

    Examples
    --------
    >>> from geoconv.testing import assert_op_contract
    >>> assert_op_contract("conv", "planar", affine=True, params={"kernel_size": 5})
    >>> assert_op_contract("max_unpool", "cubemap")
    >>> assert_op_contract("max_pool", "planar", affine=True)
    Traceback (most recent call last):
    ...
    AssertionError: op 'max_pool' on grid 'planar' breaks the op contract:
      - affine: F(0.3 x + 0.7 x') differs from 0.3 F(x) + 0.7 F(x') by up to ...
    """
    spec = get_op(op_name)
    spec.check_grid(grid)
    in_channels = check_int("in_channels", in_channels, minimum=1)
    if out_channels is None:
        out_channels = in_channels if spec.same_channels else in_channels + 2
    out_channels = check_int("out_channels", out_channels, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    check_int("seed", seed, minimum=0)
    contract = _OpContract(
        spec, grid, in_channels, out_channels, size, batch, params or {}, seed, float(rtol), float(atol)
    )
    with torch.random.fork_rng(devices=[]):
        contract.run_all(affine)
    if contract.failures:
        raise AssertionError(
            f"op {op_name!r} on grid {grid!r} breaks the op contract:\n"
            + "\n".join(f"  - {failure}" for failure in contract.failures)
        )


def _as_inputs(
    inputs: torch.Tensor | Sequence[torch.Tensor] | None,
    input_shape: Sequence[int] | None,
    n_inputs: int,
    dtype: torch.dtype,
    seed: int,
) -> list[torch.Tensor]:
    if (inputs is None) == (input_shape is None):
        raise ParameterError("assert_equivariant needs exactly one of inputs= (tensors) and input_shape= (a shape)")
    if inputs is not None:
        listed = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        if not listed or not all(isinstance(x, torch.Tensor) for x in listed):
            raise ParameterError(f"inputs must be a tensor or a non-empty sequence of tensors, got {inputs!r}")
        return listed
    shape = tuple(check_int(f"input_shape[{i}]", d, minimum=1) for i, d in enumerate(input_shape or ()))
    if not shape:
        raise ParameterError(f"input_shape must be a non-empty sequence of ints >= 1, got {input_shape!r}")
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=dtype) for _ in range(n_inputs)]


def _module_dtype(module: object) -> torch.dtype:
    if isinstance(module, nn.Module):
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.get_default_dtype()


def assert_equivariant(
    module: Callable[[torch.Tensor], torch.Tensor],
    transform_in: Transform,
    transform_out: Transform | None = None,
    *,
    inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
    n_inputs: int = 3,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> float:
    r"""Check that ``module`` commutes with a transformation: :math:`F(T x) = T' F(x)`.

    For each input :math:`x` it computes :math:`a = F(T x)` and :math:`b = T' F(x)` and
    requires :math:`\lVert a - b\rVert \le \mathrm{atol} + \mathrm{rtol}\,\lVert b\rVert`
    (Frobenius norms over the whole tensor, so ``atol`` bounds the norm of the difference).
    Gradients are off; put a module with dropout or batch statistics in eval mode first.

    Parameters
    ----------
    module : callable
        :math:`F`: a ``torch.nn.Module`` or any function of one tensor.
    transform_in : callable
        :math:`T`, applied to the input (``lambda x: torch.roll(x, 3, -1)``).
    transform_out : callable, optional
        :math:`T'`, applied to the output; defaults to ``transform_in``. Use the identity
        (``lambda y: y``) to check invariance.
    inputs : tensor or sequence of tensors, optional
        The inputs :math:`x`; give this or ``input_shape``.
    input_shape : sequence of int, optional
        Draw ``n_inputs`` standard normal inputs of this shape instead.
    n_inputs : int
        How many random inputs ``input_shape`` draws.
    atol, rtol : float
        Absolute (a norm) and relative tolerances.
    seed : int
        Seeds the random inputs; the global random state is not touched.
    dtype : torch.dtype, optional
        The random inputs' dtype; defaults to that of the module's first floating
        parameter or buffer, else ``torch.get_default_dtype()``.

    Returns
    -------
    float
        The largest relative error :math:`\lVert a - b\rVert / \lVert b\rVert` over the
        inputs (the absolute error where :math:`b = 0`).

    Raises
    ------
    AssertionError
        When an error exceeds the tolerance, when :math:`F(Tx)` and :math:`T'F(x)` differ
        in shape, or when either holds NaN or Inf.
    GeoconvError
        For bad arguments (both or neither of ``inputs`` and ``input_shape``, ...).

    Examples
    --------
    A convolution with circular padding commutes with circular shifts; with zero padding
    it does not (the border breaks it):

    >>> import torch
    >>> from geoconv import build_op
    >>> from geoconv.testing import assert_equivariant
    >>> shift = lambda x: torch.roll(x, shifts=(2, 3), dims=(-2, -1))
    >>> circular = build_op("conv", 2, 3, padding_mode="circular")
    >>> assert_equivariant(circular, shift, input_shape=(2, 2, 8, 8)) < 1e-6
    True
    >>> zeros = build_op("conv", 2, 3, padding_mode="zeros")
    >>> assert_equivariant(zeros, shift, input_shape=(2, 2, 8, 8))
    Traceback (most recent call last):
    ...
    AssertionError: not equivariant: ...

    The sum over pixels is invariant under shifts (:math:`T'` the identity):

    >>> assert_equivariant(lambda x: x.sum((-2, -1)), shift, lambda y: y, input_shape=(1, 2, 8, 8)) < 1e-6
    True
    """
    if not callable(module) or not callable(transform_in):
        raise ParameterError("module and transform_in must be callables taking and returning a tensor")
    if transform_out is None:
        transform_out = transform_in
    elif not callable(transform_out):
        raise ParameterError(f"transform_out must be a callable (or None for transform_in), got {transform_out!r}")
    n_inputs = check_int("n_inputs", n_inputs, minimum=1)
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ParameterError(f"{name} must be a number >= 0, got {value!r}")
    check_int("seed", seed, minimum=0)
    xs = _as_inputs(inputs, input_shape, n_inputs, dtype or _module_dtype(module), seed)
    worst = 0.0
    with torch.no_grad():
        for index, x in enumerate(xs):
            a = module(transform_in(x))
            b = transform_out(module(x))
            if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
                raise AssertionError(
                    f"F(T x) and T' F(x) must be tensors, got {type(a).__name__} and {type(b).__name__}"
                )
            if a.shape != b.shape:
                raise AssertionError(
                    f"F(T x) has shape {tuple(a.shape)} but T' F(x) has shape {tuple(b.shape)} "
                    f"(input {index} of shape {tuple(x.shape)}); is T' the transformation of the output?"
                )
            if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
                raise AssertionError(f"F(T x) or T' F(x) holds NaN or Inf (input {index} of shape {tuple(x.shape)})")
            error = float(torch.linalg.vector_norm((a - b).double()))
            scale = float(torch.linalg.vector_norm(b.double()))
            relative = error / scale if scale > 0 else error
            worst = max(worst, relative)
            if error > atol + rtol * scale:
                raise AssertionError(
                    f"not equivariant: ||F(T x) - T' F(x)|| = {error:.3g} for input {index} of shape "
                    f"{tuple(x.shape)}, relative error {relative:.3g} (||T' F(x)|| = {scale:.3g}); "
                    f"allowed: atol {atol:g} + rtol {rtol:g} * ||T' F(x)||"
                )
    return worst
