r"""A folder of a researcher's own maps as a training data set: ``data.kind: folder``.

Layout of the folder ``data.path``::

    DIR/
      a.fits  b.fits  c.nc  d.png  e.npy ...   the inputs: every map file directly in DIR
      labels.csv                               classification: columns file,label (optional split)
      masks/a.fits  masks/b.png ...            segmentation: one mask per input, same stem

* **Inputs** are the files with a supported suffix (:data:`geoconv.data.files.FORMATS`)
  directly in ``DIR``, in sorted order; other files are listed in a :class:`FolderWarning`
  and ignored (hidden files and sub-folders silently). Each is read with
  :func:`geoconv.data.files.read_map` and regridded to the configured grid and size with
  :func:`geoconv.data.files.to_grid`, so files of different resolutions and grids mix;
  their channel counts must agree.
* **Classification** (``labels.csv``): a header with at least the columns ``file`` and
  ``label`` (more are allowed). ``file`` is an input's name (``a.fits``); ``label`` an integer
  or a string. The class names are the sorted distinct labels (numerically when all are
  integers) and a sample's target is its label's position among them. An optional column
  ``split`` with ``train`` or ``test`` fixes a sample's split (empty: drawn). Every input needs
  exactly one row, every row an input.
* **Segmentation** (``masks/``): for each input ``x.ext`` a mask ``masks/x.<any supported
  suffix>``, regridded like its input and made binary (``> 0.5`` -> 1): targets
  ``(N, 1, *spatial)`` in ``{0, 1}`` as geoconv's segmentation task takes them. An 8/16-bit
  image mask whose largest value is 1 (0/1-coded, which looks black) is read as 0/1.
* **Split**: ``test_fraction`` of the samples not fixed by ``labels.csv`` go to the test set,
  stratified by class (per class, a seeded shuffle; the rounding remainders go to the classes
  with the largest remainders, on a tie to the smaller share), at least one sample in each split.
* **Standardisation**: the per-channel mean and standard deviation over the training inputs
  (every pixel alike, float64 accumulation, population std floored at
  :math:`\max(10^{-6}|\mu|, 10^{-30})` so a constant channel stays finite) are returned in
  :attr:`Splits.standardize`; the data sets themselves are not standardised.
* **Cache**: the regridded inputs (and masks) are cached (:mod:`geoconv.data.cache`) under a key
  holding every file's path, size and modification time (ns), the grid, size, task, variable
  and ``npy_grid``: editing or touching a file rebuilds.

Data keys: ``path`` (required), ``variable``, ``labels`` (``labels.csv``), ``masks``
(``masks``), ``task`` (``auto`` | ``classification`` | ``segmentation``), ``npy_grid`` (null:
the configured grid), ``test_fraction`` (0.25), ``seed`` (0), ``cache_dir``.

Public names: :data:`VERSION`, :data:`TASKS`, :class:`FolderWarning`, :class:`FolderContents`,
:func:`scan_folder`, :func:`read_labels`, :func:`split_indices`, :func:`channel_stats`,
:func:`folder_splits`.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> for i in range(4):
...     np.save(folder / f"m{i}.npy", np.full((4, 8), float(i), dtype=np.float32))
>>> _ = (folder / "labels.csv").write_text("file,label\nm0.npy,a\nm1.npy,b\nm2.npy,a\nm3.npy,b\n")
>>> splits = folder_splits({"path": str(folder)}, "equirect", 4)
>>> splits.class_names, len(splits.train), len(splits.tests[""]), tuple(splits.train.inputs.shape[1:])
(('a', 'b'), 3, 1, (1, 4, 8))
>>> import shutil; shutil.rmtree(folder)
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoconv._checks import check_choice, check_float, check_int
from geoconv.data.base import SignalDataset, derived_seed
from geoconv.data.cache import check_cache_dir, load_or_build
from geoconv.data.files import FORMATS, MapFile, map_format, map_stem, read_map, to_grid
from geoconv.data.registry import Splits
from geoconv.errors import GeoconvError, ParameterError
from geoconv.grids import get_grid

__all__ = [
    "TASKS",
    "VERSION",
    "FolderContents",
    "FolderWarning",
    "channel_stats",
    "folder_splits",
    "read_labels",
    "scan_folder",
    "split_indices",
]

VERSION = 1
"""The generation version of folder data sets; cache files of another version are rebuilt."""

TASKS = ("auto", "classification", "segmentation")
"""The values of ``data.task``."""

_LOG = logging.getLogger(__name__)
_SPLITS = ("train", "test")


class FolderWarning(UserWarning):
    """Files in a data folder that are not maps (an unsupported suffix) were ignored."""


@dataclass(frozen=True)
class FolderContents:
    """What :func:`scan_folder` found in a data folder.

    Attributes
    ----------
    path : Path
        The folder (absolute).
    inputs : tuple of Path
        The map files directly in it, sorted by name.
    ignored : tuple of Path
        Files with an unsupported suffix (the labels file excluded).
    labels : Path
        Where the labels file is (it may not exist).
    masks : Path
        Where the masks folder is (it may not exist).
    """

    path: Path
    inputs: tuple[Path, ...]
    ignored: tuple[Path, ...]
    labels: Path
    masks: Path


def scan_folder(path: str | os.PathLike, *, labels: str = "labels.csv", masks: str = "masks") -> FolderContents:
    """List the inputs of a data folder (see the module docstring).

    Raises
    ------
    GeoconvError
        When ``path`` does not exist or is not a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.fits", "a.png", "notes.txt", "labels.csv"):
    ...     _ = (folder / name).write_text("")
    >>> found = scan_folder(folder)
    >>> [p.name for p in found.inputs], [p.name for p in found.ignored]
    (['a.png', 'b.fits'], ['notes.txt'])
    >>> import shutil; shutil.rmtree(folder)
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise GeoconvError(f"data.path {str(folder)!r} {what}; set data.path to the folder of your maps")
    labels_path, masks_path = folder / labels, folder / masks
    inputs, ignored = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file() or entry == labels_path:
            continue  # hidden files (editors' and our own temporaries), sub-folders, the labels file
        try:
            map_format(entry)
            inputs.append(entry)
        except GeoconvError:
            ignored.append(entry)
    return FolderContents(folder, tuple(inputs), tuple(ignored), labels_path, masks_path)


