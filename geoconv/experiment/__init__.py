"""Experiments: config validation, the runner, the jobs and the multirun report.

The Hydra entry point (``experiments/run.py``, or ``geoconv run``) composes a config from
``conf/`` and hands it to :func:`geoconv.experiment.runner.run`, which validates it
(:mod:`geoconv.experiment.config`), runs the job it names (:mod:`geoconv.experiment.jobs`)
and writes ``metrics.json``; at the end of a multirun :mod:`geoconv.experiment.report`
writes one table.
"""
