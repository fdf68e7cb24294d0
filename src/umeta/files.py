"""Writing files safely: atomically (a temporary file beside the target, then one rename, so a
reader or a crash never sees half a file) and with the permissions of any new file (0666 less
the process's umask); and lock files that keep two processes from working on one thing."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the umask (reading the umask means
    setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; when the block ends without an error
    it gets the new-file mode and replaces ``path`` in one rename, else it is removed."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_args) -> Iterator[IO]:
    """``open(path, mode)`` for writing, made atomic by :func:`atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_args) as handle:
        yield handle


class FileLocked(OSError):
    """Another process holds the lock; ``holder`` is the process id it wrote (or "unknown")."""

    def __init__(self, path: Path, holder: str) -> None:
        self.holder = holder
        super().__init__(f"{path} is locked by process {holder}")


def _try_lock(handle: IO) -> bool:
    """Take an exclusive lock on the open file without waiting; False if another process holds
    it. The operating system releases it when the file is closed or the process ends."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def file_lock(path: str | Path, *, wait: bool = False, poll_s: float = 0.5) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if needed) for the block, and write
    this process's id into it. Held elsewhere: wait for it (``wait``), else raise
    :class:`FileLocked`. A killed holder's lock is released by the operating system."""
    path = Path(path)
    with open(path, "a+") as handle:
        while not _try_lock(handle):
            if not wait:
                handle.seek(0)
                raise FileLocked(path, handle.read().strip() or "unknown")
            time.sleep(poll_s)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


__all__ = ["FileLocked", "atomic_path", "atomic_write", "file_lock", "new_file_mode"]
