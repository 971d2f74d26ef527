"""What a training run writes to its console and log: Lightning's lines once, bars only on a terminal, the test block.

Three things go wrong with Lightning's defaults under ``experiments/run.py``:

- **Doubled lines.** ``import lightning`` gives the ``lightning`` logger a handler of its own
  that prints to stderr *and* lets the record propagate; once Hydra (or any application)
  has configured the root logger, every Lightning INFO line appears twice.
  :func:`route_lightning_logs` removes Lightning's own handler when the root logger has
  handlers, so its records go where every other record goes: the console and the job log.
- **Progress bars in files.** A bar redraws itself many times a second; in a job log or a
  batch system's output file that is thousands of lines. :func:`progress_bar_enabled`
  turns the bar off unless stdout is a terminal (``trainer.progress_bar=auto``, the
  default); ``true`` forces it on, ``false`` off.
- **No final numbers.** The test metrics went into ``metrics.json`` only;
  :func:`metrics_block` is the compact block :func:`geoconv.training.engine.train` logs at the
  end of every run.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping

__all__ = ["PROGRESS_BAR_CHOICES", "progress_bar_enabled", "route_lightning_logs", "metrics_block"]

PROGRESS_BAR_CHOICES = ("auto", True, False)
"""``trainer.progress_bar``: ``auto`` (only when stdout is a terminal), ``true`` (forced), ``false``."""

# The loggers Lightning gives a handler of their own (``lightning``, ``lightning.pytorch`` and
# ``lightning.fabric``, depending on which package was imported first and how).
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def route_lightning_logs() -> None:
    """Send Lightning's records through the root logger's handlers only, once each.

    Does nothing while the root logger has no handler (a plain script without logging set
    up), where Lightning's own handler is the only way its lines reach the console.
    """
    if not logging.getLogger().handlers:
        return
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            # Only Lightning's console handler (a plain StreamHandler): a file handler someone added stays.
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True


def progress_bar_enabled(setting: object, stream: object = None) -> bool:
    """Whether to draw Lightning's progress bar for ``trainer.progress_bar = setting``.

    Examples
    --------
    >>> import io
    >>> progress_bar_enabled("auto", io.StringIO()), progress_bar_enabled(True, io.StringIO())
    (False, True)
    """
    if setting == "auto":
        stream = sys.stdout if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        return bool(isatty()) if callable(isatty) else False
    return bool(setting)


def _number(value: float | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def metrics_block(metrics: Mapping[str, float | int], title: str) -> str:
    """The final test metrics as one compact block: a title line, then ``name  value`` lines.

    Parameters
    ----------
    metrics : mapping
        Metric name to number; the ``test/`` ones are shown, sorted, without the prefix.
    title : str
        What was tested (data set, grid, epochs).

    Examples
    --------
    >>> print(metrics_block({"test/acc": 0.8125, "test/acc_r": 0.5, "train/loss": 0.3}, "digits on planar 16"))
    test metrics, digits on planar 16:
      acc    0.8125
      acc_r  0.5
    """
    shown = {name.removeprefix("test/"): value for name, value in sorted(metrics.items()) if name.startswith("test/")}
    if not shown:
        return f"test metrics, {title}: none"
    width = max(len(name) for name in shown)
    lines = [f"  {name.ljust(width)}  {_number(value)}" for name, value in shown.items()]
    return "\n".join([f"test metrics, {title}:", *lines])
