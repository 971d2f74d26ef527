r"""Writers of demonstration folders for ``data=folder``: maps to classify, maps to segment.

``write_power_spectrum_folder`` draws Gaussian random fields on the sphere from one of two
angular power spectra,

.. math::

    C_\ell \propto (\ell + 1)^{-1} \ (\text{label } \texttt{shallow}), \qquad
    C_\ell \propto (\ell + 1)^{-3} \ (\text{label } \texttt{steep}), \qquad \ell \ge 1,

each normalised to unit pixel variance, :math:`\sum_\ell (2\ell + 1) C_\ell / 4\pi = 1`, so
both classes have the same amplitude and differ only in texture: the shallow maps are rough
(power up to the band limit :math:`\ell_{\max} = 3\,n_{\rm side} - 1`), the steep ones smooth
(dominated by the lowest multipoles). Per-channel standardisation (the same numbers for every
map) leaves that difference intact; a small CNN tells them apart. The harmonic coefficients
are drawn as :func:`healpy.synalm` draws them (:math:`a_{\ell 0}` real, :math:`a_{\ell m}`
complex with variance :math:`C_\ell` split evenly), from a :class:`numpy.random.Generator`
seeded by ``seed`` (healpy's own uses numpy's global state), and synthesised with
:func:`healpy.alm2map`.

``write_segmentation_folder`` writes a smooth random field (:math:`C_\ell \propto
e^{-(\ell/\ell_0)^2}`, :math:`\ell_0 = n_{\rm side}/2`, unit variance) plus white noise of
standard deviation 0.5 as the input and ``field > 0`` as the mask (``masks/``).

Formats: ``fits`` (healpy RING maps), ``png`` (the map sampled bilinearly at geoconv's equirect
centres, :math:`2n_{\rm side} \times 4n_{\rm side}`, 8-bit grey over the fixed range
:math:`[-4, 4]`, clipped, so every map is on one scale; masks 0/255) and ``npy`` (HEALPix
faces ``(1, 12, n, n)`` float32). Maps are named ``map_000.<ext>``; classification folders get
``labels.csv`` (``file,label``), alternating ``shallow`` and ``steep``.

Command line::

    python -m geoconv.data.demo DIR [--kind spectra|segmentation] [--format fits|png|npy]
                                    [--n N] [--nside N] [--seed S] [--overwrite]

Public names: :data:`SPECTRA`, :data:`PNG_RANGE`, :func:`spectrum`,
:func:`write_power_spectrum_folder`, :func:`write_segmentation_folder`, :func:`main`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from geoconv._checks import check_choice, check_int
from geoconv._io import atomic_path, atomic_write
from geoconv.errors import GeoconvError

__all__ = ["PNG_RANGE", "SPECTRA", "main", "spectrum", "write_power_spectrum_folder", "write_segmentation_folder"]

SPECTRA: dict[str, float] = {"shallow": -1.0, "steep": -3.0}
"""Label -> the exponent :math:`p` of :math:`C_\\ell \\propto (\\ell + 1)^p`."""

PNG_RANGE = 4.0
"""PNG maps map the values ``[-PNG_RANGE, PNG_RANGE]`` (unit-variance fields) onto ``0..255``."""

_FORMATS = {"fits": ".fits", "png": ".png", "npy": ".npy"}
_OURS = re.compile(r"map_\d{3,}\.(fits|png|npy)|labels\.csv")


def spectrum(exponent: float, lmax: int) -> np.ndarray:
    r"""``C_ell`` ``(lmax + 1,)`` proportional to :math:`(\ell + 1)^p`, zero at :math:`\ell = 0`, unit pixel variance.

    >>> cl = spectrum(-3.0, 11)
    >>> float(cl[0]), round(float(np.sum((2 * np.arange(12) + 1) * cl) / (4 * np.pi)), 12)
    (0.0, 1.0)
    """
    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = (ell + 1) ** exponent
    cl[0] = 0.0  # no monopole: every map has mean ~0, the classes differ in texture, not offset
    return cl * (4 * np.pi / np.sum((2 * ell + 1) * cl))


def _draw(cl: np.ndarray, nside: int, generator: np.random.Generator) -> np.ndarray:
    """A RING map of a Gaussian field of spectrum ``cl``, float64."""
    import healpy  # GPL: imported only when a demo folder is written

    lmax = len(cl) - 1
    ell, m = healpy.Alm.getlm(lmax)
    real, imag = generator.standard_normal(len(ell)), generator.standard_normal(len(ell))
    alm = np.sqrt(cl[ell]) * np.where(m == 0, real, (real + 1j * imag) / math.sqrt(2))
    return healpy.alm2map(alm.astype(np.complex128), nside, lmax=lmax)


def _prepare(path: str | os.PathLike, overwrite: bool, masks: bool) -> Path:
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise GeoconvError(f"{str(folder)!r} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise GeoconvError(
                f"folder {str(folder)!r} is not empty; choose a new folder or pass overwrite=True (--overwrite), "
                "which replaces the files of an earlier demo folder (map_NNN.*, labels.csv, masks/map_NNN.*)"
            )
        for directory in (folder, folder / "masks"):
            for entry in directory.glob("*") if directory.is_dir() else ():
                if entry.is_file() and _OURS.fullmatch(entry.name):
                    entry.unlink()
    (folder / "masks" if masks else folder).mkdir(parents=True, exist_ok=True)
    return folder


def _writer(fmt: str, nside: int) -> Callable[[Path, np.ndarray, bool], None]:
    """``write(path_without_suffix, ring_map, is_mask)`` in format ``fmt``; a mask is ``ring_map > 0``.

    The mask is thresholded after sampling (on the equirect centres for PNG), so it is exactly
    where the field sampled there is positive.
    """
    from geoconv.grids.conversion import convert
    from geoconv.grids.healpix import ring_to_faces

    def write(stem: Path, ring: np.ndarray, mask: bool) -> None:
        path = stem.with_name(stem.name + _FORMATS[fmt])
        if fmt == "fits":
            import healpy

            values = (ring > 0) if mask else ring
            with atomic_path(path) as temporary:
                healpy.write_map(str(temporary), values.astype(np.float32), dtype=np.float32, overwrite=True)  # RING
            return
        faces = ring_to_faces(((ring > 0) if mask and fmt == "npy" else ring).astype(np.float32))[None]
        if fmt == "npy":
            atomic_write(path, lambda handle: np.save(handle, faces))
            return
        from PIL import Image

        equirect = convert(torch.from_numpy(faces)[None], "healpix", "equirect", 2 * nside)[0, 0].numpy()
        scaled = equirect > 0 if mask else np.clip((equirect + PNG_RANGE) / (2 * PNG_RANGE), 0, 1)
        image = Image.fromarray(np.round(scaled * 255.0).astype(np.uint8))
        atomic_write(path, lambda handle: image.save(handle, format="PNG"))

    return write


def _check(n_maps: object, nside: object, fmt: object, seed: object) -> tuple[int, int, str, int]:
    n_maps = check_int("n_maps", n_maps, minimum=2)
    nside = check_int("nside", nside, minimum=1)
    if nside & (nside - 1):
        raise GeoconvError(f"nside must be a power of two, got {nside}")
    return n_maps, nside, check_choice("fmt", fmt, tuple(_FORMATS)), check_int("seed", seed, minimum=0)


def _name(index: int, n_maps: int) -> str:
    return f"map_{index:0{max(3, len(str(n_maps - 1)))}d}"


def write_power_spectrum_folder(
    path: str | os.PathLike,
    *,
    n_maps: int = 64,
    nside: int = 16,
    fmt: str = "fits",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a classification folder: maps of two power spectra and ``labels.csv`` (module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The folder, created if needed; it must be empty unless ``overwrite``.
    n_maps : int
        How many maps (>= 2); map ``i`` is ``shallow`` for even ``i``, ``steep`` for odd.
    nside : int
        HEALPix resolution (a power of two); PNG maps are ``2 nside x 4 nside``.
    fmt : str
        ``"fits"``, ``"png"`` or ``"npy"``.
    seed : int
        The same seed writes the same maps.
    overwrite : bool
        Write into a non-empty folder, replacing an earlier demo folder's files.

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = write_power_spectrum_folder(pathlib.Path(tempfile.mkdtemp()) / "spectra", n_maps=4, nside=2)
    >>> sorted(p.name for p in folder.iterdir())
    ['labels.csv', 'map_000.fits', 'map_001.fits', 'map_002.fits', 'map_003.fits']
    >>> (folder / "labels.csv").read_text().splitlines()[:3]
    ['file,label', 'map_000.fits,shallow', 'map_001.fits,steep']
    >>> import shutil; shutil.rmtree(folder.parent)
    """
    n_maps, nside, fmt, seed = _check(n_maps, nside, fmt, seed)
    folder = _prepare(path, overwrite, masks=False)
    write = _writer(fmt, nside)
    generator = np.random.default_rng(seed)
    names = list(SPECTRA)
    spectra = {label: spectrum(exponent, 3 * nside - 1) for label, exponent in SPECTRA.items()}
    rows = ["file,label"]
    for i in range(n_maps):
        label = names[i % len(names)]
        write(folder / _name(i, n_maps), _draw(spectra[label], nside, generator), False)
        rows.append(f"{_name(i, n_maps)}{_FORMATS[fmt]},{label}")
    atomic_write(folder / "labels.csv", "\n".join(rows) + "\n")
    return folder


