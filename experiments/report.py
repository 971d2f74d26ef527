"""Turn a multirun directory into ``report.md``, ``report.csv`` and ``summary.png``, and print the table.

    python experiments/report.py multirun/2026-11-25/10-00-00
    python experiments/report.py SWEEP_DIR --metrics '*/fwd_bwd_ms' --out reports/ablation
    python experiments/report.py SWEEP_DIR --headline 'conv/*/params'
    python experiments/report.py SEED0_DIR SEEDS12_DIR --out reports/mnist   # one experiment run in parts

One row per job (sorted by job number): the overrides that varied, the metrics and the status;
failed jobs and jobs that left no ``metrics.json`` are listed, never dropped. The metric
columns are the experiment's own ``report_metrics`` (read from the jobs' saved configs, so
this rewrites the very report the sweep wrote; a configured column no job produced shows as
``n/a``), or every metric when the experiment names none; ``--metrics`` chooses others. The
logic is :mod:`geoconv.experiment.report`; this file only parses the command line.

Exit status: 0 when the report was written (even if some jobs failed: the report says so),
2 for a usage error or a directory that is not a multirun.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from geoconv.errors import GeoconvError
from geoconv.experiment.report import write_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="report.py",
        description="Write report.md, report.csv and summary.png for a Hydra multirun and print its table.",
    )
    parser.add_argument(
        "directory",
        nargs="+",
        metavar="MULTIRUN_DIR",
        help="the sweep directory holding 0/, 1/, ...; several are read as one report (jobs named <sweep>/<job>, "
        "seeds grouped across them) and need --out",
    )
    parser.add_argument("--out", metavar="DIR", help="write the report files here instead of MULTIRUN_DIR")
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="PATTERN",
        help="fnmatch patterns of the metric columns in the table (default: the experiment's report_metrics, "
        "else all; each pattern must match a metric; the CSV always has all)",
    )
    parser.add_argument(
        "--headline",
        nargs="+",
        metavar="PATTERN",
        help="fnmatch patterns of the metrics drawn in summary.png (default: the table's columns)",
    )
    parser.add_argument("--max-panels", type=int, default=6, metavar="N", help="most panels in summary.png (6)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        written = write_report(args.directory, args.out, args.metrics, args.headline, max_panels=args.max_panels)
    except GeoconvError as exc:
        print(f"report.py: error: {exc}", file=sys.stderr)
        return 2
    print(written.text)
    extra = f", {written.seeds_csv.name}" if written.seeds_csv is not None else ""
    print(f"\nWrote {written.markdown}, {written.csv.name}{extra} and {written.figure.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
