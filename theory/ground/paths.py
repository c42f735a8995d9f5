"""Output locations checked before any work starts: a file or a folder the command will write, tried for
writability without creating anything that stays.

``writable_folder(name, path)``: ``path`` is a folder, or can be made one (every existing part of it a folder,
the nearest existing one writable: the command creates the rest, as ``mkdir -p`` would). ``writable_file(name,
path)``: ``path`` is not a folder, its folder is writable or can be made (files are written atomically: a
temporary file beside the target, then a rename, so the folder must take new files). Writability is tried, not
read from the permission bits: a probe file is created in the nearest existing folder and removed at once (the
permission bits say yes to root everywhere, also in /proc). Either raises ParameterError naming ``name`` and
what is wrong with the path, which the command line maps to the option.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from theory.ground.errors import ParameterError


def _reason(err: OSError) -> str:
    return err.strerror or errno.errorcode.get(err.errno or 0, type(err).__name__)


def _nearest_existing(name: str, path: Path, folder: Path, what: str) -> Path:
    """The nearest existing folder at or above ``folder`` (``path``'s, or ``path`` itself); ParameterError naming
    ``path`` if an existing part is not a folder."""
    for part in (folder, *folder.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                raise ParameterError(name, str(path), f"{what} ({part} is {_kind(part)}, not a folder)")
            return part
    return Path.cwd()  # a relative path's first part does not exist: it is made in the working folder


def _kind(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "a broken link"
    return "a file" if path.is_file() else "not a folder"


def _probe(name: str, path: Path, folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: can the command write there?"""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=".tmp")
    except OSError as err:
        raise ParameterError(name, str(path), f"{what} ({folder}: {_reason(err)})") from None
    os.close(fd)
    os.unlink(probe)


def _nonempty(name: str, path) -> Path:
    if path is None or not str(path).strip():
        raise ParameterError(name, "" if path is None else str(path), "a path (not empty)")
    return Path(os.path.expanduser(str(path)))


def writable_folder(name: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path if the command can write files into it (creating it and its missing parents)."""
    target = _nonempty(name, path)
    what = "a folder this process can create or write into"
    _probe(name, target, _nearest_existing(name, target, target, what), what)
    return target


def writable_file(name: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path if the command can write it (replacing a file there; creating its missing folders)."""
    target = _nonempty(name, path)
    what = "a file path this process can write"
    if target.is_dir():
        raise ParameterError(name, str(path), f"{what} (it is a folder: name a file in it)")
    if target.name in ("", ".", ".."):
        raise ParameterError(name, str(path), f"{what} (it names a folder: name a file in it)")
    _probe(name, target, _nearest_existing(name, target, target.parent, what), what)
    return target


def not_folders(name: str, paths) -> None:
    """ParameterError naming ``name`` if any of ``paths`` (files the command will write or replace) is a folder."""
    for path in paths:
        if Path(path).is_dir():
            raise ParameterError(name, str(Path(path).parent), f"a folder whose output names are free "
                                                               f"({Path(path).name} in it is a folder)")
