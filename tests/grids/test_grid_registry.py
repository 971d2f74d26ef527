"""Bad grid plugins are refused with messages that name the problem, and the registry keeps working.

Also the layout messages a new user meets first: a flat healpy map where faces are expected
is told about ``ring_to_faces`` / ``nest_to_faces``; a tensor of the wrong rank on a
spherical grid is told that grid's layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import geoconv
from geoconv.errors import ParameterError, RegistryError, ShapeError, UnknownNameError
from geoconv.grids import Grid, get_grid, list_grids, register_grid, spherical_grids, unregister_grid
from geoconv.grids.planar import PLANAR_PADDING_MODES, PlanarGrid, pad_planes
from geoconv.grids.registry import BUILTIN_GRIDS, GRIDS
from geoconv.registry import PluginWarning
from tests.grids.conftest import EXAMPLE_DIST, EXAMPLE_GRID, ROOT, install_example, write_distribution


class Flat(Grid):
    """A complete one-face grid without a name: what a plugin writes, for the tests to register."""

    layout = "(B, C, H, W)"
    padding_modes = PLANAR_PADDING_MODES
    default_padding_mode = "zeros"

    def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
        return (batch, channels, size, size)

    def check(self, x: object, name: str = "x") -> torch.Tensor:
        return PlanarGrid().check(x, name)

    def pad(self, x: torch.Tensor, widths: object, mode: str | None = None, value: float = 0.0) -> torch.Tensor:
        return pad_planes(self.check(x), widths, self.check_mode(mode), value)

    def to_planes(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def from_planes(self, y: torch.Tensor, batch: int) -> torch.Tensor:
        return y


@pytest.fixture
def registry_unchanged():
    """Assert that the test leaves the registered grids as they were (and remove any it added)."""
    before = {name: GRIDS.get(name) for name in list_grids()}
    yield
    for name in list_grids():
        if name not in before:
            unregister_grid(name)
    assert {name: GRIDS.get(name) for name in list_grids()} == before


def _registry_works() -> None:
    assert set(BUILTIN_GRIDS) <= set(list_grids())
    x = torch.arange(12.0).view(1, 1, 12, 1, 1)
    assert get_grid("healpix").pad(x, 1).shape == (1, 1, 12, 3, 3)
    assert geoconv.build_op("conv", 1, 2, grid="planar")(torch.zeros(1, 1, 4, 4)).shape == (1, 2, 4, 4)


# -- registering ------------------------------------------------------------------------------


def test_a_registered_grid_class_becomes_a_grid_choice_everywhere(registry_unchanged) -> None:
    class Square(Flat):
        pass

    assert register_grid("square_demo", Square) is Square
    grid = get_grid("square_demo")
    assert isinstance(grid, Square) and Square.name == "square_demo"
    assert "square_demo" in list_grids() and "square_demo" not in spherical_grids()
    assert register_grid("square_demo", Square) is Square  # the same class again (a module imported twice): no error
    assert type(get_grid("square_demo")) is Square
    conv = geoconv.build_op("conv", 1, 1, grid="square_demo", kernel_size=3, bias=False)
    torch.nn.init.ones_(conv.weight)
    # zeros padding (the grid's default): a 3x3 box sum of ones is 4 in the corners, 6 on edges, 9 inside.
    out = conv(torch.ones(1, 1, 3, 3))[0, 0]
    assert out.tolist() == [[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]
    with pytest.raises(UnknownNameError, match="did you mean 'square_demo'"):
        get_grid("square_dem")


def test_a_taken_name_is_refused_and_the_class_is_left_as_it_was(registry_unchanged) -> None:
    class Clash(Flat):
        pass

    with pytest.raises(RegistryError, match=r"a grid named 'healpix' is already registered \(from geoconv\)") as err:
        register_grid("healpix", Clash)
    assert "override=True" in str(err.value)
    assert getattr(Clash, "name", None) is None  # no name left behind by the refused registration
    assert type(get_grid("healpix")).__name__ == "HealpixGrid"
    _registry_works()


def test_a_class_named_otherwise_is_refused(registry_unchanged) -> None:
    class Named(Flat):
        name = "named_demo"

    with pytest.raises(RegistryError, match="is named 'named_demo'; register it as 'named_demo', not 'other_demo'"):
        register_grid("other_demo", Named)
    _registry_works()


def test_a_class_missing_required_methods_is_refused_naming_them(registry_unchanged) -> None:
    class Half(Grid):
        layout = "(B, C, H, W)"
        padding_modes = ("zeros",)
        default_padding_mode = "zeros"

        def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
            return (batch, channels, size, size)

    with pytest.raises(ParameterError) as err:
        register_grid("half_demo", Half)
    message = str(err.value)
    assert "grid class Half (registering 'half_demo') does not implement the required method(s)" in message
    assert "check, from_planes, pad, to_planes of geoconv.grids.Grid" in message
    assert "half_demo" not in list_grids()
    _registry_works()


@pytest.mark.parametrize("thing", [object, PlanarGrid(), "planar", 3])
def test_anything_but_a_grid_subclass_is_refused(registry_unchanged, thing: object) -> None:
    with pytest.raises(ParameterError, match=r"register_grid\('thing_demo', \.\.\.\) needs a subclass of geoconv"):
        register_grid("thing_demo", thing)  # type: ignore[arg-type]
    _registry_works()


def test_missing_class_attributes_and_a_bad_default_size_are_refused(registry_unchanged) -> None:
    class Tiny(Flat):
        default_size = 0

        def shape(self, batch: int, channels: int, size: int) -> tuple[int, ...]:
            if size < 1:
                raise ParameterError(f"size must be >= 1, got {size}")
            return (batch, channels, size, size)

    with pytest.raises(ParameterError, match=r"default_size=0 is not a size its shape\(\) accepts \(size must be >= 1"):
        register_grid("tiny_demo", Tiny)
    assert getattr(Tiny, "name", None) is None

    class Bare(Grid):
        def shape(self, batch, channels, size):
            return (batch, channels, size, size)

        check = pad = to_planes = from_planes = Flat.to_planes  # present, but no layout and no modes

    with pytest.raises(ParameterError, match="must set the class attribute 'layout'"):
        register_grid("bare_demo", Bare)
    with pytest.raises(ParameterError, match="grid name must be a non-empty string of letters"):
        register_grid("my grid", Flat)
    _registry_works()


# -- plugins ----------------------------------------------------------------------------------


def test_a_grid_plugin_that_fails_to_import_warns_and_the_rest_work(grid_site: Path) -> None:
    install_example(grid_site)
    (grid_site / "broken_grid_plugin.py").write_text('raise RuntimeError("broken on purpose")\n', encoding="utf-8")
    write_distribution(grid_site, "geoconv-broken-grid-plugin", {"broken": "broken_grid_plugin"})
    with pytest.warns(PluginWarning) as record:
        loaded = GRIDS.load_plugins(reload=True)
    messages = [str(w.message) for w in record if issubclass(w.category, PluginWarning)]
    assert len(messages) == 1
    for needle in ("'broken'", "broken_grid_plugin", "geoconv-broken-grid-plugin", "'geoconv.grids'", "grids are"):
        assert needle in messages[0]
    assert "RuntimeError: broken on purpose" in messages[0]
    assert "broken" not in loaded and EXAMPLE_GRID in loaded  # the other plugin is unaffected
    assert GRIDS.source(EXAMPLE_GRID) == EXAMPLE_DIST
    _registry_works()


def test_a_grid_plugin_reusing_a_builtin_name_warns_and_does_not_replace_it(grid_site: Path) -> None:
    original = get_grid("healpix")
    (grid_site / "clashing_grid_plugin.py").write_text(
        "from geoconv.grids import register_grid\n"
        "from geoconv.grids.planar import PlanarGrid\n\n\n"
        "class NotHealpix(PlanarGrid):\n"
        "    name = 'healpix'\n\n\n"
        "register_grid('healpix', NotHealpix)\n",
        encoding="utf-8",
    )
    write_distribution(grid_site, "geoconv-clashing-grid-plugin", {"clash": "clashing_grid_plugin"})
    with pytest.warns(PluginWarning, match=r"'clash'.*geoconv-clashing-grid-plugin.*already registered"):
        loaded = GRIDS.load_plugins(reload=True)
    assert "clash" not in loaded
    assert get_grid("healpix") is original and GRIDS.source("healpix") == "geoconv"
    _registry_works()


def test_a_grid_entry_point_may_name_a_registering_function(grid_site: Path) -> None:
    (grid_site / "function_grid_plugin.py").write_text(
        "from geoconv.grids import register_grid\n"
        "from geoconv.grids.planar import PlanarGrid\n\n\n"
        "class Plane2(PlanarGrid):\n"
        "    name = 'plane2_demo'\n"
        "    default_padding_mode = 'replicate'\n\n\n"
        "def register():\n"
        "    register_grid('plane2_demo', Plane2)\n",
        encoding="utf-8",
    )
    write_distribution(grid_site, "geoconv-function-grid-plugin", {"plane2": "function_grid_plugin:register"})
    assert "plane2" in GRIDS.load_plugins(reload=True)
    assert GRIDS.source("plane2_demo") == "geoconv-function-grid-plugin"
    x = torch.arange(3.0).view(1, 1, 1, 3)
    assert get_grid("plane2_demo").pad(x, (0, 0, 1, 1))[0, 0].tolist() == [[0.0, 0.0, 1.0, 2.0, 2.0]]


# -- layout messages (issue 11, bug e) --------------------------------------------------------


@pytest.mark.parametrize(("nside", "lead"), [(1, (2, 3)), (4, (2, 3)), (8, (5,))])
def test_a_flat_healpix_map_is_told_how_to_make_faces(nside: int, lead: tuple[int, ...]) -> None:
    flat = torch.zeros(*lead, 12 * nside * nside)
    for check in (get_grid("healpix").check, geoconv.build_op("conv", 3, 4, grid="healpix")):
        with pytest.raises(ShapeError) as err:
            check(flat)
        message = str(err.value)
        assert f"got shape {tuple(flat.shape)}: a flat healpy map of 12 * nside**2 = {12 * nside * nside}" in message
        assert f"(nside {nside})" in message
        assert "geoconv.grids.healpix.ring_to_faces(map)" in message and "nest_to_faces(map)" in message
        assert "(B, C, 12, n, n)" in message
    # The functions named do make faces of it (RING order, healpy's default).
    assert get_grid("healpix").check(geoconv.grids.healpix.ring_to_faces(torch.zeros(2, 3, 12 * nside**2))) is not None


def test_a_last_dim_that_is_no_healpix_map_gets_the_plain_layout_message() -> None:
    with pytest.raises(ShapeError, match=r"must have shape \(B, C, 12, n, n\) on grid 'healpix' \(5 dims\)") as err:
        get_grid("healpix").check(torch.zeros(2, 3, 12 * 9))  # nside 3: not a power of two
    assert "ring_to_faces" not in str(err.value)


@pytest.mark.parametrize(
    ("grid", "shape", "layout"),
    [
        ("cubemap", (2, 3, 8, 16), r"\(B, C, 6, F, F\) on grid 'cubemap' \(5 dims\), got a 4-D tensor"),
        ("healpix", (2, 3, 4, 4), r"\(B, C, 12, n, n\) on grid 'healpix' \(5 dims\), got a 4-D tensor"),
        ("cubemap", (2, 3, 1, 6, 4, 4), r"\(B, C, 6, F, F\) on grid 'cubemap' \(5 dims\), got a 6-D tensor"),
        ("equirect", (2, 3, 6, 4, 4), r"\(B, C, H, W\) \(4 dims\), got a 5-D tensor"),
    ],
)
def test_a_wrong_rank_on_a_spherical_grid_states_that_grids_layout(grid: str, shape: tuple, layout: str) -> None:
    x = torch.zeros(shape)
    for check in (get_grid(grid).check, geoconv.build_op("conv", 3, 4, grid=grid)):
        with pytest.raises(ShapeError, match=r"x must have shape " + layout):
            check(x)
    if len(shape) == 4 and grid != "equirect":
        hint = rf"converts with geoconv\.grids\.convert\(x, 'equirect', '{grid}', size\)"
        with pytest.raises(ShapeError, match=hint):
            get_grid(grid).check(x)


# -- the Hydra group --------------------------------------------------------------------------


def test_every_builtin_grid_has_a_yaml_whose_size_is_its_default_size() -> None:
    for name in BUILTIN_GRIDS:
        node = yaml.safe_load((ROOT / "conf" / "grid" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert node == {"name": name, "size": get_grid(name).default_size}
        get_grid(name).shape(1, 1, node["size"])
