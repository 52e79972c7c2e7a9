"""Checks of the paths a command will write, made before any work starts.

A command that scores for minutes and then cannot save its results has lost the work;
a traceback then tells the user less than one line would. Every command checks its
output paths first with these, and prints the ``PathProblem`` (one line naming the path
and what is expected) with exit status 2.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "afile").write_text("x")
1
>>> output_dir(root / "out" / "sub", "--out") == root / "out" / "sub"
True
>>> output_dir(root / "afile" / "sub", "--out")
Traceback (most recent call last):
...
iotwatch.paths.PathProblem: --out .../afile/sub: .../afile is a file; expected a directory (or a path where one can be made)
>>> output_file(root / "out", "--json")
Traceback (most recent call last):
...
iotwatch.paths.PathProblem: --json .../out: is a directory; expected a file name
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from iotwatch import IotwatchError

__all__ = ["PathProblem", "output_dir", "output_file"]


class PathProblem(IotwatchError):
    """An output path that cannot be written; the message names it and what is expected."""


def output_dir(path: Path, option: str) -> Path:
    """Make sure ``path`` is a directory files can be written in, creating it if missing.

    ``option`` names where the path came from (``--out``, ``publisher.labels_file``).
    """
    path = Path(path)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise PathProblem(f"{option} {path}: {blocker} is a file; expected a directory "
                          "(or a path where one can be made)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".iotwatch-probe-")  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise PathProblem(f"{option} {path}: cannot write there ({exc.strerror or exc}); "
                          "expected a directory you can create and write to") from None
    return path


def output_file(path: Path, option: str) -> Path:
    """Make sure ``path`` can be written as a file (its directory is created if missing).

    An existing file is left as it is: the command overwrites it only once its work is done.
    """
    path = Path(path)
    if path.is_dir():
        raise PathProblem(f"{option} {path}: is a directory; expected a file name")
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        raise PathProblem(f"{option} {path}: {blocker} is a file; expected a directory "
                          "to hold the file")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        raise PathProblem(f"{option} {path}: cannot write it ({exc.strerror or exc}); "
                          "expected a file you can create or overwrite") from None
    if not existed:
        with contextlib.suppress(OSError):
            path.unlink()
    return path


def _file_in_the_way(path: Path) -> Path | None:
    """``path`` or its nearest existing ancestor, when that is not a directory."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None
