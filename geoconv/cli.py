"""The ``geoconv`` console script: look at the operator registry from a shell.

.. code-block:: text

    geoconv ops                  # every op: name, grids, parameters with defaults, summary
    geoconv ops '*pool*'         # ops whose name matches an fnmatch pattern
    geoconv ops --grid healpix   # ops that support a grid
    geoconv ops conv             # one op: its full doc and its config schema
    geoconv --version

An unknown op name exits with status 2 and prints the error, with the closest names,
to stderr. ``python -m geoconv`` runs the same program.

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geoconv",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geoconv`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; ``sys.argv[1:]`` when not given.

    Returns
    -------
    int
        The exit status: 0 on success, 1 when a pattern matches no op, 2 for a usage
        error or an unknown name (the message goes to stderr, without a traceback).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for --help, --version and usage errors; a function returns its status.
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except GeoconvError as exc:
        print(f"geoconv: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (`geoconv ops | head`) left early; stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
