"""The ``geoconv`` command: run experiments, report sweeps, predict with trained runs, list ops.

.. code-block:: text

    geoconv run [OVERRIDES...]             # compose a config and run it (Hydra), from any directory
    geoconv run experiment=shift_invariance padding_mode=circular
    geoconv run -m op=conv,gated_conv      # a multirun; ends with its report
    geoconv report SWEEP_DIR [...]         # report.md, report.csv, summary.png for a multirun
    geoconv predict RUN_DIR INPUT... --out DIR   # a trained run's predictions, in the inputs' formats
    geoconv ops                            # every op: name, grids, parameters with defaults, summary
    geoconv ops '*pool*'                   # ops whose name matches an fnmatch pattern
    geoconv ops --grid healpix             # ops that support a grid
    geoconv ops conv                       # one op: its full doc and its config schema
    geoconv --version

``geoconv run`` is :func:`geoconv.experiment.main.main` (``python experiments/run.py`` in a
checkout is the same program); everything after ``run`` goes to Hydra, so ``--help``,
``--cfg job`` and ``-m`` work as Hydra documents them. The configs ship inside the package.

Exit status: 0 on success; 1 when a run or a sweep job failed, or a pattern matches no op;
2 for a usage error, an unknown name or bad input (the message goes to stderr, without a
traceback). ``python -m geoconv`` runs the same program.

Examples
--------
>>> from geoconv.cli import main
>>> main(["ops", "conv_transpose"])  # doctest: +ELLIPSIS
conv_transpose
...
0
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import geoconv
from geoconv.errors import GeoconvError, unknown_name
from geoconv.experiment.table import render_table
from geoconv.grids import list_grids
from geoconv.ops.registry import OpSpec, get_op, list_ops

__all__ = ["main", "render_table", "config_descriptions"]

_GLOB_CHARS = frozenset("*?[")
_SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")


def config_descriptions(config: type) -> dict[str, str]:
    """Field descriptions from the numpy docstrings of a config dataclass and its bases.

    Reads each class's ``Attributes`` (or ``Parameters``) section; an entry may name
    several fields at once (``kernel_size, stride : int``). A subclass's description wins
    over its base's, so a derived config documents only what it adds or changes.

    Parameters
    ----------
    config : type
        A dataclass.

    Returns
    -------
    dict
        Field name to a one-paragraph description (whitespace collapsed, possibly empty).
    """
    descriptions: dict[str, str] = {}
    for cls in reversed(inspect.getmro(config)):
        if cls is object:
            continue
        descriptions.update(_docstring_fields(inspect.cleandoc(cls.__dict__.get("__doc__") or "")))
    return descriptions


def _docstring_fields(doc: str) -> dict[str, str]:
    """Parse the ``Attributes``/``Parameters`` sections of one cleaned numpy docstring."""
    lines = doc.splitlines()
    fields: dict[str, str] = {}
    in_section = False
    names: list[str] = []
    for k, line in enumerate(lines):
        next_is_rule = k + 1 < len(lines) and _SECTION_RULE.match(lines[k + 1])
        if next_is_rule and line.strip():
            in_section = line.strip() in ("Attributes", "Parameters")
            names = []
            continue
        if not in_section or _SECTION_RULE.match(line):
            continue
        if line and not line[0].isspace():
            # An entry line: "name[, name2] : type" at the section's own indentation.
            names = [n.strip() for n in line.split(" : ")[0].split(",") if n.strip()]
            for name in names:
                fields.setdefault(name, "")
        elif line.strip() and names:
            for name in names:
                fields[name] = f"{fields[name]} {line.strip()}".strip()
    return fields


def _terminal_width() -> int:
    # COLUMNS wins (shutil reads it first), so `COLUMNS=200 geoconv ops` and tests can pick a width.
    return max(shutil.get_terminal_size(fallback=(100, 24)).columns, 40)


def _parameters_text(spec: OpSpec) -> str:
    return ", ".join(str(p) for p in spec.parameters()) or "(none)"


def _print_table(names: list[str], width: int) -> None:
    specs = [get_op(name) for name in names]
    headers = ["NAME", "GRIDS", "PARAMETERS", "DESCRIPTION"]
    rows = [[s.name, ", ".join(s.grids), _parameters_text(s), s.summary] for s in specs]
    if any(s.source != "geoconv" for s in specs):
        headers.append("SOURCE")
        for row, spec in zip(rows, specs, strict=True):
            row.append("" if spec.source == "geoconv" else spec.source)
    print(render_table(headers, rows, width))


def _print_detail(spec: OpSpec, width: int) -> None:
    print(spec.name)
    print("=" * len(spec.name))
    print(f"grids:    {', '.join(spec.grids)}")
    print(f"source:   {spec.source}")
    channels = "out_channels must equal in_channels (or be left out)" if spec.same_channels else "any in/out"
    print(f"channels: {channels}")
    print(f"build:    geoconv.build_op({spec.name!r}, in_channels, out_channels, grid={spec.grids[0]!r}, **params)")
    print()
    print(inspect.cleandoc(spec.doc) if spec.doc.strip() else "(no documentation)")
    print()
    title = f"Config schema: {spec.config.__module__}.{spec.config.__qualname__}"
    print(title)
    print("-" * len(title))
    descriptions = config_descriptions(spec.config)
    rows = [
        [p.name, p.type, "(required)" if p.required else repr(p.default), descriptions.get(p.name, "")]
        for p in spec.parameters()
    ]
    if rows:
        print(render_table(["PARAMETER", "TYPE", "DEFAULT", "DESCRIPTION"], rows, width))
    else:
        print("(no parameters)")


def _ops(args: argparse.Namespace) -> int:
    width = _terminal_width()
    pattern = args.pattern
    if args.grid is not None and args.grid not in list_grids():
        raise unknown_name("grid", args.grid, list_grids())
    if pattern is not None and not _GLOB_CHARS & set(pattern):
        # A plain name is a request for one op; get_op raises with suggestions when it is unknown.
        spec = get_op(pattern)
        if args.grid is not None:
            spec.check_grid(args.grid)
        _print_detail(spec, width)
        return 0
    names = list_ops(pattern or "*", grid=args.grid)
    if not names:
        where = f" on grid {args.grid!r}" if args.grid else ""
        print(f"geoconv: no op matches {pattern or '*'!r}{where}; `geoconv ops` lists them all", file=sys.stderr)
        return 1
    _print_table(names, width)
    return 0


def _run(args: argparse.Namespace) -> int:
    from geoconv.experiment.main import main as hydra_main

    # Hydra reads its arguments from sys.argv; the program name is what its --help shows.
    saved = sys.argv
    sys.argv = ["geoconv run", *args.overrides]
    try:
        hydra_main()
    except SystemExit as exc:  # Hydra and the entry point exit 1 for a failed run or sweep
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    return 0


def _report(args: argparse.Namespace) -> int:
    from geoconv.experiment.report import write_report

    written = write_report(args.directory, args.out, args.metrics, args.headline, max_panels=args.max_panels)
    print(written.text)
    extra = f", {written.seeds_csv.name}" if written.seeds_csv is not None else ""
    print(f"\nWrote {written.markdown}, {written.csv.name}{extra} and {written.figure.name}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from geoconv.training.predict import predict_files
    from geoconv.training.runs import load_run

    run = load_run(args.run_dir)
    result = predict_files(run, args.inputs, args.out, variable=args.variable, overwrite=args.overwrite)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for path, label in result.predictions:
        print(f"{path}\t{label}")
    what = f"{len(args.inputs)} prediction(s)" if run.task == "classification" else f"{len(result.written)} map(s)"
    print(f"wrote {what}: {', '.join(str(p) for p in result.written[:3])}{' ...' if len(result.written) > 3 else ''}")
    return 0


def _add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="write report.md, report.csv and summary.png for a multirun and print its table",
        description="One row per job (sorted by job number): the overrides that varied, the metrics and the "
        "status; failed jobs are listed, never dropped; seeds are grouped into mean ± std. The metric columns "
        "are the experiment's own report_metrics unless --metrics chooses others.",
    )
    report.add_argument(
        "directory",
        nargs="+",
        metavar="MULTIRUN_DIR",
        help="the sweep directory holding 0/, 1/, ...; several are read as one report (jobs named <sweep>/<job>, "
        "seeds grouped across them) and need --out",
    )
    report.add_argument("--out", metavar="DIR", help="write the report files here instead of MULTIRUN_DIR")
    report.add_argument(
        "--metrics",
        nargs="+",
        metavar="PATTERN",
        help="fnmatch patterns of the metric columns in the table (default: the experiment's report_metrics, "
        "else all; each pattern must match a metric; the CSV always has all)",
    )
    report.add_argument(
        "--headline",
        nargs="+",
        metavar="PATTERN",
        help="fnmatch patterns of the metrics drawn in summary.png (default: the table's columns)",
    )
    report.add_argument("--max-panels", type=int, default=6, metavar="N", help="most panels in summary.png (6)")
    report.set_defaults(handler=_report)


def _parser(prog: str = "geoconv") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convolution operators on the plane and the sphere, behind one registry.",
    )
    parser.add_argument("--version", action="version", version=f"geoconv {geoconv.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ops = commands.add_parser(
        "ops",
        help="list the registered operators, or show one",
        description="Without PATTERN, list every op; with a glob PATTERN ('*pool*'), the ops that match; "
        "with an exact op name, that op's full documentation and config schema.",
    )
    ops.add_argument("pattern", nargs="?", metavar="PATTERN|NAME", help="an fnmatch pattern or an op name")
    ops.add_argument("--grid", metavar="G", help="only ops that support grid G (planar, equirect, cubemap, healpix)")
    ops.set_defaults(handler=_ops)
    run = commands.add_parser(
        "run",
        help="run an experiment: compose the config from OVERRIDES (Hydra) and run its job",
        description="Everything after `run` goes to Hydra: key=value overrides, -m/--multirun for a sweep, "
        "--cfg job to print the composed config, --help for Hydra's help with every config group.",
        add_help=False,  # --help goes to Hydra, which lists the config groups
    )
    run.add_argument("overrides", nargs=argparse.REMAINDER, metavar="OVERRIDES", help="Hydra overrides")
    run.set_defaults(handler=_run)
    _add_report(commands)
    predict = commands.add_parser(
        "predict",
        help="predict map files with a trained run; write the results in the inputs' formats",
        description="Classification runs write DIR/predictions.csv (file, label, one probability per class); "
        "segmentation runs write one probability map per input, in its format, grid and resolution. Inputs "
        "on another grid or resolution are regridded to the run's (with a note).",
    )
    predict.add_argument("run_dir", metavar="RUN_DIR", help="a training run's directory (or a .ckpt file)")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="map files: .fits, .nc, .png/.jpg, .npy")
    predict.add_argument("--out", required=True, metavar="DIR", help="the folder the predictions go into")
    predict.add_argument("--variable", metavar="NAME", help="the NetCDF variable (default: the run's data.variable)")
    predict.add_argument("--overwrite", action="store_true", help="replace files already in DIR")
    predict.set_defaults(handler=_predict)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "geoconv") -> int:
    """Run the ``geoconv`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; ``sys.argv[1:]`` when not given.
    prog : str
        The program's name in messages (``experiments/report.py`` calls it as ``report.py``).

    Returns
    -------
    int
        The exit status: 0 on success; 1 when a run failed or a pattern matches no op; 2
        for a usage error, an unknown name or bad input (the message goes to stderr,
        without a traceback).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        # Hydra parses what follows `run` (overrides, -m, --cfg, --help); argparse would take
        # the options for its own.
        return _run(argparse.Namespace(overrides=argv[1:]))
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for --help, --version and usage errors; a function returns its status.
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except GeoconvError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (`geoconv ops | head`) left early; stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