def _few(names: Sequence[str], count: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:count])
    return shown + (f" and {len(names) - count} more" if len(names) > count else "")


def read_labels(
    labels: str | os.PathLike, inputs: Sequence[Path]
) -> tuple[tuple[str, ...], list[int], list[str | None]]:
    """Read a ``labels.csv`` for the input files ``inputs``.

    Returns
    -------
    class_names : tuple of str
        The sorted distinct labels (numerically when all are integers).
    targets : list of int
        Each input's class index into ``class_names``.
    fixed : list of str or None
        Each input's split from the ``split`` column (``"train"``, ``"test"``), ``None`` when drawn.

    Raises
    ------
    GeoconvError
        Naming the file (and row): no ``file``/``label`` column (the columns found), an empty
        label, a bad split, a duplicate row, a listed file that is not an input, inputs without
        a row (a few named), fewer than two classes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "labels.csv").write_text("file,label,split\\nx.fits,10,\\ny.fits,9,test\\nz.fits,10,\\n")
    >>> read_labels(folder / "labels.csv", [folder / n for n in ("x.fits", "y.fits", "z.fits")])
    (('9', '10'), [1, 0, 1], [None, 'test', None])
    >>> import shutil; shutil.rmtree(folder)
    """
    labels = Path(labels)
    if not labels.is_file():
        raise GeoconvError(f"labels file {str(labels)!r} does not exist; classification needs one (columns file,label)")
    names = {p.name: i for i, p in enumerate(inputs)}
    rows: dict[str, tuple[int, str, str | None]] = {}
    with open(labels, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets write a BOM
        reader = csv.DictReader(handle)
        columns = [str(c).strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        if "file" not in columns or "label" not in columns:
            raise GeoconvError(
                f"labels file {str(labels)!r} needs a header with the columns 'file' and 'label', found {columns}"
            )
        for row in reader:
            line, name = reader.line_num, (row.get("file") or "").strip()
            label, split = (row.get("label") or "").strip(), (row.get("split") or "").strip().lower() or None
            if not name and not label:
                continue
            where = f"labels file {str(labels)!r}, row {line} (file {name!r})"
            if name in rows:
                raise GeoconvError(f"{where}: a duplicate row for this file (first at row {rows[name][0]})")
            if name not in names:
                hint = "not a supported map file" if (labels.parent / name).is_file() else "no such file in the folder"
                raise GeoconvError(f"{where}: the listed file is not an input ({hint})")
            if not label:
                raise GeoconvError(f"{where}: the label is empty")
            if split not in (None, *_SPLITS):
                raise GeoconvError(f"{where}: split must be 'train', 'test' or empty, got {row.get('split')!r}")
            rows[name] = (line, label, split)
    missing = [n for n in names if n not in rows]
    if missing:
        raise GeoconvError(f"labels file {str(labels)!r} has no row for {len(missing)} input(s): {_few(missing)}")
    distinct = {label for _, label, _ in rows.values()}
    numeric = all(re.fullmatch(r"[+-]?\d+", label) for label in distinct)
    key: Callable[[str], Any] = int if numeric else str
    class_names = tuple(sorted({str(key(label)) for label in distinct}, key=key))
    if len(class_names) < 2:
        raise GeoconvError(f"labels file {str(labels)!r} names {len(class_names)} class(es) {class_names}; need 2+")
    index = {name: i for i, name in enumerate(class_names)}
    ordered = [rows[p.name] for p in inputs]
    return class_names, [index[str(key(label))] for _, label, _ in ordered], [split for _, _, split in ordered]


def split_indices(
    count: int,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    groups: Sequence[int] | None = None,
    fixed: Sequence[str | None] | None = None,
) -> tuple[list[int], list[int]]:
    """A deterministic train/test split of ``count`` samples, stratified by ``groups``.

    Of the samples not ``fixed`` (``"train"``/``"test"``), ``round(test_fraction * n)`` go to
    the test set (at least one, and one left for training, unless fixed samples fill that
    split); per group, a shuffle seeded by ``seed`` picks them, each group's share rounded
    down and the remainder given to the groups with the largest fractional shares (on a tie, to
    the group with fewer test samples).

    Returns
    -------
    train, test : list of int
        Sorted sample indices.

    Examples
    --------
    >>> split_indices(8, test_fraction=0.25, groups=[0, 0, 0, 0, 1, 1, 1, 1])[1]
    [2, 4]
    """
    fixed = list(fixed) if fixed is not None else [None] * count
    groups = list(groups) if groups is not None else [0] * count
    free = [i for i in range(count) if fixed[i] is None]
    test = {i for i in range(count) if fixed[i] == "test"}
    has_train = any(f == "train" for f in fixed)
    target = min(max(round(test_fraction * len(free)), 0 if test else 1), len(free) - (0 if has_train else 1))
    members = {g: [i for i in free if groups[i] == g] for g in sorted(set(groups[i] for i in free))}
    shares = {g: test_fraction * len(m) for g, m in members.items()}
    quota = {g: math.floor(share) for g, share in shares.items()}
    # Largest remainders first; on a tie the group with fewer test samples so far, so that small classes show up.
    for g in sorted(shares, key=lambda g: (quota[g] - shares[g], quota[g], g))[: max(0, target - sum(quota.values()))]:
        quota[g] += 1
    generator = np.random.default_rng(derived_seed(seed, "folder", "split"))
    for g, indices in members.items():
        test.update(int(i) for i in generator.permutation(indices)[: quota[g]])
    train = [i for i in range(count) if i not in test]
    if not train or not test:
        raise GeoconvError(
            f"the train/test split of {count} samples left the {'training' if not train else 'test'} set empty "
            "(labels.csv's split column fixes every sample to one split?); give each split at least one sample"
        )
    return train, sorted(test)


def channel_stats(inputs: torch.Tensor, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of ``inputs`` ``(N, C, *spatial)``, accumulated in float64.

    Two passes over chunks of ``chunk`` samples (no float64 copy of the whole set); the std is
    floored at :math:`\\max(10^{-6}|\\mu|, 10^{-30})`.

    >>> channel_stats(torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]]))
    ((4.0,), (2.23606797749979,))
    """
    dims = [0, *range(2, inputs.dim())]
    count = inputs.numel() // max(inputs.shape[1], 1)
    total = sum((inputs[i : i + chunk].double().sum(dims) for i in range(0, len(inputs), chunk)), torch.tensor(0.0))
    mean = total / count
    shape = (1, -1) + (1,) * (inputs.dim() - 2)
    squares = sum(
        (((inputs[i : i + chunk].double() - mean.view(shape)) ** 2).sum(dims) for i in range(0, len(inputs), chunk)),
        torch.tensor(0.0),
    )
    std = torch.sqrt(squares / count)
    std = torch.maximum(std, torch.clamp(1e-6 * mean.abs(), min=1e-30))
    return tuple(mean.tolist()), tuple(std.tolist())


def _fingerprint(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _read(path: Path, variable: str | None, npy_grid: str | None) -> MapFile:
    return read_map(path, variable=variable, npy_grid=npy_grid)


def _read_mask(path: Path, variable: str | None, npy_grid: str | None) -> MapFile:
    """A mask: its file's only variable, else ``variable``; one channel (or identical channels)."""
    try:
        mask = read_map(path, npy_grid=npy_grid)
    except GeoconvError:
        if variable is None or map_format(path) != "netcdf":
            raise
        mask = read_map(path, variable=variable, npy_grid=npy_grid)
    values = mask.values
    if values.shape[0] > 1 and not bool((values == values[:1]).all()):
        raise GeoconvError(f"mask {str(mask.path)!r} has {values.shape[0]} different channels; a mask has one")
    values = values[:1]
    bits = mask.meta.get("bits")
    if mask.format == "image" and bits and 0 < float(values.max()) <= 1.5 / (2**bits - 1):
        values = values * (2**bits - 1)  # 0/1-coded image: 1 is the foreground, not 1/255
    return replace(mask, values=values)


