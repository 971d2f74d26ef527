"""The experiments' Hydra entry point: compose a config, run its job, write metrics and figures.

``geoconv run [overrides...]`` (:mod:`geoconv.cli`) and ``python experiments/run.py`` in a
checkout both call :func:`main`. The configs ship inside the package (``geoconv/conf``), so
Hydra finds them from any working directory; outputs go under the working directory
(``outputs/`` for one run, ``multirun/`` for a sweep)::

    geoconv run                                   # the ablation multirun (default)
    geoconv run experiment=shift_invariance padding_mode=circular
    geoconv run experiment=locality op=gated_conv
    geoconv run experiment=rotation_equivariance grid=healpix
    geoconv report multirun/<date>/<time>         # a table from any multirun

Every run writes ``metrics.json`` (flat name -> number, the resolved config, the status)
and PNG figures into its Hydra run directory. See ``geoconv/conf/`` for every option.

Failures and exit status: a run that fails prints one line (what failed, the error, where the
traceback is: the run's log file, ``<run dir>/run.log``) and exits with status 1; a bad
config value is such a line too (``op.params.kernel_size=three``: which key, what it must be,
what came in). In a multirun each failed job prints its line and the sweep goes on; at the
end the report is written and the process exits with status 1 if any job failed
(:class:`geoconv.experiment.runner.ReportCallback`). ``HYDRA_FULL_ERROR=1`` shows the whole
traceback instead.

Configs do not name code. Each job checks its config and its Hydra callbacks
(``hydra.callbacks.*._target_``) against :data:`geoconv.experiment.runner.ALLOWED_TARGETS` and fails,
with ``metrics.json`` saying why, when one names anything else. To be plain about what
that protects: Hydra itself instantiates the callbacks (and the launcher and sweeper,
which it restricts to installed Hydra plugins) from the ``hydra`` node *before* any job
runs, so a callback named on the command line has already been imported and constructed
when the check sees it, and its hooks still run. The check makes such a run fail
loudly (every job ``failed``, naming the callback) rather than succeed as if nothing were
odd; it does not prevent the instantiation. A command line or config file from elsewhere
deserves the same care as a script.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from geoconv.experiment.config import CONFIG_DIR, register_configs
from geoconv.experiment.runner import log_failure, run

register_configs()


def _job(hydra_config: object) -> str:
    """``job 3 (op=conv grid=planar)``: which job of a sweep, by its number and overrides."""
    overrides = " ".join(hydra_config.overrides.task)  # type: ignore[attr-defined]
    return f"job {hydra_config.job.num}" + (f" ({overrides})" if overrides else "")  # type: ignore[attr-defined]


# An absolute directory, not a module path: the configs are package data, not a package
# (no __init__.py), and Hydra reads them from disk wherever pip put them.
@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, float] | None:
    hydra_config = HydraConfig.get()
    try:
        return run(cfg, Path(hydra_config.runtime.output_dir), callbacks=hydra_config.callbacks)
    except Exception as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise  # Hydra prints the whole traceback, as it documents
        multirun = hydra_config.mode == RunMode.MULTIRUN
        # One line on the console; the traceback goes to the job's log (<job dir>/run.log).
        print(log_failure(err, _job(hydra_config) if multirun else "run"), file=sys.stderr)
        if not multirun:
            raise SystemExit(1) from None
        # In a sweep one job's failure must not stop the others: it is in this job's
        # metrics.json (status "failed") and log, the report lists it, and ReportCallback
        # makes the sweep's exit status 1.
        return None
