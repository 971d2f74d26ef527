"""Statistics over seeds: group a multirun's jobs that differ only in ``seed``, and test differences.

A sweep such as ``-m variant=a,b seed=0,1,2`` runs every configuration several times. The
report shows one row per configuration (:func:`group_by_seed`): each numeric metric as
``mean ± std (n)`` over the seeds whose job finished, with the sample standard deviation

.. math:: s = \\sqrt{\\tfrac{1}{n-1} \\sum_i (x_i - \\bar x)^2},

and marks whether a configuration differs from the best one by more than the seed noise, by
Welch's unequal-variance t-test (:func:`welch_test`):

.. math::
    t = \\frac{\\bar a - \\bar b}{\\sqrt{s_a^2/n_a + s_b^2/n_b}}, \\qquad
    \\nu = \\frac{(s_a^2/n_a + s_b^2/n_b)^2}{\\frac{(s_a^2/n_a)^2}{n_a - 1} + \\frac{(s_b^2/n_b)^2}{n_b - 1}}
    \\ \\text{(Welch-Satterthwaite)},

with the two-sided p-value :math:`p = I_{\\nu/(\\nu + t^2)}(\\nu/2, 1/2)` of Student's t with
:math:`\\nu` degrees of freedom (:math:`I` the regularised incomplete beta function). The test is
written out here, in plain Python, rather than taken from scipy, so that the tests can check
it against ``scipy.stats.ttest_ind(equal_var=False)`` as an independent reference.

Examples
--------
>>> mean_std([0.80, 0.82, 0.84])
(0.82, 0.019999999999999962, 3)
>>> result = welch_test([0.80, 0.82, 0.84], [0.60, 0.65, 0.70])
>>> round(result.t, 3), round(result.df, 3), round(result.p, 4)
(5.468, 2.624, 0.0169)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from geoconv.experiment.sweep import Report, Run, finite, format_value

__all__ = [
    "RUN_CONTROL_KEYS",
    "SEED_KEY",
    "SIGNIFICANCE",
    "SeedGroup",
    "WelchResult",
    "best_group",
    "format_stats",
    "group_by_seed",
    "higher_is_better",
    "is_configuration_key",
    "mean_std",
    "seed_grouped",
    "student_t_sf2",
    "welch_test",
]

SEED_KEY = "seed"
"""The override key whose jobs are repeats of one configuration."""

RUN_CONTROL_KEYS = frozenset({"overwrite", "ckpt_path"})
"""Override keys that say how a job ran, not what it computed: re-running a job into its
directory (``overwrite=true``) or resuming it bitwise from its checkpoint (``ckpt_path=last``).
Jobs that differ only in these and ``seed`` are repeats of one configuration."""


def is_configuration_key(key: str) -> bool:
    """Whether override ``key`` tells configurations apart (not ``seed``, not a run control)."""
    return key != SEED_KEY and key not in RUN_CONTROL_KEYS


SIGNIFICANCE = 0.05
"""The two-sided p-value below which a difference is marked as larger than the seed noise."""

# Metrics where smaller is better; anything else (accuracies, throughput) is better larger. The
# whole name is read: in "equivariance/max" or "symmetry/roll_1" the group says it is an error.
_LOWER_IS_BETTER = re.compile(
    r"(loss|err|_ms$|^ms$|/ms$|time|seconds|memory|_mb$|params|excess|latency|equivariance|symmetry|offset)"
)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """The mean, sample standard deviation (``ddof=1``; ``nan`` for one value) and count.

    Parameters
    ----------
    values : sequence of float
        At least one value.

    Examples
    --------
    >>> mean_std([2.0])
    (2.0, nan, 1)
    """
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)), n


def format_stats(stats: tuple[float, float, int] | None) -> str:
    """``mean ± std (n)`` of a metric over seeds (``%.3g``), just the value when ``n`` is 1.

    >>> format_stats((0.8234, 0.0212, 3)), format_stats((0.5, float("nan"), 1)), format_stats(None)
    ('0.823 ± 0.0212 (3)', '0.5', '')
    """
    if stats is None:
        return ""
    mean, std, n = stats
    return format_value(mean) if n < 2 else f"{format_value(mean)} ± {format_value(std)} ({n})"


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
            last = d * c
        if abs(last - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function :math:`I_x(a, b)` for ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_sf2(t: float, df: float) -> float:
    """The two-sided tail :math:`P(|T| \\ge |t|)` of Student's t with ``df`` degrees of freedom.

    Examples
    --------
    >>> round(student_t_sf2(2.228, 10), 4)  # the 97.5 % quantile of t with 10 degrees of freedom
    0.05
    """
    if math.isinf(t):
        return 0.0
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class WelchResult:
    """Welch's t statistic, its Welch-Satterthwaite degrees of freedom and the two-sided p-value."""

    t: float
    df: float
    p: float


