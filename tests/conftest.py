"""Suite-wide fixtures and markers: ``gpu`` tests skip cleanly where CUDA is absent.

Hypothesis profiles: ``ci`` (the default) runs a fixed, derandomized example budget, so a
CI run is reproducible; ``fuzz`` (opt-in: ``--hypothesis-profile=fuzz`` or
``GEOCONV_FUZZ=1``) draws 20 times as many examples from a random seed. A test's own
``@settings(max_examples=...)`` still wins over the profile's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from geoconv._registry import Registry
from geoconv.experiment.config import register_configs
from geoconv.grids.registry import GRIDS
from geoconv.ops.registry import OPS

CI_EXAMPLES = 100
"""Hypothesis's own default budget; the ``fuzz`` profile multiplies it by :data:`FUZZ_FACTOR`."""
FUZZ_FACTOR = 20

settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, deadline=None, print_blob=True)
settings.register_profile(
    "fuzz", max_examples=CI_EXAMPLES * FUZZ_FACTOR, derandomize=False, deadline=None, print_blob=True
)
# `--hypothesis-profile=NAME` (hypothesis's pytest plugin, applied after this file loads) overrides this.
settings.load_profile("fuzz" if os.environ.get("GEOCONV_FUZZ", "") not in ("", "0") else "ci")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@contextlib.contextmanager
def geoconv_own_entries(hidden_ops: tuple[str, ...] = ()) -> Iterator[None]:
    """Hide what plugins registered (ops and grids) and ``hidden_ops``; afterwards put back each as it was.

    The README documents geoconv itself: an installed plugin adds rows (its ops) and
    grids (to every op that runs on every grid), and must not make the README wrong.
    """
    hidden: list[tuple[Registry, str, str, object]] = []
    registry: Registry
    for registry, extra in ((OPS, hidden_ops), (GRIDS, ())):
        for name in registry.names():
            source = registry.source(name)
            if source != "geoconv" or name in extra:
                hidden.append((registry, name, source, registry.unregister(name)))
    try:
        yield
    finally:
        for registry, name, source, entry in hidden:
            with registry.registering_as(source):
                registry.register(name, entry, override=True)


@pytest.fixture(name="geoconv_own_entries")
def _geoconv_own_entries() -> Callable[..., contextlib.AbstractContextManager[None]]:
    """:func:`geoconv_own_entries`, for tests of what documents geoconv itself (README, ``geoconv ops``)."""
    return geoconv_own_entries


CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture
def hydra_conf() -> Iterator[None]:
    """Hydra initialised on the repository's ``conf/`` (plugin op and grid nodes registered first)."""
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
