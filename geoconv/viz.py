"""Figures: an off-screen, atomic PNG writer every job and report uses.

Figures are matplotlib ``Figure`` objects rendered by Agg outside pyplot: nothing is shown,
no global backend or pyplot state is touched, and nothing stays open.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = figure(Path(folder) / "line.png", lambda fig: fig.subplots().plot([0, 1], [1, 0]))
...     path.stat().st_size > 0
True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from geoconv._io import atomic_write

__all__ = ["figure"]


def figure(path: str | Path, draw: Callable[[Any], None], *, size: tuple[float, float] = (6.0, 4.0)) -> Path:
    """Draw with ``draw(figure)`` on an off-screen figure and save it as a PNG, atomically.

    The PNG goes into a temporary file beside ``path`` and is renamed over it
    (:func:`geoconv._io.atomic_write`): a run killed while saving leaves the previous
    figure or none, never a truncated PNG.
    """
    # Imported here: plotting is optional work, and matplotlib is slow to import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    try:
        draw(figure)
        atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    finally:
        figure.clear()
    return Path(path)