def welch_test(a: Sequence[float], b: Sequence[float]) -> WelchResult | None:
    """Welch's two-sided t-test of equal means without assuming equal variances.

    Parameters
    ----------
    a, b : sequence of float
        The two samples (finite values).

    Returns
    -------
    WelchResult or None
        ``None`` when it cannot be tested: a sample has fewer than two values, or neither has
        any spread (the noise is unknown, so no difference can be called larger than it).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    mean_a, std_a, n_a = mean_std(a)
    mean_b, std_b, n_b = mean_std(b)
    va, vb = std_a**2 / n_a, std_b**2 / n_b
    if va + vb == 0.0:
        return None
    t = (mean_a - mean_b) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return WelchResult(t, df, student_t_sf2(t, df))


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better (accuracy, throughput) or worse
    (losses, errors, times, memory, parameter counts), judged from its name.

    >>> higher_is_better("test/acc_r"), higher_is_better("fwd_ms"), higher_is_better("peak_memory_delta_mb")
    (True, False, False)
    >>> higher_is_better("equivariance/max"), higher_is_better("symmetry/roll_1")
    (False, False)
    """
    return _LOWER_IS_BETTER.search(name.lower()) is None


@dataclass(frozen=True)
class SeedGroup:
    """The jobs of one configuration: same overrides except ``seed``.

    Attributes
    ----------
    choices : dict of str to str
        The group's overrides without ``seed`` and the run controls.
    runs : tuple of Run
        Its jobs, by job number.
    """

    choices: dict[str, str]
    runs: tuple[Run, ...]

    @property
    def jobs(self) -> str:
        """The jobs' names (:attr:`Run.name`), comma-separated."""
        return ",".join(run.name for run in self.runs)

    @property
    def seeds(self) -> tuple[str, ...]:
        """The seeds of the group's jobs, as written (``""`` for a job without one)."""
        return tuple(run.choices.get(SEED_KEY, "") for run in self.runs)

    def values(self, name: str) -> list[float]:
        """The finite values of metric ``name`` over the group's ok jobs."""
        return [x for run in self.runs if run.ok and (x := finite(run.metrics.get(name))) is not None]

    def stats(self, name: str) -> tuple[float, float, int] | None:
        """``(mean, std, n)`` of metric ``name`` (:func:`mean_std`), or ``None`` without values."""
        values = self.values(name)
        return mean_std(values) if values else None

    @property
    def status_counts(self) -> dict[str, int]:
        """How many of the group's jobs have each status, in order of first appearance."""
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts


def group_by_seed(report: Report) -> tuple[SeedGroup, ...]:
    """Group the jobs of ``report`` whose overrides are equal except for ``seed``.

    Only ``seed`` and the :data:`RUN_CONTROL_KEYS` are ignored: jobs differing in any other
    override are in different groups.
    A job whose overrides could not be read is a group of its own (it cannot be matched).
    Groups are in the order of their first job.

    Examples
    --------
    >>> from pathlib import Path
    >>> runs = [Run(j, Path(str(j)), {"op": op, "seed": s}) for j, (op, s) in enumerate(["a0", "b0", "a1"])]
    >>> [group.jobs for group in group_by_seed(Report(Path("."), tuple(runs), ("op", "seed"), {}, ()))]
    ['0,2', '1']
    """
    groups: dict[object, list[Run]] = {}
    for run in report.runs:
        key: object = (
            tuple(sorted((k, v) for k, v in run.choices.items() if is_configuration_key(k)))
            if run.choices_known
            else ("unknown job", run.sweep, run.job)
        )
        groups.setdefault(key, []).append(run)
    return tuple(
        SeedGroup({k: v for k, v in runs[0].choices.items() if is_configuration_key(k)}, tuple(runs))
        for runs in groups.values()
    )


def seed_grouped(report: Report) -> tuple[SeedGroup, ...] | None:
    """The seed groups when ``seed`` varies and some configuration ran more than once, else ``None``
    (the report keeps one row per job, as without seeds)."""
    if SEED_KEY not in report.varying:
        return None
    groups = group_by_seed(report)
    return groups if any(len(group.runs) > 1 for group in groups) else None


def best_group(groups: Sequence[SeedGroup], name: str) -> int | None:
    """The index of the group with the best mean of metric ``name`` (:func:`higher_is_better`),
    or ``None`` when no group has a value."""
    means = [(stats[0], k) for k, group in enumerate(groups) if (stats := group.stats(name)) is not None]
    if not means:
        return None
    pick = max if higher_is_better(name) else min
    return pick(means, key=lambda item: item[0])[1]
