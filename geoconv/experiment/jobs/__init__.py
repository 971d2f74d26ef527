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
"""

from geoconv.experiment.jobs import benchmark, locality, rotation, shift, suite, train  # noqa: F401  (registers)
from geoconv.experiment.jobs.registry import ENTRY_POINT_GROUP, JOBS, Job, get_job, list_jobs, register_job

__all__ = ["ENTRY_POINT_GROUP", "JOBS", "Job", "get_job", "list_jobs", "register_job"]
