"""Keep geoconv's own docstring sections through numpydoc.

numpydoc parses a docstring into its fixed set of sections (Parameters, Returns, Notes, ...)
and silently drops any other section: a ``Shapes`` section of an op, or ``Padding modes`` in
a grid module, would vanish from the site without a warning that Sphinx sees. geoconv's
docstrings use such sections on purpose (``Shapes`` is read by ``geoconv ops NAME`` too),
so this extension carries them round numpydoc:

(Module docstrings are left alone: numpydoc does not parse them, so their sections render
as the page's own sections.)

1. before numpydoc (``autodoc-process-docstring``, priority 400), every section whose title
   numpydoc does not know is cut out of the docstring, found by numpydoc's own rule (a
   title line underlined with ``-`` or ``=`` at the start of a paragraph);
2. after numpydoc (priority 600), each is put back as a rubric with its text, before the
   Notes, References and Examples that numpydoc renders (or at the end).

The sections keep their order and their reStructuredText; nothing else is changed.
"""

from __future__ import annotations

import warnings
from typing import Any

from numpydoc.docscrape import NumpyDocString

_KNOWN = {name for name in NumpyDocString.sections if name not in ("Signature", "Summary", "Extended Summary")}
_KEY = "_geoconv_custom_sections"
_TAIL_RUBRICS = (".. rubric:: Notes", ".. rubric:: References", ".. rubric:: Examples")


def _canonical(title: str) -> str:
    # numpydoc capitalises each word of a section title before it looks it up.
    return " ".join(word.capitalize() for word in title.split(" "))


def _is_title(lines: list[str], i: int) -> bool:
    if i + 1 >= len(lines):
        return False
    first, second = lines[i].strip(), lines[i + 1].strip()
    if not first or first.startswith(".."):
        return False
    return second.startswith("-" * len(first)) or second.startswith("=" * len(first))


def _at_paragraph_start(lines: list[str], i: int) -> bool:
    return i == 0 or not lines[i - 1].strip()


def split_custom_sections(lines: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Return ``lines`` without the sections numpydoc does not know, and those sections."""
    kept: list[str] = []
    custom: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(lines):
        if i > 0 and _at_paragraph_start(lines, i) and _is_title(lines, i):
            title = lines[i].strip()
            if _canonical(title) not in _KNOWN:
                j = i + 2
                while j < len(lines) and not (_at_paragraph_start(lines, j) and _is_title(lines, j)):
                    j += 1
                body = lines[i + 2 : j]
                while body and not body[-1].strip():
                    body.pop()
                custom.append((title, body))
                i = j
                continue
        kept.append(lines[i])
        i += 1
    return kept, custom


def _document_data(env: Any) -> Any:
    """Per-document storage, emptied after each page (``current_document`` from Sphinx 8.1)."""
    current = getattr(env, "current_document", None)
    return current if current is not None else env.temp_data


def _before_numpydoc(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what == "module":
        return  # numpydoc leaves module docstrings as they are: their sections stay real sections
    kept, custom = split_custom_sections(lines)
    if custom:
        lines[:] = kept
        _document_data(app.env).setdefault(_KEY, {})[(what, name)] = custom


def _after_numpydoc(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    custom = _document_data(app.env).get(_KEY, {}).pop((what, name), None)
    if not custom:
        return
    block: list[str] = []
    for title, body in custom:
        block += ["", f".. rubric:: {title}", "", *body, ""]
    at = next((k for k, line in enumerate(lines) if line.strip() in _TAIL_RUBRICS), None)
    if at is None:
        # numpydoc ends a docstring with a comment that marks it processed; stay above it.
        at = next((k for k in range(len(lines) - 1, -1, -1) if lines[k].strip() == ".."), len(lines))
    lines[at:at] = block


def _data_signature(
    app: Any, what: str, name: str, obj: Any, options: Any, args: str | None, retann: str
) -> tuple[()] | None:
    # A module attribute that happens to be callable (a type alias such as
    # ``PadWidths = tuple[int, int, int, int]``) has no signature in autodoc, but numpydoc's
    # signature hook returns one for it, and Sphinx 9 then fails to store it ("list
    # assignment index out of range"). Data never show a signature: answer first, with an
    # empty result that stops the other hooks and changes nothing.
    if what in ("data", "attribute") and args is None:
        return ()
    return None


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("numpydoc")
    app.connect("autodoc-process-docstring", _before_numpydoc, priority=400)
    app.connect("autodoc-process-docstring", _after_numpydoc, priority=600)
    app.connect("autodoc-process-signature", _data_signature, priority=400)
    # numpydoc also parses each raw docstring for its signature hook and warns (a Python
    # warning, not a Sphinx one) about every section it does not know. Those sections are
    # the ones this extension keeps, so the warning is noise here.
    warnings.filterwarnings("ignore", message="Unknown section ", category=UserWarning, module="numpydoc")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
