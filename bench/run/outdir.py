"""Output folders: where a command may write, and one writer per folder at a time.

Every command that writes (`run`, `eval-vectors`, `report`, `gradient-flow`, `gates`) claims its
output before any work, so a refusal costs nothing and leaves nothing behind:

- The folder is new, empty, or one of ours: it holds a run's `matrix.json`, a `report.md` that
  `report` rendered or a `gradient_flow.csv` of `gradient-flow`, or only folders of ours (runs
  gathered for one report) (`check_folder`). A folder of a user's own files is refused, so
  none of them is overwritten.
- The committed `results/` of this checkout is written only when the user names it
  (`--out results`): a default that would land there is refused with the flag to give
  (`check_named`), so running from the repository root never replaces a reference file.
- A lock file, `.lm-lineage.lock`, holding the owner's pid, is taken before the first write
  and removed on every way out (an exception, Ctrl-C, SIGTERM, which the CLI raises as an
  exception). The lock itself is an `flock` on that file, which the kernel drops when its
  process dies: a lock file left by a killed run (SIGKILL, a power cut) is taken over with one
  line naming the process that left it, and a live owner is never mistaken for a dead one,
  even when its pid is reused. A second command into a locked folder is one line, exit 2.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import BenchError

LOCK_FILE = ".lm-lineage.lock"
COMMITTED_RESULTS = Path(__file__).resolve().parents[2] / "results"  # the reference results of this checkout
# The first line `bench.report.render.render` gives every report.md, and the header of
# `lm-lineage gradient-flow`'s table: a folder holding either was written by this suite.
REPORT_HEADING = "# lm-lineage report"
GRADIENT_FLOW_HEADER = "model,k,grad_norm,seed"


@contextmanager
def claim(value: str, flag: str, named: bool) -> Iterator[Path]:
    """The folder `flag` gives (`value`, as typed), checked (`check_folder`, `check_named`) and
    locked for the block; `named`: whether the user gave the flag (False: the command's default)."""
    folder = as_path(value, flag)
    check_folder(folder, flag)
    check_named(folder, flag, named)
    with locked(folder, flag):
        yield folder


def check_folder(folder: Path, flag: str) -> None:
    """An output folder: a path where one can be made on a writable file system, new, empty,
    or one of ours (see the module docstring). Reads only; BenchError otherwise."""
    check_writable(folder, flag)
    if not folder.is_dir() or not _entries(folder):
        return  # new, or empty but for a lock left by a killed run (`locked` takes that over)
    matrix_file = folder / "matrix.json"
    if matrix_file.exists():
        _check_matrix_file(matrix_file, flag)
    elif not _ours(folder):
        raise BenchError(f"{flag} {folder}: the folder holds files and is not an output folder of lm-lineage (no "
                         f"matrix.json, report.md or gradient_flow.csv of its own); use a new or empty folder")


def _entries(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name != LOCK_FILE]


def _ours(folder: Path) -> bool:
    """Whether lm-lineage wrote `folder`: it holds a file only this suite writes, or it holds
    only such folders."""
    if (_starts_with(folder / "report.md", REPORT_HEADING) or _starts_with(folder / "gradient_flow.csv",
                                                                            GRADIENT_FLOW_HEADER)):
        return True
    if (folder / "matrix.json").exists():
        try:
            _check_matrix_file(folder / "matrix.json", "--out")
        except BenchError:
            return False
        return True
    entries = _entries(folder)
    return bool(entries) and all(path.is_dir() and _ours(path) for path in entries)


def as_path(value: str, flag: str) -> Path:
    """The path a flag gives; an empty one (`--out "$UNSET"`) is an error, not the current folder."""
    if not value:
        raise BenchError(f"{flag} '': expected a folder path")
    return Path(value).expanduser()


def check_writable(path: Path, flag: str) -> None:
    """`path` is an existing folder or can be made as one, on a file system that lets this
    process write. The check leaves nothing behind."""
    existing = next(p for p in (path, *path.parents) if p.exists())  # at the latest "." or "/"
    if not existing.is_dir():
        raise BenchError(f"{flag} {path}: {existing} is a file; expected a folder (or a path where one can be made)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lm-lineage-write-check-", dir=existing))
    except OSError as exc:
        raise BenchError(f"{flag} {path}: cannot write in {existing} ({exc.strerror}); expected a writable "
                         f"folder") from exc


def check_named(folder: Path, flag: str, named: bool) -> None:
    """Refuse a default output that lands in the committed results folder (or below it):
    only an explicit flag writes there."""
    committed = COMMITTED_RESULTS.resolve()
    target = folder.resolve()
    if not named and (target == committed or committed in target.parents):
        raise BenchError(f"{flag} {folder}: {target} is the committed results folder of this checkout, which "
                         f"lm-lineage writes only when --out names it; give --out {folder} to update the reference "
                         f"files, or another --out")


@contextmanager
def locked(folder: Path, flag: str) -> Iterator[None]:
    """Hold the folder's lock for the block (made with its parents if new). On the way out the
    lock file goes, and so does each folder this call made that is still empty: a command
    refused after it took the lock leaves nothing behind."""
    made = [path for path in (*reversed(folder.parents), folder) if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = folder / LOCK_FILE
    try:
        fd = _take(lock_file, folder, flag)
    except BaseException:
        _remove_empty(made)
        raise
    try:
        yield
    finally:
        lock_file.unlink(missing_ok=True)  # before the close: a waiter never locks a file that then vanishes
        os.close(fd)
        _remove_empty(made)


def _take(lock_file: Path, folder: Path, flag: str) -> int:
    """The open, flock-ed lock file holding this process's pid."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _pid_in(fd)
            os.close(fd)
            message = (f"{flag} {folder}: another lm-lineage process (pid {owner or 'unknown'}) is writing this "
                       f"folder (its lock: {lock_file}); wait for it to end, or use another {flag}")
            raise BenchError(message) from None
        if not _same_file(fd, lock_file):  # its owner removed it between our open and our flock: open it again
            os.close(fd)
            continue
        previous = _pid_in(fd)
        if previous:
            print(f"lm-lineage: {lock_file} was left by process {previous}, which ended without releasing it; "
                  f"taking it over", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd


def _pid_in(fd: int) -> str:
    """The pid a lock file holds ('' while its owner has not written it yet)."""
    return os.pread(fd, 32, 0).decode(errors="replace").strip()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (outermost first) that are empty, innermost first."""
    for path in reversed(folders):
        try:
            path.rmdir()
        except OSError:  # not empty: it holds what the command wrote
            return


def _check_matrix_file(matrix_file: Path, flag: str) -> None:
    try:
        payload = json.loads(matrix_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{matrix_file}: not valid JSON ({exc}); use another {flag}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("matrix"), dict):
        raise BenchError(f"{matrix_file}: not a matrix file of lm-lineage (expected an object with a "
                         f"'matrix' object); use another {flag}")


def _starts_with(path: Path, first_line: str) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.readline().decode("utf-8", errors="replace").rstrip("\r\n") == first_line
    except (FileNotFoundError, IsADirectoryError):
        return False


def check_record(path: Path, flag: str, schema: str) -> None:
    """A file a command rewrites whole (`gates`' record): new, or a JSON file of `schema`, so
    a user's file of the same name is never overwritten."""
    check_writable(path.parent, flag)
    if not path.exists():
        return
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("schema")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, IsADirectoryError):
        found = None
    if found != schema:
        raise BenchError(f"{flag} {path}: the file exists and is not a record of lm-lineage (schema {schema!r}); "
                         f"use a new file")
