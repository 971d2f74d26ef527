"""The container every data set comes in, and the argument checks they share.

A data set is a signal on a grid: ``inputs`` in the grid's layout (``(N, C, H, W)`` on the
plane and on equirect, ``(N, C, 6, F, F)`` on the cube map, ``(N, C, 12, n, n)`` on HEALPix)
and ``targets`` that are either class labels ``(N,)`` or masks shaped like one channel of
the inputs, ``(N, 1, *spatial)``. :class:`SignalDataset` holds both and is a
:class:`torch.utils.data.Dataset`, so a ``DataLoader`` batches it as it is.

Public names: :class:`SignalDataset`, :data:`SPLITS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from geoconv._checks import check_choice, check_int
from geoconv.grids.conversion import spherical_grid
from geoconv.grids.sphere import SphericalGrid

__all__ = ["SPLITS", "SignalDataset"]

SPLITS: tuple[str, ...] = ("train", "test")
"""The splits a data set with a train/test division accepts."""


@dataclass(eq=False)
class SignalDataset(Dataset):
    """Signals on a grid with their targets: a map-style ``torch`` data set.

    Parameters
    ----------
    inputs : torch.Tensor
        ``(N, C, *spatial)`` float32, in the grid's layout (``spatial`` is ``(H, W)``,
        ``(6, F, F)`` or ``(12, n, n)``).
    targets : torch.Tensor
        ``(N,)`` int64 class labels in ``[0, classes)``, or ``(N, 1, *spatial)`` float32
        masks in ``[0, 1]`` (segmentation, ``classes == 0``).
    grid : str
        The name of a registered grid (a built-in one or a plugin's).
    size : int
        The grid's resolution parameter: the side on the plane, ``H`` on equirect
        (``W = 2H``), the face side on the cube, nside on HEALPix.
    classes : int
        The number of classes; 0 for segmentation.
    name : str
        The data set's name (``"spherical_digits"``, ``"earth_segmentation"``, ...).
    rotations : torch.Tensor, optional
        ``(N, 3, 3)`` float64: the rotation :math:`R_i` applied to sample ``i``, whose value at
        pixel centre :math:`v` is the source's at :math:`R_i^\\top v`; ``None`` when unrotated.
    positions : torch.Tensor, optional
        ``(N, 2)`` int64: ``(row, col)`` of the top-left corner of the object placed on a
        planar canvas (translated digits); ``None`` elsewhere.
    from_cache : bool
        Whether the tensors were read from the disk cache rather than built.

    Examples
    --------
    >>> data = SignalDataset(torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 2]), "planar", 4, 10, "toy")
    >>> len(data), data[1][0].shape, int(data[1][1])
    (3, torch.Size([1, 4, 4]), 1)
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    grid: str
    size: int
    classes: int
    name: str
    rotations: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def __repr__(self) -> str:
        return (
            f"SignalDataset(name={self.name!r}, grid={self.grid!r}, size={self.size}, classes={self.classes}, "
            f"inputs={tuple(self.inputs.shape)}, targets={tuple(self.targets.shape)})"
        )


def check_split(split: object) -> str:
    """Return ``split`` if it is ``"train"`` or ``"test"``, else raise with the closest name."""
    return check_choice("split", split, SPLITS)


def check_limit(limit: object) -> int | None:
    """``None`` (every sample) or an integer >= 1."""
    return None if limit is None else check_int("limit", limit, minimum=1)


def check_spherical(grid: object, size: object, what: str) -> tuple[SphericalGrid, int]:
    """The spherical grid called ``grid`` and its validated resolution ``size`` (an int).

    A flat grid (``Grid.spherical`` false: the plane, a torus) is refused, naming the
    registered spherical grids: these data sets live on the sphere.
    """
    sphere = spherical_grid(grid, what)  # type: ignore[arg-type]
    return sphere, sphere.check_size(size)


def derived_seed(seed: int, *tags: str) -> int:
    """A 63-bit seed for one stream of randomness, e.g. ``(seed, "rotations", "test")``.

    Different tags give independent streams from one user seed, so the train and test
    rotations of one seed differ, and a stream does not depend on how many draws another
    one made.
    """
    entropy = [seed, *(int.from_bytes(tag.encode(), "little") for tag in tags)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def haar_rotations(count: int, seed: int) -> torch.Tensor:
    """``(count, 3, 3)`` float64 independent Haar-random rotations, reproducible from ``seed``.

    Drawn one after the other from one generator, so the first ``n`` of ``count``
    rotations do not depend on ``count`` (a ``limit`` keeps a prefix of the full data set).
    """
    from geoconv.grids.rotation import random_rotation

    generator = torch.Generator().manual_seed(seed)
    if count == 0:
        return torch.zeros(0, 3, 3, dtype=torch.float64)
    return torch.stack([random_rotation(generator) for _ in range(count)])