def _load(files: Sequence[Path], reader: Callable[[Path], MapFile], grid: str, size: Any, what: str) -> torch.Tensor:
    """``(N, C, *spatial)`` float32 on ``grid``: read and regridded one file at a time."""
    out: torch.Tensor | None = None
    for k, path in enumerate(files):
        values = to_grid(reader(path), grid, size)
        if out is None:
            out = torch.empty((len(files), *values.shape), dtype=torch.float32)
        elif values.shape[0] != out.shape[1]:
            raise GeoconvError(
                f"{what} files differ in channels: {str(files[0])!r} has {out.shape[1]}, "
                f"{str(path)!r} has {values.shape[0]}; every file needs the same channels"
            )
        out[k] = values
    assert out is not None
    return out


def _mask_files(contents: FolderContents) -> list[Path]:
    if not contents.masks.is_dir():
        raise GeoconvError(f"masks folder {str(contents.masks)!r} does not exist; segmentation needs a mask per input")
    by_stem: dict[str, list[Path]] = {}
    for entry in sorted(contents.masks.iterdir()):
        if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(tuple(FORMATS)):
            by_stem.setdefault(map_stem(entry), []).append(entry)
    stems: dict[str, Path] = {}
    masks = []
    for path in contents.inputs:
        stem = map_stem(path)
        if stem in stems:
            raise GeoconvError(f"inputs {str(stems[stem])!r} and {str(path)!r} share the stem {stem!r} of their mask")
        stems[stem] = path
        found = by_stem.get(stem, [])
        if len(found) != 1:
            problem = "no mask" if not found else f"{len(found)} masks ({_few([p.name for p in found])})"
            raise GeoconvError(
                f"input {str(path)!r} has {problem} in {str(contents.masks)!r}; it needs one, masks/{stem}.<suffix>"
            )
        masks.append(found[0])
    return masks


