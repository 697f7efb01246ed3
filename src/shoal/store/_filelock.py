"""One owner per store file.

The SQLite backend keeps the revision counter, the watch ring and the write batch in memory,
so two processes writing one file would hand out the same revision twice. An exclusive
``flock`` on a lock file beside the database refuses the second opener. ``flock`` rather
than ``lockf``: its lock belongs to the open file, so a second open inside the same process
is refused too, and the kernel drops it when the owner dies, even by ``kill -9``.
"""

from __future__ import annotations

import fcntl
import os

from shoal.store._interface import StoreError


class FileLock:
    def __init__(self, fd: int, path: str) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: str, *, what: str) -> FileLock:
        """Lock ``path`` (creating it) or raise StoreError naming ``what`` is locked."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            by = f" by process {holder}" if holder else ""
            raise StoreError(
                f"{what} is already open{by} (lock {path} is held); only one process may own it"
            ) from exc
        # The pid is only for the error message above; the lock itself is what protects.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
