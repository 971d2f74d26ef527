"""The experiments' entry point: compose a config, run its probe, write metrics and figures.

    python experiments/run.py                                   # the ablation multirun (default)
    python experiments/run.py experiment=shift_invariance padding_mode=circular
    python experiments/run.py experiment=locality op=gated_conv
    python experiments/run.py experiment=rotation_equivariance grid=healpix
    python experiments/report.py multirun/<date>/<time>         # a table from any multirun

Every run writes ``metrics.json`` (flat name -> number, the resolved config, the status)
and PNG figures into its Hydra run directory. See ``conf/`` for every option.

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

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from geoconv.experiment.config import register_configs
from geoconv.experiment.runner import run

register_configs()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict[str, float] | None:
    hydra_config = HydraConfig.get()
    try:
        return run(cfg, Path(hydra_config.runtime.output_dir), callbacks=hydra_config.callbacks)
    except Exception:
        if hydra_config.mode != RunMode.MULTIRUN:
            raise
        # In a sweep one job's failure must not stop the others: it is in this job's
        # metrics.json (status "failed") and log, and the report lists it.
        logging.getLogger(__name__).exception("job %s failed", hydra_config.job.num)
        return None


if __name__ == "__main__":
    main()