def _task(task: str, contents: FolderContents) -> str:
    if task != "auto":
        return task
    has_labels, has_masks = contents.labels.is_file(), contents.masks.is_dir()
    if has_labels == has_masks:
        which, conjunction = ("both", "and") if has_labels else ("neither", "nor")
        raise GeoconvError(
            f"data.task=auto: the folder {str(contents.path)!r} has {which} a labels file {contents.labels.name!r} "
            f"(classification) {conjunction} a masks folder {contents.masks.name!r} (segmentation); add one, or set "
            "data.task=classification or data.task=segmentation"
        )
    return "classification" if has_labels else "segmentation"


def _path(data: Mapping[str, Any]) -> Path:
    path = data.get("path")
    if path is None or str(path).strip() in ("", "???"):
        raise ParameterError(
            "data.path is not set: data=folder reads a folder of your own maps (FITS, NetCDF, PNG/JPEG, .npy); "
            "set data.path=DIR (make a demo folder with: python -m geoconv.data.demo DIR)"
        )
    return Path(str(path))


def folder_splits(data: Mapping[str, Any], grid: str, size: Any) -> Splits:
    """The ``folder`` data set (see the module docstring): the builder of ``data.kind: folder``.

    Parameters
    ----------
    data : mapping
        The config's ``data`` group (the keys of the module docstring).
    grid : str
        The grid every map is regridded to.
    size : int or (int, int)
        Its resolution (``grid.size``).

    Returns
    -------
    Splits
        ``train``, ``tests = {"": test}`` (:class:`~geoconv.data.base.SignalDataset`, named
        ``"folder"``, not standardised), ``classes`` (0 for segmentation), ``class_names`` and
        ``standardize`` (per-channel mean and std of the training inputs).
    """
    labels_name, masks_name = str(data.get("labels") or "labels.csv"), str(data.get("masks") or "masks")
    contents = scan_folder(_path(data), labels=labels_name, masks=masks_name)
    task = _task(check_choice("data.task", data.get("task") or "auto", TASKS), contents)
    variable, npy_grid = data.get("variable"), data.get("npy_grid") or grid
    test_fraction = check_float("data.test_fraction", data.get("test_fraction", 0.25))
    if not 0 < test_fraction < 1:
        raise ParameterError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    seed = check_int("data.seed", data.get("seed", 0), minimum=0)
    cache_dir = check_cache_dir(data.get("cache_dir"))
    layout = get_grid(grid)
    layout.shape_at(1, 1, size)  # a size the grid refuses fails here, before any file is read
    if contents.ignored:
        warnings.warn(
            f"data.path {str(contents.path)!r}: ignoring {len(contents.ignored)} file(s) that are not maps "
            f"({_few([p.name for p in contents.ignored])}); supported suffixes: {', '.join(FORMATS)}",
            FolderWarning,
            stacklevel=2,
        )
    inputs = list(contents.inputs)
    if len(inputs) < 2:
        raise GeoconvError(
            f"data.path {str(contents.path)!r} holds {len(inputs)} map file(s); a train and a test split need 2 or more"
        )
    if task == "classification":
        class_names, labels, fixed = read_labels(contents.labels, inputs)
        train, test = split_indices(len(inputs), test_fraction=test_fraction, seed=seed, groups=labels, fixed=fixed)
        masks: list[Path] = []
    else:
        class_names, labels, masks = (), [], _mask_files(contents)
        train, test = split_indices(len(inputs), test_fraction=test_fraction, seed=seed)
    order = train + test  # loaded in split order, so both splits are views of one tensor
    files, mask_files = [inputs[i] for i in order], [masks[i] for i in order] if masks else []
    key = {
        "dataset": "folder",
        "grid": layout.name,
        "size": list(size) if isinstance(size, tuple | list) else size,
        "task": task,
        "variable": variable,
        "npy_grid": npy_grid,
        "files": [_fingerprint(p) for p in files],
        "masks": [_fingerprint(p) for p in mask_files],
    }

    def build() -> dict[str, torch.Tensor]:
        tensors = {"inputs": _load(files, lambda p: _read(p, variable, npy_grid), layout.name, size, "input")}
        if mask_files:
            raw = _load(mask_files, lambda p: _read_mask(p, variable, npy_grid), layout.name, size, "mask")
            tensors["masks"] = (raw > 0.5).float()
        return tensors

    tensors, from_cache = load_or_build(cache_dir, key, VERSION, build)
    x = tensors["inputs"]
    if task == "classification":
        targets = torch.tensor([labels[i] for i in order], dtype=torch.int64)
    else:
        targets = tensors["masks"]
    n, classes = len(train), len(class_names)

    def dataset(part: slice) -> SignalDataset:
        return SignalDataset(x[part], targets[part], layout.name, size, classes, "folder", from_cache=from_cache)

    standardize = channel_stats(x[:n])
    _LOG.info(
        "data folder %s: %d %s samples (%d train, %d test), %d channel(s), on %s at %s%s",
        contents.path, len(files), task, n, len(test), x.shape[1], layout.name, size,
        " (from the cache)" if from_cache else "",
    )  # fmt: skip
    return Splits(
        dataset(slice(0, n)), {"": dataset(slice(n, None))}, classes, "", None,
        class_names=class_names, standardize=standardize,
    )  # fmt: skip
