"""The job registry: what a config's ``job.name`` runs.

A job is a function ``job(plain, device, generator, out_dir) -> metrics``: it takes the
validated config (a plain dict), the device, a seeded generator for its inputs and the run
directory (for its figures), and returns flat metrics (``"group/name" -> number``) for
``metrics.json``. Adding a job is one module (a function decorated with
:func:`register_job`) and one config file (``conf/job/NAME.yaml`` with ``name: NAME``);
third-party packages add jobs through the entry-point group ``geoconv.jobs``.

>>> from geoconv.experiment.jobs import list_jobs
>>> list_jobs()
['benchmark', 'locality', 'rotation', 'shift', 'suite', 'train']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from geoconv._registry import Registry

__all__ = ["ENTRY_POINT_GROUP", "JOBS", "Job", "get_job", "list_jobs", "register_job"]

ENTRY_POINT_GROUP = "geoconv.jobs"
"""The entry-point group third-party packages declare their jobs under."""

Job = Callable[[dict, torch.device, torch.Generator, Path], dict[str, float]]
"""``job(plain, device, generator, out_dir) -> {metric name: number}``."""

JOBS: Registry[Job] = Registry("job", ENTRY_POINT_GROUP)
"""Job name -> job function."""


def register_job(name: str, *, override: bool = False) -> Callable[[Job], Job]:
    """Register a job function under ``name`` (a decorator)."""

    return JOBS.decorator(name, override=override)


def get_job(name: str) -> Job:
    """The job registered as ``name``; an unknown name raises with the closest names."""
    return JOBS.get(name)


def list_jobs(pattern: str = "*") -> list[str]:
    """Sorted names of the registered jobs."""
    return JOBS.names(pattern)
