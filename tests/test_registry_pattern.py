"""geoconv._registry.Registry: the one registry pattern behind ops, grids, models, inputs and jobs.

Entry points are given here as :class:`importlib.metadata.EntryPoint` objects (what
:func:`importlib.metadata.entry_points` returns) naming modules written to a temporary
directory; ``test_plugins.py`` finds them through real distribution metadata for every
geoconv group.
"""

from __future__ import annotations

import sys
import threading
from importlib import metadata
from pathlib import Path

import pytest

from geoconv import _registry
from geoconv._registry import Lazy, PluginWarning, Registry, check_entry_name
from geoconv.errors import GeoconvError, ParameterError, RegistryError, UnknownNameError

GROUP = "geoconv_test.things"


@pytest.fixture
def things() -> Registry[object]:
    registry: Registry[object] = Registry("thing")
    for name, value in (("circle", 1), ("square", 4), ("triangle", 3)):
        registry.register(name, value)
    return registry


def test_register_get_and_list(things: Registry[object]) -> None:
    assert things.get("square") == 4
    assert things["triangle"] == 3
    assert things.names() == ["circle", "square", "triangle"]
    assert things.names("*le") == ["circle", "triangle"]
    assert list(things) == things.names() and len(things) == 3
    assert "circle" in things and "hexagon" not in things and 3 not in things
    assert things.source("circle") == "geoconv"
    assert repr(things) == "Registry('thing', 3 entries)"


def test_unknown_name_suggests_the_closest_and_lists_the_choices(things: Registry[object]) -> None:
    with pytest.raises(UnknownNameError) as info:
        things.get("sqaure")
    assert list(info.value.suggestions) == ["square"]
    assert str(info.value) == (
        "unknown thing: 'sqaure'; did you mean 'square'? Valid choices: 'circle', 'square', 'triangle'"
    )
    assert isinstance(info.value, GeoconvError) and isinstance(info.value, ValueError)
    assert things.get("sqaure", None) is None
    with pytest.raises(UnknownNameError, match="unknown thing: 5"):
        things.get(5)  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="did you mean 'circle'"):
        things.unregister("circel")


def test_a_taken_name_raises_unless_override(things: Registry[object]) -> None:
    with pytest.raises(RegistryError, match=r"a thing named 'square' is already registered \(from geoconv\)"):
        things.register("square", 5)
    assert things.get("square") == 4
    things.register("square", 5, override=True)
    assert things.get("square") == 5
    with things.registering_as("geoconv-shapes"):
        things.register("pentagon", 5)
    with pytest.raises(RegistryError, match=r"from geoconv-shapes"):
        things.register("pentagon", 6)


def test_the_same_definition_twice_is_not_a_clash(things: Registry[object]) -> None:
    # A module imported twice (importlib.reload, doctest collection) defines the function again:
    # a new object with the same module and qualified name.
    def make() -> object:
        def area() -> float:
            return 1.0

        return area

    first, second = make(), make()
    assert first is not second
    things.register("area", first)
    things.register("area", second)
    assert things.get("area") is second

    def area() -> float:  # another definition (another qualified name) under the taken name
        return 2.0

    with pytest.raises(RegistryError):
        things.register("area", area)


def test_a_custom_sameness_rule() -> None:
    registry: Registry[int] = Registry("number", same=lambda old, new: old % 10 == new % 10)
    registry.register("n", 13)
    registry.register("n", 23)  # "the same" by the rule
    assert registry.get("n") == 23
    with pytest.raises(RegistryError):
        registry.register("n", 14)


@pytest.mark.parametrize("name", ["", "two words", "slash/name", None, 3, "naïve✓"])
def test_invalid_names_are_refused(things: Registry[object], name: object) -> None:
    with pytest.raises(ParameterError, match="thing name must be a non-empty string"):
        things.register(name, 1)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        check_entry_name("thing", name)


@pytest.mark.parametrize("name", ["conv", "blur_pool", "plugin.op-2", "HEALPix"])
def test_valid_names(name: str) -> None:
    assert check_entry_name("thing", name) == name


def test_unregister_returns_the_entry(things: Registry[object]) -> None:
    assert things.unregister("circle") == 1
    assert "circle" not in things and things.names() == ["square", "triangle"]
    things.register("circle", 1)  # the name is free again


