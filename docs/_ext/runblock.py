"""``.. runblock::``: run a block of Python when the site is built and show what it printed.

The block's code is shown as it is, followed by its standard output (if it printed
anything). All blocks of one page share one namespace, in page order, so a later block can
use what an earlier one defined. An exception fails the build: the error names the page,
the line of the directive and the exception, so a stale example cannot be published.

Options
-------
``:hide-output:``
    Run the code but show only the code.
``:hide-code:``
    Run the code but show only the output.
``:rst-output:``
    Parse what the code printed as reStructuredText (a table it wrote, say) instead of
    showing it as text; implies ``:hide-code:``.

Each page's namespace starts with ``DOCS``, the :class:`pathlib.Path` of the documentation's
source folder, so that a block can find files of the repository (``DOCS.parent / "examples"``)
wherever the build is started.

The HTML builder does not run ``sphinx.ext.doctest`` blocks; this is its small stand-in.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
import types
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

_NAMESPACE = "_runblock_namespace"


def _document_data(env: Any) -> Any:
    """Per-document storage, emptied after each page (``current_document`` from Sphinx 8.1)."""
    current = getattr(env, "current_document", None)
    return current if current is not None else env.temp_data


class RunBlock(SphinxDirective):
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {
        "hide-output": directives.flag,
        "hide-code": directives.flag,
        "rst-output": directives.flag,
    }

    def run(self) -> list[nodes.Node]:
        code = "\n".join(self.content)
        namespace = _document_data(self.env).get(_NAMESPACE)
        if namespace is None:
            # A real module, so that what the code defines can find its module (dataclasses,
            # pickling and inspect look classes up in sys.modules).
            module = types.ModuleType("_runblock_" + "".join(c if c.isalnum() else "_" for c in self.env.docname))
            module.DOCS = Path(self.env.srcdir)
            sys.modules[module.__name__] = module
            namespace = module.__dict__
            _document_data(self.env)[_NAMESPACE] = namespace
        output = io.StringIO()
        try:
            compiled = compile(code, f"<runblock {self.env.docname}:{self.lineno}>", "exec")
            with contextlib.redirect_stdout(output):
                exec(compiled, namespace)
        except Exception as exc:  # any failure of an example fails the build
            trace = traceback.format_exception(exc)
            raise self.error(
                f"runblock in {self.env.docname!r} (line {self.lineno}) raised "
                f"{type(exc).__name__}: {exc}\n{''.join(trace[-3:])}"
            ) from exc
        printed = output.getvalue().rstrip("\n")
        if "rst-output" in self.options:
            container = nodes.container()
            self.state.nested_parse(StringList(printed.splitlines(), source=self.env.docname), 0, container)
            return container.children
        result: list[nodes.Node] = []
        if "hide-code" not in self.options:
            source = nodes.literal_block(code, code, language="python")
            self.set_source_info(source)
            result.append(source)
        if printed and "hide-output" not in self.options:
            shown = nodes.literal_block(printed, printed, language="text", classes=["runblock-output"])
            self.set_source_info(shown)
            result.append(shown)
        return result


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("runblock", RunBlock)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
