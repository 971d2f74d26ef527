"""The experiments' entry point in a checkout: the same program as ``geoconv run``.

    python experiments/run.py                                   # the ablation multirun (default)
    python experiments/run.py experiment=shift_invariance padding_mode=circular
    python experiments/run.py experiment=rotation_equivariance grid=healpix
    python experiments/report.py multirun/<date>/<time>         # a table from any multirun

Everything (the configs in ``geoconv/conf``, failures and exit status) is
:mod:`geoconv.experiment.main`; this file only calls it.
"""

from geoconv.experiment.main import main

if __name__ == "__main__":
    main()
