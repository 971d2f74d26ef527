"""Turn multirun directories into ``report.md``, ``report.csv`` and ``summary.png``: ``geoconv report`` in a checkout.

    python experiments/report.py multirun/2026-11-25/10-00-00
    python experiments/report.py SWEEP_DIR --metrics '*/fwd_bwd_ms' --out reports/ablation
    python experiments/report.py SWEEP_DIR --headline 'conv/*/params'
    python experiments/report.py SEED0_DIR SEEDS12_DIR --out reports/mnist   # one experiment run in parts

The same program as ``geoconv report`` (:mod:`geoconv.cli`; the logic is
:mod:`geoconv.experiment.report`). Exit status: 0 when the report was written (even if some
jobs failed: the report says so), 2 for a usage error or a directory that is not a multirun.
"""

import sys

from geoconv.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["report", *sys.argv[1:]], prog="report.py"))