def test_mapping_access_lets_monkeypatch_swap_an_entry(things: Registry[object]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(things, "square", 16)
        patch.setitem(things, "hexagon", 6)
        assert things["square"] == 16 and things["hexagon"] == 6
    assert things["square"] == 4 and "hexagon" not in things
    del things["triangle"]
    assert "triangle" not in things


def test_lazy_entries_import_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_thing_module.py").write_text("VALUE = {'answer': 42}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_thing_module", raising=False)
    registry: Registry[object] = Registry("thing")
    lazy = Lazy("lazy_thing_module", "VALUE")
    registry.register("lazy", lazy)
    registry.register("lazy", Lazy("lazy_thing_module", "VALUE"))  # an equal Lazy is the same definition
    assert registry.names() == ["lazy"] and "lazy_thing_module" not in sys.modules  # listing does not import
    value = registry.get("lazy")
    assert value == {"answer": 42} and "lazy_thing_module" in sys.modules
    assert registry.get("lazy") is value  # imported once, then kept
    monkeypatch.delitem(sys.modules, "lazy_thing_module")


def test_concurrent_registration_loses_nothing() -> None:
    registry: Registry[int] = Registry("number")

    def register(start: int) -> None:
        for i in range(start, start + 50):
            registry.register(f"n{i}", i)

    threads = [threading.Thread(target=register, args=(50 * t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry) == 400 and all(registry.get(f"n{i}") == i for i in range(400))


# -- entry-point plugins -------------------------------------------------------------------------


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write plugin modules for :data:`GROUP` and serve their entry points as importlib.metadata would."""
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_points: list[metadata.EntryPoint] = []

    def add(name: str, value: str, source: str | None = None) -> None:
        if source is not None:
            module = value.split(":")[0]
            monkeypatch.delitem(sys.modules, module, raising=False)
            (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
        entry_points.append(metadata.EntryPoint(name=name, value=value, group=GROUP))

    def served(**selection: str) -> list[metadata.EntryPoint]:
        return [ep for ep in entry_points if ep.group == selection.get("group")]

    monkeypatch.setattr(_registry.metadata, "entry_points", served)
    yield add
    for ep in entry_points:
        sys.modules.pop(ep.value.split(":")[0], None)


@pytest.fixture
def shared_things(monkeypatch: pytest.MonkeyPatch) -> Registry[object]:
    """A registry plugin modules can reach (as ``test_shared_things.REGISTRY``)."""
    registry: Registry[object] = Registry("thing", GROUP)
    registry.register("circle", 1)
    holder = type(sys)("test_shared_things")
    holder.REGISTRY = registry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "test_shared_things", holder)
    return registry


def test_plugins_load_once_lazily_from_modules_and_functions(plugins, shared_things: Registry[object]) -> None:
    plugins("hexagon", "hexagon_plugin", "from test_shared_things import REGISTRY\nREGISTRY.register('hexagon', 6)\n")
    plugins(
        "octagon",
        "octagon_plugin:register",
        "from test_shared_things import REGISTRY\nCALLS = []\n"
        "def register():\n    CALLS.append(1)\n    REGISTRY.register('octagon', 8)\n",
    )
    assert shared_things.names() == ["circle", "hexagon", "octagon"]  # the first read loads the plugins
    assert shared_things.source("hexagon") == "hexagon_plugin"  # no distribution: the entry point's value
    assert shared_things.source("octagon") == "octagon_plugin:register"
    assert shared_things.source("circle") == "geoconv"
    assert sys.modules["octagon_plugin"].CALLS == [1]
    assert shared_things.load_plugins() == []  # once
    assert sys.modules["octagon_plugin"].CALLS == [1]
    shared_things.unregister("octagon")
    assert shared_things.load_plugins(reload=True) == ["hexagon", "octagon"]  # the function runs again
    assert sys.modules["octagon_plugin"].CALLS == [1, 1] and shared_things.get("octagon") == 8


def test_a_failing_plugin_warns_naming_it_and_the_others_load(plugins, shared_things: Registry[object]) -> None:
    plugins("broken", "broken_plugin", "raise RuntimeError('broken on purpose')\n")
    plugins("missing", "no_such_plugin_module")
    plugins("clash", "clash_plugin", "from test_shared_things import REGISTRY\nREGISTRY.register('circle', 2)\n")
    plugins("hexagon", "hexagon_plugin", "from test_shared_things import REGISTRY\nREGISTRY.register('hexagon', 6)\n")
    with pytest.warns(PluginWarning) as record:
        loaded = shared_things.load_plugins()
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 3
    broken, clash, missing = messages
    for needle in ("'broken'", "broken_plugin", GROUP, "things are unavailable", "RuntimeError: broken on purpose"):
        assert needle in broken
    assert "'clash'" in clash and "RegistryError" in clash and "'circle' is already registered" in clash
    assert "'missing'" in missing and "ModuleNotFoundError" in missing
    assert loaded == ["hexagon"]
    assert shared_things.get("circle") == 1 and shared_things.get("hexagon") == 6


def test_a_registry_without_a_group_has_no_plugins() -> None:
    registry: Registry[object] = Registry("thing")
    assert registry.load_plugins() == [] and registry.load_plugins(reload=True) == []
    assert registry.names() == []