def write_segmentation_folder(
    path: str | os.PathLike,
    *,
    n_maps: int = 32,
    nside: int = 16,
    fmt: str = "fits",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a segmentation folder: a smooth field plus noise as inputs, ``field > 0`` in ``masks/``.

    Parameters as :func:`write_power_spectrum_folder`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = write_segmentation_folder(pathlib.Path(tempfile.mkdtemp()), n_maps=2, nside=2, fmt="npy")
    >>> sorted(p.name for p in folder.iterdir()), sorted(p.name for p in (folder / "masks").iterdir())
    (['map_000.npy', 'map_001.npy', 'masks'], ['map_000.npy', 'map_001.npy'])
    >>> import shutil; shutil.rmtree(folder)
    """
    n_maps, nside, fmt, seed = _check(n_maps, nside, fmt, seed)
    folder = _prepare(path, overwrite, masks=True)
    write = _writer(fmt, nside)
    generator = np.random.default_rng(seed)
    lmax = 3 * nside - 1
    ell = np.arange(lmax + 1, dtype=np.float64)
    smooth = np.exp(-((ell / max(nside / 2, 1.0)) ** 2))
    smooth[0] = 0.0
    smooth *= 4 * np.pi / np.sum((2 * ell + 1) * smooth)
    for i in range(n_maps):
        field = _draw(smooth, nside, generator)
        noise = 0.5 * generator.standard_normal(field.shape)
        write(folder / _name(i, n_maps), field + noise, False)
        write(folder / "masks" / _name(i, n_maps), field, True)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m geoconv.data.demo", description="Write a demonstration folder for data=folder."
    )
    parser.add_argument("folder", help="the folder to write (created; must be empty unless --overwrite)")
    parser.add_argument("--kind", choices=("spectra", "segmentation"), default="spectra")
    parser.add_argument("--format", choices=tuple(_FORMATS), default="fits", dest="fmt")
    parser.add_argument("--n", type=int, default=None, help="number of maps (64 for spectra, 32 for segmentation)")
    parser.add_argument("--nside", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo folder's files")
    args = parser.parse_args(argv)
    spectra = args.kind == "spectra"
    n_maps = args.n if args.n is not None else (64 if spectra else 32)
    writer = write_power_spectrum_folder if spectra else write_segmentation_folder
    try:
        folder = writer(
            args.folder, n_maps=n_maps, nside=args.nside, fmt=args.fmt, seed=args.seed, overwrite=args.overwrite
        )
    except GeoconvError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    png = args.fmt == "png"
    grid = f"grid=equirect grid.size={2 * args.nside}" if png else f"grid=healpix grid.size={args.nside}"
    what = "maps and labels.csv (shallow/steep spectra)" if spectra else "maps and their masks in masks/"
    print(f"wrote {n_maps} {args.fmt} {what} to {folder}")
    experiment = "classify" if spectra else "segment"
    print(f"train on it: geoconv run experiment={experiment} data.path={folder} {grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
