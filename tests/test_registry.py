"""The registry: registration, lookup, validation of names, parameters, types and grids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import geoconv
from geoconv.errors import GeoconvError, ParameterError, RegistryError, UnknownNameError
from geoconv.ops.registry import get_op, list_ops, register_op, unregister_op


@dataclass
class ShiftConfig:
    """Attributes
    ----------
    offset : float
        Added to every value.
    """

    offset: float = 1.0
    mode: Literal["add", "sub"] = "add"
    sizes: tuple[int, ...] = (1,)


class Shift(torch.nn.Module):
    """Add a constant (a test op)."""

    def __init__(self, in_channels: int, out_channels: int, grid: str = "planar", config: ShiftConfig | None = None):
        super().__init__()
        self.config = config or ShiftConfig()
        self.in_channels, self.out_channels, self.grid = in_channels, out_channels, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sign = 1.0 if self.config.mode == "add" else -1.0
        return x + sign * self.config.offset


@pytest.fixture
def shift_op():
    register_op("test_shift", grids=("planar",), config=ShiftConfig, same_channels=True)(Shift)
    yield "test_shift"
    unregister_op("test_shift")


def test_public_api_names() -> None:
    for name in ("list_ops", "get_op", "build_op", "register_op", "GeoconvError"):
        assert hasattr(geoconv, name)
    assert issubclass(geoconv.GeoconvError, ValueError)


def test_register_build_and_compute(shift_op: str) -> None:
    op = geoconv.build_op(shift_op, 3, offset=2.5)
    x = torch.zeros(1, 3, 2, 2)
    assert torch.equal(op(x), torch.full_like(x, 2.5))
    assert op.config == ShiftConfig(offset=2.5)
    spec = get_op(shift_op)
    assert spec.summary == "Add a constant (a test op)."
    assert spec.source == "geoconv"
    assert [p.name for p in spec.parameters()] == ["offset", "mode", "sizes"]
    assert spec.parameters()[0].type == "float" and spec.parameters()[0].default == 1.0


def test_int_is_accepted_for_float_and_list_for_tuple(shift_op: str) -> None:
    op = geoconv.build_op(shift_op, 1, offset=3, sizes=[1, 2, 3])
    assert op.config.offset == 3.0 and isinstance(op.config.offset, float)
    assert op.config.sizes == (1, 2, 3)


def test_list_ops_pattern_and_grid(shift_op: str) -> None:
    names = list_ops()
    assert names == sorted(names)
    assert list_ops("test_sh*") == ["test_shift"]
    assert list_ops("no_such_*") == []
    assert "test_shift" in list_ops(grid="planar")
    assert "test_shift" not in list_ops(grid="healpix")


def test_duplicate_name_raises_unless_override(shift_op: str) -> None:
    class Other(Shift):
        """Another shift."""

    with pytest.raises(RegistryError, match="already registered.*override=True"):
        register_op("test_shift", config=ShiftConfig)(Other)
    assert get_op("test_shift").factory is Shift  # nothing was replaced

    register_op("test_shift", config=ShiftConfig, override=True)(Other)
    assert get_op("test_shift").factory is Other


def test_reimporting_the_same_definition_is_not_a_duplicate(shift_op: str) -> None:
    # What importlib.reload does: the same module and qualified name, a new object.
    reloaded = type("Shift", (Shift,), {"__module__": Shift.__module__, "__qualname__": Shift.__qualname__})
    register_op("test_shift", config=ShiftConfig, same_channels=True)(reloaded)
    assert get_op("test_shift").factory is reloaded


def test_unknown_op_suggests_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown op: 'cnov'; did you mean 'conv'") as info:
        geoconv.build_op("cnov", 3)
    assert info.value.suggestions[0] == "conv"
    assert "conv_transpose" in info.value.choices


def test_unknown_parameter_names_it_and_suggests(shift_op: str) -> None:
    with pytest.raises(UnknownNameError, match=r"parameter of op 'test_shift': 'ofset'.*did you mean 'offset'"):
        geoconv.build_op(shift_op, 3, ofset=1.0)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"offset": "1.0"}, r"test_shift.offset must be of type float, got '1.0' \(str\)"),
        ({"offset": True}, r"test_shift.offset must be of type float"),
        ({"mode": "mul"}, r"test_shift.mode must be of type 'add' \| 'sub', got 'mul'"),
        ({"sizes": [1, "a"]}, r"test_shift.sizes must be of type tuple\[int, \.\.\.\]"),
    ],
)
def test_wrong_types_are_named(shift_op: str, params: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        geoconv.build_op(shift_op, 3, **params)


def test_channels_are_checked(shift_op: str) -> None:
    with pytest.raises(ParameterError, match="in_channels must be an integer >= 1, got 0"):
        geoconv.build_op(shift_op, 0)
    with pytest.raises(ParameterError, match="out_channels must equal in_channels"):
        geoconv.build_op(shift_op, 3, 4)
    assert geoconv.build_op(shift_op, 3, 3).in_channels == 3


def test_unsupported_grid_lists_supported_ones(shift_op: str) -> None:
    with pytest.raises(
        UnknownNameError, match=r"op 'test_shift' does not support grid 'healpix'; it supports 'planar'"
    ):
        geoconv.build_op(shift_op, 3, grid="healpix")
    with pytest.raises(UnknownNameError, match=r"unknown grid: 'plane'; did you mean 'planar'"):
        geoconv.build_op(shift_op, 3, grid="plane")


def test_register_validates_its_arguments() -> None:
    with pytest.raises(ParameterError, match="must be a dataclass"):
        register_op("bad_config", config=dict)
    with pytest.raises(UnknownNameError, match="grid for op 'bad_grid'"):
        # Not "torus": the example grid plugin registers that one where it is installed.
        register_op("bad_grid", grids=("not_a_registered_grid",), config=ShiftConfig)
    with pytest.raises(ParameterError, match="op name"):
        register_op("has space", config=ShiftConfig)
    assert "bad_config" not in list_ops() and "bad_grid" not in list_ops()


def test_required_field_must_be_given() -> None:
    @dataclass
    class NeedsWidth:
        width: int

    register_op("test_needs_width", config=NeedsWidth)(Shift)
    try:
        with pytest.raises(ParameterError, match="needs parameter\\(s\\) width"):
            geoconv.build_op("test_needs_width", 1)
    finally:
        unregister_op("test_needs_width")


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=12))
def test_any_unknown_name_raises_geoconv_error(name: str) -> None:
    if name in list_ops():
        return
    with pytest.raises(GeoconvError) as info:
        get_op(name)
    assert repr(name) in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(
        st.integers(-5, 5),
        st.floats(allow_nan=False),
        st.text(max_size=4),
        st.booleans(),
        st.none(),
        st.lists(st.integers(-2, 6), max_size=5),
    )
)
def test_any_kernel_size_value_builds_or_names_the_parameter(value: object) -> None:
    try:
        conv = geoconv.build_op("conv", 2, 2, kernel_size=value)
    except GeoconvError as err:
        assert "kernel_size" in str(err)
    else:
        kh, kw = conv.weight.shape[-2:]
        expected = (value, value) if isinstance(value, int) else tuple(value)
        assert (kh, kw) == expected
