"""The jobs a config can run (``job=NAME``), one module each, behind one registry.

=============  ================  ===================================================================
job            grids             what it measures
=============  ================  ===================================================================
``shift``      flat grids        equivariance error vs shift (circular, crop), pooled invariance,
                                 consistency, the border band, Kayhan & van Gemert's position test
``locality``   flat grids        theoretical vs gradient receptive field; ERF map; ERF std against
                                 depth, kernel size, dilation and stride, with log-log slopes
``rotation``   spherical         exact grid symmetries; Haar-random rotations next to the
                                 interpolation floor; the spherical ERF at the equator, pole, seam
``suite``      every grid        a quick pass of the above that applies (the ablation's default)
``train``      every grid        train on a data set (Lightning) and test, with consistency
``benchmark``  every grid        speed and memory of ops x grids x resolutions beside baselines
=============  ================  ===================================================================

Every public module of this package is a job: importing the package imports them all, so
adding a job is one module here (a function decorated with :func:`register_job`) and one
config file, ``conf/job/NAME.yaml``, holding ``name: NAME`` and the job's settings.
"""

import importlib
import pkgutil

from geoconv.experiment.jobs.registry import ENTRY_POINT_GROUP, JOBS, Job, get_job, list_jobs, register_job

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ENTRY_POINT_GROUP", "JOBS", "Job", "get_job", "list_jobs", "register_job"]
