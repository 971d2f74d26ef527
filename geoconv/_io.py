"""Writing files all at once: the one atomic writer every result, report, figure and cache uses.

:func:`atomic_write` writes into a temporary file beside the target (same directory, so the
same file system), then renames it over the target with :func:`os.replace`. A reader (another
process, another DDP rank, a report of a sweep still running) sees the old file or the new
one, never half of one; a writer that fails or is interrupted half-way leaves the old file
as it was and no temporary behind. A process killed by SIGKILL between the two steps can
leave a dot-file ``.<name>.<random>.tmp``; nothing reads such a file.

Examples
--------
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = atomic_write(folder / "a.txt", "hello\\n")
>>> (folder / "a.txt").read_text()
'hello\\n'
>>> _ = atomic_write(folder / "b.bin", lambda fh: fh.write(b"\\x00\\x01"))
>>> sorted(p.name for p in folder.iterdir())
['a.txt', 'b.bin']
>>> import shutil; shutil.rmtree(folder)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_path", "atomic_write", "temporary_name"]


def temporary_name(path: str | os.PathLike[str], suffix: str = "") -> Path:
    """A fresh temporary file name beside ``path``: ``.<name>.<8 hex digits>.tmp<suffix>``.

    Dot-prefixed, so globs such as ``*.png`` or ``*.ckpt`` do not see it.
    """
    target = Path(path)
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path`` through, for writers that only take a file name.

    The temporary name keeps ``path``'s suffix (a writer may pick the format from it). When
    the block ends normally the file is renamed over ``path``; on any error it is removed
    and ``path`` is left as it was. Prefer :func:`atomic_write` for writers that take a
    file object.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "x.txt") as tmp:
    ...     _ = tmp.write_text("x")
    >>> sorted(p.name for p in folder.iterdir())
    ['x.txt']
    >>> import shutil; shutil.rmtree(folder)
    """
    target = Path(path)
    temporary = temporary_name(target, target.suffix)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str | Callable[[BinaryIO], object],
    *,
    fsync: bool = True,
) -> Path:
    """Write ``path`` all at once: into a temporary file beside it, then :func:`os.replace`.

    Parameters
    ----------
    path : path
        The file to (over)write; its directory must exist.
    data : bytes, str or callable
        The content (``str`` is encoded as UTF-8), or a function that writes it to a binary
        file object (``lambda fh: figure.savefig(fh, format="png")``,
        ``lambda fh: torch.save(obj, fh)``).
    fsync : bool
        Flush the temporary file to disk before the rename, so that a power cut leaves the
        old file or the new one (default). Off only where losing the file costs nothing.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    The temporary file is created with mode ``0o666`` less the umask, as :func:`open` would
    create the file; :func:`tempfile.mkstemp` would leave results readable by their owner
    only. On any error (an interrupt included) the temporary file is removed, ``path`` is
    left as it was, and the error propagates.
    """
    target = Path(path)
    temporary = temporary_name(target)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, str):
                handle.write(data.encode("utf-8"))
            elif isinstance(data, bytes | bytearray | memoryview):
                handle.write(data)
            else:
                data(handle)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
